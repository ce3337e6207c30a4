{#- Fails when the model has a different number of rows from `compare_model` filtered by
    `where`, less the rows whose play_sid `except_model` lists (the plays exclusions.yaml
    keeps out): proves that no play is lost or doubled between layers, incremental runs
    included.

    With `rows_column`, each of the model's rows stands for that many rows of
    `compare_model` (a play for its source rows): their sum is compared with the count, and
    with `key_column` also the sum of the key's hash weighted by those rows with the sum of
    the hash over `compare_model`'s rows. That second sum catches what the first cannot: a
    play that lost a row to a play never built, both left as they were, cancel out in the
    counts but not in the keys. Neither groups a row (a count of distinct keys did: a hash
    aggregate of every source row). -#}
{% test equal_row_count_to(
    model, compare_model, where='true', except_model=none, rows_column=none, key_column=none
) %}
    {%- set rows = rows_column or 1 -%}
    {%- set key = "hash(" ~ key_column ~ ")::hugeint" if key_column else "0" -%}
    with

    actual as (
        select
            coalesce(sum({{ rows }}), 0) as row_count,
            coalesce(sum({{ key }} * {{ rows }}), 0) as key_sum
        from {{ model }}
    ),

    expected as (
        select
            count(*) as row_count,
            coalesce(sum({{ key }}), 0) as key_sum
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
    where
        actual.row_count <> expected.row_count
        or actual.key_sum <> expected.key_sum
{% endtest %}
