-- grain: one row: the settings this build of the star schema was made with. Local dates
-- and times follow the time zone, streams the threshold; status, report and export read
-- them to tell a star schema built under other settings (its figures are the old ones
-- until the next transform, which rebuilds everything when either changes)
select
    cast('{{ var("timezone") }}' as varchar) as timezone,
    cast({{ var("stream_threshold_ms") }} as integer) as stream_threshold_ms
