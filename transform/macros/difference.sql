{#- The `difference` incremental strategy: a table computed whole on every run (a
    dimension, the identified tracks) whose rows mostly stay as they were, written as the
    difference from what is stored. A scheduled build changes a few hundred of its rows;
    replacing the whole table wrote every row again (20 of the 31 MB a scheduled build wrote
    at a million plays, all of it checkpointed when the build closed the warehouse).

    The rows stored and not computed now are deleted (found by a hash of the whole row),
    then the rows computed and not stored are inserted: a stored row deleted by a hash
    collision is computed, so it is inserted again. Rows compare as sets (EXCEPT: nulls
    equal), so two equal rows computed would be stored once, where a rebuild stores both
    (and its unique test then fails): the build fails here instead when the table and the
    computed rows, equal as sets, differ in count. A build from scratch (the first, a full
    refresh, an upgrade) creates the table whole, as `table` did; a selection after an
    upgrade does not (run a whole build first: dbt says the model's columns are "out of
    sync"). -#}
{% macro get_incremental_difference_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    {{ write_difference(target, source, columns, journal=true) }};
    select error(
        '{{ target.identifier }} holds two equal rows (computed now, or stored before), '
        || 'which a difference cannot tell apart: music-tracker transform --full-refresh '
        || 'rebuilds it, and its unique test then names them'
    )
    where (select count(*) from {{ target }}) <> (select count(*) from {{ source }})
{%- endmacro %}

{#- `target` made equal to `source` (a relation with `columns`, or more) by writing only
    the rows that differ, as above: also the snapshots that steer incremental runs
    (macros/conformed_lookups.sql, macros/play_changes.sql) -#}
{% macro write_difference(target, source, columns, journal=false) -%}
    {%- if journal and config.get('serving_key') -%}
    {#- a dw table: the keys of the rows deleted and inserted go to the serving journal
        (macros/serving_journal.sql), each set computed once as a temporary table -#}
    {%- set stale = target.identifier ~ "__stale" -%}
    {%- set fresh = target.identifier ~ "__fresh" -%}
    create or replace temporary table {{ stale }} as
    select {{ columns }} from {{ target }}
    except
    select {{ columns }} from {{ source }};
    {{ journal_keys(target, stale) }}
    delete from {{ target }}
    where hash({{ columns }}) in (select hash({{ columns }}) from {{ stale }});
    create or replace temporary table {{ fresh }} as
    select {{ columns }} from {{ source }}
    except
    select {{ columns }} from {{ target }};
    {{ journal_keys(target, fresh) }}
    insert into {{ target }} ({{ columns }}) select {{ columns }} from {{ fresh }};
    drop table {{ stale }};
    drop table {{ fresh }}
    {%- else -%}
    delete from {{ target }}
    where hash({{ columns }}) in (
        select hash({{ columns }})
        from (
            select {{ columns }} from {{ target }}
            except
            select {{ columns }} from {{ source }}
        ) as stale
    );
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
    except
    select {{ columns }} from {{ target }}
    {%- endif %}
{%- endmacro %}
