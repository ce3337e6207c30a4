with

source as (
    select * from {{ source('raw', 'spotify_account_data') }}
),

renamed as (
    select
        -- keys
        source_key,
        play_id,
        -- names
        track_name,
        artist_name,
        name_key,
        -- measures
        ms_played,
        -- times
        played_at,
        imported_at
    from source
)

select * from renamed
