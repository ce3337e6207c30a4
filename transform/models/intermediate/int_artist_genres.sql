-- grain: one row per artist (artist_sid) and genre. Genres come from MusicBrainz (genres,
-- then tags when an artist has no genres) and from Spotify when the API still serves them.
-- An artist with none gets the 'no genre defined' genre, keyed like any other genre.
with

artists as (
    select * from {{ ref('int_artists') }}
),

spotify_artists as (
    select * from {{ ref('stg_spotify__artists') }}
),

musicbrainz_artists as (
    select * from {{ ref('stg_musicbrainz__artists') }}
),

listed as (
    select
        artists.artist_sid,
        list_distinct(list_filter(
            list_concat(
                coalesce(spotify_artists.genres, []),
                coalesce(
                    nullif(musicbrainz_artists.genres, []), musicbrainz_artists.tags, []
                )
            ),
            genre -> trim(genre) <> ''
        )) as genres
    from artists
    left join spotify_artists
        on artists.artist_id = spotify_artists.artist_id
    left join musicbrainz_artists
        on artists.musicbrainz_lookup_key = musicbrainz_artists.lookup_key
),

exploded as (
    select
        artist_sid,
        lower(trim(unnest(
            case when len(genres) = 0 then ['no genre defined'] else genres end
        ))) as genre
    from listed
),

final as (
    select distinct
        artist_sid,
        genre,
        {{ surrogate_key(['genre', "''"]) }} as genre_sid
    from exploded
)

select * from final
