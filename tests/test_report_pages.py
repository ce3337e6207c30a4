"""The static report as a product: every listed artist linked to a page that exists, the
front page's headline numbers and the year in review's story equal to the star schema
(computed here from the fact table, not from the report's own queries), the artist pages'
batched rows equal to the Artist dashboard's SQL, and every kind of page drawn in Chromium
at a phone's and a desktop's width with a clean console, screenshots kept for a person.

Two reports: the real exports (patchy: 2018, then 2023-2024; no genres looked up) and a
small generated history shaped like the demo's (2008-2026, its artists placed and given
genres by a fake MusicBrainz).
"""

from __future__ import annotations

import datetime as dt
import html
import itertools
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from conftest import ARTIFACTS, BROWSER_FLAGS, CHROMIUM, offline_tab, query
from music_tracker.reporting import artist_pages, periods, ranking
from music_tracker.reporting.definitions import load_dashboards
from music_tracker.reporting.static_site import run_card

UNKNOWN = "Unknown Artist"


# the report fixtures (conftest: built once per test run, shared with test_report_charts)
REPORTS = {"real": "real_report", "demo": "demo_report"}


@pytest.fixture(params=list(REPORTS))
def data_dir(request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue(REPORTS[request.param]))


# -- links ------------------------------------------------------------------------------


# a name in a list or table of a page as written: (kind, href or None, the name)
_NAMED = re.compile(
    r"<(span|td|dd)(?: class='[^']*')? data-link='(artist|track|album)'>"
    r"(?:<a href='([^']+)'>)?(.*?)(?:</a>)?</\1>"
)


def _names(page: Path) -> list[tuple[str, str | None, str]]:
    return [
        (kind, html.unescape(href) if href else None, html.unescape(name))
        for _, kind, href, name in _NAMED.findall(page.read_text(encoding="utf-8"))
    ]


def _heading(page: Path) -> str:
    found = re.search(r"<h1>(.*?)</h1>", page.read_text(encoding="utf-8"))
    assert found, page
    return html.unescape(found.group(1))


def _artists_of(data_dir: Path, column: str) -> dict[str, set[str]]:
    """Track ("artist - track") or album ("artist - album") to the artists who played it,
    from the fact table."""
    dimension, key, name = {
        "track": ("dim_track", "track_sid", "artist_track"),
        "album": ("dim_album", "album_sid", "artist_album"),
    }[column]
    mapping: dict[str, set[str]] = {}
    for value, artist in query(
        data_dir,
        f"select distinct entity.{name}, artist.artist_name from dw.fact_track_played as fact"
        f" join dw.{dimension} as entity on entity.{key} = fact.{key}"
        " join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid",
    ):
        mapping.setdefault(value, set()).add(artist)
    return mapping


def test_every_listed_artist_links_to_its_page(data_dir: Path) -> None:
    """Every artist, track and album in every list of every page leads to the page of its
    artist, which exists and is headed with that name; every artist with 10 plays has one."""
    report = data_dir / "report"
    owners = {column: _artists_of(data_dir, column) for column in ("track", "album")}
    checked = 0
    problems: list[str] = []
    for page in sorted(report.glob("*/*.html")):
        if page.parent.name == artist_pages.FOLDER:
            continue
        for kind, href, value in _names(page):
            if value == UNKNOWN or value.startswith(UNKNOWN):
                continue
            where = f"{page.relative_to(report)} {kind} {value!r}"
            if href is None:
                problems.append(f"{where}: no link")
                continue
            target = (page.parent / href).resolve()
            expected = {value} if kind == "artist" else owners[kind][value]
            if not target.is_file():
                problems.append(f"{where}: {href} does not exist")
            elif _heading(target) not in expected:
                problems.append(f"{where}: {href} is {_heading(target)!r}")
            checked += 1
    # the story pages' names are links too
    for page in sorted((report / "year-in-review").glob("*.html")):
        for href in re.findall(r"<a href='(\.\./artist/[^']+)'>", page.read_text("utf-8")):
            target = (page.parent / href).resolve()
            if not target.is_file():
                problems.append(f"{page.name}: {href} does not exist")
            checked += 1
    assert not problems, problems[:20]
    assert checked > 100
    # every artist with at least 10 plays has a page, in the index
    regulars = {
        name
        for (name,) in query(
            data_dir,
            "select artist.artist_name from dw.fact_track_played as fact"
            " join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
            " where artist.artist_name is not null and artist.artist_name <> $unknown"
            " group by artist.artist_name having count(*) >= 10",
            {"unknown": UNKNOWN},
        )
    }
    index = (report / "artist" / "index.html").read_text(encoding="utf-8")
    listed = {html.unescape(n) for n in re.findall(r"\.html'>([^<]+)</a><span", index)}
    assert regulars and regulars <= listed


# -- numbers ----------------------------------------------------------------------------

_GROUPED = r"\d{1,3}(?:,\d{3})*"
# how each measure is written, by the words it is shown under (definitions.decimals)
_WRITTEN = [
    (re.compile(r"^(Hours|Minutes)"), re.compile(rf"^({_GROUPED}\.\d|< 0\.1)$")),
    (re.compile(r"^Share of all plays"), re.compile(r"^\d+\.\d\d$")),  # the artist's own
    (re.compile(r"^(?!Share of all plays).*\(%\)$"), re.compile(rf"^{_GROUPED}\.\d$")),
    (re.compile(r"^(Plays|Streams|Tracks played)$"), re.compile(rf"^{_GROUPED}$")),
]
_TAGS = re.compile(r"<[^>]+>")


def _shown(page: str) -> list[tuple[str, str]]:
    """(the words a figure is shown under, the figure) for every table cell, labelled
    figure, ranked list value and KPI of a page as written."""
    found: list[tuple[str, str]] = []
    text = lambda part: html.unescape(_TAGS.sub("", part)).strip()  # noqa: E731
    for table in re.findall(r"<table[^>]*>(.*?)</table>", page, re.S):
        heads = [text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>")[-1]):
            cells = [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            found += zip(heads, cells, strict=True)
    found += [
        (text(term), text(value))
        for term, value in re.findall(r"<dt[^>]*>(.*?)</dt><dd[^>]*>(.*?)</dd>", page)
    ]
    for measure, items in re.findall(
        r"<p class='measure'>(.*?)</p><ol class='ranked'>(.*?)</ol>", page, re.S
    ):
        for value in re.findall(r"<span class='value'>(.*?)</span>", items):
            found.append((text(measure), re.sub(r" (h|min)$", "", text(value))))
    for title, value in re.findall(
        r"<h2>([^<]*)</h2>(?:<p class='card-description'>.*?</p>)?"
        r"<div class='body'><div class='kpi'>([^<]*)",
        page,
    ):
        found.append((text(title), value))
    return found


def test_each_measure_is_written_one_way(data_dir: Path) -> None:
    """Hours and minutes with one decimal ("1.0" beside "35.2", not "1"; a ranked row's
    time that rounds to nothing "< 0.1"), percentages with one, counts whole, thousands
    grouped: in every table, list and figure of every page."""
    problems, checked = [], 0
    for path in sorted((data_dir / "report").glob("*/*.html")):
        for words, value in _shown(path.read_text(encoding="utf-8")):
            for label, written in _WRITTEN:
                if label.search(words) and value != "\u2014":
                    checked += 1
                    if not written.match(value):
                        problems.append(f"{path.relative_to(data_dir)}: {words} {value!r}")
    assert not problems, problems[:20]
    assert checked > 1000


def _table_rows(page: str) -> list[dict[str, str]]:
    """Every table row of a page (and every labelled-figures block, as one row): its
    column titles to the text of its cells."""
    text = lambda part: html.unescape(_TAGS.sub("", part)).strip()  # noqa: E731
    rows = []
    for table in re.findall(r"<table[^>]*>(.*?)</table>", page, re.S):
        heads = [text(h) for h in re.findall(r"<th[^>]*>(.*?)</th>", table)]
        for row in re.findall(r"<tr>(.*?)</tr>", table.split("</thead>")[-1]):
            cells = [text(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            rows.append(dict(zip(heads, cells, strict=True)))
    for facts in re.findall(r"<dl class='facts'>(.*?)</dl>", page, re.S):
        pairs = re.findall(r"<dt[^>]*>(.*?)</dt><dd[^>]*>(.*?)</dd>", facts)
        rows.append({text(term): text(value) for term, value in pairs})
    return rows


def test_something_heard_never_shows_no_time(data_dir: Path) -> None:
    """A row that counts plays or episodes was heard, so its hours are never "0.0" (every
    play has time played): "< 0.1", as the ranked lists write it. On the real exports an
    artist with 6 plays and a show with 5 episodes started had "0.0" hours."""
    problems, checked = [], 0
    for path in sorted((data_dir / "report").glob("**/*.html")):
        for row in _table_rows(path.read_text(encoding="utf-8")):
            counts = [v for k, v in row.items() if k in ("Plays", "Started")]
            if not any(c.replace(",", "").isdigit() and int(c.replace(",", "")) for c in counts):
                continue
            for column, value in row.items():
                if column.startswith(("Hours", "Minutes")):
                    checked += 1
                    if value == "0.0":
                        problems.append(f"{path.relative_to(data_dir)}: {row}")
    assert not problems, problems[:10]
    assert checked > 100


def test_artist_pages_rows_equal_the_dashboard_sql(demo_report: Path) -> None:
    """The batched queries of the artist pages answer as the Artist dashboard's own SQL."""
    dashboard = next(d for d in load_dashboards() if artist_pages.is_artist_dashboard(d))
    dashboard = ranking.for_report(dashboard)  # ranked both ways, as the report runs it
    with duckdb.connect(str(demo_report / "warehouse.duckdb"), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        pages = artist_pages.choose(con, set())
        names = [pages[0].name, pages[len(pages) // 2].name, pages[-1].name]
        batched = artist_pages.card_rows(con, dashboard, names, run_card)
        assert set(batched) == {card.name for card in dashboard.cards}
        for card in dashboard.cards:
            assert card.name in artist_pages.BATCH_SQL, f"{card.name}: not batched"
            for name in names:
                columns, rows = run_card(con, card, {"artist": name})
                assert batched[card.name][name] == (columns, rows), (card.name, name)


# -- the front page ---------------------------------------------------------------------


def _figures(page: Path) -> dict[str, str]:
    """data-figure -> its text, from the page as written."""
    text = page.read_text(encoding="utf-8")
    figures = {}
    for key, body in re.findall(r"data-figure='([^']+)'>(.*?)</(?:div|p)>", text, re.DOTALL):
        figures[key] = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())
    return figures


def _plays(data_dir: Path) -> list[tuple[dt.date, str | None, str, int, bool]]:
    """(local date, artist, "artist - track", ms played, is stream) of every play."""
    return [
        (row[0], row[1], row[2], int(row[3]), bool(row[4]))
        for row in query(
            data_dir,
            "select fact.date_sid, artist.artist_name, track.artist_track,"
            " coalesce(fact.ms_played, 0), fact.is_stream from dw.fact_track_played as fact"
            " join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
            " join dw.dim_track as track on track.track_sid = fact.track_sid",
        )
    ]


def _top(counter: Counter[str]) -> str:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[0][0]


def test_front_page_headlines_match_the_warehouse(data_dir: Path) -> None:
    plays = _plays(data_dir)
    newest = max(day for day, *_ in plays)
    first_heard: dict[str, dt.date] = {}
    for day, artist, *_ in sorted(plays, key=lambda p: p[0]):
        if artist is not None:
            first_heard.setdefault(artist, day)
    figures = _figures(data_dir / "report" / "index.html")
    for key, start in (
        ("last-30-days", newest - dt.timedelta(days=29)),
        ("year", dt.date(newest.year, 1, 1)),
    ):
        window = [p for p in plays if start <= p[0] <= newest]
        hours = round(sum(p[3] for p in window) / 3_600_000, 1)
        assert f"{hours:,.1f}" in figures[f"{key}-hours"]
        named = [p for p in window if p[1] is not None and p[1] != UNKNOWN]
        assert _top(Counter(p[1] for p in named)) in figures[f"{key}-top-artist"]  # type: ignore[misc]
        assert _top(Counter(p[2] for p in named)) in figures[f"{key}-top-track"]
        new = sum(1 for day in first_heard.values() if start <= day <= newest)
        assert figures[f"{key}-new-artists"].split()[2] == f"{new:,}", figures
    # the streak: days in a row with a stream, ending on the newest such day
    days = sorted({p[0] for p in plays if p[4]}, reverse=True)
    streak = 1
    while streak < len(days) and days[streak - 1] - days[streak] == dt.timedelta(days=1):
        streak += 1
    assert (f"{streak} days" if streak > 1 else "1 day") in figures["streak"]
    # the last play of the real exports is years old: the page says "to <that date>"
    text = (data_dir / "report" / "index.html").read_text(encoding="utf-8")
    assert f"The last 30 days of listening, to {newest.day} {newest.strftime('%B %Y')}" in text


# -- year in review ---------------------------------------------------------------------


def _ranking(
    plays: list[tuple[dt.date, str | None, str, int, bool]], by_time: bool = False
) -> list[str]:
    """Artists most played first (ties: more time, then the name), or most time first."""
    count: Counter[str] = Counter()
    ms: Counter[str] = Counter()
    for play in plays:
        if play[1] is not None and play[1] != UNKNOWN:
            count[play[1]] += 1
            ms[play[1]] += play[3]
    keys = {a: (-ms[a], -count[a], a) if by_time else (-count[a], -ms[a], a) for a in count}
    return sorted(count, key=keys.__getitem__)


def test_year_in_review_tells_the_year_from_the_star_schema(data_dir: Path) -> None:
    plays = _plays(data_dir)
    year = max(day for day, *_ in plays).year
    page = data_dir / "report" / "year-in-review" / f"{year}.html"
    text = page.read_text(encoding="utf-8")
    figures = _figures(page)
    this = [p for p in plays if p[0].year == year]
    before = [p for p in plays if p[0].year == year - 1]
    assert f"{round(sum(p[3] for p in this) / 3_600_000, 1):,.1f}" in figures["hours"]
    assert f"{len({p[0] for p in this}):,}" in figures["days_with_music"]
    assert f"{len(this):,}" in figures["plays"]
    # the newest year ends at the newest play, and says so (a part of a year)
    newest = max(p[0] for p in this)
    span = periods.date_span(dt.date(year, 1, 1), newest)
    assert f"<p class='period'>{year}: {span}, up to the newest play</p>" in text
    # each month's hours written over its bar, for a phone that has no pointer
    values = re.search(r"<div class='month-values'>(.*?)</div>", text).group(1)
    shown = re.findall(r"<span>([^<]*)</span>", values)
    # the card's hours (one decimal), then whole from 10 up, half up
    hours = [
        float(f"{sum(p[3] for p in this if p[0].month == m) / 3_600_000:.1f}") for m in range(1, 13)
    ]
    assert shown == [
        "" if h == 0 else str(int(h + 0.5)) if h >= 10 else f"{h:.1f}" for h in hours
    ], (shown, hours)
    # top artists in order, by plays and by time listened, each with its change against
    # its rank the year before by the same measure
    section = text.split("data-card='top_artists'>")[1].split("</section>")[0]
    for key, by_time in (("plays", False), ("time", True)):
        order = _ranking(this, by_time)[:5]
        previous = _ranking(before, by_time)
        part = section.split(f"class='ranking by-{key}'>")[1].split("</ol>")[0]
        items = re.findall(r"<li data-rank='(\d+)'>(.*?)</li>", part)
        for (rank, body), name in zip(items, order, strict=True):
            shown = html.unescape(re.sub(r"<[^>]+>", "", body))
            assert shown.startswith(name), (key, rank, shown, name)
            assert ("hours" in shown) == by_time and ("plays" in shown) != by_time, shown
            if name not in previous:
                assert "new" in shown
            else:
                was = previous.index(name) + 1
                word = "up" if was > int(rank) else "down" if was < int(rank) else "same"
                assert word in shown and (word == "same" or f"#{was}" in shown), (shown, was)
    # the biggest day, and the first song of the year
    per_day = Counter(p[0] for p in this)
    biggest = sorted(per_day.items(), key=lambda item: (-item[1], item[0]))[0]
    assert f"{biggest[0].day} {biggest[0].strftime('%B %Y')}" in figures["most-played-day"]
    assert f"{biggest[1]:,} plays" in figures["most-played-day"]
    (first,) = query(
        data_dir,
        "select track.track_name, fact.played_at_local from dw.fact_track_played as fact"
        " join dw.dim_track as track on track.track_sid = fact.track_sid"
        " where year(fact.played_at_local) = $year order by fact.played_at_local limit 1",
        {"year": year},
    )
    assert first[0] in figures["first-song"]
    assert f", ending at {first[1]:%H:%M}." in figures["first-song"]  # a play's time: its end
    # discoveries: artists first heard this year
    first_heard: dict[str, int] = {}
    for day, artist, *_ in sorted(plays, key=lambda p: p[0]):
        if artist is not None:
            first_heard.setdefault(artist, day.year)
    new = sum(1 for y in first_heard.values() if y == year)
    assert f"{new:,} new artists" in figures["discoveries"]


# -- in a browser -----------------------------------------------------------------------


def _pages(report: Path) -> list[Path]:
    """One page of each kind: the front page, every dashboard's default page, the artist
    index and the most played artist's page, a year of the story."""
    pages = [report / "index.html"]
    pages += sorted(p / "index.html" for p in report.iterdir() if p.is_dir() and p.name != "assets")
    first_artist = re.search(  # the list's first, not the navigation's
        r"<li data-key='[^']*'><a href='([^']+)'>",
        (report / "artist" / "index.html").read_text(encoding="utf-8"),
    )
    assert first_artist
    pages.append(report / "artist" / first_artist.group(1))
    return pages


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)
@pytest.mark.parametrize("which", ["real", "demo"])
def test_every_kind_of_page_in_chromium_at_390_and_1440(
    which: str, request: pytest.FixtureRequest
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is required in CI (.ci/run installs it)"
    data_dir: Path = request.getfixturevalue(REPORTS[which])
    report = data_dir / "report"
    shots = ARTIFACTS / "report-pages" / which
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        for width in (390, 1440):
            page, errors = offline_tab(browser, width)
            for path in _pages(report):
                errors.clear()
                name = str(path.relative_to(report)).replace("/", "__").removesuffix(".html")
                page.goto(path.as_uri())
                page.evaluate("window.MT_DRAW_ALL && window.MT_DRAW_ALL()")
                page.wait_for_selector("body[data-rendered]", state="attached", timeout=30_000)
                page.screenshot(path=str(shots / f"{name}-{width}.png"), full_page=True)
                where = f"{name} at {width}"
                problems += [f"{where}: {e}" for e in errors]
                problems += [f"{where}: {e}" for e in page.evaluate("window.MT_ERRORS || []")]
                # nothing makes the page itself wider than the screen (tables scroll inside)
                wide = page.evaluate("document.scrollingElement.scrollWidth")
                if wide > width + 1:
                    problems.append(f"{where}: the page is {wide} px wide")
                # every name in a drawn ranked list or table is a link where the data has one
                missing = page.evaluate(
                    """() => [...document.querySelectorAll('ol.ranked li .name, td.name')]
                        .filter(e => !e.querySelector('a')).length"""
                )
                if missing:
                    problems.append(f"{where}: {missing} linked names drawn without a link")
            # the search box narrows the artist index, accents aside
            page.goto((report / "artist" / "index.html").as_uri())
            total = page.locator("ol.artist-list li").count()
            name = page.locator("ol.artist-list li a").first.inner_text()
            page.fill("#artist-search", name.upper())
            shown = page.locator("ol.artist-list li:not([hidden]) a").all_inner_texts()
            assert name in shown and len(shown) < total, (name, shown[:5], total)
            page.fill("#artist-search", "zzzz-no-such-artist")
            assert page.locator("ol.artist-list li:not([hidden])").count() == 0
            assert page.locator("#artist-none").is_visible()
            page.close()
        browser.close()
    assert not problems, problems
    assert len(list(shots.glob("*.png"))) == 2 * len(_pages(report))


# -- ranked by plays or by time: the switch ---------------------------------------------

# (report, page, the ranked card's section) of every kind of ranked card: a table, a list
# of names (opening on time), a chart, a treemap and the story's lists
_SWITCHED = [
    ("real", "top-lists/index.html", "#top-lists--top_tracks"),
    ("real", "artists-last-24-hours/index.html", "#artists-last-24-hours--artists_by_minutes"),
    ("real", "behaviour/index.html", "#behaviour--platforms"),
    ("real", "year-in-review/index.html", "section[data-card='top_artists']"),
    ("demo", "tracks-history-artist-genre/all.html", "#tracks-history-artist-genre--genre_treemap"),
]
_MEASURE_WORDS = {"plays": re.compile(r"plays|tracks played", re.I),
                  "time": re.compile(r"hours|minutes", re.I)}  # fmt: skip


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)
def test_a_ranked_card_switches_between_plays_and_time(request: pytest.FixtureRequest) -> None:
    """At 390 and 1440 px, offline: each kind of ranked card opens on its dashboard's
    default ordering, the other hidden; a click (or the arrow keys) shows the other, its
    chart drawn then, its values the measure it ranks by; the page stays within the
    screen and the console clean. With JavaScript off the switch works as well."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is required in CI (.ci/run installs it)"
    reports = {which: Path(request.getfixturevalue(REPORTS[which])) / "report" for which in REPORTS}
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        for width in (390, 1440):
            page, errors = offline_tab(browser, width)
            for which, path, selector in _SWITCHED:
                where = f"{which} {path} {selector} at {width}"
                errors.clear()
                page.goto((reports[which] / path).as_uri())
                page.evaluate("window.MT_DRAW_ALL && window.MT_DRAW_ALL()")
                page.wait_for_selector("body[data-rendered]", state="attached", timeout=30_000)
                card = page.locator(selector)
                first = card.locator("input:checked").get_attribute("value")
                other = "plays" if first == "time" else "time"
                texts = {}
                for shown, hidden in ((first, other), (other, first)):
                    if shown == other:
                        card.locator(f"label[for$='-{other}']").click()
                    part = card.locator(f".by-{shown}")
                    if not (part.is_visible() and card.locator(f".by-{hidden}").is_hidden()):
                        problems.append(f"{where}: {shown} chosen, not shown alone")
                    if part.locator(".chart").count():  # drawn once shown
                        part.locator(".chart[data-drawn]").wait_for(timeout=30_000)
                        if not part.locator(".chart svg path, .chart svg rect").count():
                            problems.append(f"{where}: {shown}'s chart drew nothing")
                    texts[shown] = part.text_content() or ""
                    if not _MEASURE_WORDS[shown].search(texts[shown]):
                        problems.append(f"{where}: {shown} does not say its measure")
                    wide = page.evaluate("document.scrollingElement.scrollWidth")
                    if wide > width + 1:
                        problems.append(f"{where}: {shown}: the page is {wide} px wide")
                html_values = not card.locator(".chart").count()  # charts: on the axis
                if html_values and re.search(r"\d\.\d", texts["time"]) is None:
                    problems.append(f"{where}: time listened without its decimal")
                # the keyboard: the chosen button takes the arrow keys, as radio buttons do
                card.locator("input:checked").focus()
                page.keyboard.press("ArrowLeft")
                if card.locator("input:checked").get_attribute("value") != first:
                    problems.append(f"{where}: the arrow key did not go back")
                problems += [f"{where}: {e}" for e in errors]
                problems += [f"{where}: {e}" for e in page.evaluate("window.MT_ERRORS || []")]
            page.close()
        # no JavaScript: radio buttons and CSS alone
        context = browser.new_context(
            java_script_enabled=False, viewport={"width": 390, "height": 900}
        )
        page = context.new_page()
        page.goto((reports["real"] / "top-lists" / "index.html").as_uri())
        card = page.locator("#top-lists--top_artists")
        card.locator("label[for$='-time']").click()
        assert card.locator(".by-time").is_visible() and card.locator(".by-plays").is_hidden()
        assert card.locator(".by-time th[aria-sort]").inner_text().startswith("Hours")
        context.close()
        browser.close()
    assert not problems, problems


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)
def test_a_phone_sees_the_figures_of_a_table_of_names(real_report: Path) -> None:
    """At 390 px a table keeps its names and figures on screen (its dates may go): names
    that are not links (Podcasts' shows, Coverage's entries) wrap like linked ones, so
    the figures beside them are not scrolled out of sight."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is required in CI (.ci/run installs it)"
    page_path = real_report / "report" / "podcasts" / "index.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 900})
        page.route("**/*", lambda route: route.continue_()
                   if route.request.url.startswith("file:") else route.abort())  # fmt: skip
        page.goto(page_path.as_uri())
        widths = page.evaluate(
            """() => [...document.querySelectorAll('#podcasts--episodes .table-scroll')]
                .map(box => [box.scrollWidth, box.clientWidth])"""
        )
        browser.close()
    assert widths, "the episodes table is on the page"
    for scroll_width, client_width in widths:
        assert scroll_width <= client_width + 1, (scroll_width, client_width)


def test_one_of_a_thing_is_said_in_the_singular() -> None:
    """A history of one day (or a top artist of one play) reads "1 day with music, 1 play",
    not "1 days with music, 1 plays", on the front page and in the year's story."""
    from music_tracker.reporting import front_page, story
    from music_tracker.reporting.layout import Context

    day = dt.date(2021, 6, 15)
    period = front_page.Period(
        "last-30-days", "The last 30 days of listening", day, day, 0.1, 1, 1,
        "An Artist", 1, "An Artist - A Song", "An Artist", 1, 1,
    )  # fmt: skip
    headlines = front_page.Headlines(day, [period], front_page.Streak(1, day, day, False))
    page = front_page.render(
        headlines, [], Context("UTC", 30_000, "2026-12-03 16:00 UTC"), lambda _: None, 1
    )
    text = re.sub(r"<[^>]+>", " ", page)
    assert "1 day with music, 1 play" in re.sub(r"\s+", " ", text), text
    assert not re.search(r"\b1 (days|plays)\b", text), text
    assert story._figure({"plays": 1}, "plays") == "1 play"
    # the artist index (an artist named in a list with one play has a page too)
    pages = [artist_pages.ArtistPage("A", "a", 1), artist_pages.ArtistPage("B", "b", 1200)]
    index = re.sub(r"<[^>]+>", " ", artist_pages.index_page(pages, Context("UTC", 30_000, "x")))
    assert "1 play " in index and "1,200 plays" in index, index


def test_a_year_still_going_is_compared_with_the_same_days(real_report: Path) -> None:
    """The newest year (to 3 October 2024) against 1 January to 3 October of the year
    before, not against all of it; the year the history starts in (2018, from 12
    September) against nothing, its figures nor its lists: the history began after the
    year before began (helper-64: the account export's 2024, nine months, against its
    2023 of three read "+349%", with "new" and "up from #603" in every list)."""
    rows = query(
        real_report,
        "select date_sid, tracks_played, ms_played from dw.agg_daily_listening"
        " where date_sid > date '1900-01-01'",
    )
    first, newest = min(r[0] for r in rows), max(r[0] for r in rows)
    year = newest.year
    until = newest.replace(year=year - 1)
    before = [r for r in rows if dt.date(year - 1, 1, 1) <= r[0] <= until]
    figures = _figures(real_report / "report" / "year-in-review" / f"{year}.html")
    same_days = periods.date_span(dt.date(year - 1, 1, 1), until)
    assert f"on {same_days} ({sum(r[1] for r in before):,})" in figures["plays"], figures
    assert f"({len(before):,})" in figures["days_with_music"], figures
    assert "not-compared" not in figures
    page = real_report / "report" / "year-in-review" / f"{first.year}.html"
    text = page.read_text(encoding="utf-8")
    figures = _figures(page)
    assert "%" not in figures["plays"] and "year before" not in figures["plays"], figures
    from music_tracker.reporting.front_page import long_date

    assert figures["not-compared"] == (
        f"The history starts on {long_date(first)}: there is no whole year before to compare with."
    )
    assert "class='change" not in text.split("data-card='top_artists'>")[1].split("</section>")[0]
    header = f"{first.year}: {periods.date_span(first, dt.date(first.year, 12, 31))}"
    assert f"<p class='period'>{header}, from the first play</p>" in text


def test_a_year_after_a_silent_year_calls_nothing_new() -> None:
    """The year after a year without plays (the real exports' 2023, after 2019-2022; the
    history's first year) has nothing to be measured against: its lists mark no artist
    "new" (Billie Eilish, heard in 2018, is not new in 2023), as its figures say "nothing
    the year before". Beside a year with plays, an artist absent from it is new."""
    from music_tracker.reporting import story
    from music_tracker.reporting.definitions import Rank
    from music_tracker.reporting.layout import Context

    context = Context("UTC", 30_000, "2026-12-03 16:00 UTC")
    artist = {
        "plays_rank": 1, "time_rank": 1, "artist": "Billie Eilish", "plays": 198, "hours": 5.1,
        "plays_rank_year_before": None, "time_rank_year_before": None,
    }  # fmt: skip
    ranks = {"top_artists": Rank(plays="plays", time="hours", top=5)}
    for before, new in ((None, False), (0, False), (1_200, True)):
        summary = {"year": "2023", "hours": 236.3, "days_with_music": 93, "plays": 6_634,
                   "plays_year_before": before, "hours_year_before": before and 40.0,
                   "days_with_music_year_before": before and 20}  # fmt: skip
        data = {"summary": [summary], "top_artists": [artist]}
        page = story.render("Year in review", "2023", [], data, context, lambda *_: None, ranks)
        assert ("class='change new'" in page) is new, (before, page)


def test_a_streak_of_long_ago_is_not_called_current() -> None:
    """The real exports end in October 2024: their last streak, of 4 days, was not
    "current" in a report built in 2026. The front page says "Latest streak" unless it
    runs to today or yesterday; the Overview's card, written ahead of any visit and the
    same in Metabase, calls it the latest streak always."""
    (overview,) = [d for d in load_dashboards() if d.slug == "overview"]
    (card,) = [c for c in overview.cards if c.name == "streaks"]
    columns = re.findall(r"\) as (\w+)", card.sql)
    titles = [card.title_of(column) for column in columns]
    assert "Latest streak (days)" in titles, titles
    assert not any("current" in text.lower() for text in [*titles, card.description])


def test_a_history_without_podcasts_says_so() -> None:
    """A history of songs alone (no podcast, audiobook or video): Podcasts' charts and
    Coverage's card of other content say there is none, not "Nothing to show for this
    period" (every chart of a page of periods, and a card of all time, says why)."""
    boards = {d.slug: d for d in load_dashboards()}
    cards = [c for c in boards["podcasts"].cards if c.viz != "kpi"]
    cards += [c for c in boards["coverage"].cards if c.name == "other_content"]
    silent = [card.name for card in cards if not card.empty]
    assert not silent, silent


def _visible(page: Path) -> str:
    """What a visitor reads on a page: its text without scripts, styles and tags."""
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", page.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def test_no_page_tells_a_visitor_to_run_a_command(real_report: Path) -> None:
    """The pages are public: a report of the real exports, never looked up in MusicBrainz
    nor polled, says on its empty cards what is missing, and nothing only the owner can do
    (commands, the data folder's files: `report`'s summary has those)."""
    pages = sorted((real_report / "report").rglob("*.html"))
    assert len(pages) > 100
    owner = re.compile(r"music-tracker|exclusions\.yaml|`")
    told = {str(page): owner.findall(_visible(page)) for page in pages}
    assert not {page: words for page, words in told.items() if words}
    places = _visible(real_report / "report" / "places" / "index.html")
    assert "have not been looked up" in places  # what is missing, said once
    assert places.count("have not been looked up") == 1
    genres = _visible(real_report / "report" / "year-in-review" / "index.html")
    assert "have not been looked up" in genres


def test_coverage_of_a_history_never_polled_says_it_is_the_exports(real_report: Path) -> None:
    """Spotify's API was never polled for the real exports: Coverage does not say that
    "every poll reached back" (there was none), but that the history is the exports'."""
    coverage = _visible(real_report / "report" / "coverage" / "index.html")
    assert "every poll" not in coverage
    assert "this history comes from exports only" in coverage
    polled = query(
        real_report,
        "select count(*) from dw.fact_track_played where seen_by_sources like '%spotify_api%'",
    )
    assert polled == [(0,)]


def test_a_ranked_list_of_long_names_keeps_them_whole(real_report: Path) -> None:
    """Top shows ranks podcasts by name: a ranked list whose names wrap, not a bar chart
    whose axis cut "The Psychology of your 20s" to "The Psychology of your ..."."""
    (longest,) = query(
        real_report,
        "select show_name from dw.fact_other_played where content_type = 'podcast'"
        " group by 1 order by sum(ms_played) desc limit 1",
    )[0]
    assert len(longest) > 24
    page = (real_report / "report" / "podcasts" / "index.html").read_text(encoding="utf-8")
    section = page.split("id='podcasts--hours_per_show'")[1].split("</section>")[0]
    assert "<ol class='ranked" in section
    assert html.escape(longest, quote=False) in section


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)
def test_a_name_without_spaces_stays_within_a_phone(tmp_path: Path) -> None:
    """An artist named with one long word (60 letters, or a name glued together) breaks
    where it must: the artist index stays 390 px wide (it was 1,101 px; the artist's own
    page 2,283 px, its heading one line)."""
    from playwright.sync_api import sync_playwright

    from music_tracker.reporting.layout import Context
    from music_tracker.reporting.static_site import ASSETS

    (tmp_path / "assets").mkdir()
    shutil.copy(ASSETS / "report.css", tmp_path / "assets" / "report.css")
    folder = tmp_path / "artist"
    folder.mkdir()
    long_name = "Supercalifragilistic" * 4
    pages = [artist_pages.ArtistPage(long_name, "long", 12), artist_pages.ArtistPage("Aa", "a", 10)]
    context = Context("UTC", 30_000, "2026-12-03 16:00 UTC")
    (folder / "index.html").write_text(artist_pages.index_page(pages, context), "utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 900})
        page.goto((folder / "index.html").as_uri())
        wide = page.evaluate("document.scrollingElement.scrollWidth")
        browser.close()
    assert wide <= 391, wide


def test_the_front_page_counts_artist_pages_not_artists(real_report: Path) -> None:
    """ "All 135 artists" beside an Overview of 1,346 artists (helper-64): the link says how
    many artists have a page, which is not all of them."""
    text = (real_report / "report" / "index.html").read_text(encoding="utf-8")
    pages = len(list((real_report / "report" / "artist").glob("*.html"))) - 1  # the index
    (artists,) = query(real_report, "select count(*) from dw.dim_artist")[0]
    assert pages < artists
    link = re.search(r"<p class='artists-link'>(.*?)</p>", text, re.S)
    assert link, text
    shown = html.unescape(re.sub(r"<[^>]+>", "", link.group(1)))
    assert shown.startswith(f"{pages:,} artist pages: the most played artists"), shown
    assert "All " not in shown
    # the history's long silence is told, not left to read as years without music
    days = [day for (day,) in query(real_report, "select date_sid from dw.agg_daily_listening")]
    days = sorted(day for day in days if day.year > 1900)
    (after, before) = next((a, b) for a, b in itertools.pairwise(days) if (b - a).days > 90)
    first, last = after + dt.timedelta(days=1), before - dt.timedelta(days=1)
    said = f"{first.day} {first:%B %Y} to {last.day} {last:%B %Y}"
    assert (
        "<p class='gaps' data-figure='gaps'>The history has a gap of 90 days or more without"
        f" a song: {said}.</p>" in text
    ), re.findall(r"<p class='gaps'.*?</p>", text)


def test_plays_without_an_album_name_are_not_albums(real_report: Path) -> None:
    """The account data names no album: its plays share their artist's "(no album)" row.
    Overview counted those rows as albums (2,478 "albums" of the account export alone, as
    many as its artists), and Year in review said "Nothing played this year" beside its
    12,942 plays of 2024 (helper-64)."""
    from music_tracker.reporting import story
    from music_tracker.reporting.layout import Context

    report = real_report / "report"
    for year, page in ((None, "index"), (2024, "2024")):
        (named, every) = query(
            real_report,
            "select count(distinct fact.album_sid) filter (where album.album_name != "
            "'(no album)'), count(distinct fact.album_sid) from dw.fact_track_played as fact"
            " join dw.dim_album as album on album.album_sid = fact.album_sid"
            " where $year is null or year(fact.date_sid) = $year",
            {"year": year},
        )[0]
        assert 0 < named < every, page  # 2024: 75 named among the account data's plays
        text = (report / "overview" / f"{page}.html").read_text(encoding="utf-8")
        assert f"Albums</h2><div class='body'><div class='kpi'>{named:,}<" in text, page
    # a year whose plays name no album says so, not that nothing was played
    summary = {"year": "2024", "hours": 515.3, "days_with_music": 224, "plays": 12_942}
    context = Context("UTC", 30_000, "2026-12-06 11:00 UTC")
    data = {"summary": [summary], "top_albums": [], "top_artists": []}
    page = story.render("Year in review", "2024", [], data, context, lambda *_: None)
    assert "None of this year's plays names its album." in page, page
    assert page.count("Nothing played this year.") == 1  # the artists'
