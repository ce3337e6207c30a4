-- grain: one row per month (local) and track
-- depends_on: {{ ref('fact_track_played') }}
{{ monthly_aggregate('track') }}
