{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        serving_key='date_sid',
        changed_rows='days_changed',
        on_schema_change='fail',
    )
}}
-- grain: one row per local day with listening (dashboards read this, not the fact).
-- Incremental: a run recomputes the days in which a play was added, changed or removed.
with

plays as (
    select * from {{ ref('fact_track_played') }}
    {% if is_incremental() %}
        where {{ changed('date_sid') }}
    {% endif %}
),

final as (
    select
        date_sid,
        count(*) as tracks_played,
        count(*) filter (where is_stream) as streams,
        count(*) filter (where skipped) as skips,
        cast(sum(coalesce(ms_played, 0)) as bigint) as ms_played,
        round(sum(coalesce(ms_played, 0)) / 60000, 2) as minutes_played,
        count(distinct track_sid) as distinct_tracks,
        count(distinct artist_sid) as distinct_artists
    from plays
    group by date_sid
)

select * from final
