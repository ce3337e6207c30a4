{#- Fails when the model has a different number of rows from `compare_model` filtered by
    `where`: used to prove no play is lost to a join between the conformed plays and the
    fact. -#}
{% test equal_row_count_to(model, compare_model, where='true') %}
    with

    actual as (
        select count(*) as row_count from {{ model }}
    ),

    expected as (
        select count(*) as row_count from {{ compare_model }} where {{ where }}
    )

    select
        actual.row_count as actual_rows,
        expected.row_count as expected_rows
    from actual
    cross join expected
    where actual.row_count <> expected.row_count
{% endtest %}
