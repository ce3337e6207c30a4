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

{% macro track_length_sort(seconds) -%}
    case
        when {{ seconds }} is null then 0
        when {{ seconds }} < 30 then 1
        when {{ seconds }} < 180 then 2
        when {{ seconds }} < 300 then 3
        when {{ seconds }} < 420 then 4
        when {{ seconds }} < 600 then 5
        else 6
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

{% macro time_of_day_sort(hour) -%}
    case
        when {{ hour }} < 6 then 4
        when {{ hour }} < 12 then 1
        when {{ hour }} < 18 then 2
        else 3
    end
{%- endmacro %}
