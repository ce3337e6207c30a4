with

source as (
    select * from {{ source('raw', 'other_plays') }}
),

renamed as (
    select
        -- keys
        source_key,
        source,
        content_type,
        item_uri,
        -- names
        show_name,
        item_name,
        author_name,
        -- measures
        ms_played,
        -- context
        platform,
        nullif(conn_country, 'ZZ') as conn_country,
        reason_start,
        reason_end,
        shuffle as is_shuffle,
        skipped as is_skipped,
        -- times
        played_at,
        imported_at
    from source
)

select * from renamed
