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

from music_tracker.reporting.definitions import Card, Dashboard, PeriodKind, year_clause

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
    day, through the unaliased ``dw.dim_date`` the field filter names; a card drawn at
    another time grain on short periods in the static report (``instead:``) picks its
    grain from the length of the range chosen (``grained_sql``)."""
    return grained_sql(card, periods) or _rewritten(card, periods)


def _rewritten(card: Card, periods: set[str]) -> str:
    sql = card.sql.strip()
    for name in sorted(periods & card.tags()):
        sql = year_clause(name).sub(
            rf"\1.date_sid in (select dim_date.date_sid from dw.dim_date where {{{{{name}}}}})",
            sql,
        )
    return sql


# The static report's kinds of period (definitions.PERIOD_KINDS) as the length of a range
# chosen in Metabase, in days: a month or less is read as the last 30 days (by day), up to
# a year as a year (by month or week), longer (or no range: all time) as all time
RANGE_LENGTHS: tuple[tuple[PeriodKind, str], ...] = (
    ("last-30-days", "<= 31"),
    ("year", "between 32 and 366"),
    ("all", "> 366"),
)
_LENGTH_WORDS = {"<= 31": "a period of 31 days or less",
                 "between 32 and 366": "a period of 32 days to a year",
                 "> 366": "a longer period or all time"}  # fmt: skip


def grain_note(card: Card) -> str:
    """What the card's Metabase description says of its grains: "Hours by day on a
    period of 31 days or less."; "" for a card of one grain."""
    return " ".join(
        f"{variant.title} on {' or '.join(_LENGTH_WORDS[length] for length in lengths)}."
        for variant, lengths in grain_variants(card)[1:]
    )


def grain_variants(card: Card) -> list[tuple[Card, list[str]]]:
    """The cards of other time grains Metabase shows in this card's place, with the
    conditions on the range's length (RANGE_LENGTHS) that choose each, the card first;
    empty when it has none. As the static report chooses for its periods (Card.on): hours
    by day instead of by month on a range of a month or less. Cards shown instead that
    are not of another time grain (a season's card gives way to weekdays) are not: their
    columns differ, and Metabase keeps the card."""
    grains = [other for other in card.instead if card.time and other.time]
    if not grains:
        return []
    chosen: dict[str, list[str]] = {}
    for kind, length in RANGE_LENGTHS:
        shown = card.on(kind)
        chosen.setdefault(shown.name if shown in grains else card.name, []).append(length)
    if list(chosen) == [card.name]:
        return []
    return [(variant, chosen[variant.name]) for variant in (card, *grains)
            if variant.name in chosen]  # fmt: skip


def grained_sql(card: Card, periods: set[str]) -> str | None:
    """One query for the card and its variants of other grains (``grain_variants``), each
    giving rows only when the range chosen has its length: Metabase cannot change a
    card's grain with the dashboard's date filter (its "time grouping" parameter is one
    more choice for the visitor, not drawn from the range), so the SQL does. The rows come
    under the card's own column names, in order of every column (the time first). None
    for a card without variants, or one that does not use a period."""
    used = sorted(periods & card.tags())
    variants = grain_variants(card)
    if not used or not variants:
        return None
    branches = [
        f"select by_grain.* from period_length, (\n{_rewritten(variant, periods)}\n) as by_grain"
        f"\nwhere {' or '.join(f'period_length.days {length}' for length in lengths)}"
        for variant, lengths in variants
    ]
    length = f"select count(*) as days from dw.dim_date where {{{{{used[0]}}}}}"
    return f"with period_length as ({length})\n" + "\nunion all\n".join(branches) + "\norder by all"


def period_default(year: int | None) -> str | None:
    """A "current" filter's default as a range: the newest year with plays, whole."""
    return None if year is None else f"{year}-01-01~{year}-12-31"
