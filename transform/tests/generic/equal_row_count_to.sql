{#- Fails when the model has a different number of rows (or, with `rows_column`, a
    different sum of that column: the rows each of its rows stands for) from
    `compare_model` filtered by `where`, less the rows whose play_sid `except_model` lists
    (the plays exclusions.yaml keeps out): proves that no play is lost or doubled between
    layers, incremental runs included. -#}
{% test equal_row_count_to(
    model, compare_model, where='true', except_model=none, rows_column=none
) %}
    with

    actual as (
        {% if rows_column %}
            select coalesce(sum({{ rows_column }}), 0) as row_count from {{ model }}
        {% else %}
            select count(*) as row_count from {{ model }}
        {% endif %}
    ),

    expected as (
        select count(*) as row_count
        from {{ compare_model }}
        where
            ({{ where }})
            {% if except_model %}
                and play_sid not in (select play_sid from {{ except_model }})
            {% endif %}
    )

    select
        actual.row_count as actual_rows,
        expected.row_count as expected_rows
    from actual
    cross join expected
    where actual.row_count <> expected.row_count
{% endtest %}
