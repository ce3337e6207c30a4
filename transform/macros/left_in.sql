{#
  A dimension's rows and counts with exclusions.yaml applied (docs/model.md, "Exclusions"):
  the rows of `heard` (one per `key`, with play_count and stream_count over every play)
  less the plays `excluded` keeps out (int_plays_excluded, which carries each play's keys
  and length: no play is read here); a row whose every play is excluded is left out. A
  play two entries match counts once.
#}
{% macro left_in(heard, excluded, key) %}
    select
        {{ heard }}.* replace (
            {{ heard }}.play_count - coalesce(excluded_counts.play_count, 0) as play_count,
            {{ heard }}.stream_count - coalesce(excluded_counts.stream_count, 0)
                as stream_count
        )
    from {{ heard }}
    left join (
        select
            {{ key }},
            count(*) as play_count,
            count(*) filter (
                where ms_played >= {{ var('stream_threshold_ms') }}
            ) as stream_count
        from (
            select distinct
                play_sid,
                {{ key }},
                ms_played
            from {{ excluded }}
        ) as excluded_plays
        group by {{ key }}
    ) as excluded_counts
        on {{ heard }}.{{ key }} = excluded_counts.{{ key }}
    where excluded_counts.play_count is null
        or {{ heard }}.play_count > excluded_counts.play_count
{% endmacro %}
