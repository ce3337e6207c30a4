with

source as (
    select * from {{ source('raw', 'spotify_albums') }}
),

latest as (
    select * from source
    qualify row_number() over (partition by album_id order by fetched_at desc) = 1
),

renamed as (
    select
        -- keys
        album_id,
        -- names
        album_name,
        album_type,
        artist_names[1] as primary_artist_name,
        label,
        -- attributes
        popularity as album_popularity,
        total_tracks,
        release_date_precision,
        case release_date_precision
            when 'day' then try_cast(release_date as date)
            when 'month' then try_cast(release_date || '-01' as date)
            when 'year' then try_cast(release_date || '-01-01' as date)
        end as release_date,
        fetched_at
    from latest
)

select * from renamed
