{#- The project's views and tables, each replaced inside one transaction.

    dbt-duckdb's own materializations build under a temporary name, then rename the old
    relation to a backup, rename the new one into place and drop the backup, looking up
    indexes and constraints on the way: per node three more statements and three more
    catalog queries, each a round of dbt's Python (0.55 of a whole build's 4.9 CPU-s on a
    small warehouse, docs/benchmarks.md). DuckDB's DDL is transactional, so dropping the old relation and creating
    the new one in the same transaction is as safe: a failure rolls both back, and no
    reader ever sees the relation missing. The project uses no grants, indexes, foreign
    keys or persisted docs, which are what the rest of the built-in ones handle. -#}

{% materialization view, adapter='duckdb' %}
  {%- set target = this.incorporate(type='view') -%}
  {%- set existing = load_cached_relation(this) -%}
  {%- set replaced = existing is not none and not existing.is_view -%}
  {%- set create -%}
    {%- if config.get('contract').enforced -%}{{ get_assert_columns_equivalent(sql) }}{%- endif %}
    create or replace view {{ target }} as (
      {{ sql }}
    );
  {%- endset -%}
  {{ return(replace_in_one_transaction(target, existing if replaced else none, create)) }}
{% endmaterialization %}

{% materialization table, adapter='duckdb' %}
  {%- set target = this.incorporate(type='table') -%}
  {%- set existing = load_cached_relation(this) -%}
  {{ return(replace_in_one_transaction(target, existing, create_table_as(False, target, sql))) }}
{% endmaterialization %}

{#- The hooks, then in one transaction: ``dropped`` (if any) dropped, ``create`` run. -#}
{% macro replace_in_one_transaction(target, dropped, create) %}
  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {% do adapter.ensure_transaction() %}
  {% if dropped is not none %}
    {% do adapter.drop_relation(dropped) %}
  {% endif %}
  {% call statement('main') -%}
    {{ create }}
  {%- endcall %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target]}) }}
{% endmacro %}
