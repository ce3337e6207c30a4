{#- Incremental: a run recomputes the sessions from the last one that began before the
    earliest play added, changed or removed (that session's first play, and the one before
    it, are untouched, so a session still begins there), to the newest: after 100 new plays
    the last session or two. A late play in an old month renumbers every later session
    (session_number counts from the first play), so those are recomputed too. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        serving_key='session_number',
        changed_rows='sessions_changed',
        on_schema_change='fail',
    )
}}
-- grain: one row per listening session: plays less than 30 minutes apart (the start of a
-- play minus the end of the one before), for the Behaviour dashboard's longest sessions
with

plays as (
    select
        play_sid,
        date_sid,
        started_at,
        played_at,
        played_at_local,
        ms_played
    from {{ ref('fact_track_played') }}
    {% if is_incremental() %}
        where played_at >= {{ session_window_start(this) }}
    {% endif %}
),

-- sessions before the window keep their numbers
sessions_before as (
    {% if is_incremental() %}
        select coalesce(max(session_number), 0) as session_count
        from {{ this }}
        where first_played_at < {{ session_window_start(this) }}
    {% else %}
        select 0 as session_count
    {% endif %}
),

marked as (
    select
        *,
        case
            when
                started_at - lag(played_at) over (order by played_at, play_sid)
                < interval 30 minute
                then 0
            else 1
        end as is_new_session
    from plays
),

numbered as (
    select
        *,
        sum(is_new_session) over (
            order by played_at, play_sid rows unbounded preceding
        ) as session_number
    from marked
),

final as (
    select
        numbered.session_number + any_value(sessions_before.session_count) as session_number,
        min(numbered.date_sid) as date_sid,
        min(numbered.started_at) as started_at,
        max(numbered.played_at) as ended_at,
        {{ to_local('min(numbered.started_at)') }} as started_local,
        -- the earliest play's: after the clocks go back a later play can end earlier, locally
        arg_min(numbered.played_at_local, numbered.played_at) as first_play_ended_local,
        min(numbered.played_at) as first_played_at,
        count(*) as tracks_played,
        cast(sum(coalesce(numbered.ms_played, 0)) as bigint) as ms_played,
        round(epoch(max(numbered.played_at) - min(numbered.started_at)) / 3600, 2)
            as session_hours
    from numbered
    cross join sessions_before
    group by numbered.session_number
)

select * from final
