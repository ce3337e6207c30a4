-- The time-of-day and AM/PM edges of the original dim_time, pinned second by second.
with

expected as (
    select * from (
        values
        (time '00:00:00', 0, 'AM', 'Night', 4),
        (time '05:59:59', 5, 'AM', 'Night', 4),
        (time '06:00:00', 6, 'AM', 'Morning', 1),
        (time '11:59:59', 11, 'AM', 'Morning', 1),
        (time '12:00:00', 12, 'PM', 'Afternoon', 2),
        (time '17:59:59', 17, 'PM', 'Afternoon', 2),
        (time '18:00:00', 18, 'PM', 'Evening', 3),
        (time '23:59:59', 23, 'PM', 'Evening', 3)
    ) as edges (time_sid, hour_of_day, am_pm, time_of_day, time_of_day_sort)  -- noqa: AL05
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
        and expected.am_pm = actual.am_pm
        and expected.time_of_day = actual.time_of_day
        and expected.time_of_day_sort = actual.time_of_day_sort
where actual.time_sid is null
