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
        session_number,
        min(date_sid) as date_sid,
        min(started_at) as started_at,
        max(played_at) as ended_at,
        min(played_at_local) as first_play_ended_local,
        count(*) as tracks_played,
        cast(sum(coalesce(ms_played, 0)) as bigint) as ms_played,
        round(epoch(max(played_at) - min(started_at)) / 3600, 2) as session_hours
    from numbered
    group by session_number
)

select * from final
