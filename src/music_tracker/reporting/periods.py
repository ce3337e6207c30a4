"""The static report's periods, and every period of a card in one query.

A dashboard with a year filter is written for all time, each year it has something to draw,
the last 12 months and the last 30 days, the last two ending at the newest play (a history
whose last export is two years old shows its last 30 days of listening, not thirty empty
days). A card's SQL names the year as Metabase does (``[[and calendar.year_num =
{{year}}]]``, any table alias); for the static report that clause becomes the period's dates
(``calendar.date_sid between ...``: a year is 1 January to 31 December), and any other
``{{year}}`` the period's year (NULL for the rolling periods).

Running each card once per period made the report's cost grow with the years of history
(one query per card per year: a thousand queries on a 20-year history). Instead the
periods are a table and each card runs once over all of them, as a LATERAL join: DuckDB
unnests the correlated query into one pass that groups by period. The rows of each period
come back in the card's own order, kept by a row number over the card's ORDER BY. A card
the rewrite does not fit runs once per period instead (same rows, slower).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import duckdb

from music_tracker.reporting.definitions import Card, bind, year_clause

logger = logging.getLogger(__name__)

ALL = "all"
LAST_12_MONTHS = "last-12-months"
LAST_30_DAYS = "last-30-days"
WINDOW_DAYS = 30
TABLE = "report_periods"  # a temporary table of the report's connection
_ORDER = "__row_order"
_PERIOD = "__period"

_YEAR_CLAUSE = year_clause()
_YEAR_TAG = re.compile(r"\{\{\s*year\s*\}\}")
# what decides where a clause ends: quoted text, brackets and the top-level keywords
_TOKENS = re.compile(r"'(?:[^']|'')*'|\(|\)|\b(?:select|from|order\s+by|limit)\b", re.I)


@dataclass(frozen=True)
class Period:
    """One page's period: local dates, both included; a year is also its number."""

    stem: str
    label: str
    first_date: dt.date
    last_date: dt.date
    year: int | None = None

    @property
    def kind(self) -> str:
        """Which kind of period (definitions.PERIOD_KINDS): a year, or a rolling one."""
        return "year" if self.year is not None else self.stem

    def statement(self, newest: dt.date, oldest: dt.date | None = None) -> str:
        """What the page says it shows: "Last 30 days: 3 Nov - 2 Dec 2026, up to the
        newest play"; a period the history starts in from its first day ("2023: 2 Oct -
        31 Dec 2023, from the first play")."""
        first = self.first_date
        head = ""
        if oldest is not None and first < oldest <= min(self.last_date, newest):
            first, head = oldest, ", from the first play"
        span = date_span(first, min(self.last_date, newest))
        tail = ", up to the newest play" if self.last_date >= newest else ""
        if head and tail:
            return f"{self.label}: {span}, the first play to the newest"
        return f"{self.label}: {span}{head}{tail}"


def date_span(first: dt.date, last: dt.date) -> str:
    """'3 Nov - 2 Dec 2026', '1 Jan - 31 Dec 2024', '14 Mar 2006 - 2 Dec 2026'."""
    end = f"{last.day} {last.strftime('%b %Y')}"
    if first.year != last.year:
        return f"{first.day} {first.strftime('%b %Y')} \u2013 {end}"
    if first.month != last.month:
        return f"{first.day} {first.strftime('%b')} \u2013 {end}"
    return end if first.day == last.day else f"{first.day}\u2013{end}"


def rolling(newest: dt.date) -> list[Period]:
    """The last 12 months and the last 30 days, up to the day of the newest play."""
    try:
        year_before = newest.replace(year=newest.year - 1)
    except ValueError:  # 29 February
        year_before = newest.replace(year=newest.year - 1, day=28)
    return [
        Period(LAST_12_MONTHS, "Last 12 months", year_before + dt.timedelta(days=1), newest),
        Period(LAST_30_DAYS, f"Last {WINDOW_DAYS} days",
               newest - dt.timedelta(days=WINDOW_DAYS - 1), newest),
    ]  # fmt: skip


def of_year(year: int) -> Period:
    return Period(str(year), str(year), dt.date(year, 1, 1), dt.date(year, 12, 31), year)


def uses_period(card: Card, filter_name: str) -> bool:
    return filter_name in card.tags()


def _rewrite(sql: str, first: str, last: str, year: str) -> tuple[str, dict[str, Any]]:
    """The card's SQL with the year clause on the period's dates and any other year the
    period's; optional clauses of the other filters dropped (they stay unset)."""
    text = _YEAR_CLAUSE.sub(lambda m: f"{m.group(1)}.date_sid between {first} and {last}", sql)
    text = _YEAR_TAG.sub(year, text)
    return bind(text, {})


def bound(sql: str, period: Period) -> tuple[str, dict[str, Any]]:
    """The card's SQL for one period, as parameters."""
    text, params = _rewrite(sql, "$period_first", "$period_last", "cast($period_year as integer)")
    values = {"period_first": period.first_date, "period_last": period.last_date,
              "period_year": period.year}  # fmt: skip
    return text, {**params, **{k: v for k, v in values.items() if f"${k}" in text}}


def days_with_rows(con: duckdb.DuckDBPyConnection, sql: str, name: str) -> list[dt.date] | None:
    """The days on which ``sql`` (a year filter's options query) has rows, oldest first:
    its year clause on filter ``name`` asked of each day of the calendar, the way a card's
    clause is asked of a period (one query: DuckDB joins the days on the clause's day);
    None when the query has no year clause to ask."""
    clause = year_clause(name)
    if not clause.search(sql):
        return None
    text, params = bind(clause.sub(lambda m: f"{m.group(1)}.date_sid = day.date_sid", sql), {})
    rows = con.execute(
        f"select day.date_sid from dw.dim_date as day where exists ({text}) order by 1", params
    ).fetchall()
    return [day for (day,) in rows]


def _top_level(sql: str) -> list[tuple[str, re.Match[str]]]:
    depth = 0
    found = []
    for match in _TOKENS.finditer(sql):
        token = match.group(0).lower()
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif depth == 0 and not token.startswith("'"):
            found.append((" ".join(token.split()), match))
    return found


def _ordered(sql: str, columns: list[str]) -> tuple[str, str] | None:
    """The card's SQL with what orders its rows within a period, as (sql, outer order);
    ("sql", "") for a card without an order of its own; None when that cannot be said.

    An ORDER BY of result columns (``plays desc, show_name``) orders the outer query; one
    of anything else (``calendar.month_start_date``) becomes a row number in the card's
    own select list."""
    tops = _top_level(sql)
    orders = [match for token, match in tops if token == "order by"]
    if not orders:
        return sql, ""
    order = orders[-1]
    limits = [m for token, m in tops if token == "limit" and m.start() > order.start()]
    keys = sql[order.end() : limits[0].start() if limits else len(sql)].strip().rstrip(";")
    terms = [term.split() for term in keys.split(",")]
    if all(
        term and term[0] in columns and (len(term) == 1 or term[1].lower() in ("asc", "desc"))
        for term in terms
    ):
        return sql, ", ".join(f'card."{term[0]}" {" ".join(term[1:])}' for term in terms)
    select = [m for token, m in tops if token == "select"]
    if not select or re.match(r"select\s+distinct\b", sql[select[-1].start() :], re.I):
        return None
    froms = [m for token, m in tops if token == "from" and m.start() > select[-1].start()]
    if not froms:
        return None
    at = froms[0].start()
    numbered = f"{sql[:at]}, row_number() over (order by {keys}) as {_ORDER}\n{sql[at:]}"
    return numbered, f"card.{_ORDER}"


def create_table(con: duckdb.DuckDBPyConnection, periods: list[Period]) -> None:
    """The periods as a temporary table (replaced), written as literals: DuckDB's Python
    client looks for numpy and pandas on every list it is given as a parameter (and
    executemany costs milliseconds a row), about 0.1 s a table here."""
    rows = ", ".join(
        f"('{p.stem}', date '{p.first_date.isoformat()}', date '{p.last_date.isoformat()}',"
        f" {'null' if p.year is None else int(p.year)})"
        for p in periods
        if re.fullmatch(r"[a-z0-9-]+", p.stem)  # our own stems: safe as literals
    )
    con.execute(
        f"create or replace temp table {TABLE} as select * from (values {rows})"
        " as periods (stem, first_date, last_date, year)"
    )


Result = tuple[list[str], list[tuple[Any, ...]]]


def run_grouped(
    con: duckdb.DuckDBPyConnection, card: Card, periods: list[Period], columns: list[str]
) -> dict[str, Result] | None:
    """The card's rows for each of ``periods`` (in TABLE) in one query; None when the
    card's SQL does not take the rewrite, or all periods at once do not fit the memory cap
    (run it per period then). ``columns``: the card's
    result columns (from its all-time run)."""
    ordered = _ordered(card.sql, columns)
    if ordered is None or not periods:
        return None
    sql, outer = ordered
    text, params = _rewrite(
        sql, "period.first_date", "period.last_date", "cast(period.year as integer)"
    )
    stems = [p.stem for p in periods]
    create_table(con, periods)
    query = (
        f"select period.stem as {_PERIOD}, card.*"
        f" from {TABLE} as period, lateral ({text}) as card"
        f" order by period.stem{', ' + outer if outer else ''}"
    )
    try:
        cursor = con.execute(query, params)
    except duckdb.BinderException:
        return None
    except duckdb.OutOfMemoryException:
        # every period's groups at once did not fit the memory cap (a top-tracks list
        # at 10 million plays under 128 MB): one period at a time does
        logger.info("%s: the periods one at a time (memory cap)", card.name)
        return None
    names = [d[0] for d in cursor.description][1:]
    keep = [i for i, name in enumerate(names) if name != _ORDER]
    grouped: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in cursor.fetchall():
        grouped[row[0]].append(tuple(row[1:][i] for i in keep))
    shown = [names[i] for i in keep]
    return {stem: (shown, grouped.get(stem, [])) for stem in stems}
