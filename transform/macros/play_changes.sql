{#- Change logs: what the models downstream of a play recompute.

    `fact_track_played`, `int_plays_conformed` and `int_plays_deduplicated` write, in the
    transaction that changes them, one row per play they insert, replace or delete: the
    old row's keys and times and the new row's (get_incremental_logged_delete_insert_sql,
    and delete_plays_gone for plays merged away). A build from scratch writes one row of
    nulls instead: everything downstream is then rebuilt whole. The fact's log steers the
    aggregates of `dw`, the conformed plays' log the fact, the de-duplicated plays' log
    the tracks heard. music-tracker empties the log when a whole-project build has
    succeeded (warehouse.record_transform), so an aggregate that failed or was not built
    finds every change since the last good build on its next run. -#}

{#- A model's change log: intermediate.<model>_changes, with the columns its
    `logged_columns` config names (and their types), and logged_at. -#}
{% macro changes_relation(model) -%}
    {%- set path = {"schema": "intermediate", "identifier": model.identifier ~ "_changes"} -%}
    {{ return(model.incorporate(path=path)) }}
{%- endmacro %}

{% macro play_changes() -%}
    {{ changes_relation(ref('fact_track_played')) }}
{%- endmacro %}

{% macro logged(alias) -%}
    {#- configs are read when the model runs (execute); parsing renders hooks too -#}
    {%- for column in (config.require("logged_columns") if execute else {}) %}
    {{ alias }}.{{ column }},
    {%- endfor %}
    current_timestamp as logged_at
{%- endmacro %}

{#- pre-hooks of a logged model: the log exists, and a build from scratch says so (and
    makes the log anew: its columns follow the model's config, which an upgrade may have
    changed; the row of nulls says that everything changed anyway) -#}
{% macro start_changes_log(model) -%}
    create {{ 'table if not exists' if is_incremental() else 'or replace table' }}
    {{ changes_relation(model) }} (
        {%- for column, type in (config.require("logged_columns") if execute else {}).items() %}
        {{ column }} {{ type }},
        {%- endfor %}
        logged_at timestamptz
    );
    {% if not is_incremental() -%}
        insert into {{ changes_relation(model) }} (logged_at) values (current_timestamp)
    {%- endif %}
{%- endmacro %}

{#- the plays merged away: of the plays a stored row has left (raw.play_id_moves, every
    move, so a play whose rows moved on again before this build is among them), those
    `upstream` has no row of now. A play loses its last row only by a move (raw rows are
    append-only), so these are all the plays gone; looking among them costs a scan of one
    column instead of a comparison of every play with every other. -#}
{% macro plays_merged_away(upstream, upstream_key) -%}
    {%- set moves = ref('stg_pipeline__play_id_moves') -%}
    select previous_play_id as play_sid from {{ moves }}
    except
    select {{ upstream_key }} from {{ upstream }}
    where {{ upstream_key }} in (select previous_play_id from {{ moves }})
{%- endmacro %}

{#- post-hook of a model whose rows are plays (`key`): the plays merged away since its last
    run are deleted, and logged first when the model keeps a change log -#}
{% macro delete_plays_gone(model, upstream, upstream_key='play_sid', key='play_sid', log=true) -%}
    create or replace temporary table {{ model.identifier }}_gone as
    {{ plays_merged_away(upstream, upstream_key) }};
    {% if log -%}
        insert into {{ changes_relation(model) }}
        select {{ logged('kept') }} from {{ model }} as kept
        where kept.{{ key }} in (select play_sid from {{ model.identifier }}_gone);
    {%- endif %}
    {{ journal_keys(model, model.identifier ~ "_gone") }}
    delete from {{ model }}
    where {{ key }} in (select play_sid from {{ model.identifier }}_gone);
    drop table {{ model.identifier }}_gone
{%- endmacro %}

{#- Exclusions that change without exclusions.yaml changing: enrichment gives an artist a
    genre the file lists, or takes it away. The fact keeps the plays it left out on its
    last run (intermediate.<model>_excluded); a run recomputes the plays excluded then and
    not now (they come back), and its post-hook logs and deletes the stored plays excluded
    now (they go), then stores what is excluded now. An edit of the file itself rebuilds
    everything (src/music_tracker/transform.py). -#}
{% macro excluded_relation(model) -%}
    {%- set path = {"schema": "intermediate", "identifier": model.identifier ~ "_excluded"} -%}
    {{ return(model.incorporate(path=path)) }}
{%- endmacro %}

{% macro start_excluded_snapshot(model) -%}
    create table if not exists {{ excluded_relation(model) }} (play_sid varchar)
{%- endmacro %}

{% macro delete_plays_excluded(model, excluded) -%}
    create or replace temporary table plays_excluded_now as
    select distinct play_sid from {{ excluded }};
    insert into {{ changes_relation(model) }}
    select {{ logged('kept') }} from {{ model }} as kept
    where kept.play_sid in (select play_sid from plays_excluded_now);
    {{ journal_keys(model, "(select play_sid from " ~ model ~ " where play_sid in"
        ~ " (select play_sid from plays_excluded_now)) as excluded") }}
    delete from {{ model }}
    where play_sid in (select play_sid from plays_excluded_now);
    delete from {{ excluded_relation(model) }};
    insert into {{ excluded_relation(model) }} select play_sid from plays_excluded_now;
    drop table plays_excluded_now
{%- endmacro %}

{#- What the fact's rows take from a track (its length) and an artist (name, popularity):
    the fact keeps a copy of what it used on its last run (intermediate.<model>_lent_tracks
    and _lent_artists, one row per track or artist), and a run recomputes the plays of the
    tracks and artists that differ from it. Comparing with the fact's own rows instead
    meant a distinct over every stored play on each run. -#}
{% macro lent_relation(model, kind) -%}
    {%- set path = {"schema": "intermediate", "identifier": model.identifier ~ "_lent_" ~ kind} -%}
    {{ return(model.incorporate(path=path)) }}
{%- endmacro %}

{#- what is lent, by kind: the model it comes from and the columns kept -#}
{% macro lent_sources() -%}
    {{ return({
        'tracks': ('int_tracks', 'track_sid, duration_ms'),
        'artists': ('int_artists', 'artist_sid, artist_name, artist_popularity'),
        'genres': ('int_artist_genres', 'artist_sid, genre_sid'),
    }) }}
{%- endmacro %}

{% macro lent_columns(kind) -%}
    {{ lent_sources()[kind][1] }}
{%- endmacro %}

{#- pre-hook and post-hook: the copies exist; they are made what was lent this run, writing
    only the rows that differ (macros/difference.sql: the whole copy of the tracks was most
    of the 3.1 MB the fact wrote on a scheduled build at a million plays) -#}
{% macro start_lent_snapshots(model, kinds) -%}
    {% for kind in kinds %}
        create table if not exists {{ lent_relation(model, kind) }} as
        select {{ lent_columns(kind) }} from {{ ref(lent_sources()[kind][0]) }} limit 0;
    {% endfor %}
{%- endmacro %}

{% macro store_lent_snapshots(model, kinds) -%}
    {% for kind in kinds %}
        {{ write_difference(
            lent_relation(model, kind), ref(lent_sources()[kind][0]), lent_columns(kind)
        ) }};
    {% endfor %}
{%- endmacro %}

{#- `column` of a row of a model downstream of the logged `model` is one whose plays
    changed: a play of it was written or deleted there since the last good build (its
    old and its new row are logged), or `model` was built from scratch (its log's row of
    nulls, `key` null) -#}
{% macro logged_change(model, column, key) -%}
    {%- set log = changes_relation(model) -%}
    (
        {{ column }} in (
            select {{ column }} from {{ log }}
            where {{ key }} is not null and {{ column }} is not null
        )
        or exists (select 1 from {{ log }} where {{ key }} is null)
    )
{%- endmacro %}

{#- `column` (track_sid, artist_sid) of a row of a per-track or per-artist model is one whose
    conformed plays changed -#}
{% macro conformed_changed(column) -%}
    {{ logged_change(ref('int_plays_conformed'), column, 'play_sid') }}
{%- endmacro %}

{#- the tracks of int_tracks_heard a run recomputes: those a de-duplicated play was written
    to or deleted from (its track id before and after) -#}
{% macro tracks_heard_changed(target) -%}
    {{ logged_change(ref('int_plays_deduplicated'), 'track_id', 'play_id') }}
{%- endmacro %}

{#- the rows of int_plays_excluded a run replaces: every row of a play the conformed plays'
    log names, and every genre entry's row (recomputed against every play); every row when
    a stored row names an entry the file no longer has as it was (a comment or a new order
    moves entries to other lines without changing the fingerprint, which leaves lines
    out: a full refresh is not made) -#}
{% macro excluded_rows_changed(target) -%}
    ({{ exclusion_matched_again(target) }} or kind = 'genre')
{%- endmacro %}

{#- a play whose match by name and id int_plays_excluded computes again (its rows are
    replaced, above; the model folds the names of these plays only) -#}
{% macro exclusion_matched_again(target) -%}
    ({{ conformed_changed('play_sid') }} or {{ exclusion_lines_moved(target) }})
{%- endmacro %}

{% macro exclusion_lines_moved(target) -%}
    exists (
        select kind, entry, reason, line_number from {{ target }}
        except
        select kind, entry, reason, line_number from {{ ref('stg_pipeline__exclusions') }}
    )
{%- endmacro %}

{% macro tracks_replayed(target) -%}
    {{ conformed_changed('track_sid') }}
{%- endmacro %}

{#- a model computed whole from its stored rows and what changed: every row is replaced -#}
{% macro every_row(target) -%}
    true
{%- endmacro %}

{#- true when the fact was built from scratch since the last good build -#}
{% macro everything_changed() -%}
    exists (select 1 from {{ play_changes() }} where play_sid is null)
{%- endmacro %}

{#- `expression` of a row (of the fact or of an aggregate) is one that changed: the same
    expression of a logged row equals it, or everything changed. -#}
{% macro changed(expression, logged_expression=none) -%}
    (
        {{ expression }} in (
            select {{ logged_expression or expression }} from {{ play_changes() }}
            where play_sid is not null
        )
        or {{ everything_changed() }}
    )
{%- endmacro %}

{#- the rows of `rows` (a CTE) that the model does not hold as they are: a new key, or a
    stored row whose `hash_column` differs. Only the stored rows of the keys in `rows` are
    read (a semi-join whose small side is `rows`, materialized first); comparing with the
    whole table built a hash table of every stored play, which at 10M plays outgrew the
    memory cap, and a correlated NOT EXISTS was planned as a join over every stored play
    (11 s of a 14 s run there). -#}
{% macro not_stored_as_is(rows, key, stored_key, hash_column) -%}
    with stored_hashes as materialized (
        select
            {{ stored_key }},
            {{ hash_column }}
        from {{ this }}
        where {{ stored_key }} in (select {{ key }} from {{ rows }})
    )

    select {{ rows }}.* from {{ rows }}
    left join stored_hashes
        on {{ rows }}.{{ key }} = stored_hashes.{{ stored_key }}
    where stored_hashes.{{ hash_column }} is distinct from {{ rows }}.{{ hash_column }}
{%- endmacro %}

{#- delete+insert that logs both sides first (int_plays_conformed, fact_track_played) -#}
{% macro get_incremental_logged_delete_insert_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set source = arg_dict["temp_relation"] -%}
    {%- set key = arg_dict["unique_key"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    insert into {{ changes_relation(target) }}
    select {{ logged('old') }}
    from {{ target }} as old
    where old.{{ key }} in (select {{ key }} from {{ source }});
    insert into {{ changes_relation(target) }}
    select {{ logged('new') }}
    from {{ source }} as new;
    {{ journal_keys(target, source) }}
    delete from {{ target }}
    where {{ key }} in (select {{ key }} from {{ source }});
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#- Replace the rows the model's `changed_rows` config selects by the new ones: for
    aggregates whose rows for a changed key may vanish (a day with no play left), which
    delete+insert on the new rows' keys would leave behind. `changed_rows` names a macro
    called with the model's table, here and in the model's SQL (a condition rendered in
    the config itself would be rendered at parse time, when refs do not resolve yet). -#}
{% macro get_incremental_replace_where_sql(arg_dict) -%}
    {%- set target = arg_dict["target_relation"] -%}
    {%- set columns = get_quoted_csv(arg_dict["dest_columns"] | map(attribute="name")) -%}
    {%- set changed_rows = context[config.require("changed_rows")] -%}
    {{ journal_keys(target, "(select * from " ~ target ~ " where " ~ changed_rows(target) ~ ") as replaced") }}
    delete from {{ target }}
    where {{ changed_rows(target) }};
    {{ journal_keys(target, arg_dict["temp_relation"]) }}
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict["temp_relation"] }}
{%- endmacro %}

{#- the rows of each aggregate a run recomputes -#}
{% macro days_changed(target) -%}
    {{ changed('date_sid') }}
{%- endmacro %}

{% macro months_changed(target) -%}
    {{ changed('month_start_date', "cast(date_trunc('month', date_sid) as date)") }}
{%- endmacro %}

{% macro first_listens_changed(target) -%}
    (
        (entity_type = 'track' and {{ changed('entity_sid', 'track_sid') }})
        or (entity_type = 'artist' and {{ changed('entity_sid', 'artist_sid') }})
    )
{%- endmacro %}

{#- sessions from the last one that began before the earliest play added, changed or
    removed: that session's first play and the play before it are untouched, so a
    session still begins there -#}
{% macro sessions_changed(target) -%}
    first_played_at >= {{ session_window_start(target) }}
{%- endmacro %}

{% macro session_window_start(target) -%}
    (
        select
            case
                when {{ everything_changed() }} then timestamptz '-infinity'
                when min(changes.played_at) is null then timestamptz 'infinity'
                else coalesce((
                    select max(kept.first_played_at)
                    from {{ target }} as kept
                    where kept.first_played_at < min(changes.played_at)
                ), timestamptz '-infinity')
            end
        from {{ play_changes() }} as changes
        where changes.play_sid is not null
    )
{%- endmacro %}

{#- the plays changed, and every play of an artist whose genres changed (enrichment):
    int_artist_genres is compared with the copy of it the model's last run kept
    (intermediate.<model>_lent_genres, one row per artist and genre; comparing with the
    model's own rows meant a set difference over every play's genres on each run) -#}
{% macro genre_rows_changed(target) -%}
    {%- set lent = lent_relation(target, 'genres') -%}
    (
        {{ changed('play_sid') }}
        or artist_sid in (
            select artist_sid from (
                (
                    select artist_sid, genre_sid from {{ ref('int_artist_genres') }}
                    except
                    select artist_sid, genre_sid from {{ lent }}
                )
                union all
                (
                    select artist_sid, genre_sid from {{ lent }}
                    except
                    select artist_sid, genre_sid from {{ ref('int_artist_genres') }}
                )
            )
        )
    )
{%- endmacro %}
