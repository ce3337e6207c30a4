with

source as (
    select * from {{ source('raw', 'spotify_extended_history') }}
),

renamed as (
    select
        -- keys
        source_key,
        play_id,
        track_id,
        -- names
        track_name,
        artist_name,
        album_name,
        name_key,
        -- measures
        ms_played,
        -- context
        platform,
        nullif(conn_country, 'ZZ') as conn_country,
        reason_start,
        reason_end,
        shuffle as is_shuffle,
        skipped as is_skipped,
        offline as is_offline,
        incognito_mode as is_incognito,
        -- times
        played_at,
        offline_at,
        imported_at
    from source
)

select * from renamed
