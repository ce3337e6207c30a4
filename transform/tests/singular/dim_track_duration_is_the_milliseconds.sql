-- track_duration, read back as hours, minutes and microseconds, is the track's length in ms
-- to the millisecond (the original's TIME); a minute off (the // trap) fails here.
select
    track_sid,
    duration_ms,
    track_duration
from {{ ref('dim_track') }}
where
    duration_ms is not null
    and duration_ms < 86400000
    and (
        hour(track_duration) * 3600000
        + minute(track_duration) * 60000
        + cast(extract('microseconds' from track_duration) / 1000 as bigint)
    ) != duration_ms
