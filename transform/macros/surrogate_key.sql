{#- The original model's keys: md5 exactly as dbt_utils.generate_surrogate_key builds it
    (each field cast to text, nulls as '_dbt_utils_surrogate_key_null_', joined by '-'),
    so a key computed here equals the old warehouse's key for the same inputs. -#}
{% macro surrogate_key(fields) -%}
    md5(
        {%- for field in fields %}
        coalesce(cast({{ field }} as varchar), '_dbt_utils_surrogate_key_null_')
        {%- if not loop.last %} || '-' ||{% endif %}
        {%- endfor %}
    )
{%- endmacro %}
