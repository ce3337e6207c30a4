-- the rows a build replaced, by this key, go to the serving journal (macros/serving_journal.sql)
{{ config(serving_key='track_sid') }}
-- grain: one row per track (track_sid) with a play exclusions.yaml leaves in; the counts
-- are of those plays (docs/model.md, "Exclusions")
with

heard as (
    select * from {{ ref('int_tracks') }}
),

artists as (
    select * from {{ ref('int_artists') }}
),

excluded as (
    select * from {{ ref('int_plays_excluded') }}
),

-- the artists a track was heard by (int_tracks keeps them: no play is read here)
track_artists as (
    select
        track_sid,
        unnest(artist_sids) as artist_sid
    from heard
),

-- the rows and counts of the plays exclusions.yaml leaves in
tracks as (
    {{ left_in('heard', 'excluded', 'track_sid') }}
),

-- a masked artist stays masked in "artist - track"
shown_artists as (
    select
        track_artists.track_sid,
        any_value(artists.artist_name) as shown_artist_name,
        bool_or(artists.is_masked) as is_masked
    from track_artists
    inner join artists
        on track_artists.artist_sid = artists.artist_sid
    group by track_artists.track_sid
),

named as (
    select
        tracks.* exclude (artist_sids),
        coalesce(shown_artists.shown_artist_name, tracks.artist_name) as shown_artist_name,
        coalesce(shown_artists.is_masked, false) as is_masked,
        cast(round(tracks.duration_ms / 1000) as integer) as track_seconds
    from tracks
    left join shown_artists
        on tracks.track_sid = shown_artists.track_sid
),

final as (
    select
        -- keys
        track_sid,
        -- a masked artist's track ids would reveal it
        case when not is_masked then track_id end as track_id,
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
        -- whole minutes, and the length as a time of day (00:03:59.499), as the original;
        -- integer arithmetic on the milliseconds: DuckDB's // on a DOUBLE does not floor
        cast(round(duration_ms / 60000) as integer) as track_minutes,
        case
            when duration_ms is not null and duration_ms < 86400000
                then time '00:00:00' + to_milliseconds(cast(duration_ms as bigint))
        end as track_duration,
        {{ track_length('track_seconds') }} as track_length,
        {{ track_length_sort('track_seconds') }} as track_length_sort
    from named
)

select * from final
