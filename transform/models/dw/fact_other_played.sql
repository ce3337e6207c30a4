-- grain: one row per podcast episode, audiobook chapter or video play (never music)
with

other as (
    select * from {{ ref('stg_spotify__other_plays') }}
),

final as (
    select
        -- keys
        md5(source || ':' || content_type || ':' || source_key) as play_sid,
        cast({{ to_local('played_at') }} as date) as date_sid,
        cast(date_trunc('second', {{ to_local('played_at') }}) as time) as time_sid,
        item_uri,
        -- names
        content_type,
        show_name,
        item_name,
        author_name,
        -- measures
        ms_played,
        ms_played >= {{ var('stream_threshold_ms') }} as is_stream,
        -- context
        source,
        platform,
        conn_country,
        reason_start,
        reason_end,
        is_skipped as skipped,
        is_shuffle as shuffle,
        -- times
        played_at,
        {{ to_local('played_at') }} as played_at_local
    from other
    where ms_played > 0
)

select * from final
