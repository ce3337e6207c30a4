-- a table: the conformed plays read it, and so does their snapshot of it; computed whole
-- from the tracks heard (int_tracks_heard, which reads only the plays of tracks that
-- changed) and the metadata, written as the difference from the stored rows
-- (macros/difference.sql)
{{
    config(
        materialized='incremental',
        incremental_strategy='difference',
        on_schema_change='fail',
    )
}}

-- grain: one row per Spotify track id heard, with its best-known names and length
with

heard as (
    select * from {{ ref('int_tracks_heard') }}
),

spotify_tracks as (
    select * from {{ ref('stg_spotify__tracks') }}
),

api_plays as (
    select * from {{ ref('stg_spotify__api_plays') }}
),

listens as (
    select * from {{ ref('stg_listenbrainz__listens') }}
),

api_metadata as (
    select
        track_id,
        arg_max(artist_id, played_at) as artist_id,
        arg_max(album_id, played_at) as album_id,
        max(duration_ms) as duration_ms
    from api_plays
    group by track_id
),

-- the length a listen without a time heard gives its track (ListenBrainz's duration_ms):
-- an API play exported as a listen (the length it counted with) and read back into a
-- warehouse without the API's metadata counts with the same length
listen_metadata as (
    select
        track_id,
        max(duration_ms) as duration_ms
    from listens
    where track_id is not null and ms_played is null and duration_ms > 0
    group by track_id
),

final as (
    select
        -- keys
        heard.track_id,
        coalesce(spotify_tracks.primary_artist_id, api_metadata.artist_id) as artist_id,
        coalesce(spotify_tracks.album_id, api_metadata.album_id) as album_id,
        spotify_tracks.isrc,
        -- names
        coalesce(heard.track_name, spotify_tracks.track_name) as track_name,
        coalesce(heard.artist_name, spotify_tracks.primary_artist_name) as artist_name,
        heard.album_name,
        heard.name_key,
        -- measures
        heard.play_count,
        coalesce(
            spotify_tracks.duration_ms,
            api_metadata.duration_ms,
            listen_metadata.duration_ms,
            heard.full_play_ms
        ) as duration_ms,
        spotify_tracks.track_popularity
    from heard
    left join spotify_tracks
        on heard.track_id = spotify_tracks.track_id
    left join api_metadata
        on heard.track_id = api_metadata.track_id
    left join listen_metadata
        on heard.track_id = listen_metadata.track_id
)

select * from final
