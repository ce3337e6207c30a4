with

source as (
    select * from {{ source('raw', 'musicbrainz_artists') }}
),

latest as (
    select * from source
    qualify row_number() over (partition by lookup_key order by looked_up_at desc) = 1
),

renamed as (
    select
        -- keys
        lookup_key,
        mbid,
        area_id,
        begin_area_id,
        end_area_id,
        -- names
        artist_name,
        artist_type,
        gender,
        -- attributes
        status as lookup_status,
        matched_by,
        begin_date,
        end_date,
        coalesce(genres, []) as genres,
        coalesce(tags, []) as tags,
        looked_up_at
    from latest
)

select * from renamed
