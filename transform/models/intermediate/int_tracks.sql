-- a table, not a view: every dw model joins it to the plays, and as a view its
-- aggregate over every play ran inside that join, which ran out of its memory cap at
-- 10 million plays (a table: the fact's join takes 20 s there). Incremental: a run
-- recomputes the tracks with a conformed play written or deleted (macros/play_changes.sql);
-- a track left without plays disappears.
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        changed_rows='tracks_replayed',
        on_schema_change='fail',
    )
}}

-- grain: one row per track (track_sid), with length and the owner's own stream counts
with

plays as (
    select * from {{ ref('int_plays_conformed') }}
    {% if is_incremental() %}
        where {{ tracks_replayed(this) }}
    {% endif %}
),

final as (
    select
        track_sid,
        -- the id the key was built from: the largest of the (artist, track name) group
        max(track_id) as track_id,
        any_value(track_name) as track_name,
        any_value(artist_name) as artist_name,
        -- the artists it was heard by (a masked one masks it in dim_track), sorted so
        -- that a recomputed track compares equal
        list(distinct artist_sid order by artist_sid) as artist_sids,
        max(duration_ms) as duration_ms,
        max(track_popularity) as track_popularity,
        count(*) as play_count,
        count(*) filter (where ms_played >= {{ var('stream_threshold_ms') }}) as stream_count
    from plays
    group by track_sid
)

select * from final
