with

source as (
    select * from {{ source('raw', 'musicbrainz_areas') }}
),

latest as (
    select * from source
    qualify row_number() over (partition by area_id order by looked_up_at desc) = 1
),

renamed as (
    select
        -- keys
        area_id,
        parent_area_id,
        -- names
        area_name,
        area_type,
        iso_3166_1 as country_code,
        iso_3166_2 as subdivision_code,
        looked_up_at
    from latest
)

select * from renamed
