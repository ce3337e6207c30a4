-- grain: one row per source and reason: input rows kept in raw but not counted as plays,
-- as the import summary and `status` count them: the rows an importer set aside with a
-- reason, and the rows kept with 0 ms played (music rows without a play_id; podcast,
-- audiobook and video rows of 0 ms)
{% set not_a_play = "0 ms played (not counted as a play)" %}
{% set music = {
    'spotify_extended_history': 'stg_spotify__extended_history',
    'spotify_account_data': 'stg_spotify__account_data',
    'spotify_api': 'stg_spotify__api_plays',
    'lastfm': 'stg_lastfm__scrobbles',
    'listenbrainz': 'stg_listenbrainz__listens',
} %}
with

set_aside as (
    select
        source,
        reason,
        imported_at
    from {{ ref('stg_pipeline__set_aside_rows') }}
),

{% for source, model in music.items() %}
    not_plays_{{ source }} as (
        select
            '{{ source }}' as source,
            '{{ not_a_play }}' as reason,
            imported_at
        from {{ ref(model) }}
        where play_id is null
    ),

{% endfor %}
other_not_plays as (
    select
        source,
        '{{ not_a_play }}' as reason,
        imported_at
    from {{ ref('stg_spotify__other_plays') }}
    where ms_played <= 0
),

rows_kept as (
    select * from set_aside
    {% for source in music %}
        union all
        select * from not_plays_{{ source }}
    {% endfor %}
    union all
    select * from other_not_plays
),

final as (
    select
        source,
        reason,
        count(*) as row_count,
        max(imported_at) as last_imported_at
    from rows_kept
    group by source, reason
)

select * from final
