{{
    config(
        materialized='incremental',
        unique_key='play_sid',
        incremental_strategy='logged_delete_insert',
        on_schema_change='fail',
        logged_columns={'play_sid': 'varchar'},
        pre_hook="{{ start_changes_log(this) }}",
        post_hook="{{ delete_plays_gone(this, ref('int_plays_deduplicated'), 'play_id') }}",
    )
}}
-- a play merged into another by a later import has no row upstream any more: the
-- post-hook deletes it. Every play written or deleted is logged (macros/play_changes.sql):
-- the fact recomputes those plays.
-- grain: one row per play, with the track it conforms to and every surrogate key.
-- A play known only by artist and title takes the Spotify id of its twin (same names after
-- normalization, src/music_tracker/names.py), the most played twin winning; plays with no
-- twin stay tracks of their own, keyed by their names.
-- Incremental: a new play, a richer row, enrichment or a new twin can change any play, so
-- every play's inputs (the joined row before keys and local time are computed, and the time
-- zone) are hashed and only plays whose hash differs from the stored one are rebuilt.
with

plays as (
    select * from {{ ref('int_plays_deduplicated') }}
),

tracks as (
    select * from {{ ref('int_tracks_identified') }}
),

twin_by_name as (
    select
        name_key,
        arg_max(track_id, play_count) as track_id
    from tracks
    where name_key is not null
    group by name_key
),

-- artists conform the same way: a name-only artist takes the id of the most played
-- identified artist with the same normalized name
artist_by_name as (
    select
        split_part(name_key, chr(31), 1) as artist_key,
        arg_max(artist_id, play_count) as artist_id,
        arg_max(artist_name, play_count) as artist_name
    from tracks
    where artist_id is not null
    group by artist_key
),

-- join keys as plain columns: a condition mixing "is null" with an expression makes
-- DuckDB fall back to a nested-loop join (minutes instead of milliseconds at 350k plays)
lookup_keys as (
    select
        *,
        case when track_id is null then name_key end as twin_lookup_key
    from plays
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

with_track as (
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
        -- API, Last.fm and most ListenBrainz plays carry no ms_played: they count with the
        -- track's length
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
        -- start + length when the length is known
        case
            when
                conformed.source = 'lastfm'
                or (conformed.source = 'listenbrainz' and conformed.ms_played is null)
                then conformed.played_at + to_milliseconds(coalesce(tracks.duration_ms, 0))
            else conformed.played_at
        end as played_at,
        conformed.changed_at
    from conformed_keys as conformed
    left join tracks
        on conformed.conformed_track_id = tracks.track_id
    left join artist_by_name
        on conformed.artist_lookup_key = artist_by_name.artist_key
),

-- the original's grain: one track per (artist, track name) and one album per (artist,
-- album name), keyed by the largest Spotify id of the group (a single and its album
-- version are one track); a new, larger id changes the key of every play of the group,
-- which the hash below notices
track_key_ids as (
    select
        artist_name,
        track_name,
        max(track_id) as key_track_id
    from with_track
    group by artist_name, track_name
),

album_key_ids as (
    select
        artist_name,
        album_name,
        max(album_id) as key_album_id
    from with_track
    group by artist_name, album_name
),

keyed as (
    select
        with_track.*,
        track_key_ids.key_track_id,
        album_key_ids.key_album_id
    from with_track
    left join track_key_ids
        on
            with_track.artist_name is not distinct from track_key_ids.artist_name
            and with_track.track_name is not distinct from track_key_ids.track_name
    left join album_key_ids
        on
            with_track.artist_name is not distinct from album_key_ids.artist_name
            and with_track.album_name is not distinct from album_key_ids.album_name
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
    select * from hashed
    {% if is_incremental() %}
        where not exists (
            select 1
            from {{ this }} as stored
            where
                stored.play_sid = hashed.play_id
                and stored.inputs_hash = hashed.inputs_hash
        )
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
