"""Card definitions as Vega-Lite (and, for treemaps, Vega) specifications, compiled to
Vega when the report is written.

The specs carry no data: the page fills the ``rows`` data set with the card's rows when it
draws them, so one spec serves every filter value of a card. Axis order follows the SQL's
``order by`` unless the card asks for a sort (``sort: -x`` ranks bars by their value).
The browser gets Vega specs (``compiled``), compiled once per card here, so that it loads
Vega's runtime alone and compiles nothing: Vega-Lite's compiler stays off the reader's
main thread.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from music_tracker import files
from music_tracker.reporting.definitions import Card

ROW_HEIGHT_PX = 40
GRID_GAP_PX = 12  # between grid rows (the page's CSS)
# the card's border, padding and title, taken off its grid cell; a description adds a line
CHROME_PX = 48
DESCRIPTION_PX = 22
SWITCH_PX = 30  # a ranked card's "Rank by" buttons
CAPTION_PX = 18  # and a ranked treemap's line saying what sizes its tiles
# No colours here: every colour is one of report.css's variables, named as ``var(--name)``
# and replaced by its value, light or dark, when the page draws the chart (report.js).
PALETTE = [f"var(--c{i})" for i in range(1, 9)]
THEME: dict[str, Any] = {
    "background": None,
    "font": "var(--font)",
    "axis": {"labelColor": "var(--muted)", "titleColor": "var(--ink)",
             "gridColor": "var(--line)", "domainColor": "var(--line)",
             "tickColor": "var(--line)"},
    "legend": {"labelColor": "var(--muted)", "titleColor": "var(--ink)"},
    "title": {"color": "var(--ink)"},
    "view": {"stroke": None},
    "range": {"category": PALETTE, "heatmap": ["var(--seq-low)", "var(--seq-high)"],
              "ramp": ["var(--seq-low)", "var(--seq-high)"]},
    "bar": {"color": PALETTE[0]},
    "line": {"color": PALETTE[0]},
    "area": {"color": PALETTE[0]},
    "point": {"color": PALETTE[0]},
    "circle": {"color": PALETTE[5]},
    "geoshape": {"fill": "var(--land)", "stroke": "var(--surface)"},
    "text": {"color": "var(--ink)"},
}  # fmt: skip
# a legend's entries in as many columns as the chart's width holds (one on a phone)
LEGEND = {
    "labelLimit": 170,
    "columns": {"expr": "width < 360 ? 1 : width < 540 ? 2 : 3"},
    "symbolLimit": 30,
}
# the theme's type scale: no chart text under 12 px (report.js holds every chart to it)
FONT_PX = 12
_TIME_UNITS = {"year": "year", "month": "yearmonth", "week": "yearweek", "day": "yearmonthdate"}
_TIME_FORMATS = {"year": "%Y", "month": "%b %Y", "week": "%-d %b %Y", "day": "%a %-d %b %Y"}


def compiled(card: Card) -> dict[str, Any] | None:
    """The card's chart as a Vega spec, themed with report.css's variables; None for cards
    drawn as HTML."""
    chart = spec(card)
    if chart is None:
        return None
    if card.viz == "treemap":  # Vega already
        return {**chart, "config": {**THEME, **chart.get("config", {})}}
    import vl_convert

    vega: dict[str, Any] = vl_convert.vegalite_to_vega(
        {**chart, "config": _merged(THEME, chart.get("config", {}))}
    )
    return _with_world(vega) if card.viz == "map" else vega


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merged(merged[key], value) if both else value
    return merged


def chart_height(card: Card) -> int:
    """The chart's height in px: its grid cell less the card's title (and description).
    The page keeps that room for it before it is drawn, so nothing moves when it is."""
    cell = card.layout.height * ROW_HEIGHT_PX + (card.layout.height - 1) * GRID_GAP_PX
    chrome = CHROME_PX + (DESCRIPTION_PX if card.description else 0)
    if card.rank:
        chrome += SWITCH_PX + (CAPTION_PX if card.viz == "treemap" else 0)
    return max(120, cell - chrome)


def description(card: Card) -> str:
    """What a screen reader says of the chart: its title and description."""
    return f"{card.title}. {card.description}" if card.description else card.title


def spec(card: Card) -> dict[str, Any] | None:
    """The card's chart spec, or None for cards drawn as HTML (KPIs and tables)."""
    if card.viz in ("kpi", "table"):
        return None
    # The chart gets its whole grid cell less the card's title (and description), and
    # Vega-Lite fits axes, labels and legends inside that ("fit"): nothing drawn outside
    # the card, where the card's overflow would cut it ("Night" read "ight").
    height = chart_height(card)
    if card.viz == "treemap":
        return _treemap(card, height)
    base: dict[str, Any] = {
        "$schema": "https://vega.github.io/schema/vega-lite/v6.json",
        "description": description(card),
        "width": "container",
        "height": height,
        "autosize": {"type": "fit", "contains": "padding"},
        "data": {"name": "rows"},
        "config": {
            "view": {"stroke": None},
            # quantitative axes too leave out labels closer than 4 px ("10,00012,000")
            "axis": {
                "labelFontSize": FONT_PX,
                "titleFontSize": FONT_PX,
                "labelLimit": 160,
                "labelSeparation": 4,
            },
            "legend": {"labelFontSize": FONT_PX, "titleFontSize": FONT_PX},
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
    name = card.title_of(column)
    return f"{name} ({card.unit})" if card.unit and card.unit != "%" else name


def number_format(card: Card, column: str | None) -> str | None:
    """A d3 format for a measure column (Card.digits: hours "1.0", minutes
    whole, thousands grouped), as the page's tables write it; None for other columns."""
    digits = card.digits(column)
    if digits is not None:
        return f",.{digits}f"
    return ",.2~f" if column and column == card.measure() else None


def _tooltip(card: Card, *columns: str | None) -> list[dict[str, Any]]:
    names = [c for c in (*columns, *card.tooltip) if c]
    tips: list[dict[str, Any]] = []
    for name in dict.fromkeys(names):
        tip: dict[str, Any] = {"field": name, "title": card.title_of(name)}
        if card.time and name == card.x:
            tip |= {"type": "temporal", "timeUnit": _time_unit(card),
                    "format": _TIME_FORMATS[card.time]}  # fmt: skip
        elif (shown := number_format(card, name)) is not None:
            tip |= {"type": "quantitative", "format": shown}
        tips.append(tip)
    return tips


def _time_unit(card: Card) -> dict[str, Any]:
    # dates come as ISO days, which browsers read as UTC midnight: UTC units keep a month a
    # month for a visitor west of Greenwich
    return {"unit": _TIME_UNITS[card.time or "day"], "utc": True}


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
    return {"field": field, "type": "nominal", "sort": sort, "title": card.title_of(field)}


def _quantitative(
    card: Card, field: str | None, channel: str, *, flush_end: bool = False
) -> dict[str, Any]:
    """A measure's axis. ``flush_end`` (a bar's, across the width): the axis ends on a
    labelled tick, its scale rounded to as many ticks as the axis shows (Vega-Lite rounds
    it to ten and the axis to one per 40 px of width), so the last label is flush with
    the end. Rounded to ten, Platforms' axis ended at 2,600 with its last label, 2,500,
    centred 10 px short of it: half the label beyond the chart, cut off on a phone (the
    fitting measured the labels before the width was settled). An axis up the height
    keeps Vega-Lite's rounding: its labels' widths decide the fitting there."""
    title = _title(card, field)
    encoding: dict[str, Any] = {"field": field, "type": "quantitative", "title": title}
    if flush_end:
        encoding["scale"] = {"nice": {"expr": "ceil(width / 40)"}}
    if card.digits(field) is None:  # a count: no tick at half a play
        # Vega's tickMinStep only caps the number of ticks: d3 still steps by 0.5 over 0
        # to 2 ("1.5 plays" on an artist's months). No more ticks than whole plays in the
        # domain does it; and the default, a tick per 40 px, otherwise.
        length = "height" if channel == "y" else "width"
        count = f"max(1, min(ceil({length} / 40), span(domain('{channel}'))))"
        encoding["axis"] = {"tickMinStep": 1, "tickCount": {"expr": count}}
    return encoding


def _color(card: Card) -> dict[str, Any]:
    if not card.color:
        return {}
    # colouring the bars by their own category needs no legend: the axis names them
    legend = (
        None if card.color == card.x else {"orient": "top", "direction": "horizontal", **LEGEND}
    )
    return {
        "color": {
            "field": card.color,
            "type": "nominal",
            "sort": None,
            "title": card.title_of(card.color),
            "legend": legend,
            **({"scale": {"domain": card.series}} if card.series else {}),
        }
    }


def _bar(card: Card) -> dict[str, Any]:
    y = _nominal(card, card.y, "y")
    # a title longer than the bars are tall ends in an ellipsis rather than run off the
    # chart, where the SVG cut it ("The owner's streams of the artist" beside five bars,
    # now "My streams of the artist"); the charts test counts either as a fault
    y["axis"] = {"titleLimit": {"expr": "height"}}
    return {
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": y,
            "x": _quantitative(card, card.x, "x", flush_end=True),
            "tooltip": _tooltip(card, card.y, card.x),
        },
    }


def _time_axis(card: Card) -> dict[str, Any]:
    """x on a continuous UTC time scale: a month without plays is an empty stretch. Days
    are named as a reader says them ("4 Sep"), not "Sep 04, 2024"."""
    axis: dict[str, Any] = {"labelAngle": 0, "labelOverlap": True, "labelFlush": True,
                            "labelSeparation": 6, "grid": False}  # fmt: skip
    if card.time == "day":
        axis["format"] = "%-d %b"
    return {
        "field": card.x,
        "type": "temporal",
        "timeUnit": _time_unit(card),
        "title": card.title_of(card.x),
        "axis": axis,
    }


def _over_categories(card: Card, mark: dict[str, Any], x_type: str) -> dict[str, Any]:
    """Columns, lines and areas: a measure (y) over time or categories (x), by color.

    Labels stay level and the ones that would collide are left out (greedy), so a phone
    shows every other year rather than a smear of overlapping ones."""
    if card.time:
        x = _time_axis(card)
    else:
        x = _nominal(card, card.x, "x")
        x["type"] = x_type
        x["axis"] = {"labelAngle": 0, "labelOverlap": "greedy", "labelSeparation": 4}
    return {
        "mark": {**mark, "tooltip": True},
        "encoding": {
            "x": x,
            "y": _quantitative(card, card.y, "y"),
            **_color(card),
            "tooltip": _tooltip(card, card.x, card.color, card.y),
        },
    }


def _column(card: Card) -> dict[str, Any]:
    return _over_categories(card, {"type": "bar"}, "nominal")


def _line(card: Card) -> dict[str, Any]:
    # the cards' SQL gives every period a row (0 when nothing happened): a line never
    # joins two months across an empty stretch
    if card.viz == "area":
        return _over_categories(card, {"type": "area"}, "ordinal")
    return _over_categories(card, {"type": "line", "point": True}, "ordinal")


def _heatmap(card: Card) -> dict[str, Any]:
    """Cells in the SQL's order (it gives every cell a row, so no hour or week is missing).

    A calendar (``time: week``) names only the first week of each month on its axis."""
    x = _nominal(card, card.x, "x")
    x["type"] = "ordinal"
    x["axis"] = {"labelAngle": 0, "labelOverlap": "greedy", "labelSeparation": 4, "ticks": False}
    if card.time == "week":
        # month names, their first letter on a phone; whatever still collides is dropped
        month = "utcFormat(toDate(datum.value), '%b')"
        name = f"(width < 560 ? slice({month}, 0, 1) : {month})"
        x["axis"] |= {
            "labelExpr": f"utcdate(toDate(datum.value)) <= 7 ? {name} : ''",
            "labelAlign": "left",
        }
        x["title"] = None
        # weeks in time order, whichever weekday a period starts on (the rows come
        # weekday by weekday: a period from a Wednesday first meets its first week late)
        x["sort"] = "ascending"
    y = _nominal(card, card.y, "y")
    y["type"] = "ordinal"
    y["axis"] = {"ticks": False}
    return {
        "mark": {"type": "rect", "tooltip": True},
        "encoding": {
            "x": x,
            "y": y,
            "color": {
                "field": card.color,
                "type": "quantitative",
                # the theme's light-to-strong ramp, mixed in RGB: what a picture drawn
                # ahead writes as a CSS color-mix() of the page's colours (pictures.py)
                "scale": {"range": "heatmap", "interpolate": "rgb"},
                "title": _title(card, card.color),
                # the title beside the gradient, not above it: the rows keep their height
                "legend": {
                    "orient": "top",
                    "direction": "horizontal",
                    # shorter on a phone: title and ramp side by side overran the chart,
                    # its top value cut off ("46" of Top genres by time of day at 390 px)
                    "gradientLength": {"expr": "clamp(width - 220, 60, 140)"},
                    "titleOrient": "left",
                },
            },
            "tooltip": _tooltip(card, card.x, card.y, card.color),
        },
    }


def _pie(card: Card) -> dict[str, Any]:
    """Slices clockwise from the top in the rows' order, as the legend lists them (parts of
    the day from night to evening; Vega-Lite would stack them by name)."""
    return {
        "transform": [{"window": [{"op": "row_number", "as": "slice_order"}]}],
        "mark": {"type": "arc", "tooltip": True, "innerRadius": 40},
        "encoding": {
            # titled: a screen reader hears each slice's fields by their titles
            "theta": {"field": card.size, "type": "quantitative", "title": _title(card, card.size)},
            "order": {"field": "slice_order", "type": "quantitative", "title": "Slice"},
            "color": {
                "field": card.label,
                "type": "nominal",
                "sort": None,
                "title": card.title_of(card.label),
                # below the ring, one entry a line: long labels keep their words
                "legend": {"orient": "bottom", "direction": "vertical", "labelLimit": 280},
            },
            "tooltip": _tooltip(card, card.label, card.size),
        },
    }


def _map(card: Card) -> dict[str, Any]:
    """Bubbles over the world (Equal Earth, fitted to the whole sphere). The countries are
    not drawn by the page: they are one picture (``world_svg``), made when the report is
    written, under the bubbles (``compiled``)."""
    return {
        "projection": {"type": "equalEarth"},
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
                "scale": {"range": [20, 1200]},
                "title": _title(card, card.size),
                # below the map, not over it, and narrow enough for a phone
                "legend": {"orient": "bottom", "direction": "horizontal", "tickCount": 3},
            },
            "tooltip": _tooltip(card, *card.tooltip, card.size),
        },
    }


# Equal Earth's whole sphere is 2.0546 times as wide as it is high (Savric et al., 2018)
_EQUAL_EARTH_ASPECT = 2.0546
WORLD_WIDTH_PX = 960
WORLD_VERSION = 2  # of world_svg's picture, in its cached file's name


def world_height() -> int:
    return round(WORLD_WIDTH_PX / _EQUAL_EARTH_ASPECT)


def world_svg(topojson: str) -> str:
    """The countries (Natural Earth's TopoJSON) as an SVG picture of the whole sphere in
    Equal Earth, the projection and fit of the map cards: drawing them in the reader's
    browser took 0.3 s of main thread per map on a phone. One grey, half transparent, reads
    on light and dark pages alike."""
    import vl_convert

    height = world_height()
    svg: str = vl_convert.vega_to_svg({
        "width": WORLD_WIDTH_PX, "height": height, "padding": 0, "autosize": "none",
        "data": [{"name": "world", "values": json.loads(topojson),
                  "format": {"type": "topojson", "feature": "countries"}}],
        "projections": [{"name": "projection", "type": "equalEarth",
                         "size": [WORLD_WIDTH_PX, height], "fit": {"signal": SPHERE}}],
        "marks": [{
            "type": "shape", "from": {"data": "world"},
            "encode": {"enter": {"fill": {"value": "#8a96a3"}, "fillOpacity": {"value": 0.3},
                                 "stroke": {"value": "#8a96a3"}, "strokeOpacity": {"value": 0.6},
                                 "strokeWidth": {"value": 0.5}}},
            "transform": [{"type": "geoshape", "projection": "projection"}],
        }],
    })  # fmt: skip
    # whole units of the 960-wide picture: a phone shows it at a third of that, a desktop
    # at most at its size (half a pixel off at worst); 40% less to download than tenths
    return re.sub(
        r' d="[^"]*"',
        lambda path: re.sub(r"\d+\.\d+", lambda n: str(round(float(n.group()))), path.group()),
        svg,
    )


SPHERE = "{type: 'Sphere'}"
WORLD_IMAGE = "../assets/world.svg"  # from a dashboard's page


def _with_world(vega: dict[str, Any]) -> dict[str, Any]:
    """The map's bubbles fitted to the whole sphere, over the picture of the countries,
    which is fitted the same way (centred, its proportions kept)."""
    for projection in vega.get("projections", []):
        projection["fit"] = {"signal": SPHERE}
    world = {
        "type": "image",
        "interactive": False,
        "encode": {"update": {
            "x": {"signal": "width / 2"}, "y": {"signal": "height / 2"},
            "width": {"signal": "width"}, "height": {"signal": "height"},
            "url": {"value": WORLD_IMAGE}, "aspect": {"value": True},
            "align": {"value": "center"}, "baseline": {"value": "middle"},
        }},
    }  # fmt: skip
    vega["marks"] = [world, *vega.get("marks", [])]
    # a phone draws the map as tall as the world is at its width (by_width): the aspect
    # travels in the spec, for the page's script (report.js) as for the pictures
    vega["signals"] = [*vega.get("signals", []), {"name": ASPECT_SIGNAL,
                                                  "value": _EQUAL_EARTH_ASPECT}]  # fmt: skip
    return vega


ASPECT_SIGNAL = "world_aspect"


def by_width(vega: dict[str, Any]) -> dict[str, Any]:
    """A map (``compiled``) as a phone's one column draws it: its plot as tall as the world
    at the plot's width, the legend below it, not fitted into its grid cell's height (a
    world 170 px tall in a box of 410 on a phone, the rest empty). report.js does the
    same to a map drawn live on a phone. Other charts are returned as they are."""
    if not any(s.get("name") == ASPECT_SIGNAL for s in vega.get("signals", [])):
        return vega
    signals = [s for s in vega["signals"] if s.get("name") != "height"]
    height = {"name": "height", "update": f"round(width / {ASPECT_SIGNAL})"}
    autosize = {**vega.get("autosize", {}), "type": "fit-x"}
    fitted = {key: value for key, value in vega.items() if key != "height"}
    return {**fitted, "autosize": autosize, "signals": [*signals, height]}


def _treemap(card: Card, height: int) -> dict[str, Any]:
    """A squarified treemap (Vega: Vega-Lite has none); rows are the leaves."""

    def shown(name: str) -> str:
        form = number_format(card, name)
        return f"format(datum.{name}, '{form}')" if form else f"datum.{name}"

    tooltip = ", ".join(
        f"'{card.title_of(name)}': {shown(name)}"
        for name in dict.fromkeys([card.label or "", card.size or "", *card.tooltip])
        if name
    )
    return {
        "$schema": "https://vega.github.io/schema/vega/v6.json",
        "description": description(card),
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
                "range": "category",  # the theme's palette
            }
        ],
        "marks": [
            {
                "type": "rect",
                "from": {"data": "rows"},
                "encode": {
                    "enter": {
                        "fill": {"scale": "color", "field": card.label},
                        "stroke": {"value": "var(--surface)"},
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
                        # a name that does not fit its tile whole is left to the tooltip,
                        # as on a tile too small for any: a cut name ("indie ro…") misreads
                        "text": {
                            "signal": (
                                f"(datum.x1 - datum.x0 > 60 && datum.y1 - datum.y0 > 18"
                                f" && length(datum.{card.label})"
                                f" <= floor((datum.x1 - datum.x0) / 6.5))"
                                f" ? datum.{card.label} : ''"
                            )
                        },
                        "fill": {"value": "#1a1a1a"},
                    },
                },
            },
        ],
    }


class SpecCache:
    """Each card's chart spec, compiled once for all the pages that show the card, and kept
    in the report's cache from one report to the next (by the Vega-Lite spec, charts.py and
    vl-convert's version): a report whose cards did not change starts no compiler."""

    def __init__(self, cache: Path) -> None:
        import importlib.metadata

        self._made: dict[tuple[str, str, str], Any] = {}
        code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
        version = importlib.metadata.version("vl-convert-python")
        self._cache = cache / f"specs-{version}-{code}"

    def __call__(self, dashboard: str, card: Card, variant: str = "") -> Any:
        """``dashboard``: its slug; ``variant``: one ordering of a ranked card (its own
        measure, its own spec)."""
        key = (dashboard, card.name, variant)
        if key not in self._made:
            chart = json.dumps([card.viz, spec(card)], sort_keys=True, default=str)
            kept = self._cache / f"{hashlib.sha256(chart.encode()).hexdigest()[:20]}.json"
            if kept.exists():
                self._made[key] = json.loads(kept.read_text(encoding="utf-8"))
            else:
                self._made[key] = compiled(card)
                files.write_text(kept, json.dumps(self._made[key]))
        return self._made[key]
