{#- Incremental: a run recomputes the rows of the plays added, changed or removed, and of
    every play of an artist whose genres changed (enrichment): int_artist_genres is
    compared with the copy of it the last run kept (macros/play_changes.sql). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        serving_key='play_sid',
        changed_rows='genre_rows_changed',
        on_schema_change='fail',
        pre_hook="{{ start_lent_snapshots(this, ['genres']) }}",
        post_hook="{{ store_lent_snapshots(this, ['genres']) }}",
    )
}}
-- grain: one row per play and genre of the play's artist (artist x genre x play), for the
-- genre reports; plays of artists without genres count under 'no genre defined'
with

plays as (
    select * from {{ ref('fact_track_played') }}
    {% if is_incremental() %}
        where {{ genre_rows_changed(this) }}
    {% endif %}
),

genres as (
    select * from {{ ref('int_artist_genres') }}
),

final as (
    select
        -- keys
        genres.genre_sid,
        plays.artist_sid,
        plays.date_sid,
        plays.time_sid,
        plays.play_sid,
        plays.track_sid,
        -- measures
        plays.ms_played,
        plays.tracks_played,
        plays.is_stream
    from plays
    inner join genres
        on plays.artist_sid = genres.artist_sid
)

select * from final
