"""What a definition card looks like in Metabase: its display, its visualization and
column settings (titles, decimals, units, time axes, a pie's order), its description, and
the click from an artist to the Artist dashboard. The fake Metabase
(``fakes/metabase.py``) checks each of these settings against the card's result."""

from __future__ import annotations

import json
from typing import Any

from music_tracker.metabase.periods import ALL_TIME, grain_note, grain_variants
from music_tracker.reporting.definitions import Card, time_unit

DISPLAY = {
    "kpi": "scalar",
    "bar": "row",
    "column": "bar",
    "stacked_column": "bar",
    "line": "line",
    "area": "area",
    "heatmap": "table",
    "treemap": "row",
    "map": "map",
    "pie": "pie",
    "table": "table",
}


_UNIT_SUFFIX = {"%": "%"}  # other units follow the number after a space: "12 h"


def column_key(column: str) -> str:
    """How Metabase names a result column in ``column_settings``: ``["name","plays"]``."""
    return json.dumps(["name", column], separators=(",", ":"))


def _column_settings(card: Card, columns: list[str]) -> dict[str, Any]:
    """Each result column's title, its decimals (hours, minutes and percentages 1:
    Card.digits) and the unit after the measures: what the static report shows on
    its axes, table heads and figures."""
    measure = card.measure()
    settings: dict[str, Any] = {}
    for column in dict.fromkeys([*columns, *card.columns()]):
        entry: dict[str, Any] = {"column_title": card.title_of(column) or column}
        if (digits := card.digits(column)) is not None:
            entry["decimals"] = digits
        if card.unit and column == measure:
            entry["suffix"] = _UNIT_SUFFIX.get(card.unit, f" {card.unit}")
        elif card.rank and column == card.rank.time:  # a ranked card's hours or minutes
            entry["suffix"] = f" {time_unit(column)}"
        settings[column_key(column)] = entry
    return settings


def visualization(card: Card, columns: list[str]) -> dict[str, Any]:
    """Metabase's visualization settings for a definition card (the closest chart Metabase
    has: no treemap, so a row chart; a heatmap is a pivoted table with a color range)."""
    settings: dict[str, Any] = {"card.title": card.title}
    if card.description:
        settings["card.description"] = card.description
    viz = card.viz
    if viz == "kpi":
        settings["scalar.field"] = card.y
    elif viz == "bar":  # horizontal bars: categories on y
        settings |= {"graph.dimensions": [card.y], "graph.metrics": [card.x]}
    elif viz in ("column", "line", "area"):
        settings |= {"graph.dimensions": [card.x], "graph.metrics": [card.y]}
    elif viz == "stacked_column":
        settings |= {
            "graph.dimensions": [card.x, card.color],
            "graph.metrics": [card.y],
            "stackable.stack_type": "stacked",
        }
    elif viz in ("treemap", "pie"):
        if viz == "pie":
            # slices in the query's order (the parts of the day from night to evening),
            # as the static report draws them; Metabase would sort them by size
            settings |= {
                "pie.dimension": card.label,
                "pie.metric": card.size,
                "pie.sort_rows": False,
            }
        else:
            settings |= {"graph.dimensions": [card.label], "graph.metrics": [card.size]}
    elif viz == "heatmap":
        settings |= {
            "table.pivot": True,
            "table.pivot_column": card.x,
            "table.cell_column": card.color,
            "table.column_formatting": [
                {
                    "columns": [card.color],
                    "type": "range",
                    "colors": ["#FFFFFF", "#1DB954"],
                    "min_type": None,
                    "max_type": None,
                    "highlight_row": False,
                }
            ],
        }
    elif viz == "map":
        settings |= {
            "map.type": "pin",
            "map.pin_type": "markers",
            "map.latitude_column": "lat",
            "map.longitude_column": "long",
            "map.metric": card.size,
        }
    if "graph.dimensions" in settings:
        dimension, metric = settings["graph.dimensions"][0], settings["graph.metrics"][0]
        # a card that changes its grain with the range says each ("Month or day")
        titles = list(dict.fromkeys(v.title_of(v.x) for v, _ in grain_variants(card)))
        x_title = " or ".join([titles[0], *map(str.lower, titles[1:])]) if titles else ""
        settings |= {
            # a time axis is continuous in Metabase too: empty months are empty stretches
            "graph.x_axis.scale": "timeseries" if card.time else "ordinal",
            "graph.x_axis.title_text": (
                x_title if x_title and dimension == card.x else card.title_of(dimension)
            ),
            "graph.y_axis.title_text": card.title_of(metric)
            + (f" ({card.unit})" if card.unit and card.unit != "%" else ""),
        }
    column_settings = _column_settings(card, columns)
    if column_settings:
        settings["column_settings"] = column_settings
    return settings


def description(card: Card, all_time: bool = False) -> str | None:
    """The card's description, that it is all time on a dashboard with a period, and what
    it means when it is empty (Metabase shows only "No results")."""
    parts = [
        card.description,
        grain_note(card),
        ALL_TIME if all_time else "",
        f"When empty: {card.empty}" if card.empty else "",
        # the cases' words too (Metabase's description is one for every history);
        # what the owner runs (to_fill) is not for a public dashboard
        *(f"Or: {case.empty}" for case in card.empty_when),
    ]
    return " ".join(p for p in parts if p) or None


def click_to_artist(
    card: Card, artist_dashboard_id: int | None, parameter_id: str | None
) -> dict[str, Any]:
    """A dashcard's visualization settings: a click on an artist opens the Artist dashboard
    filtered on that artist (on a table, the artist column's cells; on a chart, its bars)."""
    if not card.artist_column or artist_dashboard_id is None or parameter_id is None:
        return {}
    behaviour = {
        "type": "link",
        "linkType": "dashboard",
        "targetId": artist_dashboard_id,
        "parameterMapping": {
            parameter_id: {
                "id": parameter_id,
                "source": {"type": "column", "id": card.artist_column, "name": card.artist_column},
                "target": {"type": "parameter", "id": parameter_id},
            }
        },
    }
    if card.viz == "table":
        return {"column_settings": {column_key(card.artist_column): {"click_behavior": behaviour}}}
    return {"click_behavior": behaviour}
