with

source as (
    select * from {{ source('raw', 'listenbrainz_listens') }}
),

renamed as (
    select
        -- keys
        source_key,
        play_id,
        track_id,
        recording_mbid,
        -- names
        track_name,
        artist_name,
        nullif(trim(album_name), '') as album_name,
        name_key,
        -- measures
        ms_played,
        duration_ms,
        -- context
        exported_source,
        platform,
        nullif(conn_country, 'ZZ') as conn_country,
        reason_start,
        reason_end,
        shuffle as is_shuffle,
        skipped as is_skipped,
        -- times
        started_at,
        played_at,
        imported_at
    from source
)

select * from renamed
