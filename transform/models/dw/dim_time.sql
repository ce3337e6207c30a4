-- grain: one row per second of the local day (86,400 rows)
with

seconds as (
    select unnest(range(0, 86400)) as second_of_day
),

parts as (
    select
        second_of_day,
        cast(second_of_day // 3600 as integer) as hour_of_day,
        cast(second_of_day % 3600 // 60 as integer) as minute_of_hour,
        cast(second_of_day % 60 as integer) as second_of_minute,
        cast(second_of_day % 3600 as integer) as seconds_into_hour
    from seconds
),

final as (
    select
        make_time(hour_of_day, minute_of_hour, second_of_minute) as time_sid,
        make_time(hour_of_day, minute_of_hour, second_of_minute) as time,
        hour_of_day,
        minute_of_hour,
        -- the original's DATEPART(SECOND): the second within the minute, despite the name
        second_of_minute as second_of_hour,
        seconds_into_hour,
        case when hour_of_day < 12 then 'AM' else 'PM' end as am_pm,
        {{ time_of_day('hour_of_day') }} as time_of_day,
        {{ time_of_day_sort('hour_of_day') }} as time_of_day_sort
    from parts
)

select * from final
