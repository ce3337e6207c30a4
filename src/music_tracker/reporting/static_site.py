"""``music-tracker report``: every dashboard as static HTML that works with no server.

One page per dashboard and filter value (all time, each year with plays, or the most
played values of a text filter such as the artist), with the rows inline and the charts
drawn in the browser by Vega (Vega-Lite specs compiled to Vega as the report is written).
Vega's runtime (vl-convert's bundle) and the world map (Natural Earth, via world-atlas) are
files of the site: nothing is fetched at view time, so the pages work from a file system,
behind a proxy or with the network cut off.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import shutil
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from music_tracker import files, interrupts, warehouse
from music_tracker.reporting import (
    artist_pages,
    charts,
    dashboard_page,
    front_page,
    owner_hints,
    periods,
    pictures,
    ranking,
    story,
)
from music_tracker.reporting.definitions import Card, Dashboard, Filter, bind
from music_tracker.reporting.layout import Context, footer, head
from music_tracker.reporting.links import Links
from music_tracker.reporting.serving import PortTaken, open_server, serve
from music_tracker.settings import PROJECT_ROOT
from music_tracker.warehouse import DEFAULT_MEMORY_LIMIT, FILE_WAIT_S, connect

__all__ = [
    "Context",
    "PortTaken",
    "ReportError",
    "ReportSummary",
    "build_report",
    "open_server",
    "run_card",
    "serve",
]

ASSETS = dashboard_page.ASSETS
ALL = periods.ALL
_UNKNOWN_DAY = dt.date(1900, 1, 1)  # dim_date's day for plays of no known day
WORLD_FILE = dashboard_page.WORLD_FILE


@dataclass(frozen=True)
class Built:
    """What the report is told of the star schema's last build from outside the warehouse:
    the fingerprint a whole build would record now (``transform.build_fingerprint``; None:
    not to be compared) and whether the last build finished (its mark in the data folder)."""

    fingerprint: str | None = None
    finished: bool = True


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
    pictures: int = 0  # charts drawn ahead in this run (pictures.py; the rest were kept)
    seconds: float = 0.0
    note: str = ""  # why the report is a page that says there is nothing to show
    warnings: list[str] = field(default_factory=list)
    timings: list[CardTiming] = field(default_factory=list)
    # what the owner runs to fill the cards shown empty, and the dashboards they are on
    hints: owner_hints.OwnerHints = field(default_factory=owner_hints.OwnerHints)

    def slowest(self, count: int = 5) -> list[CardTiming]:
        return sorted(self.timings, key=lambda t: -t.seconds)[:count]

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "index": str(self.folder / "index.html"),
            "pages": self.pages,
            "dashboards": self.dashboards,
            "queries": self.queries,
            "pictures": self.pictures,
            "seconds": round(self.seconds, 2),
            "slowest_cards": [
                {"dashboard": t.dashboard, "card": t.card, "variant": t.variant,
                 "ms": round(t.seconds * 1000, 1)}
                for t in self.slowest()
            ],
            "to_fill": self.hints.as_list(),
            "warnings": self.warnings,
            **({"note": self.note} if self.note else {}),
        }  # fmt: skip


def run_card(
    con: duckdb.DuckDBPyConnection, card: Card, values: dict[str, Any]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The card's columns and rows for the given filter values (a year filter's value may
    be a period of the static report: periods.Period)."""
    period = next((v for v in values.values() if isinstance(v, periods.Period)), None)
    if period is not None:
        sql, params = periods.bound(card.sql, period)
    else:
        sql, params = bind(card.sql, values)
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    return columns, cursor.fetchall()


def _excluding_entries(con: duckdb.DuckDBPyConnection) -> int:
    """How many entries of exclusions.yaml keep plays out."""
    row = con.execute("select count(*) from dw.agg_excluded_plays where play_count > 0").fetchone()
    return int(row[0]) if row else 0


def _why_no_plays(con: duckdb.DuckDBPyConnection) -> str:
    """Why the star schema has no play to draw: none imported, or every one excluded."""
    entries = _excluding_entries(con)
    if entries:
        return (
            f"exclusions.yaml keeps every play out ({entries} of its entries match): the report"
            " says there is nothing to show; remove entries and run `music-tracker transform`"
            " (`music-tracker status` lists them)"
        )
    (other,) = con.execute("select count(*) from dw.fact_other_played").fetchone() or (0,)
    if other:
        return (
            f"no music to draw: the history holds {other:,} podcast, audiobook or video plays"
            " and no song (the report is of music); import a history with music, then"
            " `music-tracker transform`"
        )
    return "the star schema holds no plays yet: import, then transform"


def _span(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """The first and the newest day with plays."""
    row = con.execute(
        "select min(date_sid), max(date_sid) from dw.agg_daily_listening where date_sid > $unknown",
        {"unknown": _UNKNOWN_DAY},
    ).fetchone()
    return (row[0], row[1]) if row and row[0] is not None else None


def variants(
    con: duckdb.DuckDBPyConnection,
    dashboard: Dashboard,
    years: list[int],
    newest: dt.date | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """(file stem, label, filter values) of each page; the first is the default page.

    Only the dashboard's first filter varies between pages; the others stay unset (all),
    as the static report is rendered ahead of time (Metabase offers them all at once). A
    year filter gives all time, each year and (given ``newest``, the day of the newest
    play) the last 12 months and the last 30 days, each only where the dashboard has
    something to draw (its ``options_sql``); a story (year in review) is of one year."""
    first = dashboard.page_filter
    if first is None:
        return [("index", "", {})]
    if first.kind == "year":
        has: Callable[[periods.Period], bool] = lambda _: True  # noqa: E731
        if first.options_sql:  # the days on which this dashboard has something to draw
            years, has, _ = _year_options(con, first)
        pages = [(str(y), str(y), {first.name: periods.of_year(y)}) for y in years]
        if dashboard.page == "story":
            return [("index", pages[0][1], pages[0][2]), *pages] if pages else []
        recent = [
            (p.stem, p.label, {first.name: p})
            for p in (periods.rolling(newest) if newest else [])
            if has(p)
        ]
        all_time = (ALL, "All time", {first.name: None})
        if first.default == "current" and pages:
            return [("index", pages[0][1], pages[0][2]), all_time, *recent, *pages]
        return [("index", "All time", {first.name: None}), *recent, *pages]
    options = _options(con, first)
    # numbered: two names can share a slug ("Björk" and "Bjork", or two all-kana names)
    return [
        ("index" if i == 0 else f"{i:02d}-{_slug(value)}", value, {first.name: value})
        for i, value in enumerate(options)
    ]


def _year_options(
    con: duckdb.DuckDBPyConnection, flt: Filter
) -> tuple[list[int], Callable[[periods.Period], bool], dt.date | None]:
    """The years of a year filter's ``options_sql``, whether a period holds any of its
    days (the same query asked of each day through its year clause, as cards are asked of
    a period) and the newest of those days (None when the query has no year clause)."""
    assert flt.options_sql is not None
    found = periods.days_with_rows(con, flt.options_sql, flt.name)
    if found is None:  # a query of years alone
        years = [int(year) for year in _options(con, flt)]
        return years, lambda period: period.last_date.year in years, None
    days = [day for day in found if day > _UNKNOWN_DAY]
    years = sorted({day.year for day in days}, reverse=True)
    has = lambda period: any(period.first_date <= d <= period.last_date for d in days)  # noqa: E731
    return years, has, days[-1] if days else None


def span_of(
    con: duckdb.DuckDBPyConnection, dashboard: Dashboard, span: tuple[dt.date, dt.date]
) -> tuple[dt.date, dt.date]:
    """The first and the last day of the dashboard's history: the plays' (``span``), or
    its own data's where that reaches further (podcasts heard before the first song or
    after the last: fact_other_played is not in agg_daily_listening). The rolling periods
    end at the last; a period says where the history starts from the first (helper-68:
    "2022: 1 Jun 2023 - 31 Dec 2022" above 2022's podcasts)."""
    first = dashboard.page_filter
    if first is None or first.kind != "year" or not first.options_sql:
        return span
    found = periods.days_with_rows(con, first.options_sql, first.name)
    days = [day for day in found or [] if day > _UNKNOWN_DAY]
    if not days:
        return span
    return min(span[0], days[0]), max(span[1], days[-1])


def _options(con: duckdb.DuckDBPyConnection, flt: Filter) -> list[str]:
    if flt.kind == "year":
        return [str(year) for (year,) in con.execute(flt.options_query()).fetchall() if year]
    rows = con.execute(flt.options_query()).fetchmany(flt.static_values)
    return [str(row[0]) for row in rows if row[0] is not None]


def _slug(text: str) -> str:
    """A file-name-safe stem: accents dropped (Björk: bjork), other scripts left out."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.casefold()).strip("-")[:60]
    return slug or "value"


def _run(
    con: duckdb.DuckDBPyConnection,
    summary: ReportSummary,
    dashboard: Dashboard,
    card: Card,
    values: dict[str, Any],
    variant: str,
) -> tuple[list[str], list[tuple[Any, ...]]]:
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
        CardTiming(dashboard.slug, card.name, variant, time.perf_counter() - begun, len(rows))
    )
    summary.queries += 1
    return columns, rows


def shown(dashboard: Dashboard, values: dict[str, Any]) -> list[tuple[Card, Card]]:
    """The cards a page with these filter values shows, in order: (the card as defined,
    the card shown in its place). A card is left out of a period its time grain does not
    suit, or gives way to a finer one (definitions: periods, instead)."""
    name = dashboard.period_filter()
    kind: str | None = None
    if name is not None and name in values:
        period = values[name]
        kind = periods.ALL if period is None else period.kind
    found = []
    for card in dashboard.cards:
        card_shown = card.on(kind if name in card.tags() else None)
        if card_shown is not None:
            found.append((card, card_shown))
    return found


def _answer(
    con: duckdb.DuckDBPyConnection,
    summary: ReportSummary,
    dashboard: Dashboard,
    pages: list[tuple[str, str, dict[str, Any]]],
) -> dict[str, dict[str, periods.Result]]:
    """Every card's rows on every page that shows it: stem -> card name -> (columns, rows).

    A card answers the same on every page that gives it the same values (the default page
    repeats one of the others; a card without the year ignores it): run once. A card of
    the year runs once for all time and once for every period together
    (periods.run_grouped), or once per period where that cannot be done."""
    answers: dict[str, dict[str, periods.Result]] = {stem: {} for stem, _, _ in pages}
    showing: dict[str, tuple[Card, list[tuple[str, str, dict[str, Any]]]]] = {}
    for page in pages:
        for _, card in shown(dashboard, page[2]):
            showing.setdefault(card.name, (card, []))[1].append(page)
    for card, its_pages in showing.values():
        done = _answer_card(con, summary, dashboard, card, its_pages)
        for stem, _, values in its_pages:
            answers[stem][card.name] = done[_key(card, values)]
    return answers


def _key(card: Card, values: dict[str, Any]) -> str:
    """What a card's answer on a page depends on: the period, or the values it uses."""
    used = {name: value for name, value in values.items() if name in card.tags()}
    period = next((v for v in used.values() if isinstance(v, periods.Period)), None)
    return period.stem if period is not None else repr(sorted(used.items()))


def _answer_card(
    con: duckdb.DuckDBPyConnection,
    summary: ReportSummary,
    dashboard: Dashboard,
    card: Card,
    pages: list[tuple[str, str, dict[str, Any]]],
) -> dict[str, periods.Result]:
    done: dict[str, periods.Result] = {}
    waiting: dict[str, periods.Period] = {}
    for stem, _, values in pages:
        used = {name: value for name, value in values.items() if name in card.tags()}
        period = next((v for v in used.values() if isinstance(v, periods.Period)), None)
        if period is not None:
            waiting[period.stem] = period
            continue
        key = _key(card, values)
        if key not in done:
            done[key] = _run(con, summary, dashboard, card, values, stem)
    if waiting:
        first = next(iter(waiting.values()))
        columns = next(iter(done.values()))[0] if done else None
        if columns is None:  # the columns of one period tell the others'
            done[first.stem] = _run(con, summary, dashboard, card, {"": first}, first.stem)
            columns = done[first.stem][0]
        rest = [p for p in waiting.values() if p.stem not in done]
        if len(rest) > 1:
            begun = time.perf_counter()
            grouped = periods.run_grouped(con, card, rest, columns)
            if grouped is not None:
                summary.queries += 1
                summary.timings.append(CardTiming(
                    dashboard.slug, card.name, "every period", time.perf_counter() - begun,
                    sum(len(rows) for _, rows in grouped.values()),
                ))  # fmt: skip
                done.update(grouped)
        for period in rest:
            if period.stem not in done:
                done[period.stem] = _run(con, summary, dashboard, card, {"": period}, period.stem)
    return done


def _draws(dashboard: Dashboard, cards: list[Card], results: dict[str, periods.Result]) -> bool:
    """Whether a page has something to draw: a card of the page's period with rows (a KPI
    with a figure other than zero). Cards that ignore the period do not count."""
    varying = dashboard.page_filter.name if dashboard.page_filter else None
    for card in cards:
        if varying is not None and varying not in card.tags():
            continue
        _, rows = results[card.name]
        if card.viz == "kpi":
            if any(value not in (None, 0) for row in rows for value in row):
                return True
        elif rows:
            return True
    return False


@dataclass
class _Page:
    """One page of a dashboard, its cards run: card name -> (columns, rows)."""

    dashboard: Dashboard
    stem: str
    label: str
    results: dict[str, tuple[list[str], list[tuple[Any, ...]]]]
    cards: list[tuple[Card, Card]]  # (as defined, as shown): shown()
    period: str = ""  # what the page says of its period
    pictures: dict[str, str] = field(default_factory=dict)  # chart -> Pictures key


def write_report(
    con: duckdb.DuckDBPyConnection,
    dashboards: list[Dashboard],
    folder: Path,
    context: Context,
    *,
    on_page: Callable[[str], None] | None = None,
    today: dt.date | None = None,
) -> ReportSummary:
    """Render every dashboard into ``folder`` (replaced as a whole when complete).

    Every card runs first; then the artists named in any list, with every artist of
    ``MIN_PLAYS`` plays, get their pages, and the pages are written with their links."""
    started = time.perf_counter()
    summary = ReportSummary(folder=folder)
    partial = _partial(folder)
    _remove(partial)
    # the report before the last one goes while the cards run (deleting 2,500 files took
    # 5-11 s on the build machine): the last one is kept beside the new one until then
    old = folder.with_name(f".{folder.name}.old")
    sweeper = threading.Thread(target=_remove, args=(old,))  # a folder, or a file if
    sweeper.start()  # report/ was one
    (partial / "assets").mkdir(parents=True)
    _write_assets(partial / "assets", folder.with_name(".report-cache"))
    span = _span(con)
    if span is None:
        if not _excluding_entries(con):
            sweeper.join()
            raise ReportError(_why_no_plays(con))
        # every play kept out: the page on the owner's site must not go on showing what
        # they have just excluded, so the report becomes one page that says so
        (partial / "index.html").write_text(_nothing_to_show(context), encoding="utf-8")
        summary.pages = 1
        summary.note = _why_no_plays(con)
        _swap(partial, folder, old, sweeper)
        summary.seconds = time.perf_counter() - started
        return summary
    years = [
        int(year)
        for (year,) in con.execute(
            "select distinct year(date_sid) from dw.agg_daily_listening"
            " where date_sid > $unknown order by 1 desc",
            {"unknown": _UNKNOWN_DAY},
        ).fetchall()
    ]
    links = Links()
    # ranked cards answer both ways at once (their rank filter bound to "both")
    dashboards = [ranking.for_report(dashboard) for dashboard in dashboards]
    specs = charts.SpecCache(folder.with_name(".report-cache"))
    # the first charts of each page drawn meanwhile, in a process of their own
    with pictures.Pictures(folder.with_name(".report-cache"), charts.WORLD_IMAGE) as drawn_ahead:
        artist_board = next((d for d in dashboards if artist_pages.is_artist_dashboard(d)), None)
        as_shown = owner_hints.Said(con)  # an empty card's words for this history's case
        pages: list[_Page] = []
        choices: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for dashboard in dashboards:
            if dashboard is artist_board:
                continue
            if on_page:
                on_page(dashboard.title)
            oldest, newest = span_of(con, dashboard, span)
            offered = variants(con, dashboard, years, newest)
            answers = _answer(con, summary, dashboard, offered)
            cards = {
                stem: [(defined, as_shown(card)) for defined, card in shown(dashboard, values)]
                for stem, _, values in offered
            }
            choices[dashboard.slug] = offered = [
                v
                for i, v in enumerate(offered)
                if i == 0 or _draws(dashboard, [c for _, c in cards[v[0]]], answers[v[0]])
            ]
            for stem, label, values in offered:
                for _, card in cards[stem]:
                    links.collect(card, *answers[stem][card.name])
                period = next((v for v in values.values() if isinstance(v, periods.Period)), None)
                if period is None and values:  # all time
                    period = periods.Period(ALL, "All time", oldest, newest)
                said = period.statement(newest, oldest) if period else ""
                page = _Page(dashboard, stem, label, answers[stem], cards[stem], said)
                if dashboard.page == "dashboard":  # its first charts drawn meanwhile
                    # a past year's page does not change: drawn once, when there is time
                    age = newest.year - period.year if period and period.year else 0
                    shown_cards = [card for _, card in page.cards]
                    found = dashboard_page.charts_of(dashboard, shown_cards, page.results)
                    for chart in dashboard_page.first_charts(found):
                        named = [
                            dict(zip(chart.columns, dashboard_page.values(row), strict=True))
                            for row in chart.rows
                        ]
                        spec = specs(dashboard.slug, chart.card, chart.variant)
                        page.pictures[chart.chart] = drawn_ahead.ask(spec, named, age)
                pages.append(page)
        drawn_ahead.later()
        links.resolve(con)
        artists: list[artist_pages.ArtistPage] = []
        if artist_board is not None:
            artists = artist_pages.choose(con, links.listed)
            links.stems = {page.name: page.stem for page in artists}
        # the artist pages first: meanwhile the pictures of the dashboards' pages are drawn
        if artist_board is not None:
            summary.pages += _write_artist_pages(
                con, artist_board, artists, partial, context, links, specs, summary, on_page
            )
        for page in pages:
            for _, card in page.cards:
                summary.hints.note(page.dashboard, card, page.results[card.name][1])
            target = partial / page.dashboard.slug
            target.mkdir(exist_ok=True)
            if page.dashboard.page == "story":
                text = _story(page, choices[page.dashboard.slug], context, links)
            else:
                drawn = {chart: drawn_ahead.take(key) for chart, key in page.pictures.items()}
                text = dashboard_page.render(
                    page.dashboard, page.cards, choices[page.dashboard.slug], page.stem,
                    page.label, page.results, links, specs, context,
                    period=page.period, drawn=drawn,
                )  # fmt: skip
            (target / f"{page.stem}.html").write_text(text, encoding="utf-8")
            summary.pages += 1
        summary.dashboards = len(dashboards)
        summary.pictures = drawn_ahead.drawn
    today = today or dt.datetime.now(ZoneInfo(context.timezone)).date()
    front = front_page.render(
        front_page.headlines(con, today, span),
        dashboards,
        context,
        lambda name: links.href("artist", name, depth=0),
        len(artists),
    )
    (partial / "index.html").write_text(front, encoding="utf-8")
    summary.pages += 1
    _swap(partial, folder, old, sweeper)
    summary.seconds = time.perf_counter() - started
    return summary


def _partial(folder: Path) -> Path:
    """Where a report is written before it takes ``folder``'s place."""
    return folder.with_name(f".{folder.name}.partial")


def _swap(partial: Path, folder: Path, old: Path, sweeper: threading.Thread) -> None:
    """The finished report in place of the last one, which is kept as ``old``; a Ctrl+C
    waits for both renames (between them there would be no report)."""
    sweeper.join()
    _remove(old)  # what came back meanwhile (nothing, unless another run raced this one)
    with interrupts.held():
        if folder.exists() or folder.is_symlink():
            folder.rename(old)
        partial.rename(folder)


def _nothing_to_show(context: Context) -> str:
    """The report's one page when every play is kept out of the dashboards."""
    return (
        head("My listening", 0, description="Nothing to show.", drawn=True)
        + "<header><h1>My listening</h1></header><main>"
        + "<p class='empty'>Nothing to show: every play of this history is kept out of the"
        " dashboards.</p></main>" + footer(context) + "</body></html>"
    )


def _remove(path: Path) -> None:
    """A folder with what it holds, or a file or link; nothing when there is none."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _story(
    page: _Page,
    pages: list[tuple[str, str, dict[str, Any]]],
    context: Context,
    links: Links,
) -> str:
    data = {
        name: [dict(zip(columns, row, strict=True)) for row in rows]
        for name, (columns, rows) in page.results.items()
    }
    years = [(label, f"{stem}.html") for stem, label, _ in pages if stem != "index"]
    ranks = {card.name: card.rank for card in page.dashboard.cards if card.rank}
    first = ranking.first_ordering(page.dashboard)
    empty = {card.name: card.empty for _, card in page.cards if card.empty}
    return story.render(
        page.dashboard.title, page.label, years, data, context, links.href, ranks, first,
        page.period, empty,
    )  # fmt: skip


def _write_artist_pages(
    con: duckdb.DuckDBPyConnection,
    dashboard: Dashboard,
    artists: list[artist_pages.ArtistPage],
    partial: Path,
    context: Context,
    links: Links,
    specs: charts.SpecCache,
    summary: ReportSummary,
    on_page: Callable[[str], None] | None,
) -> int:
    target = partial / dashboard.slug
    target.mkdir(exist_ok=True)
    names = [artist.name for artist in artists]
    begun = time.perf_counter()
    try:
        rows = artist_pages.card_rows(con, dashboard, names, run_card)
    except duckdb.Error as exc:
        raise ReportError(
            f"dashboards/{dashboard.source_file}: the artist pages' queries failed on the "
            f"star schema ({exc}); rebuild with `music-tracker transform`"
        ) from None
    summary.timings.append(
        CardTiming(dashboard.slug, "(every card, every artist)", "batch",
                   time.perf_counter() - begun, len(names))
    )  # fmt: skip
    summary.queries += len(dashboard.cards)
    for artist in artists:
        if on_page:
            on_page(f"{dashboard.title} {artist.name}")
        results = {card.name: rows[card.name][artist.name] for card in dashboard.cards}
        for card in dashboard.cards:
            summary.hints.note(dashboard, card, results[card.name][1])
        text = dashboard_page.render(
            dashboard, [(card, card) for card in dashboard.cards], [], artist.stem,
            artist.name, results, links, specs, context, artist=True,
        )  # fmt: skip
        (target / f"{artist.stem}.html").write_text(text, encoding="utf-8")
    (target / "index.html").write_text(artist_pages.index_page(artists, context), "utf-8")
    return len(artists) + 1


def _write_assets(target: Path, cache: Path) -> None:
    import importlib.metadata

    import vl_convert

    # Vega's runtime alone (the specs are compiled: charts.compiled). vl-convert assembles
    # the bundle on every call (about 2 s here): keep it in the data folder's cache, one
    # file per vl-convert version and snippet. The snippet names the module as
    # vl-convert's bundler knows it (nothing is downloaded).
    module = f"https://cdn.jsdelivr.net/npm/vega@{vl_convert.get_vega_version()}/+esm"
    names = "View, parse, loader"
    snippet = f'import {{ {names} }} from "{module}"; window.vega = {{ {names} }};'
    digest = hashlib.sha256(snippet.encode()).hexdigest()[:12]
    bundle = cache / f"vega-{importlib.metadata.version('vl-convert-python')}-{digest}.js"
    if not bundle.exists():
        files.write_text(bundle, vl_convert.javascript_bundle(snippet))
    # copyfile, not copy: the cached files are the owner's alone (files.write_text), the
    # report is for any web server's user to read, as the pages written beside it are
    shutil.copyfile(bundle, target / "vega.js")
    # the countries as one picture (charts.world_svg), made once per map file and
    # vl-convert version; without the map file (fetched at setup) the bubbles have none
    world_file = ASSETS / WORLD_FILE
    if world_file.exists():
        topojson = world_file.read_text(encoding="utf-8")
        digest = hashlib.sha256(topojson.encode()).hexdigest()[:12]
        version = importlib.metadata.version("vl-convert-python")
        picture = cache / f"world-{digest}-{version}-{charts.WORLD_VERSION}.svg"
        if not picture.exists():
            files.write_text(picture, charts.world_svg(topojson))
        shutil.copyfile(picture, target / "world.svg")
    for name in ("report.css", "report.js", "artists.js", "favicon.svg"):
        shutil.copyfile(ASSETS / name, target / name)


def build_report(
    warehouse_path: Path,
    folder: Path,
    context: Context,
    *,
    dashboards: list[Dashboard],
    on_page: Callable[[str], None] | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    wait_s: float = FILE_WAIT_S,
    built: Built | None = None,
) -> ReportSummary:
    """Open the star schema read-only and write the report; errors say what to do.

    ``memory_limit``: DuckDB's cap (MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT); without one it
    caches up to 80% of the machine's memory (the report peaked at 1.1 GB at 10 million
    plays). A reader's turn at the warehouse (``warehouse.connect``): waits ``wait_s`` for
    a writer, then WarehouseBusy naming it; WarehouseDamaged for a file DuckDB cannot
    read."""
    if not warehouse_path.exists():
        raise ReportError(
            f"no warehouse at {warehouse_path}: run `music-tracker import` and "
            "`music-tracker transform` first"
        )
    with connect(
        warehouse_path, read_only=True, memory_limit=memory_limit, file_wait_s=wait_s
    ) as con:
        return _write_from(con, folder, context, dashboards, on_page, built or Built())


def _missing_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The star schema's tables (the dbt project's dw models) not in the warehouse; but
    dw.build_settings, which a star schema built before it lacks and the report reads
    only when there (after an upgrade, the report says the build is older, as status)."""
    models = sorted(
        path.stem
        for path in (PROJECT_ROOT / "transform/models/dw").glob("*.sql")
        if path.stem != "build_settings"
    )
    present = {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'dw'"
            " union select view_name from duckdb_views() where schema_name = 'dw'"
        ).fetchall()
    }
    return [f"dw.{name}" for name in models if name not in present]


def _write_from(
    con: duckdb.DuckDBPyConnection,
    folder: Path,
    context: Context,
    dashboards: list[Dashboard],
    on_page: Callable[[str], None] | None,
    built: Built,
) -> ReportSummary:
    try:
        (has_facts,) = con.execute(
            "select count(*) from duckdb_tables()"
            " where schema_name = 'dw' and table_name = 'fact_track_played'"
        ).fetchone()  # type: ignore[misc]
        if not has_facts:
            raise ReportError("the star schema is not built yet: run `music-tracker transform`")
        missing = _missing_tables(con)
        if missing:  # a build of a selection only (helper-69: a traceback from the report)
            raise ReportError(
                f"the star schema is not built whole (no {', '.join(missing[:3])}"
                f"{' ...' if len(missing) > 3 else ''}): run `music-tracker transform`"
            )
        # its dates, hours and streams are those it was built with: say them, not the
        # settings changed since (helper-63: "local to Europe/Berlin" over Denver's hours);
        # unknown after a build that did not finish (dw.build_settings is written early)
        check = warehouse.build_check(
            con,
            finished=built.finished,
            timezone=context.timezone,
            stream_threshold_ms=context.stream_threshold_ms,
            expected=built.fingerprint,
        )
        if check.built_for and check.differs:
            context = dataclasses.replace(
                context,
                timezone=check.built_for.timezone,
                stream_threshold_ms=check.built_for.stream_threshold_ms,
            )
        summary = write_report(con, dashboards, folder, context, on_page=on_page)
        again = "run `music-tracker transform`, then `music-tracker report`"
        if check.stale == "unfinished":
            summary.warnings.append(
                "the last `music-tracker transform` did not finish: the report may show a star"
                f" schema half built; {again}"
            )
        elif check.stale == "settings":
            summary.warnings.append(
                f"{check.differs}: the report shows the star schema as built; {again}, to see"
                " it under the settings now"
            )
        elif check.stale == "changed":
            summary.warnings.append(
                "the star schema was built before a change of the project (an upgrade), a"
                f" setting or exclusions.yaml, which the report may not show yet; {again}"
            )
        return summary
    except BaseException:
        # a failure or Ctrl+C leaves the last report as it was, and no half of a new one
        _remove(_partial(folder))
        raise
