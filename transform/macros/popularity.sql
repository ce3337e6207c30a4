{#- Spotify popularity (0-100) groups of the original model; `kind` is 'Artist' or 'Track'
    and only changes the labels that differ. -#}
{% macro popularity_group(popularity, kind) -%}
    case
        when {{ popularity }} is null then 'No {{ kind }} Popularity Data'
        when {{ popularity }} >= 90 then 'Extremely Popular'
        when {{ popularity }} >= 70 then 'Very Popular'
        when {{ popularity }} >= 50 then 'Popular'
        when {{ popularity }} >= 30 then '{{ "Niche Popularity" if kind == "Artist" else "Niche" }}'
        when {{ popularity }} >= 10 then 'Mostly Unknown'
        else 'Not Popular'
    end
{%- endmacro %}

{% macro popularity_sort(popularity) -%}
    case
        when {{ popularity }} is null then 0
        when {{ popularity }} >= 90 then 6
        when {{ popularity }} >= 70 then 5
        when {{ popularity }} >= 50 then 4
        when {{ popularity }} >= 30 then 3
        when {{ popularity }} >= 10 then 2
        else 1
    end
{%- endmacro %}

{#- Artists without popularity say so; tracks without it fall to 'Not Popular', as in the
    original. -#}
{% macro is_popular(popularity, kind) -%}
    case
        {%- if kind == "Artist" %}
        when {{ popularity }} is null then 'No Artist Popularity Data'
        {%- endif %}
        when {{ popularity }} >= 50 then 'Popular'
        else 'Not Popular'
    end
{%- endmacro %}

{#- The personal grouping: how often the owner streamed it (plays of at least the stream
    threshold), always available. Edges differ for tracks and artists (docs/model.md). -#}
{% macro personal_popularity_group(streams, kind) -%}
    {%- set edges = [100, 25, 10, 3, 1] if kind == "Track" else [1000, 250, 50, 10, 1] -%}
    case
        when {{ streams }} >= {{ edges[0] }} then 'Heavy Rotation'
        when {{ streams }} >= {{ edges[1] }} then 'Favourite'
        when {{ streams }} >= {{ edges[2] }} then 'Regular'
        when {{ streams }} >= {{ edges[3] }} then 'Occasional'
        when {{ streams }} >= {{ edges[4] }} then 'Rare'
        else 'Never Streamed'
    end
{%- endmacro %}

{% macro personal_popularity_sort(streams, kind) -%}
    {%- set edges = [100, 25, 10, 3, 1] if kind == "Track" else [1000, 250, 50, 10, 1] -%}
    case
        when {{ streams }} >= {{ edges[0] }} then 5
        when {{ streams }} >= {{ edges[1] }} then 4
        when {{ streams }} >= {{ edges[2] }} then 3
        when {{ streams }} >= {{ edges[3] }} then 2
        when {{ streams }} >= {{ edges[4] }} then 1
        else 0
    end
{%- endmacro %}

{% macro genre_group(group_number) -%}
    case {{ group_number }}
        when 1 then 'Group 1 (Most Played Genres)'
        when 5 then 'Group 5 (Least Played Genres)'
        else 'Group ' || {{ group_number }}
    end
{%- endmacro %}
