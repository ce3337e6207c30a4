-- grain: one row per streak: a run of consecutive local days with at least one stream
with

days as (
    select date_sid
    from {{ ref('agg_daily_listening') }}
    where streams > 0
),

islands as (
    select
        date_sid,
        date_sid - cast(row_number() over (order by date_sid) as integer) as island
    from days
),

final as (
    select
        min(date_sid) as streak_start_date,
        max(date_sid) as streak_end_date,
        count(*) as streak_days
    from islands
    group by island
)

select * from final
