-- grain: one row per track and per artist: when the owner first heard it (discovery)
with

plays as (
    select * from {{ ref('fact_track_played') }}
),

tracks as (
    select
        'track' as entity_type,
        track_sid as entity_sid,
        min(played_at) as first_played_at,
        min(date_sid) as first_date_sid,
        count(*) as tracks_played
    from plays
    group by track_sid
),

artists as (
    select
        'artist' as entity_type,
        artist_sid as entity_sid,
        min(played_at) as first_played_at,
        min(date_sid) as first_date_sid,
        count(*) as tracks_played
    from plays
    group by artist_sid
),

final as (
    select * from tracks
    union all
    select * from artists
)

select * from final
