-- grain: one row per play (play_id). The importer linked rows of different sources that are
-- one listening event (src/music_tracker/dedupe.py); here the richest row wins (extended
-- history > API > account data > Last.fm) and gaps are filled from the others.
with

unioned as (
    select * from {{ ref('int_plays_unioned') }}
),

sources_per_play as (
    select
        play_id,
        list_sort(list(distinct source)) as seen_by_sources,
        any_value(track_id) filter (where track_id is not null) as any_track_id,
        any_value(album_name) filter (where album_name is not null) as any_album_name,
        max(imported_at) as changed_at
    from unioned
    group by play_id
),

richest as (
    select * from unioned
    qualify row_number() over (
        partition by play_id order by source_rank desc, played_at asc
    ) = 1
),

final as (
    select
        -- keys
        richest.play_id,
        coalesce(richest.track_id, sources_per_play.any_track_id) as track_id,
        -- names
        richest.track_name,
        richest.artist_name,
        coalesce(richest.album_name, sources_per_play.any_album_name) as album_name,
        richest.name_key,
        -- measures
        richest.ms_played,
        -- context
        richest.source,
        array_to_string(sources_per_play.seen_by_sources, ',') as seen_by_sources,
        richest.platform,
        richest.conn_country,
        richest.reason_start,
        richest.reason_end,
        richest.is_shuffle,
        richest.is_skipped,
        -- times
        richest.played_at,
        sources_per_play.changed_at
    from richest
    inner join sources_per_play
        on richest.play_id = sources_per_play.play_id
)

select * from final
