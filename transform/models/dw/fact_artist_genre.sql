-- grain: one row per play and genre of the play's artist (artist x genre x play), for the
-- genre reports; plays of artists without genres count under 'no genre defined'
with

plays as (
    select * from {{ ref('fact_track_played') }}
),

genres as (
    select * from {{ ref('int_artist_genres') }}
),

final as (
    select
        -- keys
        genres.genre_sid,
        plays.artist_sid,
        plays.date_sid,
        plays.time_sid,
        plays.play_sid,
        plays.track_sid,
        -- measures
        plays.ms_played,
        plays.tracks_played,
        plays.is_stream
    from plays
    inner join genres
        on plays.artist_sid = genres.artist_sid
)

select * from final
