-- The time-of-day, AM/PM and second edges of the original dim_time, pinned second by second
-- (second_of_hour is DATEPART(SECOND), 0-59; time_of_day_sort Night 1 ... Evening 4).
with

expected as (
    select * from (
        values
        (time '00:00:00', 0, 0, 'AM', 'Night', 1),
        (time '05:59:59', 5, 59, 'AM', 'Night', 1),
        (time '06:00:00', 6, 0, 'AM', 'Morning', 2),
        (time '11:59:59', 11, 59, 'AM', 'Morning', 2),
        (time '12:00:00', 12, 0, 'PM', 'Afternoon', 3),
        (time '17:59:59', 17, 59, 'PM', 'Afternoon', 3),
        (time '18:00:00', 18, 0, 'PM', 'Evening', 4),
        (time '23:59:59', 23, 59, 'PM', 'Evening', 4)
    ) as edges (  -- noqa: AL05
        time_sid, hour_of_day, second_of_hour, am_pm, time_of_day, time_of_day_sort
    )
),

actual as (
    select * from {{ ref('dim_time') }}
)

select expected.*
from expected
left join actual
    on
        expected.time_sid = actual.time_sid
        and expected.hour_of_day = actual.hour_of_day
        and expected.second_of_hour = actual.second_of_hour
        and expected.time_sid = actual.time
        and expected.am_pm = actual.am_pm
        and expected.time_of_day = actual.time_of_day
        and expected.time_of_day_sort = actual.time_of_day_sort
where actual.time_sid is null
