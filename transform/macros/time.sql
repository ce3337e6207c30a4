{#- Local wall-clock time of a UTC timestamptz in the configured IANA zone, explicitly, so
    nothing depends on the database session's time zone. -#}
{% macro to_local(utc_timestamp) -%}
    timezone('{{ var("timezone") }}', {{ utc_timestamp }})
{%- endmacro %}

{% macro track_length(seconds) -%}
    case
        when {{ seconds }} is null then 'unknown'
        when {{ seconds }} < 30 then 'very short'
        when {{ seconds }} < 180 then 'short'
        when {{ seconds }} < 300 then 'average'
        when {{ seconds }} < 420 then 'pretty long'
        when {{ seconds }} < 600 then 'long'
        else 'possibly too long'
    end
{%- endmacro %}

{#- The original's values: 0, 1, 2, 3, 5, 6, 7 (it skips 4). -#}
{% macro track_length_sort(seconds) -%}
    case
        when {{ seconds }} is null then 0
        when {{ seconds }} < 30 then 1
        when {{ seconds }} < 180 then 2
        when {{ seconds }} < 300 then 3
        when {{ seconds }} < 420 then 5
        when {{ seconds }} < 600 then 6
        else 7
    end
{%- endmacro %}

{% macro time_of_day(hour) -%}
    case
        when {{ hour }} < 6 then 'Night'
        when {{ hour }} < 12 then 'Morning'
        when {{ hour }} < 18 then 'Afternoon'
        else 'Evening'
    end
{%- endmacro %}

{#- The original's order: Night 1, Morning 2, Afternoon 3, Evening 4. -#}
{% macro time_of_day_sort(hour) -%}
    case
        when {{ hour }} < 6 then 1
        when {{ hour }} < 12 then 2
        when {{ hour }} < 18 then 3
        else 4
    end
{%- endmacro %}
