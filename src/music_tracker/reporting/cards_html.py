"""The cards that need no chart library, written into the page as HTML: KPI figures,
tables (a one-row table as labelled figures), ranked lists of names, and what an empty
card says. A reader sees every number before (and without) any JavaScript; only charts
are left for ``report.js`` to draw.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from music_tracker.reporting.definitions import Card, decimals, time_unit
from music_tracker.reporting.layout import esc

NO_VALUE = "\u2014"
DEFAULT_EMPTY = "Nothing to show for this period."
# a table this wide drops its dates on a phone (report.css), so the names keep the width
WIDE_COLUMNS = 5
WIDE = " class='wide'"


def show(value: Any, digits: int | None = None) -> str:
    """A value as a reader sees it: thousands grouped; a measure with ``digits``
    (Card.digits: hours, minutes, percentages 1) always with that many decimals, any
    other number with at most two."""
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if digits is not None and isinstance(value, int | float | decimal.Decimal):
        text = f"{float(value):,.{digits}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.,") else text
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float | decimal.Decimal):
        text = f"{float(value):,.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    if isinstance(value, dt.datetime):  # as the headers write a day: "4 Nov 2023 14:05"
        return f"{value.day} {value:%b %Y %H:%M}"
    if isinstance(value, dt.date):
        return f"{value.day} {value:%b %Y}"
    if isinstance(value, dt.time):
        return f"{value:%H:%M}"
    return str(value)


def show_in(
    column: str | None, value: Any, *, heard: bool = False, card: Card | None = None
) -> str:
    """A value of a result column, with the column's decimals (the card's, else the rule
    by name: definitions.decimals; hours, minutes and percentages with one, "12.0 h"
    beside "9.5 h", not "12 h"). ``heard``: the row is something listened to (a ranked
    card's), so a time that rounds to 0.0 was not nothing: "< 0.1" (every play has time
    played)."""
    if heard and column and time_unit(column) and _is_number(value) and float(value) == 0:
        return "< 0.1"
    return show(value, card.digits(column) if card else decimals(column))


# Counts of things listened to: a row with one of them above 0 was heard, so its time is
# above 0 too (every play and every podcast episode kept has time played)
HEARD_COUNTS = ("plays", "play_count", "episodes_started")


def heard_row(card: Card, columns: list[str], row: tuple[Any, ...]) -> bool:
    """Whether a table row is something listened to: a ranked card's row, or a row that
    counts plays or episodes (the artist page's "Plays 6, Hours < 0.1")."""
    if card.rank is not None:
        return True
    return any(
        column in HEARD_COUNTS and _is_number(value) and float(value) > 0
        for column, value in zip(columns, row, strict=True)
    )


def empty(card: Card) -> str:
    """The card's own words for an empty card, for a visitor (what the owner runs to fill
    it is in `report`'s summary: owner_hints.py)."""
    return f"<p class='empty'>{esc(card.empty or DEFAULT_EMPTY)}</p>"


def _cell(
    tag: str,
    value: Any,
    href: str | None,
    css: str = "",
    kind: str | None = None,
    column: str | None = None,
    heard: bool = False,
    card: Card | None = None,
) -> str:
    shown = esc(show_in(column, value, heard=heard, card=card))
    content = f"<a href='{esc(href)}'>{shown}</a>" if href else shown
    attributes = f" class='{css}'" if css else ""
    if kind:  # a name that leads to its artist's page (tests find them by this)
        attributes += f" data-link='{kind}'"
    return f"<{tag}{attributes}>{content}</{tag}>"


def kpi(card: Card, rows: list[tuple[Any, ...]]) -> str:
    value = rows[0][0] if rows else None
    if value is None and card.empty:  # no figure: the card says why
        return empty(card)
    unit = f"<span class='unit'>{esc(card.unit)}</span>" if card.unit else ""
    return f"<div class='kpi'>{esc(show_in(card.y, value, card=card))}{unit}</div>"


def table(
    card: Card,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    links: dict[str, list[str | None]],
    kinds: dict[str, str],
    sorted_by: str | None = None,
) -> str:
    """Rows as a table that scrolls sideways in its card; one row as labelled figures.
    ``sorted_by``: the column the rows are ranked by (its head says so)."""
    if not rows:
        return empty(card)
    if len(rows) == 1 and len(columns) > 1:
        figures = "".join(
            "<div>"
            + _cell("dt", card.title_of(column), None)
            + _cell(
                "dd",
                rows[0][i],
                (links.get(column) or [None])[0],
                kind=kinds.get(column),
                column=column,
                heard=heard_row(card, columns, rows[0]),
                card=card,
            )
            + "</div>"
            for i, column in enumerate(columns)
        )
        return f"<dl class='facts'>{figures}</dl>"
    numeric = [any(_is_number(row[i]) for row in rows) for i in range(len(columns))]
    # dates are the columns a phone drops (report.css) when the names need the width
    dates = [any(isinstance(row[i], dt.date) for row in rows) for i in range(len(columns))]
    header = "".join(
        _cell("th", card.title_of(column), None, _kind(numeric[i], dates[i], False)).replace(
            "<th",
            "<th scope='col'" + (" aria-sort='descending'" if column == sorted_by else ""),
            1,
        )
        for i, column in enumerate(columns)
    )
    hrefs = [links.get(column) or [None] * len(rows) for column in columns]

    def cells(r: int, row: tuple[Any, ...]) -> str:
        heard = heard_row(card, columns, row)
        return "".join(
            _cell(
                "td",
                value,
                hrefs[i][r],
                _kind(_is_number(value), dates[i], column in kinds, isinstance(value, str)),
                kinds.get(column),
                column,
                heard,
                card,
            )
            for i, (column, value) in enumerate(zip(columns, row, strict=True))
        )

    body = "".join(f"<tr>{cells(r, row)}</tr>" for r, row in enumerate(rows))
    return (
        f"<div class='table-scroll' tabindex='0' role='region' aria-label='{esc(card.title)}'>"
        f"<table{WIDE if len(columns) >= WIDE_COLUMNS else ''}><thead><tr>{header}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def ranked(
    card: Card,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    hrefs: list[str | None],
    kind: str | None,
) -> str:
    """A bar chart of names as a ranked list: each name (a link where it has a page), its
    value with the card's unit, and a bar scaled to the largest value."""
    if not rows:
        return empty(card)
    x, y = columns.index(card.x or ""), columns.index(card.y or "")
    order = list(range(len(rows)))
    if card.sort in ("x", "-x"):
        order.sort(key=lambda i: rows[i][x] or 0, reverse=card.sort == "-x")
    most = max((float(row[x] or 0) for row in rows), default=0) or 1
    unit = f" {esc(card.unit)}" if card.unit else ""
    items = "".join(
        "<li>"
        + _cell(
            "span",
            rows[i][y],
            hrefs[i] if i < len(hrefs) else None,
            "name" if kind else "label",
            kind,
        )
        + "<span class='value'>"
        + esc(show_in(card.x, rows[i][x], heard=bool(card.rank), card=card))
        + f"{unit}</span>"
        + "<svg class='bar' viewBox='0 0 100 4' preserveAspectRatio='none' aria-hidden='true'>"
        + f"<rect width='{max(0.5, 100 * float(rows[i][x] or 0) / most):.1f}' height='4'>"
        + "</rect></svg></li>"
        for i in order
    )
    # the measure's words ("Hours"); its unit is on every value
    return f"<p class='measure'>{esc(card.title_of(card.x))}</p><ol class='ranked'>{items}</ol>"


def _kind(numeric: bool, date: bool, name: bool, text: bool = False) -> str:
    """A cell's classes: numbers right-aligned, dates droppable, names (of pages: links)
    and other text wrapping, so that a phone keeps a table's figures on screen."""
    return "num" if numeric else "date" if date else "name" if name else "text" if text else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)
