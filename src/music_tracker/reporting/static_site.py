"""``music-tracker report``: every dashboard as static HTML that works with no server.

One page per dashboard and filter value (all time, each year with plays, or the most
played values of a text filter such as the artist), with the rows inline and the charts
drawn in the browser by Vega-Lite. Vega's JavaScript (vl-convert's bundle) and the world
map (Natural Earth, via world-atlas) are files of the site: nothing is fetched at view
time, so the pages work from a file system, behind a proxy or with the network cut off.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import json
import re
import shutil
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from music_tracker import files
from music_tracker.connections import connect_duckdb
from music_tracker.reporting import charts
from music_tracker.reporting.definitions import Card, Dashboard, Filter, bind
from music_tracker.warehouse import DEFAULT_MEMORY_LIMIT

ASSETS = Path(__file__).resolve().parent / "assets"
ALL = "all"


class ReportError(Exception):
    """The report could not be written; the message says why and what to do."""


@dataclass
class CardTiming:
    dashboard: str
    card: str
    variant: str
    seconds: float
    rows: int


@dataclass
class ReportSummary:
    """What ``report`` wrote."""

    folder: Path
    pages: int = 0
    dashboards: int = 0
    queries: int = 0
    seconds: float = 0.0
    timings: list[CardTiming] = field(default_factory=list)

    def slowest(self, count: int = 5) -> list[CardTiming]:
        return sorted(self.timings, key=lambda t: -t.seconds)[:count]

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "index": str(self.folder / "index.html"),
            "pages": self.pages,
            "dashboards": self.dashboards,
            "queries": self.queries,
            "seconds": round(self.seconds, 2),
            "slowest_cards": [
                {"dashboard": t.dashboard, "card": t.card, "variant": t.variant,
                 "ms": round(t.seconds * 1000, 1)}
                for t in self.slowest()
            ],
        }  # fmt: skip


@dataclass(frozen=True)
class Context:
    """What every page says about the numbers: the stream rule and the time zone."""

    timezone: str
    stream_threshold_ms: int
    built_at: str


def run_card(
    con: duckdb.DuckDBPyConnection, card: Card, values: dict[str, Any]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The card's columns and rows for the given filter values."""
    sql, params = bind(card.sql, values)
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    return columns, cursor.fetchall()


def _years(con: duckdb.DuckDBPyConnection) -> list[int]:
    return [
        int(year)
        for (year,) in con.execute(
            "select distinct calendar.year_num from dw.agg_daily_listening as daily"
            " join dw.dim_date as calendar on calendar.date_sid = daily.date_sid"
            " order by 1 desc"
        ).fetchall()
    ]


def variants(
    con: duckdb.DuckDBPyConnection, dashboard: Dashboard, years: list[int]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(file stem, label, filter values) of each page; the first is the default page.

    Only the dashboard's first filter varies between pages; the others stay unset (all),
    as the static report is rendered ahead of time (Metabase offers them all at once).
    """
    if not dashboard.filters:
        return [("index", "", {})]
    first = dashboard.filters[0]
    if first.kind == "year":
        if first.options_sql:  # the years in which this dashboard has something to draw
            years = [int(year) for year in _options(con, first)]
        pages = [(str(year), str(year), {first.name: year}) for year in years]
        all_time = (ALL, "All time", {first.name: None})
        if first.default == "current" and pages:
            return [("index", pages[0][1], pages[0][2]), all_time, *pages]
        return [("index", "All time", {first.name: None}), *pages]
    options = _options(con, first)
    # numbered: two names can share a slug ("Björk" and "Bjork", or two all-kana names)
    return [
        ("index" if i == 0 else f"{i:02d}-{_slug(value)}", value, {first.name: value})
        for i, value in enumerate(options)
    ]


def _options(con: duckdb.DuckDBPyConnection, flt: Filter) -> list[str]:
    assert flt.options_sql is not None
    if flt.kind == "year":
        return [str(year) for (year,) in con.execute(flt.options_sql).fetchall() if year]
    rows = con.execute(flt.options_sql).fetchmany(flt.static_values)
    return [str(row[0]) for row in rows if row[0] is not None]


def _slug(text: str) -> str:
    """A file-name-safe stem: accents dropped (Björk: bjork), other scripts left out."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.casefold()).strip("-")[:60]
    return slug or "value"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def write_report(
    con: duckdb.DuckDBPyConnection,
    dashboards: list[Dashboard],
    folder: Path,
    context: Context,
    *,
    on_page: Callable[[str], None] | None = None,
) -> ReportSummary:
    """Render every dashboard into ``folder`` (replaced as a whole when complete)."""
    started = time.perf_counter()
    summary = ReportSummary(folder=folder)
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "assets").mkdir(parents=True)
    _write_assets(partial / "assets", folder.with_name(".report-cache"))
    years = _years(con)
    if not years:
        raise ReportError("the star schema holds no plays yet: import, then transform")
    entries = []
    for dashboard in dashboards:
        pages = variants(con, dashboard, years)
        target = partial / dashboard.slug
        target.mkdir()
        for stem, label, values in pages:
            if on_page:
                on_page(f"{dashboard.title} {label}".strip())
            cards = []
            for card in dashboard.cards:
                begun = time.perf_counter()
                try:
                    columns, rows = run_card(con, card, values)
                except duckdb.Error as exc:
                    raise ReportError(
                        f"dashboards/{dashboard.source_file}, card {card.name!r}: the SQL failed "
                        f"on the star schema ({exc}); fix the card or rebuild with "
                        "`music-tracker transform`"
                    ) from None
                summary.timings.append(
                    CardTiming(dashboard.slug, card.name, stem, time.perf_counter() - begun,
                               len(rows))
                )  # fmt: skip
                summary.queries += 1
                cards.append(
                    {
                        "name": card.name,
                        "viz": card.viz,
                        "unit": card.unit,
                        "columns": columns,
                        "titles": [card.title_of(column) for column in columns],
                        "empty": card.empty,
                        "rows": [[_jsonable(v) for v in row] for row in rows],
                        "spec": charts.spec(card),
                    }
                )
            page = _page(dashboard, pages, stem, label, cards, context)
            (target / f"{stem}.html").write_text(page, encoding="utf-8")
            summary.pages += 1
        entries.append(dashboard)
        summary.dashboards += 1
    (partial / "index.html").write_text(_index(entries, context), encoding="utf-8")
    summary.pages += 1
    old = folder.with_name(f".{folder.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    partial.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _write_assets(target: Path, cache: Path) -> None:
    import importlib.metadata

    import vl_convert

    # vl-convert assembles its Vega bundle on every call (about 3 s here): keep it in the
    # data folder's cache, one file per vl-convert version
    bundle = cache / f"vega-{importlib.metadata.version('vl-convert-python')}.js"
    if not bundle.exists():
        files.write_text(
            bundle,
            vl_convert.javascript_bundle(
                "window.vegaEmbed = vegaEmbed; window.vega = vega; window.vegaLite = vegaLite;"
            ),
        )
    shutil.copy(bundle, target / "vega.js")
    world_file = ASSETS / "countries-110m.json"  # fetched at setup (Makefile); optional
    world = world_file.read_text(encoding="utf-8") if world_file.exists() else "null"
    (target / "world.js").write_text(f"window.MT_WORLD = {world};\n", encoding="utf-8")
    shutil.copy(ASSETS / "report.css", target / "report.css")
    shutil.copy(ASSETS / "report.js", target / "report.js")


def _footer(context: Context) -> str:
    seconds = context.stream_threshold_ms / 1000
    return (
        f"<footer>A play is every listen of a music track with time played; a stream is a "
        f"play of at least {seconds:g} s (Spotify's rule). Dates and hours are local to "
        f"{html.escape(context.timezone)}. Masked artists show their public names. "
        f"Built {html.escape(context.built_at)} by Music Tracker.</footer>"
    )


def _head(title: str, depth: int) -> str:
    up = "../" * depth
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)} - Music Tracker</title>"
        f"<link rel='stylesheet' href='{up}assets/report.css'></head><body>"
    )


def _index(dashboards: list[Dashboard], context: Context) -> str:
    items = "".join(
        f"<li><a href='{d.slug}/index.html'>{html.escape(d.title)}</a>"
        f"<span class='origin'>{'original report' if d.origin == 'original' else ''}</span>"
        f"<p>{html.escape(d.description)}</p></li>"
        for d in dashboards
    )
    return (
        _head("Dashboards", 0)
        + "<header><h1>Music Tracker</h1><p>Listening history, as dashboards.</p></header>"
        + f"<main><ul class='dashboards'>{items}</ul></main>"
        + _footer(context)
        + "</body></html>"
    )


def _page(
    dashboard: Dashboard,
    pages: list[tuple[str, str, dict[str, Any]]],
    current: str,
    label: str,
    cards: list[dict[str, Any]],
    context: Context,
) -> str:
    selector = ""
    if dashboard.filters:
        first = dashboard.filters[0]
        # the default page (index) repeats one of the others: offer each choice once
        choices: dict[str, str] = {}
        for stem, text, _ in pages:
            choices.setdefault(text, stem)
        options = "".join(
            f"<option value='{stem}.html'{' selected' if text == label else ''}>"
            f"{html.escape(text)}</option>"
            for text, stem in choices.items()
        )
        selector = (
            f"<label class='filter'>{html.escape(first.label)} "
            f"<select onchange='location.href=this.value'>{options}</select></label>"
        )
    tiles = "".join(_tile(dashboard, card, i) for i, card in enumerate(dashboard.cards))
    data = json.dumps(cards, separators=(",", ":"), default=str).replace("</", "<\\/")
    heading = f"{dashboard.title}" + (f": {label}" if label else "")
    needs_world = any(charts.needs_world(card) for card in dashboard.cards)
    return (
        _head(heading, 1)
        + "<header><a class='home' href='../index.html'>&larr; All dashboards</a>"
        + f"<h1>{html.escape(heading)}</h1><p>{html.escape(dashboard.description)}</p>"
        + selector
        + "</header>"
        + f"<main class='grid'>{tiles}</main>"
        + _footer(context)
        + "<script src='../assets/vega.js'></script>"
        + ("<script src='../assets/world.js'></script>" if needs_world else "")
        + f"<script>window.MT_CARDS = {data};</script>"
        + "<script src='../assets/report.js'></script>"
        + "</body></html>"
    )


def _tile(dashboard: Dashboard, card: Card, index: int) -> str:
    layout = card.layout
    style = (
        f"grid-column: {layout.col + 1} / span {layout.width};"
        f" grid-row: {layout.row + 1} / span {layout.height}"
    )
    description = (
        f"<p class='card-description'>{html.escape(card.description)}</p>"
        if card.description
        else ""
    )
    return (
        f"<section class='card card-{card.viz}' style='{style}' data-card='{index}'"
        f" id='{dashboard.slug}--{card.name}'><h2>{html.escape(card.title)}</h2>"
        f"{description}<div class='body'></div></section>"
    )


def build_report(
    warehouse_path: Path,
    folder: Path,
    context: Context,
    *,
    dashboards: list[Dashboard],
    on_page: Callable[[str], None] | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> ReportSummary:
    """Open the star schema read-only and write the report; errors say what to do.

    ``memory_limit``: DuckDB's cap (MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT); without one it
    caches up to 80% of the machine's memory (the report peaked at 1.1 GB at 10 million
    plays)."""
    if not warehouse_path.exists():
        raise ReportError(
            f"no warehouse at {warehouse_path}: run `music-tracker import` and "
            "`music-tracker transform` first"
        )
    try:
        con = connect_duckdb(warehouse_path, read_only=True, config={"memory_limit": memory_limit})
    except duckdb.IOException as exc:
        raise ReportError(
            f"{warehouse_path} is in use by another music-tracker command; try again when "
            f"it has finished ({exc})"
        ) from None
    try:
        con.execute("set TimeZone = 'UTC'")
        (built,) = con.execute(
            "select count(*) from duckdb_tables()"
            " where schema_name = 'dw' and table_name = 'fact_track_played'"
        ).fetchone()  # type: ignore[misc]
        if not built:
            raise ReportError("the star schema is not built yet: run `music-tracker transform`")
        return write_report(con, dashboards, folder, context, on_page=on_page)
    finally:
        con.close()


def serve(folder: Path, port: int) -> None:
    """Serve the report on 127.0.0.1 until interrupted (Ctrl+C)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()
