with

source as (
    select * from {{ source('raw', 'spotify_artists') }}
),

latest as (
    select * from source
    qualify row_number() over (partition by artist_id order by fetched_at desc) = 1
),

renamed as (
    select
        -- keys
        artist_id,
        -- names
        artist_name,
        -- attributes
        popularity as artist_popularity,
        followers,
        coalesce(genres, []) as genres,
        fetched_at
    from latest
)

select * from renamed
