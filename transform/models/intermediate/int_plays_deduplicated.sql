{{
    config(
        materialized='incremental',
        unique_key='play_id',
        incremental_strategy='logged_delete_insert',
        on_schema_change='fail',
        logged_columns={
            'play_id': 'varchar',
            'track_id': 'varchar',
        },
        pre_hook=[
            "{{ start_changes_log(this) }}",
        ],
        post_hook=[
            "{{ delete_plays_gone(this, ref('int_plays_unioned'), 'play_id', 'play_id') }}",
        ],
    )
}}
-- grain: one row per play (play_id). The importer linked rows of different sources that are
-- one listening event (src/music_tracker/dedupe.py); here the richest row wins (extended
-- history > API > account data > ListenBrainz > Last.fm) and gaps are filled from the others.
-- Incremental: raw rows are only ever appended, so a play changes only when a row joins it;
-- a run rebuilds the plays with a row imported after the newest import it has seen. Imports
-- are transactions, one at a time, each stamped with one time: a build sees all of an import
-- or none of it. A test (equal_row_count_to) fails the build if a play was ever missed, or
-- not rebuilt when a row joined or left it (its source_rows no longer add up).
-- A later import may move stored rows to another play (merging two plays into the
-- survivor): both the play that gained rows and the one that lost them are rebuilt (the
-- one that lost a row changed at the move), and a play left with no rows is deleted
-- (post-hook, macros/play_changes.sql).
-- Every play written or deleted is logged with its track id, old row and new
-- (macros/play_changes.sql): int_tracks_heard recomputes those tracks.
with

{% if is_incremental() %}
    last_stored as (
        select coalesce(max(changed_at), timestamptz '1900-01-01') as changed_at
        from {{ this }}
    ),
{% endif %}

-- every move of a row from one play to another (raw.play_id_moves: append-only)
moves as (
    select * from {{ ref('stg_pipeline__play_id_moves') }}
),

unioned as (
    select * from {{ ref('int_plays_unioned') }}
    {% if is_incremental() %}
        -- a play with a row imported since (a condition on the row's own import reaches
        -- the raw tables' scans, which skip the row groups stored before), or one a row
        -- moved to or from since: every move, so a play that a row left, and moved on
        -- from before this run, is rebuilt too
        where play_id in (
            select changed.play_id
            from {{ ref('int_plays_unioned') }} as changed
            where changed.row_imported_at > (select changed_at from last_stored)
            union all
            select unnest([moves.play_id, moves.previous_play_id])
            from moves
            where moves.changed_at > (select changed_at from last_stored)
        )
    {% endif %}
),

-- the latest move of a row out of each play: a play that lost a row changed then, though
-- the rows it keeps are older (the conformed plays take up the plays changed since the
-- newest they hold)
moved_out as (
    select
        previous_play_id as play_id,
        max(changed_at) as moved_out_at
    from moves
    group by previous_play_id
),

-- fixed-size aggregates only, so DuckDB can spill to disk within its memory cap; a play
-- has one row per source, except an extended-history play the export wrote twice (a
-- second apart, dedupe.py): the highest source_rank, then the earliest row, is the one
per_play as (
    select
        play_id,
        max(source_rank) as richest_rank,
        bool_or(source = 'lastfm') as seen_by_lastfm,
        bool_or(source = 'listenbrainz') as seen_by_listenbrainz,
        bool_or(source = 'spotify_account_data') as seen_by_account_data,
        bool_or(source = 'spotify_api') as seen_by_api,
        bool_or(source = 'spotify_extended_history') as seen_by_extended_history,
        max(imported_at) as changed_at,
        count(*) filter (where source = 'spotify_extended_history') as extended_rows,
        count(*) as source_rows,
        -- which rows: the sum of each row's hash with its play (what the test that no play
        -- was missed compares with the source rows)
        sum(hash(play_id, source, source_key)::hugeint) as source_rows_hash
    from unioned
    group by play_id
),

at_richest as (
    select
        unioned.*,
        per_play.extended_rows
    from unioned
    inner join per_play
        on
            unioned.play_id = per_play.play_id
            and unioned.source_rank = per_play.richest_rank
),

-- only a play the export wrote twice has two rows at its richest rank: the window runs on
-- those few rows alone (over every play it ran out of its memory cap at 10 million plays)
richest as (
    select * exclude (extended_rows) from at_richest
    where extended_rows < 2
    union all
    select * exclude (extended_rows) from at_richest
    where extended_rows >= 2
    qualify row_number() over (partition by play_id order by played_at, source_key) = 1
),

-- only account data lacks an album among richer sources; Last.fm may know it
lastfm_albums as (
    select
        play_id,
        album_name
    from unioned
    where source = 'lastfm' and album_name is not null
),

final as (
    select
        -- keys
        richest.play_id,
        richest.track_id,
        -- names
        richest.track_name,
        richest.artist_name,
        coalesce(richest.album_name, lastfm_albums.album_name) as album_name,
        richest.name_key,
        -- measures
        richest.ms_played,
        -- context
        richest.source,
        concat_ws(
            ',',
            case when per_play.seen_by_lastfm then 'lastfm' end,
            case when per_play.seen_by_listenbrainz then 'listenbrainz' end,
            case when per_play.seen_by_account_data then 'spotify_account_data' end,
            case when per_play.seen_by_api then 'spotify_api' end,
            case when per_play.seen_by_extended_history then 'spotify_extended_history' end
        ) as seen_by_sources,
        richest.platform,
        richest.conn_country,
        richest.reason_start,
        richest.reason_end,
        richest.is_shuffle,
        richest.is_skipped,
        -- times
        richest.played_at,
        richest.is_start_only,
        greatest(per_play.changed_at, moved_out.moved_out_at) as changed_at,
        -- the rows the play was made of, and which: summed over every play, the source
        -- rows that are plays (the test that no play was missed compares them)
        per_play.source_rows,
        per_play.source_rows_hash
    from richest
    inner join per_play
        on richest.play_id = per_play.play_id
    left join lastfm_albums
        on richest.play_id = lastfm_albums.play_id
    left join moved_out
        on richest.play_id = moved_out.play_id
)

select * from final
