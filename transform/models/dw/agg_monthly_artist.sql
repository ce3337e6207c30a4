-- grain: one row per month (local) and artist
-- depends_on: {{ ref('fact_track_played') }}
{{ monthly_aggregate('artist') }}
