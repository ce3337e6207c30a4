with

source as (
    select * from {{ source('raw', 'exclusions') }}
),

renamed as (
    select
        -- keys
        kind,
        line_number,
        spotify_id,
        -- names
        entry,
        match_name,
        reason
    from source
)

select * from renamed
