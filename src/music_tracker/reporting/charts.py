"""Card definitions as Vega-Lite (and, for treemaps, Vega) specifications.

The specs carry no data: the page fills ``data.values`` with the card's rows when it draws
them, so one spec serves every filter value of a card. Axis order follows the SQL's
``order by`` unless the card asks for a sort (``sort: -x`` ranks bars by their value).
"""

from __future__ import annotations

from typing import Any

from music_tracker.reporting.definitions import Card

ROW_HEIGHT_PX = 40
# the card's header and padding, taken off its grid height
CHROME_PX = 56
WORLD_DATA = "world"  # the page puts the world map's TopoJSON under this name
# No colours here: the page's theme (report.js, from report.css) gives marks, categories
# and the map theirs, the same palette light or dark.


def needs_world(card: Card) -> bool:
    return card.viz == "map"


def spec(card: Card) -> dict[str, Any] | None:
    """The card's chart spec, or None for cards drawn as HTML (KPIs and tables)."""
    if card.viz in ("kpi", "table"):
        return None
    # the grid cell less the card's title, its description and a legend above the chart
    chrome = CHROME_PX + (18 if card.description else 0) + (34 if card.color else 0)
    if card.viz in ("column", "stacked_column", "line", "area"):
        chrome += 20  # slanted category labels below the axis
    height = max(80, card.layout.height * ROW_HEIGHT_PX - chrome)
    if card.viz == "treemap":
        return _treemap(card, height)
    base: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "width": "container",
        "height": height,
        "data": {"name": "rows"},
        "config": {
            "view": {"stroke": None},
            "axis": {"labelFontSize": 11, "titleFontSize": 11, "labelLimit": 180},
            "legend": {"labelFontSize": 11, "titleFontSize": 11},
        },
    }
    builder = {
        "bar": _bar,
        "column": _column,
        "stacked_column": _column,
        "line": _line,
        "area": _line,
        "heatmap": _heatmap,
        "map": _map,
        "pie": _pie,
    }[card.viz]
    return {**base, **builder(card)}


def _title(card: Card, column: str | None) -> str:
    """A measure's axis or legend title, with the card's unit."""
    name = (column or "").replace("_", " ")
    return f"{name} ({card.unit})" if card.unit and card.unit != "%" else name


def _tooltip(card: Card, *columns: str | None) -> list[dict[str, str]]:
    names = [c for c in (*columns, *card.tooltip) if c]
    return [{"field": name, "title": name.replace("_", " ")} for name in dict.fromkeys(names)]


def _nominal(card: Card, field: str | None, axis: str) -> dict[str, Any]:
    """A category axis in the SQL's order, unless the card sorts it.

    ``sort: -x`` on a bar chart ranks the bars (y) by their value (x); ``sort: x`` on a
    column, line or heatmap puts the x categories in ascending order of their own values.
    """
    sort: Any = None
    if axis == "y" and card.sort in ("-x", "x") and card.viz == "bar":
        sort = card.sort
    elif axis == "x" and card.sort == "x":
        sort = "ascending"
    elif axis == "x" and card.sort in ("-y", "y"):
        sort = card.sort
    return {"field": field, "type": "nominal", "sort": sort, "title": _label(field)}


def _label(column: str | None) -> str:
    return (column or "").replace("_", " ")


def _quantitative(card: Card, field: str | None) -> dict[str, Any]:
    return {"field": field, "type": "quantitative", "title": _title(card, field)}


def _color(card: Card) -> dict[str, Any]:
    if not card.color:
        return {}
    return {
        "color": {
            "field": card.color,
            "type": "nominal",
            "sort": None,
            "title": card.color.replace("_", " "),
            "legend": {"orient": "top"},
        }
    }


def _bar(card: Card) -> dict[str, Any]:
    return {
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": _nominal(card, card.y, "y"),
            "x": _quantitative(card, card.x),
            "tooltip": _tooltip(card, card.y, card.x),
        },
    }


def _over_categories(card: Card, mark: dict[str, Any], x_type: str) -> dict[str, Any]:
    """Columns, lines and areas: a measure (y) over slanted categories (x), by color."""
    x = _nominal(card, card.x, "x")
    x["type"] = x_type
    x["axis"] = {"labelAngle": -45, "labelOverlap": "greedy"}
    return {
        "mark": {**mark, "tooltip": True},
        "encoding": {
            "x": x,
            "y": _quantitative(card, card.y),
            **_color(card),
            "tooltip": _tooltip(card, card.x, card.color, card.y),
        },
    }


def _column(card: Card) -> dict[str, Any]:
    return _over_categories(card, {"type": "bar"}, "nominal")


def _line(card: Card) -> dict[str, Any]:
    if card.viz == "area":
        return _over_categories(card, {"type": "area"}, "ordinal")
    return _over_categories(card, {"type": "line", "point": True}, "ordinal")


def _heatmap(card: Card) -> dict[str, Any]:
    x = _nominal(card, card.x, "x")
    x["type"] = "ordinal"
    x["axis"] = {"labelAngle": 0, "labelOverlap": "greedy"}
    y = _nominal(card, card.y, "y")
    y["type"] = "ordinal"
    return {
        "mark": {"type": "rect", "tooltip": True},
        "encoding": {
            "x": x,
            "y": y,
            "color": {
                "field": card.color,
                "type": "quantitative",
                "scale": {"scheme": "blues"},
                "title": _title(card, card.color),
            },
            "tooltip": _tooltip(card, card.x, card.y, card.color),
        },
    }


def _pie(card: Card) -> dict[str, Any]:
    return {
        "mark": {"type": "arc", "tooltip": True, "innerRadius": 40},
        "encoding": {
            "theta": {"field": card.size, "type": "quantitative"},
            "color": {
                "field": card.label,
                "type": "nominal",
                "sort": None,
                "title": card.label.replace("_", " ") if card.label else None,
                "legend": {"orient": "right"},
            },
            "order": {"field": card.size, "type": "quantitative", "sort": "descending"},
            "tooltip": _tooltip(card, card.label, card.size),
        },
    }


def _map(card: Card) -> dict[str, Any]:
    return {
        "projection": {"type": "equalEarth"},
        "layer": [
            {
                "data": {
                    "name": WORLD_DATA,
                    "format": {"type": "topojson", "feature": "countries"},
                },
                "mark": {"type": "geoshape"},
            },
            {
                "mark": {
                    "type": "circle",
                    "tooltip": True,
                    "opacity": 0.75,
                    "stroke": "#7f2704",
                    "strokeWidth": 0.5,
                },
                "encoding": {
                    "longitude": {"field": "long", "type": "quantitative"},
                    "latitude": {"field": "lat", "type": "quantitative"},
                    "size": {
                        "field": card.size,
                        "type": "quantitative",
                        "scale": {"range": [30, 2000]},
                        "title": _title(card, card.size),
                        "legend": {"orient": "bottom-left"},
                    },
                    "tooltip": _tooltip(card, *card.tooltip, card.size),
                },
            },
        ],
    }


def _treemap(card: Card, height: int) -> dict[str, Any]:
    """A squarified treemap (Vega: Vega-Lite has none); rows are the leaves."""
    tooltip = ", ".join(
        f"'{name.replace('_', ' ')}': datum.{name}"
        for name in dict.fromkeys([card.label or "", card.size or "", *card.tooltip])
        if name
    )
    return {
        "$schema": "https://vega.github.io/schema/vega/v6.json",
        "autosize": {"type": "fit-x", "contains": "padding"},
        "width": 400,
        "height": height,
        "data": [
            {
                "name": "rows",
                "transform": [
                    {"type": "formula", "as": "_root", "expr": "'all'"},
                    {"type": "nest", "keys": ["_root"]},
                    {
                        "type": "treemap",
                        "field": card.size,
                        "sort": {"field": "value", "order": "descending"},
                        "round": True,
                        "method": "squarify",
                        "size": [{"signal": "width"}, {"signal": "height"}],
                    },
                    {"type": "filter", "expr": "!datum.children"},
                ],
            }
        ],
        "scales": [
            {
                "name": "color",
                "type": "ordinal",
                "domain": {"data": "rows", "field": card.label},
                "range": "category",  # the theme's palette (report.js)
            }
        ],
        "marks": [
            {
                "type": "rect",
                "from": {"data": "rows"},
                "encode": {
                    "enter": {
                        "fill": {"scale": "color", "field": card.label},
                        "stroke": {"value": "#ffffff"},
                        "tooltip": {"signal": "{" + tooltip + "}"},
                    },
                    "update": {
                        "x": {"field": "x0"},
                        "y": {"field": "y0"},
                        "x2": {"field": "x1"},
                        "y2": {"field": "y1"},
                    },
                },
            },
            {
                "type": "text",
                "from": {"data": "rows"},
                "interactive": False,
                "encode": {
                    "enter": {"font": {"value": "sans-serif"}, "fontSize": {"value": 11}},
                    "update": {
                        "x": {"signal": "datum.x0 + 4"},
                        "y": {"signal": "datum.y0 + 14"},
                        "text": {
                            "signal": (
                                f"(datum.x1 - datum.x0 > 60 && datum.y1 - datum.y0 > 18)"
                                f" ? truncate(datum.{card.label}, floor((datum.x1 - datum.x0)"
                                f" / 6.5)) : ''"
                            )
                        },
                        "fill": {"value": "#1a1a1a"},
                    },
                },
            },
        ],
    }
