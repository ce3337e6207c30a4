with

source as (
    select * from {{ source('raw', 'api_gaps') }}
),

renamed as (
    select
        -- times
        gap_from as gap_from_at,
        gap_to as gap_to_at,
        detected_at
    from source
)

select * from renamed
