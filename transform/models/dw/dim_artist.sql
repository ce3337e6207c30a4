-- the rows a build replaced, by this key, go to the serving journal (macros/serving_journal.sql)
{{ config(serving_key='artist_sid') }}
-- grain: one row per artist (artist_sid) with a play exclusions.yaml leaves in: an artist
-- whose every play is excluded has no row (no fact row refers to it), and the counts are
-- of the plays left in (docs/model.md, "Exclusions")
with

heard as (
    select * from {{ ref('int_artists') }}
),

genres as (
    select * from {{ ref('int_artist_genres') }}
),

excluded as (
    select * from {{ ref('int_plays_excluded') }}
),

-- the rows and counts of the plays exclusions.yaml leaves in
artists as (
    {{ left_in('heard', 'excluded', 'artist_sid') }}
),

-- primary genre: of an artist's genres, the one most common across all artists left in;
-- a tie goes to the genre first by name (arg_max alone picked either: two builds of the
-- same data could differ)
genre_frequency as (
    select
        genres.genre,
        count(*) as artist_count
    from genres
    inner join artists
        on genres.artist_sid = artists.artist_sid
    where genres.genre <> 'no genre defined'
    group by genres.genre
),

primary_genres as (
    select
        genres.artist_sid,
        first(
            genres.genre order by genre_frequency.artist_count desc, genres.genre asc
        ) as primary_genre
    from genres
    inner join genre_frequency
        on genres.genre = genre_frequency.genre
    group by genres.artist_sid
),

final as (
    select
        -- keys
        artists.artist_sid,
        -- a masked artist's ids would reveal it: dw carries none (the original had no ids)
        case when not artists.is_masked then artists.artist_id end as artist_id,
        case when not artists.is_masked then artists.mbid end as mbid,
        -- names
        artists.artist_name,
        artists.is_masked,
        artists.artist_type,
        artists.gender,
        coalesce(primary_genres.primary_genre, 'no genre defined') as primary_genre,
        -- popularity (Spotify; null for development-mode apps since 2026)
        artists.artist_popularity,
        {{ popularity_group('artists.artist_popularity', 'Artist') }} as artist_popularity_group,
        {{ popularity_sort('artists.artist_popularity') }} as artist_popularity_sort,
        {{ is_popular('artists.artist_popularity', 'Artist') }} as is_popular,
        -- personal popularity (the owner's streams; always available)
        artists.play_count,
        artists.stream_count,
        {{ personal_popularity_group('artists.stream_count', 'Artist') }}
            as personal_popularity_group,
        {{ personal_popularity_sort('artists.stream_count', 'Artist') }}
            as personal_popularity_sort,
        -- location (MusicBrainz area walk); 'Unknown' names, null codes when not known
        artists.continent_code,
        coalesce(artists.continent, 'Unknown') as continent,
        coalesce(artists.region, 'Unknown') as region,
        artists.country_code,
        coalesce(artists.country, 'Unknown') as country,
        artists.state_province_code,
        artists.state_province,
        artists.county,
        artists.city,
        artists.district,
        artists.lat,
        artists.long
    from artists
    left join primary_genres
        on artists.artist_sid = primary_genres.artist_sid
)

select * from final
