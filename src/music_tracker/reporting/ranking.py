"""Ranked cards in the static report: one card, both orderings, a switch between them.

A ranked card (``rank:`` in its definition) ranks by plays or by time listened. Metabase
asks the card's SQL for one ordering (its "Rank by" filter); the static report binds
``BOTH`` instead, so that one query returns every row that is in the top ``rank.top`` by
either measure, with its rank by each (``plays_rank``, ``time_rank``). Each ordering is
then those rows ranked <= top by its measure, in its order, drawn with the value it is
ranked by (a plays count, or hours or minutes with one decimal). The page holds both;
radio buttons ("Plays | Time listened") and CSS show one, so the switch works with
JavaScript off, and no page or card is written twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from music_tracker.reporting.definitions import BOTH, Card, Dashboard, time_unit
from music_tracker.reporting.layout import esc

PLAYS, TIME = "plays", "time"
# (key, words on the switch, the rank filter's value that means it)
ORDERINGS = ((PLAYS, "Plays", "plays"), (TIME, "Time listened", "time listened"))
RANK_COLUMNS = {PLAYS: "plays_rank", TIME: "time_rank"}
RANK = "rank"  # the rank column a table shows: the ordering's


def for_report(dashboard: Dashboard) -> Dashboard:
    """The dashboard as the static report runs it: its rank filter bound to ``BOTH`` in
    the SQL of its ranked cards (a literal, so that the periods' rewrite and the artist
    pages' batches need not know of it)."""
    flt = dashboard.rank_filter
    if flt is None:
        return dashboard
    tag = re.compile(rf"\{{\{{\s*{flt.name}\s*\}}\}}")

    def bound(card: Card) -> Card:  # and the cards shown in its place on some periods
        if not card.rank:
            return card
        return card.model_copy(
            update={
                "sql": tag.sub(f"'{BOTH}'", card.sql),
                "instead": list(map(bound, card.instead)),
            }
        )

    return dashboard.model_copy(update={"cards": list(map(bound, dashboard.cards))})


def first_ordering(dashboard: Dashboard) -> str:
    """The ordering a page opens on: the rank filter's default (Metabase starts there)."""
    flt = dashboard.rank_filter
    default = flt.default if flt else ORDERINGS[0][2]
    return next(key for key, _, value in ORDERINGS if value == default)


@dataclass(frozen=True)
class Ordering:
    """A ranked card's rows one way: as drawn, with the measure it is ranked by."""

    key: str
    label: str
    card: Card  # the card with that measure as its value (bars, treemap tiles)
    columns: list[str]
    rows: list[tuple[Any, ...]]


def orderings(card: Card, columns: list[str], rows: list[tuple[Any, ...]]) -> list[Ordering]:
    """Both orderings of a ranked card's rows (as the SQL returns them with ``BOTH``).

    A table shows the ordering's rank first (the other rank column is left out) and its
    measure's head marked as the sort; a chart or ranked list draws the ordering's
    measure, in the ordering's order (no sorting by value: ties keep their rank)."""
    assert card.rank is not None
    indexes = {key: columns.index(column) for key, column in RANK_COLUMNS.items()}
    made = []
    for key, label, _ in ORDERINGS:
        at = indexes[key]
        kept = sorted(
            (row for row in rows if row[at] is not None and row[at] <= card.rank.top),
            key=lambda row: row[at],
        )
        measure = card.rank.plays if key == PLAYS else card.rank.time
        unit = "" if key == PLAYS else time_unit(measure) or ""
        if card.viz == "table":
            others = [i for i, c in enumerate(columns) if c not in RANK_COLUMNS.values()]
            shown = [RANK, *(columns[i] for i in others)]
            kept = [(row[at], *(row[i] for i in others)) for row in kept]
            drawn = card.model_copy(update={"titles": {RANK: "Rank", **card.titles}})
        else:
            shown = columns
            field = "size" if card.viz in ("treemap", "pie", "map") else "x"
            drawn = card.model_copy(update={field: measure, "unit": unit, "sort": "none"})
        made.append(Ordering(key, label, drawn, shown, kept))
    return made


def measure_of(ordering: Ordering) -> str:
    """The column the ordering ranks by."""
    rank = ordering.card.rank
    assert rank is not None
    return rank.plays if ordering.key == PLAYS else rank.time


def switch(name: str, first: str) -> str:
    """The radio buttons that choose an ordering (``name``: unique on the page). CSS shows
    the chosen ordering's part (report.css, ``.ranks``): no JavaScript needed."""
    buttons = "".join(
        f"<input type='radio' name='{esc(name)}' id='{esc(name)}-{key}' value='{key}'"
        f"{' checked' if key == first else ''}><label for='{esc(name)}-{key}'>{label}</label>"
        for key, label, _ in ORDERINGS
    )
    return f"<fieldset class='rank-switch'><legend>Rank by</legend>{buttons}</fieldset>"


def parts(bodies: dict[str, str]) -> str:
    """Each ordering's body, the one not chosen hidden by CSS."""
    return "".join(f"<div class='ranking by-{key}'>{bodies[key]}</div>" for key, _, _ in ORDERINGS)
