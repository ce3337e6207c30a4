with

source as (
    select * from {{ source('raw', 'set_aside_rows') }}
),

renamed as (
    select
        -- keys
        file_sha256,
        file_row,
        -- facts
        source,
        reason,
        -- times
        imported_at
    from source
)

select * from renamed
