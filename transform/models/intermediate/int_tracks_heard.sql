-- Incremental: a run recomputes the tracks a de-duplicated play was written to or deleted
-- from since the last good build (its track id before and after: a merge or a richer row
-- can move a play to another track), from every play of those tracks; a track left with
-- no play loses its row. Computed over every play, this was the largest per-track cost of
-- a build after a day's plays (0.25 s at 1M plays, 1.2 s at 10M).
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        changed_rows='tracks_heard_changed',
        on_schema_change='fail',
    )
}}
-- grain: one row per Spotify track id heard, with what its plays say of it
with

plays as (
    select * from {{ ref('int_plays_deduplicated') }}
    where
        track_id is not null
        {% if is_incremental() %}
            and {{ tracks_heard_changed(this) }}
        {% endif %}
),

final as (
    select
        track_id,
        count(*) as play_count,
        arg_max(track_name, played_at) as track_name,
        arg_max(artist_name, played_at) as artist_name,
        arg_max(album_name, played_at) filter (where album_name is not null) as album_name,
        arg_max(name_key, played_at) as name_key,
        -- a play that ended with "trackdone" heard the whole track
        max(ms_played) filter (where reason_end = 'trackdone') as full_play_ms
    from plays
    group by track_id
)

select * from final
