with

source as (
    select * from {{ source('raw', 'lastfm_scrobbles') }}
),

renamed as (
    select
        -- keys
        source_key,
        play_id,
        -- names
        track_name,
        artist_name,
        nullif(trim(album_name), '') as album_name,
        name_key,
        -- times
        started_at,
        imported_at
    from source
)

select * from renamed
