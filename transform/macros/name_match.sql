{#- A name as exclusions.yaml matches it, the same on both sides (the entry as written and
    every play's name): trimmed, composed (NFC: an accent typed or stored as a separate
    mark), lower case, and a final sigma as any sigma (DuckDB lowers Σ to σ everywhere; a
    name typed in lower case ends in ς). -#}
{% macro name_match(expr) -%}
    replace(lower(nfc_normalize(trim({{ expr }}))), 'ς', 'σ')
{%- endmacro %}
