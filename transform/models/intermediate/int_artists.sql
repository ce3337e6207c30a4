-- a table, not a view: every dw model joins it to the plays, and as a view its
-- aggregate over every play ran inside that join, which ran out of its memory cap at
-- 10 million plays (a table: the fact's join takes 20 s there). Incremental: a run
-- aggregates the plays of the artists with a conformed play written or deleted
-- (macros/play_changes.sql) and takes the others' from its stored rows; Spotify,
-- MusicBrainz and the seeds are joined to every artist again (one row each), so
-- enrichment applies on the next run.
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        changed_rows='every_row',
        on_schema_change='fail',
    )
}}

-- grain: one row per artist (artist_sid) heard, with Spotify and MusicBrainz facts
with

plays as (
    select * from {{ ref('int_plays_conformed') }}
    {% if is_incremental() %}
        where {{ conformed_changed('artist_sid') }}
    {% endif %}
),

spotify_artists as (
    select * from {{ ref('stg_spotify__artists') }}
),

musicbrainz_artists as (
    select * from {{ ref('stg_musicbrainz__artists') }}
),

locations as (
    select * from {{ ref('int_artist_locations') }}
),

countries as (
    select * from {{ ref('country_geography') }}
),

cities as (
    -- one point per (city, country, state): the most populous namesake
    select * from {{ ref('cities_with_lat_long') }}
    qualify row_number() over (
        partition by city, country_code, state_code order by population desc
    ) = 1
),

-- the seed's state codes are ISO 3166-2 (CA-ON), as MusicBrainz's are, but MusicBrainz
-- often gives no subdivision at all, and 2% of the seed's cities have none: a city whose
-- name is unique in its country matches on city and country alone, as the original's
-- "city,[state,]country" did
cities_unique_in_country as (
    select * from {{ ref('cities_with_lat_long') }}
    qualify count(*) over (partition by city, country_code) = 1
),

masks as (
    select * from {{ ref('mask_artists') }}
),

replayed as (
    select
        artist_sid,
        any_value(artist_id) as artist_id,
        arg_max(artist_name, played_at) as artist_name,
        arg_max(artist_key, played_at) as artist_key,
        count(*) as play_count,
        count(*) filter (
            where ms_played >= {{ var('stream_threshold_ms') }}
        ) as stream_count
    from plays
    group by artist_sid
),

heard as (
    select
        artist_sid,
        artist_id,
        artist_name,
        coalesce('spotify:' || artist_id, 'name:' || artist_key) as lookup_key,
        play_count,
        stream_count
    from replayed
    {% if is_incremental() %}
        union all
        select
            artist_sid,
            artist_id,
            unmasked_artist_name as artist_name,
            musicbrainz_lookup_key as lookup_key,
            play_count,
            stream_count
        from {{ this }}
        where not {{ conformed_changed('artist_sid') }}
    {% endif %}
),

final as (
    select
        -- keys
        heard.artist_sid,
        heard.artist_id,
        musicbrainz_artists.mbid,
        heard.lookup_key as musicbrainz_lookup_key,
        -- names
        heard.artist_name as unmasked_artist_name,
        coalesce(masks.mask_name, heard.artist_name) as artist_name,
        masks.mask_name is not null as is_masked,
        musicbrainz_artists.artist_type,
        musicbrainz_artists.gender,
        -- measures
        heard.play_count,
        heard.stream_count,
        spotify_artists.artist_popularity,
        -- location
        countries.continent_code,
        countries.continent,
        countries.region,
        locations.country_code,
        countries.country,
        locations.state_province_code,
        locations.state_province,
        locations.county,
        locations.city,
        locations.district,
        coalesce(
            cities.latitude, cities_unique_in_country.latitude, countries.latitude
        ) as lat,
        coalesce(
            cities.longitude, cities_unique_in_country.longitude, countries.longitude
        ) as long
    from heard
    left join spotify_artists
        on heard.artist_id = spotify_artists.artist_id
    left join musicbrainz_artists
        on heard.lookup_key = musicbrainz_artists.lookup_key
    left join locations
        on musicbrainz_artists.lookup_key = locations.lookup_key
    left join countries
        on locations.country_code = countries.country_code
    left join cities
        on
            locations.city = cities.city
            and locations.country_code = cities.country_code
            and locations.state_province_code = cities.state_code
    left join cities_unique_in_country
        on
            locations.city = cities_unique_in_country.city
            and locations.country_code = cities_unique_in_country.country_code
    left join masks
        on
            heard.artist_id = masks.artist_id
            or (masks.artist_id is null and heard.artist_name = masks.artist_name)
)

select * from final
