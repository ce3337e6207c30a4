-- grain: one row per source and reason: input rows kept in raw but not counted as plays
with

set_aside as (
    select * from {{ ref('stg_pipeline__set_aside_rows') }}
),

final as (
    select
        source,
        reason,
        count(*) as row_count,
        max(imported_at) as last_imported_at
    from set_aside
    group by source, reason
)

select * from final
