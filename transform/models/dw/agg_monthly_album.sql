-- grain: one row per month (local) and album
-- depends_on: {{ ref('fact_track_played') }}
{{ monthly_aggregate('album') }}
