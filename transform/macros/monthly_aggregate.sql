{#- One row per local month and `entity` (artist, track or album): plays, streams and time
    played, summed in ms and converted once. Incremental: a run recomputes the months in
    which a play was added, changed or removed (macros/play_changes.sql). -#}
{% macro monthly_aggregate(entity) -%}
{%- set month = "cast(date_trunc('month', date_sid) as date)" -%}
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        serving_key='month_start_date',
        changed_rows='months_changed',
        on_schema_change='fail',
    )
}}
with

plays as (
    select * from {{ ref('fact_track_played') }}
    {% if is_incremental() %}
        where {{ changed(month) }}
    {% endif %}
),

final as (
    select
        cast(date_trunc('month', date_sid) as date) as month_start_date,
        {{ entity }}_sid,
        count(*) as tracks_played,
        count(*) filter (where is_stream) as streams,
        cast(sum(coalesce(ms_played, 0)) as bigint) as ms_played,
        round(sum(coalesce(ms_played, 0)) / 60000, 2) as minutes_played
    from plays
    group by all
)

select * from final
{%- endmacro %}
