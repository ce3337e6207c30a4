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
  {%- set existing = load_cached_relation(this) -%}
  {%- set target = this.incorporate(type='view') -%}
  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {% do adapter.ensure_transaction() %}
  {% if existing is not none and not existing.is_view %}
    {% do adapter.drop_relation(existing) %}
  {% endif %}
  {% call statement('main') -%}
    {%- if config.get('contract').enforced -%}{{ get_assert_columns_equivalent(sql) }}{%- endif %}
    create or replace view {{ target }} as (
      {{ sql }}
    );
  {%- endcall %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target]}) }}
{% endmaterialization %}

{% materialization table, adapter='duckdb' %}
  {%- set existing = load_cached_relation(this) -%}
  {%- set target = this.incorporate(type='table') -%}
  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}
  {% do adapter.ensure_transaction() %}
  {% if existing is not none %}
    {% do adapter.drop_relation(existing) %}
  {% endif %}
  {% call statement('main') -%}
    {{ create_table_as(False, target, sql) }}
  {%- endcall %}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}
  {{ return({'relations': [target]}) }}
{% endmaterialization %}
