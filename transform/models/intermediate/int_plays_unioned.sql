-- grain: one row per source row that is a play (a play seen by several sources has
-- several rows here, with the same play_id). A row moved to another play after it was
-- stored (raw.play_id_overrides) carries that play's id and, as imported_at, the time of
-- its latest move (the row's own import is row_imported_at). The play it left is in
-- raw.play_id_moves, which int_plays_deduplicated reads for every move.
with

extended as (
    select * from {{ ref('stg_spotify__extended_history') }}
    where play_id is not null
),

api as (
    select * from {{ ref('stg_spotify__api_plays') }}
    where play_id is not null
),

account as (
    select * from {{ ref('stg_spotify__account_data') }}
    where play_id is not null
),

listenbrainz as (
    select * from {{ ref('stg_listenbrainz__listens') }}
    where play_id is not null
),

lastfm as (
    select * from {{ ref('stg_lastfm__scrobbles') }}
    where play_id is not null
),

unioned as (
    select
        extended.play_id,
        extended.source_key,
        'spotify_extended_history' as source,
        5 as source_rank,
        extended.played_at,
        false as is_start_only,
        extended.ms_played,
        extended.track_id,
        extended.track_name,
        extended.artist_name,
        extended.album_name,
        extended.name_key,
        extended.platform,
        extended.conn_country,
        extended.reason_start,
        extended.reason_end,
        extended.is_shuffle,
        extended.is_skipped,
        extended.imported_at
    from extended

    union all

    select
        api.play_id,
        api.source_key,
        'spotify_api' as source,
        4 as source_rank,
        api.played_at,
        false as is_start_only,
        null as ms_played,
        api.track_id,
        api.track_name,
        api.artist_name,
        api.album_name,
        api.name_key,
        null as platform,
        null as conn_country,
        null as reason_start,
        null as reason_end,
        null as is_shuffle,
        null as is_skipped,
        api.imported_at
    from api

    union all

    select
        account.play_id,
        account.source_key,
        'spotify_account_data' as source,
        3 as source_rank,
        account.played_at,
        false as is_start_only,
        account.ms_played,
        null as track_id,
        account.track_name,
        account.artist_name,
        null as album_name,
        account.name_key,
        null as platform,
        null as conn_country,
        null as reason_start,
        null as reason_end,
        null as is_shuffle,
        null as is_skipped,
        account.imported_at
    from account

    union all

    -- a listen says its end and time heard when Music Tracker exported it; one that says
    -- only its start is placed like a scrobble (int_plays_conformed)
    select
        listenbrainz.play_id,
        listenbrainz.source_key,
        'listenbrainz' as source,
        2 as source_rank,
        coalesce(
            listenbrainz.played_at,
            listenbrainz.started_at + to_milliseconds(listenbrainz.ms_played),
            listenbrainz.started_at
        ) as played_at,
        -- an API play read back says its end but not its time heard: not start-only
        listenbrainz.played_at is null and listenbrainz.ms_played is null as is_start_only,
        listenbrainz.ms_played,
        listenbrainz.track_id,
        listenbrainz.track_name,
        listenbrainz.artist_name,
        listenbrainz.album_name,
        listenbrainz.name_key,
        listenbrainz.platform,
        listenbrainz.conn_country,
        listenbrainz.reason_start,
        listenbrainz.reason_end,
        listenbrainz.is_shuffle,
        listenbrainz.is_skipped,
        listenbrainz.imported_at
    from listenbrainz

    union all

    -- a scrobble's time is the start of play; the end is placed once the track's length is
    -- known (int_plays_conformed)
    select
        lastfm.play_id,
        lastfm.source_key,
        'lastfm' as source,
        1 as source_rank,
        lastfm.started_at as played_at,
        true as is_start_only,
        null as ms_played,
        null as track_id,
        lastfm.track_name,
        lastfm.artist_name,
        lastfm.album_name,
        lastfm.name_key,
        null as platform,
        null as conn_country,
        null as reason_start,
        null as reason_end,
        null as is_shuffle,
        null as is_skipped,
        lastfm.imported_at
    from lastfm
),

overrides as (
    select * from {{ ref('stg_pipeline__play_id_overrides') }}
),

final as (
    select
        coalesce(overrides.play_id, unioned.play_id) as play_id,
        unioned.* exclude (play_id, imported_at),
        greatest(unioned.imported_at, overrides.changed_at) as imported_at,
        -- the row's own import apart: a condition on it reaches the raw table's scan (rows
        -- are appended, so DuckDB skips the row groups imported before), where one on the
        -- greatest above cannot
        unioned.imported_at as row_imported_at
    from unioned
    left join overrides
        on
            unioned.source = overrides.source
            and unioned.source_key = overrides.source_key
)

select * from final
