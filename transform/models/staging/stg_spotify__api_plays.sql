with

source as (
    select * from {{ source('raw', 'spotify_api_plays') }}
),

renamed as (
    select
        -- keys
        source_key,
        play_id,
        track_id,
        artist_id,
        album_id,
        -- names
        track_name,
        artist_name,
        album_name,
        name_key,
        -- attributes
        duration_ms,
        isrc,
        context_type,
        context_uri,
        -- times
        played_at,
        imported_at
    from source
)

select * from renamed
