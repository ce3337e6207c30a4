{#- The lookups a play is conformed with (int_plays_conformed), and their snapshot.

    A play's conformed row reads its own deduplicated row and three lookups: its track's
    row in int_tracks_identified (by the conformed track id), the most played Spotify-id
    twin of its name (by name key), and the most played identified artist of its artist
    name (by artist key). The conformed model stores a hash of each lookup row after every
    run (intermediate.int_plays_conformed_lookups); the next incremental run compares the
    lookups with it and conforms again only the plays that read one that changed. -#}

{% macro lookups_relation(model) -%}
    {%- set path = {"schema": "intermediate", "identifier": model.identifier ~ "_lookups"} -%}
    {{ return(model.incorporate(path=path)) }}
{%- endmacro %}

{#- the most played wins; a tie goes to the largest id (arg_max would pick any of them, and
    a run could then see a lookup change that did not happen) -#}
{% macro twin_by_name(tracks) -%}
    select
        name_key,
        first(track_id order by play_count desc, track_id desc) as track_id
    from {{ tracks }}
    where name_key is not null
    group by name_key
{%- endmacro %}

{% macro artist_by_name(tracks) -%}
    select
        split_part(name_key, chr(31), 1) as artist_key,
        first(artist_id order by play_count desc, artist_id desc) as artist_id,
        first(artist_name order by play_count desc, artist_id desc, artist_name) as artist_name
    from {{ tracks }}
    where artist_id is not null
    group by artist_key
{%- endmacro %}

{#- one row per lookup: what it is, its key, and a hash of what a play reads from it -#}
{% macro lookup_hashes(tracks, twins, artists) -%}
    select
        'track' as kind,
        track_id as lookup_key,
        hash(
            artist_id, album_id, track_name, artist_name, album_name, duration_ms,
            track_popularity
        ) as lookup_hash
    from {{ tracks }}
    union all
    select
        'name' as kind,
        name_key as lookup_key,
        hash(track_id) as lookup_hash
    from {{ twins }}
    union all
    select
        'artist' as kind,
        artist_key as lookup_key,
        hash(artist_id, artist_name) as lookup_hash
    from {{ artists }}
{%- endmacro %}

{#- the key of each track and album group of `plays` (conformed rows): its largest id;
    with `kept` (a condition on a row), also the largest id of the rows it holds for
    (kept_key_id) and whether there is one (has_kept) -#}
{% macro group_keys(plays, kept=none) -%}
    {#- one pass over `plays` for both kinds (grouping sets): a touched group can hold
        millions of stored plays, read as they stream by -#}
    select
        case when grouping(track_name) = 0 then 'track' else 'album' end as kind,
        artist_name,
        case when grouping(track_name) = 0 then track_name else album_name end as group_name,
        case when grouping(track_name) = 0 then max(track_id) else max(album_id) end as key_id
        {%- if kept %},
        case
            when grouping(track_name) = 0 then max(track_id) filter (where {{ kept }})
            else max(album_id) filter (where {{ kept }})
        end as kept_key_id,
        bool_or({{ kept }}) as has_kept
        {%- endif %}
    from {{ plays }}
    group by grouping sets ((artist_name, track_name), (artist_name, album_name))
{%- endmacro %}

{#- the track and album groups (kind, artist_name, group_name) of `plays`, each once -#}
{% macro groups_of(plays) -%}
    {%- for kind in ['track', 'album'] %}
    select
        '{{ kind }}' as kind,
        artist_name,
        {{ kind }}_name as group_name
    from {{ plays }}
    {%- if not loop.last %}
    union
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{#- the rows of `plays` (conformed rows) in `groups` (kind, artist_name, group_name), found
    by a hash of the names, one kind at a time: an IN list is a semi join whose small side
    is the groups, so with none no play is read (an equality join on the names could build
    on a group's millions of plays instead, and did, out of memory at 10M). A collision
    reads a play of another group: callers match the names again or leave it unchanged. A
    play in two of the groups comes twice. -#}
{% macro plays_of_groups(plays, groups) -%}
    {%- for kind in ['track', 'album'] %}
    select * from {{ plays }}
    where
        hash(artist_name, {{ kind }}_name) in (
            select hash(artist_name, group_name) from {{ groups }}
            where kind = '{{ kind }}'
        )
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}

{#- pre-hook: the snapshot exists (empty before the first run: every lookup then differs);
    a build from scratch makes it anew, so that it holds what that build conformed with
    and nothing an earlier run left -#}
{% macro start_lookups_snapshot(model) -%}
    create {{ 'table if not exists' if is_incremental() else 'or replace table' }}
    {{ lookups_relation(model) }} (
        kind varchar,
        lookup_key varchar,
        lookup_hash ubigint
    )
{%- endmacro %}

{#- post-hook, in the transaction that wrote the plays: the lookups they were conformed with.
    Only the rows that differ are written (macros/difference.sql): the whole snapshot was
    most of the 5.6 MB this model wrote on a scheduled build at a million plays. -#}
{% macro store_lookups_snapshot(model, tracks) -%}
    {%- set snapshot = lookups_relation(model) -%}
    {%- set now = model.identifier ~ '_lookups_now' -%}
    create or replace temporary table {{ now }} as
    with
    twins as ({{ twin_by_name(tracks) }}),
    artists as ({{ artist_by_name(tracks) }})
    {{ lookup_hashes(tracks, 'twins', 'artists') }};
    {{ write_difference(snapshot, now, 'kind, lookup_key, lookup_hash') }};
    drop table {{ now }}
{%- endmacro %}

{#- the conformed row of each play of `plays` (a relation or CTE of int_plays_deduplicated
    rows), before keys and local time: the CTEs tracks, twin_by_name and artist_by_name
    must be in scope -#}
{% macro conform_plays(plays) -%}
    with

    -- join keys as plain columns: a condition mixing "is null" with an expression makes
    -- DuckDB fall back to a nested-loop join (minutes instead of milliseconds at 350k plays)
    lookup_keys as (
        select
            *,
            case when track_id is null then name_key end as twin_lookup_key
        from {{ plays }}
    ),

    conformed as (
        select
            lookup_keys.*,
            coalesce(lookup_keys.track_id, twin_by_name.track_id) as conformed_track_id
        from lookup_keys
        left join twin_by_name
            on lookup_keys.twin_lookup_key = twin_by_name.name_key
    ),

    conformed_keys as (
        select
            conformed.*,
            tracks.artist_id as track_artist_id,
            case
                when tracks.artist_id is null then split_part(conformed.name_key, chr(31), 1)
            end as artist_lookup_key
        from conformed
        left join tracks
            on conformed.conformed_track_id = tracks.track_id
    ),

    conformed_plays as (
        select
            conformed.play_id,
            conformed.conformed_track_id as track_id,
            coalesce(tracks.artist_id, artist_by_name.artist_id) as artist_id,
            tracks.album_id,
            coalesce(tracks.track_name, conformed.track_name) as track_name,
            coalesce(
                tracks.artist_name, artist_by_name.artist_name, conformed.artist_name
            ) as artist_name,
            split_part(conformed.name_key, chr(31), 1) as artist_key,
            coalesce(tracks.album_name, conformed.album_name) as album_name,
            tracks.duration_ms,
            tracks.track_popularity,
            -- API, Last.fm and most ListenBrainz plays carry no ms_played: they count with
            -- the track's length
            coalesce(conformed.ms_played, tracks.duration_ms) as ms_played,
            conformed.ms_played is null as is_ms_played_estimated,
            conformed.source,
            conformed.seen_by_sources,
            conformed.platform,
            conformed.conn_country,
            conformed.reason_start,
            conformed.reason_end,
            conformed.is_shuffle,
            conformed.is_skipped,
            -- Last.fm (and a listen that says no more) gives the start of play: its end is
            -- start + length when the length is known. A listen that says its end (an API
            -- play exported and read back) keeps it, as the API play did.
            case
                when conformed.is_start_only
                    then conformed.played_at + to_milliseconds(coalesce(tracks.duration_ms, 0))
                else conformed.played_at
            end as played_at,
            conformed.is_start_only as is_played_at_estimated,
            conformed.changed_at
        from conformed_keys as conformed
        left join tracks
            on conformed.conformed_track_id = tracks.track_id
        left join artist_by_name
            on conformed.artist_lookup_key = artist_by_name.artist_key
    )

    select * from conformed_plays
{%- endmacro %}
