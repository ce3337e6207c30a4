-- grain: one row per podcast episode, audiobook chapter or video play (never music)
with

other_rows as (
    select * from {{ ref('stg_spotify__other_plays') }}
),

-- a listen of a podcast, audiobook or video from a ListenBrainz export (our own) counts
-- only when no Spotify file holds that play: the same kind and time heard, ending within
-- a minute (account data's end has minute precision)
spotify_rows as (
    select
        content_type,
        ms_played,
        played_at
    from other_rows
    where source != 'listenbrainz'
),

other as (
    select other_rows.* from other_rows
    where
        other_rows.source != 'listenbrainz'
        or not exists (
            select 1 from spotify_rows
            where
                spotify_rows.content_type = other_rows.content_type
                and spotify_rows.ms_played = other_rows.ms_played
                and spotify_rows.played_at
                between other_rows.played_at - interval 1 minute
                and other_rows.played_at + interval 1 minute
        )
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
