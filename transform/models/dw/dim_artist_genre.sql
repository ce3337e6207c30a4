-- grain: one row per genre (genre_sid), ranked by plays and by time played (ROW_NUMBER:
-- unique ranks, ties broken by genre name); the five groups are ntile(5) (the T-SQL
-- version's integer division could make a sixth), as integers with their labels beside
with

-- the one pass over every play's genres: the genres' totals below are sums of these
per_genre_artist as (
    select
        genre_sid,
        artist_sid,
        count(*) as tracks_played,
        sum(coalesce(ms_played, 0)) as ms_played
    from {{ ref('fact_artist_genre') }}
    group by genre_sid, artist_sid
),

-- the genres of plays left in: a genre whose every play exclusions.yaml keeps out has
-- no row
genres as (
    select distinct
        genre_sid,
        genre
    from {{ ref('int_artist_genres') }}
    where genre_sid in (select per_genre_artist.genre_sid from per_genre_artist)
),

artists as (
    select * from {{ ref('int_artists') }}
),

per_genre as (
    select
        genre_sid,
        cast(sum(tracks_played) as bigint) as total_tracks_played_in_genre,
        sum(ms_played) as total_ms_played_in_genre
    from per_genre_artist
    group by genre_sid
),

top_artists as (
    select
        per_genre_artist.genre_sid,
        first(
            artists.artist_name
            order by per_genre_artist.tracks_played desc, artists.artist_name asc
        ) as top_artist_in_genre,
        -- highest Spotify popularity; with none known (development-mode apps since 2026)
        -- the most played, so the column still names an artist
        first(
            artists.artist_name
            order by
                artists.artist_popularity desc nulls last,
                per_genre_artist.tracks_played desc,
                artists.artist_name asc
        ) as most_popular_artist_in_genre
    from per_genre_artist
    inner join artists
        on per_genre_artist.artist_sid = artists.artist_sid
    group by per_genre_artist.genre_sid
),

ranked as (
    select
        genres.genre_sid,
        genres.genre,
        top_artists.top_artist_in_genre,
        top_artists.most_popular_artist_in_genre,
        coalesce(per_genre.total_tracks_played_in_genre, 0) as total_tracks_played_in_genre,
        round(coalesce(per_genre.total_ms_played_in_genre, 0) / 60000, 2)
            as total_minutes_played_in_genre,
        row_number() over (
            order by coalesce(per_genre.total_tracks_played_in_genre, 0) desc, genres.genre
        ) as rank_by_tracks_played,
        ntile(5) over (
            order by coalesce(per_genre.total_tracks_played_in_genre, 0) desc, genres.genre
        ) as tracks_group_number,
        row_number() over (
            order by coalesce(per_genre.total_ms_played_in_genre, 0) desc, genres.genre
        ) as rank_by_time_played,
        ntile(5) over (
            order by coalesce(per_genre.total_ms_played_in_genre, 0) desc, genres.genre
        ) as time_group_number
    from genres
    left join per_genre
        on genres.genre_sid = per_genre.genre_sid
    left join top_artists
        on genres.genre_sid = top_artists.genre_sid
),

final as (
    select
        genre_sid,
        genre,
        top_artist_in_genre,
        most_popular_artist_in_genre,
        rank_by_tracks_played,
        cast(tracks_group_number as integer) as tracks_grouping,
        {{ genre_group('tracks_group_number') }} as group_by_tracks_played,
        total_tracks_played_in_genre,
        rank_by_time_played,
        cast(time_group_number as integer) as time_grouping,
        {{ genre_group('time_group_number') }} as group_by_time_played,
        total_minutes_played_in_genre
    from ranked
)

select * from final
