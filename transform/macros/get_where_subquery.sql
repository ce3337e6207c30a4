{#- Data tests over every play, narrowed on a scheduled run to what changed: a test's
    `where` may name

    * `__new_keys__(column)`: the rows whose `column` value is also that of a row imported
      since the last successful whole build (raw.transform_runs): a duplicate of an old key
      among the new rows is still found, without grouping every stored key (a uniqueness
      test over 10 million keys ran out of its memory cap at 10 million plays). The new keys
      leave out nulls as dbt's test leaves them out of the table's side: with the null
      filter on that side alone, DuckDB judged the table the smaller and hashed all 10
      million keys (0.8 s) instead of the 100 new ones (0.1 s). More new rows than the
      project's `most_new_keys` (a first build, a large export imported) and every row is
      tested: looking up 8 million new keys ran out of the 256 MB cap at 10 million plays
      where grouping all 9.8 million passed in 2.4 s (docs/benchmarks.md). A build with
      that many is never replayed (music_tracker/transform.py), so the count is made when
      dbt compiles the test (where the tables are there: `dbt compile` or `dbt docs
      generate` by hand on a warehouse music-tracker has not made compiles the look-up);
    * `__changed_plays__`: the plays the fact's change log holds (macros/play_changes.sql):
      every play a build from scratch wrote, else the plays this run added, changed or
      removed.

    Anything else is dbt's own `where`. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get("where", "") -%}
    {%- if where -%}
        {%- set new_keys = modules.re.match("^__new_keys__\\((\\w+)\\)$", where.strip()) -%}
        {%- if new_keys -%}
            {%- set column = new_keys.group(1) -%}
            {%- set since -%}
                imported_at > (
                    select coalesce(max(started_at), timestamptz '-infinity')
                    from raw.transform_runs
                )
            {%- endset -%}
            {%- if execute and tested_tables_exist(relation) -%}
                {%- set counted = run_query("select count(*) from " ~ relation ~ " where " ~ since) -%}
                {%- if counted.columns[0].values()[0] > var("most_new_keys") | int -%}
                    {{ return(relation) }}
                {%- endif -%}
            {%- endif -%}
            {%- set where -%}
                {{ column }} in (
                    select {{ column }} from {{ relation }}
                    where {{ column }} is not null and {{ since }}
                )
            {%- endset -%}
        {%- elif where.strip() == "__changed_plays__" -%}
            {%- set where = changed("play_sid") -%}
        {%- endif -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) as dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}

{#- Whether `relation` and raw.transform_runs are in the warehouse (music-tracker's
    connection makes both; a warehouse dbt is pointed at by hand may hold neither). -#}
{% macro tested_tables_exist(relation) -%}
    {%- set found = run_query(
        "select count(*) from duckdb_tables() where database_name = current_database()"
        ~ " and (schema_name, table_name) in"
        ~ " (('raw', 'transform_runs'), ('" ~ relation.schema ~ "', '" ~ relation.identifier ~ "'))"
    ) -%}
    {{ return(found.columns[0].values()[0] == 2) }}
{%- endmacro %}
