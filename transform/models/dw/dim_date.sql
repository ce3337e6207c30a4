-- the rows a build replaced, by this key, go to the serving journal (macros/serving_journal.sql)
{{ config(serving_key='date_sid') }}
-- grain: one row per local calendar day, from the first play (of music or not) to 30 days
-- after the run (or to the spine_end_date the settings name, or the last play's day if
-- later), plus the unknown member 1900-01-01. day_of_week and week_of_year keep the
-- original T-SQL meanings (1 = Sunday; weeks start on Sunday, week 1 holds 1 January); ISO
-- columns beside.
with

plays as (
    select * from {{ ref('int_plays_conformed') }}
),

-- podcasts, audiobooks and videos have their days too (fact_other_played): a history may
-- hold episodes from before its first song, or no song at all
other_plays as (
    select * from {{ ref('stg_spotify__other_plays') }}
),

first_days as (
    select cast(played_at_local as date) as day from plays
    union all
    select cast({{ to_local('played_at') }} as date) as day from other_plays
),

bounds as (
    select
        coalesce(min(day), current_date) as first_day,
        {% if var('spine_end_date', none) -%}
            -- never before the last play's day: every play keeps its day whatever is set
            greatest(date '{{ var("spine_end_date") }}', max(day)) as last_day
        {%- else -%}
            current_date + {{ var('date_spine_days_ahead') }} as last_day
        {%- endif %}
    from first_days
),

spine as (
    select cast(unnest(generate_series(first_day, last_day, interval 1 day)) as date) as day
    from bounds
    union all
    select date '1900-01-01' as day
),

final as (
    select
        day as date_sid,
        day as date,
        dayofweek(day) + 1 as day_of_week,
        dayname(day) as day_of_week_name,
        cast(
            floor((dayofyear(day) - 1 + dayofweek(date_trunc('year', day))) / 7) + 1
            as integer
        ) as week_of_year,
        isodow(day) as iso_day_of_week,
        weekofyear(day) as iso_week_of_year,
        isoyear(day) as iso_year,
        year(day) as year_num,
        cast(year(day) as varchar) as year_text,
        month(day) as month_num,
        monthname(day) as month_name,
        quarter(day) as quarter,
        day(day) as day_of_month,
        dayofyear(day) as day_of_year,
        cast(date_trunc('month', day) as date) as month_start_date,
        last_day(day) as month_end_date,
        cast(date_trunc('year', day) as date) as year_start_date,
        cast(date_trunc('year', day) + interval 1 year - interval 1 day as date) as year_end_date,
        day = date '1900-01-01' as is_unknown
    from spine
)

select * from final
