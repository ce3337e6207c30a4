-- the rows a build replaced, by this key, go to the serving journal (macros/serving_journal.sql)
{{ config(serving_key='album_sid') }}
-- grain: one row per album (album_sid) with a play exclusions.yaml leaves in; plays without
-- an album name share their artist's "(no album)" row, keyed the same way as in the fact
with

plays as (
    select * from {{ ref('int_plays_conformed') }}
),

excluded as (
    select * from {{ ref('int_plays_excluded') }}
),

albums as (
    select * from {{ ref('stg_spotify__albums') }}
),

artists as (
    select * from {{ ref('int_artists') }}
),

heard as (
    select
        album_sid,
        max(album_id) as album_id,
        any_value(album_name) as album_name,
        any_value(artist_sid) as artist_sid
    from plays
    where play_sid not in (select excluded.play_sid from excluded)
    group by album_sid
),

final as (
    select
        -- keys
        heard.album_sid,
        -- a masked artist's album ids would reveal it
        case when not coalesce(artists.is_masked, false) then heard.album_id end as album_id,
        -- names
        coalesce(heard.album_name, albums.album_name, '(no album)') as album_name,
        artists.artist_name || ' - '
        || coalesce(heard.album_name, albums.album_name, '(no album)') as artist_album,
        albums.label,
        albums.album_type,
        -- attributes
        albums.total_tracks,
        albums.album_popularity,
        albums.release_date,
        year(albums.release_date) as release_year,
        cast(year(albums.release_date) // 10 * 10 as integer) as release_decade,
        albums.release_date_precision
    from heard
    left join albums
        on heard.album_id = albums.album_id
    left join artists
        on heard.artist_sid = artists.artist_sid
)

select * from final
