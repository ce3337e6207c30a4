{{
    config(
        materialized='incremental',
        unique_key='play_sid',
        incremental_strategy='logged_delete_insert',
        serving_key='play_sid',
        on_schema_change='fail',
        logged_columns={
            'play_sid': 'varchar',
            'date_sid': 'date',
            'track_sid': 'varchar',
            'artist_sid': 'varchar',
            'played_at': 'timestamptz',
        },
        pre_hook=[
            "{{ start_changes_log(this) }}",
            "{{ start_excluded_snapshot(this) }}",
            "{{ start_lent_snapshots(this, ['tracks', 'artists']) }}",
        ],
        post_hook=[
            "{{ delete_plays_gone(this, ref('int_plays_conformed')) }}",
            "{{ delete_plays_excluded(this, ref('int_plays_excluded')) }}",
            "{{ store_lent_snapshots(this, ['tracks', 'artists']) }}",
        ],
    )
}}
-- depends_on: {{ ref('stg_pipeline__play_id_moves') }}
-- a play merged into another by a later import has no row upstream any more: the
-- post-hook deletes it; so it does a stored play that exclusions.yaml now keeps out (an
-- artist enriched with a genre the file lists), and a play the last run left out that it
-- no longer does is computed again (macros/play_changes.sql)
-- grain: one row per distinct listening event of a music track (a play with ms_played > 0,
-- or an API or Last.fm play, which count with the track's length and say so). Incremental:
-- a run merges only plays that are new or whose row changed (a richer source joined the
-- play, a track was enriched or conformed), found by comparing a hash of the row. Every
-- row it writes or deletes is logged, old and new (macros/play_changes.sql): the
-- aggregates recompute what those rows touch, and only that.
with

tracks as (
    select * from {{ ref('int_tracks') }}
),

artists as (
    select * from {{ ref('int_artists') }}
),

excluded as (
    select * from {{ ref('int_plays_excluded') }}
),

{% if is_incremental() %}
    {%- set conformed_changes = changes_relation(ref('int_plays_conformed')) %}
    -- a play's row changes when its conformed row did (logged), or when what its track or
    -- artist lends it did: those are compared with what the last run lent
    -- (macros/play_changes.sql)
    changed_tracks as (
        select track_sid from (
            select {{ lent_columns('tracks') }} from tracks
            except
            select {{ lent_columns('tracks') }} from {{ lent_relation(this, 'tracks') }}
        )
    ),

    changed_artists as (
        select artist_sid from (
            select {{ lent_columns('artists') }} from artists
            except
            select {{ lent_columns('artists') }} from {{ lent_relation(this, 'artists') }}
        )
    ),
{% endif %}

plays as (
    select * from {{ ref('int_plays_conformed') }}
    {% if is_incremental() %}
        where
            exists (select 1 from {{ conformed_changes }} where play_sid is null)
            or play_sid in (
                select play_sid from {{ conformed_changes }} where play_sid is not null
            )
            or track_sid in (select track_sid from changed_tracks)
            or artist_sid in (select artist_sid from changed_artists)
            or play_sid in (
                select play_sid from {{ excluded_relation(this) }}
                except
                select play_sid from excluded
            )
    {% endif %}
),

final as (
    select
        -- keys
        plays.play_sid,
        plays.track_sid,
        plays.artist_sid,
        plays.album_sid,
        cast(plays.played_at_local as date) as date_sid,
        cast(date_trunc('second', plays.played_at_local) as time) as time_sid,
        -- a masked artist's track ids would reveal it
        case when not artists.is_masked then plays.track_id end as track_id,
        -- names
        artists.artist_name,
        -- measures
        plays.track_popularity as popularity,
        artists.artist_popularity,
        tracks.duration_ms,
        round(tracks.duration_ms / 60000, 0) as duration_mins,
        1 as tracks_played,
        plays.ms_played,
        plays.is_ms_played_estimated,
        plays.is_played_at_estimated,
        -- a scrobble (or a listen) of a track of unknown length still met the scrobbling
        -- rule (Last.fm's and ListenBrainz's: half the track or 4 minutes)
        coalesce(
            plays.ms_played >= {{ var('stream_threshold_ms') }},
            plays.source in ('lastfm', 'listenbrainz')
        ) as is_stream,
        -- context
        plays.source,
        plays.seen_by_sources,
        plays.is_skipped as skipped,
        plays.is_shuffle as shuffle,
        plays.platform,
        plays.conn_country,
        plays.reason_start,
        plays.reason_end,
        -- times
        plays.played_at,
        plays.started_at,
        plays.played_at_local
    from plays
    inner join tracks
        on plays.track_sid = tracks.track_sid
    inner join artists
        on plays.artist_sid = artists.artist_sid
    where
        (plays.ms_played > 0 or plays.is_ms_played_estimated)
        -- what exclusions.yaml keeps out of the stats (a change of the file rebuilds the
        -- whole table: src/music_tracker/transform.py; a change of an artist's genres
        -- the rows of its plays, above)
        and plays.play_sid not in (select excluded.play_sid from excluded)
),

hashed as (
    select
        *,
        -- DuckDB's 64-bit hash: only compared with itself, so its value may change across
        -- DuckDB versions (one run then merges every row once)
        hash(final) as row_hash
    from final
),

changed as (
    {% if is_incremental() %}
        {{ not_stored_as_is('hashed', 'play_sid', 'play_sid', 'row_hash') }}
    {% else %}
        select * from hashed
    {% endif %}
)

select * from changed
