-- A masked artist (seed mask_artists) must not be findable from the public data: no
-- Spotify or MusicBrainz id of it, its tracks or its albums in any dw table.
with

masked as (
    select artist_sid from {{ ref('dim_artist') }}
    where is_masked
),

masked_plays as (
    select
        fact.play_sid,
        fact.track_sid,
        fact.album_sid,
        fact.track_id
    from {{ ref('fact_track_played') }} as fact
    inner join masked on fact.artist_sid = masked.artist_sid
),

masked_tracks as (
    select distinct track_sid from masked_plays
),

masked_albums as (
    select distinct album_sid from masked_plays
),

found as (
    select
        'dim_artist' as found_in,
        artist_sid as key_sid
    from {{ ref('dim_artist') }}
    where is_masked and (artist_id is not null or mbid is not null)

    union all

    select
        'fact_track_played' as found_in,
        play_sid as key_sid
    from masked_plays
    where track_id is not null

    union all

    select
        'dim_track' as found_in,
        tracks.track_sid as key_sid
    from {{ ref('dim_track') }} as tracks
    inner join masked_tracks on tracks.track_sid = masked_tracks.track_sid
    where tracks.track_id is not null

    union all

    select
        'dim_album' as found_in,
        albums.album_sid as key_sid
    from {{ ref('dim_album') }} as albums
    inner join masked_albums on albums.album_sid = masked_albums.album_sid
    where albums.album_id is not null
)

select * from found
