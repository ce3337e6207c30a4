-- grain: one row per track (track_sid)
with

tracks as (
    select * from {{ ref('int_tracks') }}
),

artists as (
    select * from {{ ref('int_artists') }}
),

track_artists as (
    select distinct
        track_sid,
        artist_sid
    from {{ ref('int_plays_conformed') }}
),

-- a masked artist stays masked in "artist - track"
shown_artists as (
    select
        track_artists.track_sid,
        any_value(artists.artist_name) as shown_artist_name
    from track_artists
    inner join artists
        on track_artists.artist_sid = artists.artist_sid
    group by track_artists.track_sid
),

named as (
    select
        tracks.*,
        coalesce(shown_artists.shown_artist_name, tracks.artist_name) as shown_artist_name,
        round(tracks.duration_ms / 1000) as track_seconds
    from tracks
    left join shown_artists
        on tracks.track_sid = shown_artists.track_sid
),

final as (
    select
        -- keys
        track_sid,
        track_id,
        -- names
        track_name,
        shown_artist_name || ' - ' || track_name as artist_track,
        -- popularity (Spotify; null for development-mode apps since 2026)
        track_popularity,
        {{ popularity_group('track_popularity', 'Track') }} as track_popularity_group,
        {{ popularity_sort('track_popularity') }} as track_popularity_sort,
        {{ is_popular('track_popularity', 'Track') }} as is_popular,
        -- personal popularity (the owner's streams; always available)
        play_count,
        stream_count,
        {{ personal_popularity_group('stream_count', 'Track') }} as personal_popularity_group,
        {{ personal_popularity_sort('stream_count', 'Track') }} as personal_popularity_sort,
        -- length
        duration_ms,
        track_seconds,
        round(track_seconds / 60, 2) as track_minutes,
        case
            when track_seconds is not null
                then
                    printf(
                        '%d:%02d',
                        cast(track_seconds // 60 as integer),
                        cast(track_seconds % 60 as integer)
                    )
        end as track_duration,
        {{ track_length('track_seconds') }} as track_length,
        {{ track_length_sort('track_seconds') }} as track_length_sort
    from named
)

select * from final
