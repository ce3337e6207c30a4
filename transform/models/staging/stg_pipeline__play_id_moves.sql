with

source as (
    select * from {{ source('raw', 'play_id_moves') }}
),

renamed as (
    select
        -- keys
        source,
        source_key,
        play_id,
        previous_play_id,
        -- times
        changed_at
    from source
)

select * from renamed
