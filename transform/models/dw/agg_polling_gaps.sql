-- grain: one row per period in which polling may have missed plays (a full page of 50 did
-- not reach back to the newest stored play); closed once an extended export covers it
with

gaps as (
    select * from {{ ref('stg_pipeline__api_gaps') }}
),

extended as (
    select
        min(played_at) as first_played_at,
        max(played_at) as last_played_at
    from {{ ref('stg_spotify__extended_history') }}
),

final as (
    select
        gaps.gap_from_at,
        gaps.gap_to_at,
        gaps.detected_at,
        round(epoch(gaps.gap_to_at - gaps.gap_from_at) / 3600, 1) as gap_hours,
        coalesce(
            gaps.gap_to_at <= extended.last_played_at
            and gaps.gap_from_at >= extended.first_played_at,
            false
        ) as is_closed
    from gaps
    cross join extended
)

select * from final
