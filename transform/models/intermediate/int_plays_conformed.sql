{{
    config(
        materialized='incremental',
        unique_key='play_sid',
        incremental_strategy='logged_delete_insert',
        on_schema_change='fail',
        logged_columns={
            'play_sid': 'varchar',
            'track_sid': 'varchar',
            'artist_sid': 'varchar',
        },
        pre_hook=[
            "{{ start_changes_log(this) }}",
            "{{ start_lookups_snapshot(this) }}",
        ],
        post_hook=[
            "{{ delete_plays_gone(this, ref('int_plays_deduplicated'), 'play_id') }}",
            "{{ store_lookups_snapshot(this, ref('int_tracks_identified')) }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_pipeline__play_id_moves') }}
-- a play merged into another by a later import has no row upstream any more: the
-- post-hook deletes it. Every play written or deleted is logged (macros/play_changes.sql):
-- the fact recomputes those plays.
-- grain: one row per play, with the track it conforms to and every surrogate key.
-- A play known only by artist and title takes the Spotify id of its twin (same names after
-- normalization, src/music_tracker/names.py), the most played twin winning; plays with no
-- twin stay tracks of their own, keyed by their names.
-- Incremental (macros/conformed_lookups.sql): a run conforms the plays that can have
-- changed, and writes those whose inputs (the joined row before keys and local time are
-- computed, and the time zone) hash differently from their stored row. Those are the plays
-- imported or moved since the newest one stored, the plays whose track, twin or
-- artist-by-name lookup differs from the snapshot of the last run, and every stored play of
-- a track or album group (artist and name) one of those left or joined: the group's
-- largest id is its key.
with

-- not materialized: DuckDB would otherwise copy every play once for the CTE's many readers
plays as not materialized (
    select * from {{ ref('int_plays_deduplicated') }}
),

tracks as (
    select * from {{ ref('int_tracks_identified') }}
),

twin_by_name as (
    {{ twin_by_name('tracks') }}
),

-- artists conform the same way: a name-only artist takes the id of the most played
-- identified artist with the same normalized name
artist_by_name as (
    {{ artist_by_name('tracks') }}
),

{% if is_incremental() %}
    -- lookups that differ from the last run's snapshot, either way
    current_lookups as (
        {{ lookup_hashes('tracks', 'twin_by_name', 'artist_by_name') }}
    ),

    touched_lookups as (
        select
            kind,
            lookup_key
        from (
            (select * from current_lookups)
            except
            (select * from {{ lookups_relation(this) }})
        ) as only_now
        union
        select
            kind,
            lookup_key
        from (
            (select * from {{ lookups_relation(this) }})
            except
            (select * from current_lookups)
        ) as only_before
    ),

    stored as not materialized (
        select
            play_sid,
            track_id,
            album_id,
            artist_name,
            track_name,
            album_name
        from {{ this }}
    ),

    -- the newest play stored: plays changed after it were imported or moved since (a move
    -- is stamped with its time: int_plays_unioned)
    last_stored as (
        select coalesce(max(changed_at), timestamptz '-infinity') as changed_at
        from {{ this }}
    ),

    -- plays reading a lookup that changed, one IN list (a semi join) each: with no lookup
    -- changed, as on most runs, none of them reads a play
    looked_up as (
        select play_id from plays
        where track_id in (select lookup_key from touched_lookups where kind = 'track')
        union
        select play_id from plays
        where name_key in (select lookup_key from touched_lookups where kind = 'name')
        union
        select play_id from plays
        where
            split_part(name_key, chr(31), 1) in (
                select lookup_key from touched_lookups where kind = 'artist'
            )
        union
        -- conformed to a twin whose track row changed
        select play_sid from stored
        where track_id in (select lookup_key from touched_lookups where kind = 'track')
    ),

    -- the candidates' plays and, below, their groups as stored (plays merged away
    -- included) and as they are now. Kept apart from the plays looked up: the plays
    -- changed since the newest stored one are the last written (a run appends its rows),
    -- so DuckDB skips the row groups before them, which a condition joined by OR to an IN
    -- list kept it from doing (every play read, twice, on every run)
    candidate_plays as (
        select * from plays
        where changed_at > (select changed_at from last_stored)
        union all
        select * from plays
        where
            changed_at <= (select changed_at from last_stored)
            and play_id in (select play_id from looked_up)
    ),

    candidates as (
        select play_id from plays
        where changed_at > (select changed_at from last_stored)
        union
        select play_id from looked_up
    ),

    with_track_candidates as (
        {{ conform_plays('candidate_plays') }}
    ),

    gone as (
        select * from stored
        where play_sid in ({{ plays_merged_away('plays', 'play_id') }})
    ),

    -- the track and album groups (artist and name) a candidate or a play merged away
    -- belonged to, or belongs to now: each group's key is its largest id, which may have
    -- changed. Stored plays are found by a hash of the names (null-safe); a collision only
    -- reads a few more.
    touched_groups as (
        select
            artist_name,
            track_name,
            album_name
        from with_track_candidates
        union all
        select
            artist_name,
            track_name,
            album_name
        from stored
        where play_sid in (select play_id from candidates)
        union all
        select
            artist_name,
            track_name,
            album_name
        from gone
    ),

    -- not materialized: a touched group can hold millions of plays (an artist's plays with
    -- no album name, or a large album: 3.3 million stored rows for 100 new plays in the
    -- 10M benchmark), which held as a CTE outgrew the memory cap; its one reader
    -- aggregates it as it streams by from a scan of the stored plays
    group_rows as not materialized (
        select
            *,
            play_sid in (select play_id from candidates)
            or play_sid in (select play_sid from gone) as is_replaced
        from stored
        where
            hash(artist_name, track_name) in (
                select hash(artist_name, track_name) from touched_groups
            )
            or hash(artist_name, album_name) in (
                select hash(artist_name, album_name) from touched_groups
            )
    ),

    -- each touched group's key before this run, and without the stored plays this run
    -- replaces, in one pass over its stored plays
    group_keys_stored as (
        {{ group_keys('group_rows', kept='not is_replaced') }}
    ),

    group_keys_before as (
        select
            kind,
            artist_name,
            group_name,
            key_id
        from group_keys_stored
    ),

    -- now: the stored plays kept and the candidates
    group_keys_now as (
        select
            kind,
            artist_name,
            group_name,
            max(key_id) as key_id
        from (
            select
                kind,
                artist_name,
                group_name,
                kept_key_id as key_id
            from group_keys_stored
            where has_kept
            union all
            select * from ({{ group_keys('with_track_candidates') }}) as candidate_keys
        ) as keys_now
        group by kind, artist_name, group_name
    ),

    -- the groups with stored plays whose key changed (or that lost every play): a group
    -- new this run has no stored play (a touched group's stored plays are all among
    -- group_rows), so a first-heard track reads none below
    changed_groups as (
        select
            kind,
            artist_name,
            group_name
        from (
            (select * from group_keys_before)
            except
            (select * from group_keys_now)
        ) as only_before
    ),

    -- every other stored play of a group whose key changed: its keys change with it (on
    -- most runs no group changed, and none is read). A hash collision re-conforms a play
    -- that comes out as stored, which the hash comparison below then leaves alone.
    group_members as (
        {{ plays_of_groups('stored', 'changed_groups') }}
    ),

    -- a member's other group (its album when its track's key changed, or the other way
    -- round) may be one that no candidate touched: only its plays of touched groups are
    -- among group_rows, so its key there can be too small; but no play joined or left
    -- it, so its key is the largest id of its stored plays
    untouched_member_groups as (
        ({{ groups_of('group_members') }})
        except
        ({{ groups_of('touched_groups') }})
    ),

    untouched_member_rows as (
        {{ plays_of_groups('stored', 'untouched_member_groups') }}
    ),

    untouched_member_keys as (
        select stored_keys.*
        from ({{ group_keys('untouched_member_rows') }}) as stored_keys
        -- the rows' other groups, and a group whose names collide with an untouched
        -- one's hash, are left out
        inner join untouched_member_groups as untouched
            on
                stored_keys.kind = untouched.kind
                and stored_keys.artist_name is not distinct from untouched.artist_name
                and stored_keys.group_name is not distinct from untouched.group_name
    ),

    member_plays as (
        select * from plays
        where
            play_id in (select play_sid from group_members)
            and play_id not in (select play_id from candidates)
    ),

    with_track as (
        select * from with_track_candidates
        union all
        select * from ({{ conform_plays('member_plays') }})
    ),
{% else %}
    with_track as (
        {{ conform_plays('plays') }}
    ),
{% endif %}

-- the original's grain: one track per (artist, track name) and one album per (artist,
-- album name), keyed by the largest Spotify id of the group (a single and its album
-- version are one track); a new, larger id changes the key of every play of the group,
-- which the hash below notices
group_keys as (
    {% if is_incremental() %}
        -- every group of with_track: the touched ones keyed as they are now above, the
        -- untouched groups of members as stored
        select now_keys.*
        from group_keys_now as now_keys
        left join untouched_member_groups as untouched
            on
                now_keys.kind = untouched.kind
                and now_keys.artist_name is not distinct from untouched.artist_name
                and now_keys.group_name is not distinct from untouched.group_name
        where untouched.kind is null
        union all
        select * from untouched_member_keys
    {% else %}
        {{ group_keys('with_track') }}
    {% endif %}
),

keyed as (
    select
        with_track.*,
        track_keys.key_id as key_track_id,
        album_keys.key_id as key_album_id
    from with_track
    left join group_keys as track_keys
        on
            track_keys.kind = 'track'
            and with_track.artist_name is not distinct from track_keys.artist_name
            and with_track.track_name is not distinct from track_keys.group_name
    left join group_keys as album_keys
        on
            album_keys.kind = 'album'
            and with_track.artist_name is not distinct from album_keys.artist_name
            and with_track.album_name is not distinct from album_keys.group_name
),

-- DuckDB's 64-bit hash: only compared with itself, so its value may change across DuckDB
-- versions (one run then rebuilds every play once)
hashed as (
    select
        *,
        hash(keyed, '{{ var("timezone") }}') as inputs_hash
    from keyed
),

changed as (
    {% if is_incremental() %}
        {{ not_stored_as_is('hashed', 'play_id', 'play_sid', 'inputs_hash') }}
    {% else %}
        select * from hashed
    {% endif %}
),

final as (
    select
        -- keys
        play_id as play_sid,
        {{ surrogate_key(['key_track_id', 'track_name', 'artist_name']) }} as track_sid,
        {{ surrogate_key(['artist_id', 'artist_name']) }} as artist_sid,
        {{ surrogate_key(['key_album_id', 'album_name', 'artist_name']) }} as album_sid,
        track_id,
        artist_id,
        album_id,
        -- names
        track_name,
        artist_name,
        artist_key,
        album_name,
        -- measures
        duration_ms,
        track_popularity,
        ms_played,
        is_ms_played_estimated,
        is_played_at_estimated,
        -- context
        source,
        seen_by_sources,
        platform,
        conn_country,
        reason_start,
        reason_end,
        is_shuffle,
        is_skipped,
        -- times
        played_at,
        played_at - to_milliseconds(coalesce(ms_played, 0)) as started_at,
        {{ to_local('played_at') }} as played_at_local,
        changed_at,
        inputs_hash
    from changed
)

select * from final
