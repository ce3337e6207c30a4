{#- Fails when the model has a different number of rows from `compare_model` filtered by
    `where`, less the rows whose play_sid `except_model` lists (the plays exclusions.yaml
    keeps out): proves that no play is lost or doubled between layers, incremental runs
    included.

    With `rows_column`, each of the model's rows stands for that many rows of
    `compare_model` (a play for its source rows): their sum is compared with the count;
    with `rows_hash_column` too, each row's sum of the hashes of `rows_hash_of` over the
    rows it stands for, summed, is compared with the sum of that hash over
    `compare_model`'s rows. The hashes catch what the counts cannot: a row moved out of a
    play to one never built (the counts cancel out), two plays whose rows swapped (the
    counts stay), each left as it was (helper-40, helper-41). Neither groups a row (a
    count of distinct keys did: a hash aggregate of every source row). -#}
{% test equal_row_count_to(
    model, compare_model, where='true', except_model=none, rows_column=none,
    rows_hash_column=none, rows_hash_of=none
) %}
    {%- set rows = rows_column or 1 -%}
    {%- set hashes = rows_hash_column or 0 -%}
    {%- set hash_of = "hash(" ~ rows_hash_of ~ ")::hugeint" if rows_hash_column else "0" -%}
    with

    actual as (
        select
            coalesce(sum({{ rows }}), 0) as row_count,
            coalesce(sum({{ hashes }}), 0) as row_hashes
        from {{ model }}
    ),

    expected as (
        select
            count(*) as row_count,
            coalesce(sum({{ hash_of }}), 0) as row_hashes
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
        or actual.row_hashes <> expected.row_hashes
{% endtest %}
