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
        cast(second_of_day % 3600 as integer) as second_of_hour
    from seconds
),

final as (
    select
        make_time(hour_of_day, minute_of_hour, second_of_day % 60) as time_sid,
        strftime(
            make_timestamp(2000, 1, 1, hour_of_day, minute_of_hour, second_of_day % 60), '%H:%M:%S'
        )
            as time,
        hour_of_day,
        minute_of_hour,
        second_of_hour,
        case when hour_of_day < 12 then 'AM' else 'PM' end as am_pm,
        {{ time_of_day('hour_of_day') }} as time_of_day,
        {{ time_of_day_sort('hour_of_day') }} as time_of_day_sort
    from parts
)

select * from final
