{#- The serving journal: what a build changed in each `dw` table, so that `music-tracker
    publish` writes only that into a copy of the last serving copy instead of copying every
    table (src/music_tracker/publish.py).

    A `dw` model built whole (its first build, a full refresh, a plain table) says so with
    one row whose key is null: the publish copies the table whole. An incremental `dw`
    model names its `serving_key` (a column of its own; a value stands for the group of
    rows that hold it) and its strategy writes the key values of every row it deletes and
    every row it inserts: the publish replaces those groups by the warehouse's rows. A
    model not built in a run writes nothing, and its table is kept as it is.

    music-tracker writes the build's own row (raw.serving_builds) before dbt starts; the
    statements read its id from there, so a replayed build (src/music_tracker/replay.py)
    journals under its own id. -#}

{% macro serving_build() -%}
    (select max(build_id) from raw.serving_builds)
{%- endmacro %}

{#- pre-hook of every `dw` model (dbt_project.yml): a table made whole says so -#}
{% macro journal_whole_table() -%}
    {%- if execute and config.get('materialized') == 'incremental'
        and not config.get('serving_key') -%}
        {{ exceptions.raise_compiler_error(
            this.identifier ~ " is an incremental dw model without serving_key: name the "
            ~ "column whose values group the rows it replaces (macros/serving_journal.sql)"
        ) }}
    {%- endif -%}
    {%- if not is_incremental() -%}
        insert into raw.serving_journal
        select {{ serving_build() }}, '{{ this.identifier }}', null, null
    {%- endif -%}
{%- endmacro %}

{#- Above this many key values in one statement the table is journalled as made whole: a
    rebuild of the fact (a full refresh of it alone, an old export covering years) would
    otherwise journal every play, and the publish then copies the table whole anyway. -#}
{% macro serving_keys_limit() -%}
    50000
{%- endmacro %}

{#- the `serving_key` values of `rows` (a relation, or a query in parentheses with an
    alias) journalled for `target`, or one null row when there are more than the limit;
    nothing for a model without a key (not in `dw`) -#}
{% macro journal_keys(target, rows) -%}
    {%- set key = config.get('serving_key') -%}
    {%- if key -%}
        create or replace temporary table serving_keys as
        select distinct cast({{ key }} as varchar) as key_value from {{ rows }};
        insert into raw.serving_journal
        select {{ serving_build() }}, '{{ target.identifier }}', '{{ key }}', key_value
        from serving_keys
        where (select count(*) from serving_keys) <= {{ serving_keys_limit() }}
        union all
        select {{ serving_build() }}, '{{ target.identifier }}', null, null
        where (select count(*) from serving_keys) > {{ serving_keys_limit() }};
        drop table serving_keys;
    {%- endif -%}
{%- endmacro %}
