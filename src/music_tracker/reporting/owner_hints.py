"""What the owner runs to fill the cards a report shows empty.

The pages are public: an empty card tells a visitor what is missing (its ``empty:``), never
what to run. What the owner runs (``to_fill:``) is collected while the report is written,
from the cards that were empty on a page written, and listed by ``report``'s summary: each
instruction once, with the dashboards it would fill (docs/reporting.md, "Visitors read, the
owner runs").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb

from music_tracker.reporting.definitions import Card, Dashboard


def is_empty(card: Card, rows: list[tuple[Any, ...]]) -> bool:
    """Whether the card says its ``empty:`` words: no rows, or a KPI with no figure."""
    return not rows or (card.viz == "kpi" and rows[0][0] is None)


class Said:
    """A card as a report of this star schema shows it: with the words of the first of its
    ``empty_when`` cases that holds (why it is empty in this history), or as defined. Each
    case is asked once per report."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._holds: dict[str, bool] = {}

    def __call__(self, card: Card) -> Card:
        for case in card.empty_when:
            if case.sql not in self._holds:
                row = self._con.execute(case.sql).fetchone()
                self._holds[case.sql] = bool(row and row[0])
            if self._holds[case.sql]:
                return card.model_copy(update={"empty": case.empty, "to_fill": case.to_fill})
        return card


@dataclass
class OwnerHints:
    """Each instruction of the cards found empty, with their dashboards."""

    found: dict[str, dict[str, int]] = field(default_factory=dict)  # to_fill -> title: order

    def note(self, dashboard: Dashboard, card: Card, rows: list[tuple[Any, ...]]) -> None:
        """A card as shown on a page written, with its rows."""
        if card.to_fill and is_empty(card, rows):
            self.found.setdefault(card.to_fill, {})[dashboard.title] = dashboard.order

    def as_list(self) -> list[dict[str, Any]]:
        """[{"to_fill": what to run, "dashboards": [titles, in the report's order]}]."""
        return [
            {"to_fill": text, "dashboards": sorted(titles, key=lambda t: (titles[t], t))}
            for text, titles in self.found.items()
        ]
