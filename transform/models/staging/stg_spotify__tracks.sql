with

source as (
    select * from {{ source('raw', 'spotify_tracks') }}
),

latest as (
    select * from source
    qualify row_number() over (partition by track_id order by fetched_at desc) = 1
),

renamed as (
    select
        -- keys
        track_id,
        album_id,
        artist_ids[1] as primary_artist_id,
        isrc,
        -- names
        track_name,
        artist_names[1] as primary_artist_name,
        -- attributes
        duration_ms,
        popularity as track_popularity,
        explicit as is_explicit,
        fetched_at
    from latest
)

select * from renamed
