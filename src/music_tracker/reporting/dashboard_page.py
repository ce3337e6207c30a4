"""One page of a dashboard as HTML: its cards on the grid (Metabase's layout, reflowed
where a period leaves cards out: grid.py), figures, tables and ranked lists written out
(cards_html.py), each chart's room with its rows and spec for report.js, and the first
charts drawn ahead (pictures.py).
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from music_tracker.reporting import cards_html, charts, grid, periods, ranking
from music_tracker.reporting.definitions import Card, Dashboard, Filter, Layout
from music_tracker.reporting.layout import Context, data_script, footer, head, nav
from music_tracker.reporting.links import RANKED, Links, linked

ASSETS = Path(__file__).resolve().parent / "assets"
WORLD_FILE = "countries-110m.json"  # fetched at setup (Makefile); optional
# the charts drawn ahead on a dashboard page (pictures.py): the first two, which a phone
# shows on its first screen or on the edge of it (where report.js would start Vega)
FIRST_SCREEN = 2


_PLAIN = (int, float, str, bool, type(None))


def jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:  # most values: 300,000 of them in a report
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def is_ranked(card: Card) -> bool:
    """A bar chart of names drawn as a ranked list (names wrap: a podcast's long name is
    not cut to "The Psychology of your ..." as an axis label would be)."""
    if card.viz != "bar" or card.y is None:
        return False
    named = card.rank is not None and card.y.endswith("_name")
    return card.y in RANKED or card.y == card.artist_column or named


def _body(
    card: Card,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    links: Links,
    sorted_by: str | None = None,
) -> str | None:
    """The card as HTML, or None for a chart with rows (report.js draws it)."""
    kinds = linked(card, columns)
    if card.viz == "kpi":
        return cards_html.kpi(card, rows)
    if card.viz == "table":
        hrefs = links.for_card(card, columns, rows)
        return cards_html.table(card, columns, rows, hrefs, kinds, sorted_by)
    if is_ranked(card):
        hrefs = links.for_card(card, columns, rows).get(card.y or "", [])
        return cards_html.ranked(card, columns, rows, hrefs, kinds.get(card.y or ""))
    if not rows:
        return cards_html.empty(card)
    return None


def render(
    dashboard: Dashboard,
    cards: list[tuple[Card, Card]],
    pages: list[tuple[str, str, dict[str, Any]]],
    current: str,
    label: str,
    results: dict[str, tuple[list[str], list[tuple[Any, ...]]]],
    links: Links,
    specs: charts.SpecCache,
    context: Context,
    *,
    artist: bool = False,
    period: str = "",
    drawn: dict[str, str | None] | None = None,
) -> str:
    """One page of a dashboard: ``cards`` (shown()) on the grid, the charts among them
    drawn ahead in ``drawn`` (by their data-chart)."""
    selector = ""
    first = dashboard.page_filter
    if first is not None and not artist:
        # the default page (index) repeats one of the others: offer each choice once
        choices: dict[str, str] = {}
        for stem, text, _ in pages:
            choices.setdefault(text, stem)
        options = "".join(
            f"<option value='{stem}.html'{' selected' if text == label else ''}>"
            f"{html.escape(text)}</option>"
            for text, stem in choices.items()
        )
        # without JavaScript (a visitor's browser may have it off) the select cannot
        # navigate: the same choices as plain links
        plain = " \u00b7 ".join(
            f"<a href='{stem}.html'{' aria-current=page' if text == label else ''}>"
            f"{html.escape(text)}</a>"
            for text, stem in choices.items()
        )
        selector = (
            f"<label class='filter'>{html.escape(_filter_label(first))} "
            f"<select onchange='location.href=this.value'>{options}</select></label>"
            f"<noscript><p class='filter-links'>{plain}</p></noscript>"
        )
    elif artist:
        selector = "<p class='filter'><a href='index.html'>All artists</a> (with a search box)</p>"
    tiles = []
    charts_to_draw: list[dict[str, Any]] = []  # only charts travel as data
    # the cards a period leaves out leave no hole: the rest take their room (grid.py)
    places = grid.reflow(
        [(card.name, card.layout) for card in dashboard.cards], {card.name for card, _ in cards}
    )
    placed = [(card, places[defined.name]) for defined, card in cards]
    rows_of: list[tuple[Layout, bool]] = []
    # on a phone KPI figures go two abreast: the last of an odd run takes the whole row
    lone = {
        i
        for i, (card, _) in enumerate(placed)
        if card.viz == "kpi"
        and (i + 1 == len(placed) or placed[i + 1][0].viz != "kpi")
        and _run_length(placed, i) % 2
    }
    ahead = drawn or {}
    for i, (card, layout) in enumerate(placed):
        columns, rows = results[card.name]
        if card.rank and rows:
            body = _ranked_body(dashboard, card, i, columns, rows, links, specs, charts_to_draw,
                                ahead)  # fmt: skip
            tiles.append(_tile(dashboard, card, layout, i, body, _ranking_switch(dashboard, card)))
            rows_of.append((layout, False))
            continue
        html_body = _body(card, columns, rows, links)
        body = html_body or _chart(dashboard, card, str(i), columns, rows, specs,
                                   charts_to_draw, picture=ahead.get(str(i)))  # fmt: skip
        tiles.append(_tile(dashboard, card, layout, i, body, lone=i in lone))
        rows_of.append((layout, card.viz == "kpi" or _says_empty(body)))
    main = f"<main class='grid' style='--rows: {_grid_rows(rows_of)}'>{''.join(tiles)}</main>"
    shown_cards = [card for card, _ in placed]
    if len(shown_cards) > 1 and not any(results[card.name][1] for card in shown_cards):
        main = _nothing_to_show(dashboard, shown_cards)
    data = json.dumps(charts_to_draw, separators=(",", ":"), default=str).replace("</", "<\\/")
    heading = label if artist else f"{dashboard.title}" + (f": {label}" if label else "")
    return (
        head(heading, 1, description=dashboard.description,
             scripts=["report.js"] if charts_to_draw else [], drawn=not charts_to_draw)
        + nav(1)
        + f"<header><h1>{html.escape(heading)}</h1>"
        + (f"<p>{html.escape(dashboard.description)}</p>" if not artist else "")
        + selector
        + (f"<p class='period'>{html.escape(period)}</p>" if period else "")
        + "</header>"
        + main
        + footer(context)
        + (data_script("mt-cards", data) if charts_to_draw else "")
        + "</body></html>"
    )  # fmt: skip


def _grid_rows(placed: list[tuple[Layout, bool]]) -> str:
    """The rows of the desktop grid (report.css): 40 px each, as Metabase's, except rows
    that hold only KPI figures or cards that say they are empty (``compact``), which take
    their words' height: the definitions give a figure three rows, which Metabase needs
    and a figure does not, and a chart with nothing to draw its chart's room."""
    height = max((lay.row + lay.height for lay, _ in placed), default=0)
    compact = [True] * height
    for lay, small in placed:
        for row in range(lay.row, lay.row + lay.height):
            compact[row] = compact[row] and small
    return " ".join("auto" if small else "40px" for small in compact)


def _nothing_to_show(dashboard: Dashboard, cards: list[Card]) -> str:
    """A page whose every card is empty says why once: each of the cards' own words once
    (places before any MusicBrainz lookup: one sentence, not four cards of it)."""
    said: dict[str, Card] = {}
    for card in cards:
        said.setdefault(card.empty, card)
    reasons = [card for words, card in said.items() if words] or [cards[0]]
    return (
        f"<main class='grid nothing'><section class='card card-empty'"
        f" id='{dashboard.slug}--empty'><div class='body'>"
        + "".join(cards_html.empty(card) for card in reasons)
        + "</div></section></main>"
    )


def _chart(
    dashboard: Dashboard,
    card: Card,
    chart: str,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    specs: charts.SpecCache,
    charts_to_draw: list[dict[str, Any]],
    variant: str = "",
    picture: str | None = None,
) -> str:
    """A chart's room in the page (report.js draws it there from its entry in
    ``charts_to_draw``, found by ``data-chart``): the chart as drawn ahead (``picture``),
    or its room kept, the map's countries shown at once."""
    charts_to_draw.append({
        "chart": chart, "name": card.name, "viz": card.viz, "columns": columns,
        "rows": [values(row) for row in rows], "spec": specs(dashboard.slug, card, variant),
        "ahead": picture is not None,
    })  # fmt: skip
    height = charts.chart_height(card)
    if picture is not None:
        # named as Vega names the charts it draws (its spec's description), so that a
        # picture and a chart drawn live read the same to a screen reader
        return (
            f"<div class='chart' data-chart='{chart}' data-drawn style='min-height: {height}px'"
            " role='graphics-document' aria-roledescription='visualization'"
            f" aria-label='{html.escape(charts.description(card))}'>{picture}</div>"
        )
    world = (
        f"<img class='world' src='../assets/world.svg' alt='' width='{charts.WORLD_WIDTH_PX}'"
        f" height='{charts.world_height()}' style='height: {height}px'>"
        if card.viz == "map" and (ASSETS / WORLD_FILE).exists()
        else ""
    )
    return f"<div class='chart' data-chart='{chart}' style='min-height: {height}px'>{world}</div>"


@dataclass(frozen=True)
class _Chart:
    """A chart of a page: its ``data-chart``, the card as drawn (a ranked card's one
    ordering: ``variant``), its rows, and whether the page opens on it (a ranked card's
    other ordering is hidden until chosen)."""

    chart: str
    card: Card
    columns: list[str]
    rows: list[tuple[Any, ...]]
    variant: str = ""
    opened: bool = True


def charts_of(
    dashboard: Dashboard, cards: list[Card], results: dict[str, periods.Result]
) -> list[_Chart]:
    """The charts of a page that shows ``cards``, in the page's order (as render draws
    them: the others are HTML)."""
    found = []
    first = ranking.first_ordering(dashboard)
    for i, card in enumerate(cards):
        columns, rows = results[card.name]
        if card.rank and rows:
            found += [
                _Chart(f"{i}-{way.key}", way.card, way.columns, way.rows, way.key, way.key == first)
                for way in ranking.orderings(card, columns, rows)
                if _is_chart(way.card, way.rows)
            ]
        elif _is_chart(card, rows):
            found.append(_Chart(str(i), card, columns, rows))
    return found


def first_charts(found: list[_Chart]) -> list[_Chart]:
    """The charts a phone shows on its first screen (FIRST_SCREEN), drawn ahead."""
    return [chart for chart in found if chart.opened][:FIRST_SCREEN]


def _is_chart(card: Card, rows: list[tuple[Any, ...]]) -> bool:
    """Whether report.js draws the card (the others are HTML: _body)."""
    return card.viz not in ("kpi", "table") and not is_ranked(card) and bool(rows)


def values(row: tuple[Any, ...]) -> list[Any]:
    return [jsonable(v) for v in row]


def _ranked_body(
    dashboard: Dashboard,
    card: Card,
    index: int,
    columns: list[str],
    rows: list[tuple[Any, ...]],
    links: Links,
    specs: charts.SpecCache,
    charts_to_draw: list[dict[str, Any]],
    drawn: dict[str, str | None],
) -> str:
    """A ranked card's body: both orderings (ranking.py), one shown by its switch."""
    bodies = {}
    for way in ranking.orderings(card, columns, rows):
        sorted_by = ranking.measure_of(way) if card.viz == "table" else None
        body = _body(way.card, way.columns, way.rows, links, sorted_by)
        if body is None:
            chart = f"{index}-{way.key}"
            body = _chart(dashboard, way.card, chart, way.columns, way.rows, specs,
                          charts_to_draw, way.key, drawn.get(chart))  # fmt: skip
            if card.viz == "treemap":  # no axis says what the tiles measure
                measure = way.card.title_of(ranking.measure_of(way))
                body = f"<p class='measure'>Sized by {html.escape(measure.lower())}</p>{body}"
        bodies[way.key] = body
    return ranking.parts(bodies)


def _ranking_switch(dashboard: Dashboard, card: Card) -> str:
    return ranking.switch(f"rank-{dashboard.slug}--{card.name}", ranking.first_ordering(dashboard))


def _run_length(placed: list[tuple[Card, Layout]], last: int) -> int:
    """How many KPI cards in a row end at ``last``."""
    first = last
    while first > 0 and placed[first - 1][0].viz == "kpi":
        first -= 1
    return last - first + 1


def _says_empty(body: str | None) -> bool:
    return body is not None and body.startswith("<p class='empty'>")


def _tile(
    dashboard: Dashboard,
    card: Card,
    layout: Layout,
    index: int,
    body: str,
    controls: str = "",
    *,
    lone: bool = False,
) -> str:
    # placed on the 24-column grid from 800 px wide (report.css); one column below
    style = (
        f"--col: {layout.col + 1} / span {layout.width};"
        f" --row: {layout.row + 1} / span {layout.height}"
    )
    description = (
        f"<p class='card-description'>{html.escape(card.description)}</p>"
        if card.description
        else ""
    )
    kind = "ranked" if is_ranked(card) else card.viz
    classes = f"card card-{kind}"
    if "data-chart='" not in body:
        classes += " drawn"
    if _says_empty(body):
        classes += " is-empty"
    if controls:
        classes += " ranks"
    if lone:
        classes += " lone"
    return (
        f"<section class='{classes}' style='{style}' data-card='{index}'"
        f" id='{dashboard.slug}--{card.name}'><h2>{html.escape(card.title)}</h2>"
        f"{description}{controls}<div class='body'>{body}</div></section>"
    )


def _filter_label(flt: Filter) -> str:
    """A year filter offers periods in the static report (all time, the last 12 months,
    the last 30 days, each year)."""
    return "Period" if flt.kind == "year" else flt.label
