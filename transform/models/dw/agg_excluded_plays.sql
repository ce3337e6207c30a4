-- grain: one row per entry of exclusions.yaml: the plays it keeps out of every dashboard
-- (counted here, on Coverage and in `status`; the plays stay in raw). An entry that
-- matches nothing has 0 plays (`status` warns: a typo?).
with

rules as (
    select * from {{ ref('stg_pipeline__exclusions') }}
),

excluded as (
    select * from {{ ref('int_plays_excluded') }}
),

matched as (
    select
        excluded.line_number,
        count(*) as play_count,
        coalesce(sum(excluded.ms_played), 0) as ms_played
    from excluded
    group by excluded.line_number
),

final as (
    select
        rules.kind,
        rules.entry,
        coalesce(rules.reason, 'no reason given') as reason,
        rules.line_number,
        coalesce(matched.play_count, 0) as play_count,
        round(coalesce(matched.ms_played, 0) / 60000, 1) as minutes_played
    from rules
    left join matched
        on rules.line_number = matched.line_number
)

select * from final
