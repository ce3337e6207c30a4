"""Dashboards with a period take a date range in Metabase.

A definition's year filter (``kind: year``) is the static report's: one page per year.
Metabase can offer any range, so there the filter is a date filter (``date/all-options``:
a range, a month, "the last 30 days", ...) on the play's day, ``dw.dim_date.date``. In
Metabase's terms it is a *field filter*: a template tag of type ``dimension`` mapped to that
column, which Metabase turns into a condition on ``"dw"."dim_date"."date"``. A field filter
cannot name a table alias (Metabase does not parse the SQL), so each card's SQL is given
to Metabase with its year clause rewritten into a subquery over the unaliased table:

    [[and calendar.year_num = {{year}}]]
    [[and calendar.date_sid in (select dim_date.date_sid from dw.dim_date where {{year}})]]

A year filter becomes a period only when every use of its tag has that form (inside an
optional clause); one used otherwise keeps its year (Year in review, whose cards compare a
year with the year before). docs/metabase.md, "Periods".
"""

from __future__ import annotations

import re

from music_tracker.reporting.definitions import Card, Dashboard, year_clause

PERIOD_TYPE = "date/all-options"  # Metabase's date filter with every option
PERIOD_TABLE = ("dw", "dim_date")
PERIOD_COLUMN = "date"
ALL_TIME = "All time: the period filter does not apply to this card."

_OPTIONAL = re.compile(r"\[\[(.*?)\]\]", re.DOTALL)


def _uses(sql: str, name: str) -> int:
    return len(re.findall(rf"\{{\{{\s*{name}\s*\}}\}}", sql))


def period_filters(dashboard: Dashboard) -> set[str]:
    """The year filters of ``dashboard`` that Metabase offers as a date range."""
    periods = set()
    for flt in dashboard.filters:
        if flt.kind != "year":
            continue
        cards = [card for card in dashboard.cards if flt.name in card.tags()]
        rewritable = all(
            _uses(card.sql, flt.name)
            == sum(len(year_clause(flt.name).findall(body)) for body in _OPTIONAL.findall(card.sql))
            for card in cards
        )
        if cards and rewritable:
            periods.add(flt.name)
    return periods


def period_sql(card: Card, periods: set[str]) -> str:
    """The card's SQL as Metabase gets it: each year clause of a period a condition on the
    day, through the unaliased ``dw.dim_date`` the field filter names."""
    sql = card.sql.strip()
    for name in sorted(periods & card.tags()):
        sql = year_clause(name).sub(
            rf"\1.date_sid in (select dim_date.date_sid from dw.dim_date where {{{{{name}}}}})",
            sql,
        )
    return sql


def period_default(year: int | None) -> str | None:
    """A "current" filter's default as a range: the newest year with plays, whole."""
    return None if year is None else f"{year}-01-01~{year}-12-31"
