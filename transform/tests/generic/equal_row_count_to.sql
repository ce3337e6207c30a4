{#- Fails when the model has a different number of rows from `compare_model` filtered by
    `where` (or, with `distinct_column`, from its number of distinct values of that column),
    less the rows whose play_sid `except_model` lists (the plays exclusions.yaml keeps out):
    proves that no play is lost or doubled between layers, incremental runs included. -#}
{% test equal_row_count_to(
    model, compare_model, where='true', distinct_column=none, except_model=none
) %}
    with

    actual as (
        select count(*) as row_count from {{ model }}
    ),

    expected as (
        select
            {% if distinct_column %}
                count(distinct {{ distinct_column }}) as row_count
            {% else %}
                count(*) as row_count
            {% endif %}
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
