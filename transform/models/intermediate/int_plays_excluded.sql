-- Incremental when exclusions.yaml lists entries: a run matches by name and id only the
-- plays the conformed plays' change log names (added, changed, merged away; every play
-- after a build from scratch), and the genre entries against every play again (an
-- artist's genres change with enrichment, and that match folds no play's names). As a
-- view, each of its seven readers folded every play's names again (a replayed build at
-- 1M plays: 9.1 s with three entries, 3.4 s with none). A change of the file's entries
-- makes the next build a full refresh (docs/model.md); a comment or a new order moves
-- entries to other lines only, and then every row is matched again
-- (macros/play_changes.sql, exclusion_lines_moved). Tagged `exclusions`: a build where
-- the file lists nothing skips it (transform.py).
{{
    config(
        materialized='incremental',
        incremental_strategy='replace_where',
        changed_rows='excluded_rows_changed',
        on_schema_change='fail',
        tags=['exclusions'],
    )
}}
-- grain: one row per play and entry of exclusions.yaml that matches it (a play matched by
-- two entries has two rows). The one place the exclusion rule lives: an artist, track or
-- album by its name (case-insensitive: macros/name_match.sql) or Spotify id, a genre by
-- the artist's genres.
-- fact_track_played leaves these plays out; agg_excluded_plays counts them per entry.
with

-- not materialized: two readers (the names and ids of the changed plays, the genres of
-- every play) would otherwise have DuckDB copy every play first
plays as not materialized (
    select * from {{ ref('int_plays_conformed') }}
),

artist_genres as (
    select * from {{ ref('int_artist_genres') }}
),

rules as (
    select * from {{ ref('stg_pipeline__exclusions') }}
),

play_keys as (
    select
        play_sid,
        track_sid,
        artist_sid,
        ms_played,
        artist_id,
        track_id,
        album_id,
        {{ name_match('artist_name') }} as artist_match_name,
        {{ name_match('track_name') }} as track_match_name,
        {{ name_match('album_name') }} as album_match_name
    from plays
    -- no play's names are read when the file lists nothing (the usual case)
    where
        exists (select 1 from rules)
        {% if is_incremental() %}
            and {{ exclusion_matched_again(this) }}
        {% endif %}
),

-- the name as written, folded as the plays' names are (the file's lower-cased name is
-- Python's folding, which differs: final sigma, dotted capital I)
name_rules as (
    select * replace ({{ name_match('entry') }} as match_name) from rules
    where match_name is not null
),

id_rules as (
    select * from rules
    where spotify_id is not null
),

-- equality joins only, one per kind and key: a join on "name or id" would fall back to a
-- nested loop over every play
matched as (
    {% for kind in ['artist', 'track', 'album'] %}
        {% for rules, play_key, rule_key in [
            ('name_rules', kind ~ '_match_name', 'match_name'),
            ('id_rules', kind ~ '_id', 'spotify_id'),
        ] %}
            select
                play_keys.play_sid,
                play_keys.track_sid,
                play_keys.artist_sid,
                play_keys.ms_played,
                {{ rules }}.kind,
                {{ rules }}.entry,
                {{ rules }}.reason,
                {{ rules }}.line_number
            from play_keys
            inner join {{ rules }}
                on
                    {{ rules }}.kind = '{{ kind }}'
                    and play_keys.{{ play_key }} = {{ rules }}.{{ rule_key }}

            union all
        {% endfor %}
    {% endfor %}

    -- a genre entry matches by the artist's genres, against every play (enrichment
    -- changes an artist's genres; no play's names are folded here)
    select
        plays.play_sid,
        plays.track_sid,
        plays.artist_sid,
        plays.ms_played,
        name_rules.kind,
        name_rules.entry,
        name_rules.reason,
        name_rules.line_number
    from plays
    inner join artist_genres
        on plays.artist_sid = artist_genres.artist_sid
    inner join name_rules
        on
            name_rules.kind = 'genre'
            and {{ name_match('artist_genres.genre') }} = name_rules.match_name
),

final as (
    select distinct
        play_sid,
        track_sid,
        artist_sid,
        ms_played,
        kind,
        entry,
        reason,
        line_number
    from matched
)

select * from final
