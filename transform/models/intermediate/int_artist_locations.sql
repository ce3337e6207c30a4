-- grain: one row per MusicBrainz lookup that found an artist with an area. The artist's area
-- (else end area, else begin area) is walked up the MusicBrainz area hierarchy, each level
-- landing in its column: district, city (or municipality), county, subdivision (state or
-- province), country (or island).
with recursive

artists as (
    select * from {{ ref('stg_musicbrainz__artists') }}
    where lookup_status = 'found'
),

areas as (
    select * from {{ ref('stg_musicbrainz__areas') }}
),

starts as (
    select
        lookup_key,
        coalesce(area_id, end_area_id, begin_area_id) as area_id
    from artists
    where coalesce(area_id, end_area_id, begin_area_id) is not null
),

walk (lookup_key, area_id, depth) as (
    select
        lookup_key,
        area_id,
        0 as depth
    from starts
    union all
    select
        walk.lookup_key,
        areas.parent_area_id as area_id,
        walk.depth + 1 as depth
    from walk
    inner join areas
        on walk.area_id = areas.area_id
    where areas.parent_area_id is not null and walk.depth < 10
),

levels as (
    select
        walk.lookup_key,
        walk.depth,
        areas.area_name,
        areas.area_type,
        areas.country_code,
        areas.subdivision_code
    from walk
    inner join areas
        on walk.area_id = areas.area_id
),

final as (
    select
        lookup_key,
        arg_min(area_name, depth) filter (where area_type = 'District') as district,
        arg_min(area_name, depth) filter (
            where area_type in ('City', 'Municipality')
        ) as city,
        arg_min(area_name, depth) filter (where area_type = 'County') as county,
        arg_min(area_name, depth) filter (where area_type = 'Subdivision') as state_province,
        arg_min(subdivision_code, depth) filter (
            where area_type = 'Subdivision'
        ) as state_province_code,
        arg_min(country_code, depth) filter (
            where area_type in ('Country', 'Island') and country_code is not null
        ) as country_code
    from levels
    group by lookup_key
)

select * from final
