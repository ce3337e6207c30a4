"""What the report's charts must get right, checked in Chromium on two histories: the real
exports (2018, then nothing until 2023: four empty years; not enriched, so the places and
genres pages have nothing to draw) and a small demo history (Last.fm from 2008, Spotify
from 2012, artists placed by a fake MusicBrainz).

At 390 and 1440 px: time axes keep the empty years, the clock's hours and weekdays are in
order, no raw code or column name shows, no text leaves its card or collides with its
neighbour, empty cards say why, the console stays clean. Screenshots of every page checked
are kept in test-artifacts/report-charts/ for a person to look at.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conftest import ARTIFACTS, BROWSER_FLAGS, CHROMIUM

WIDTHS = (390, 1440)
# the Artist dashboard of the most played artist (artist/index.html lists the artists)
TOP_ARTIST = "(most played)"
PAGES = [
    "tracks-history-time-of-day/index",
    "tracks-history-artist-genre/index",
    "tracks-history-geography/index",
    "artists-last-24-hours/index",
    "overview/index",
    "overview/2024",
    "overview/last-30-days",
    "top-lists/index",
    "top-lists/last-12-months",
    "artist/" + TOP_ARTIST,
    "listening-clock/index",
    "discovery/index",
    "places/index",
    "popularity-and-genres/index",
    "behaviour/index",
    "coverage/index",
    "podcasts/index",
]
# what a visitor must never read: Spotify's codes, our sources, column names, sort prefixes
RAW = re.compile(
    r"\b(trackdone|fwdbtn|backbtn|clickrow|playbtn|appload|trackerror|endplay|logout"
    r"|unexpected-exit\S*|spotify_\w+|lastfm|[a-z]+_[a-z_]+|\d [A-Z][a-z]+ter|Pct|Num"
    r"|No Artist Popularity Data|no genre defined|null|undefined|NaN)\b"
)
ENRICH_HINT = "have not been looked up"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (.ci/run installs it)")
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        yield launched
        launched.close()


# Per card: its id, the text of its title, description and body (HTML and SVG), the
# boxes of its SVG texts that leave the card, axis labels that overlap a neighbour, and
# each axis's labels in order.
_INSPECT = r"""() => [...document.querySelectorAll('section.card')].map(card => {
  const box = card.getBoundingClientRect();
  const outside = [], collisions = [], axes = [];
  for (const text of card.querySelectorAll('svg text')) {
    const r = text.getBoundingClientRect();
    if (!text.textContent.trim() || r.width === 0) continue;
    if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
        || r.bottom > box.bottom + 1) outside.push(text.textContent);
    // a chart's SVG cuts off what leaves it, inside the card's padding too ("2,50");
    // labels Vega leaves out as too close to another are there, unseen
    const drawn = text.closest('.chart > svg');
    if (text.getAttribute('opacity') === '0') continue;
    const clip = drawn ? drawn.getBoundingClientRect() : box;
    if (r.left < clip.left - 1 || r.right > clip.right + 1 || r.top < clip.top - 1
        || r.bottom > clip.bottom + 1) outside.push(text.textContent + ' (cut off by its chart)');
  }
  for (const axis of card.querySelectorAll('g.role-axis')) {
    const labels = [...axis.querySelectorAll('g.role-axis-label text')]
      .filter(t => t.textContent.trim() && t.getAttribute('opacity') !== '0');
    const boxes = labels.map(t => t.getBoundingClientRect());
    for (let i = 1; i < boxes.length; i++) {
      const a = boxes[i - 1], b = boxes[i];
      const across = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const down = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      // side by side, closer than 2 px counts ("8910" is three labels touching);
      // one above the other, only an overlap
      const level = Math.abs(a.top - b.top) < Math.abs(a.left - b.left);
      const overlap = level ? across > -2 && down > 0 : down > 0.5 && across > 0;
      if (overlap) collisions.push(labels[i - 1].textContent + ' / ' + labels[i].textContent);
    }
    const title = axis.querySelector('g.role-axis-title text');
    axes.push({title: title ? title.textContent : '', labels: labels.map(t => t.textContent)});
  }
  // a ring's slices clockwise from the top: each arc is drawn from its end back to its
  // start, so its start is where its outer arc ends ("M end A ... start L ...")
  const slices = [...card.querySelectorAll('g.mark-arc path')].map(path => {
    const n = path.getAttribute('d').match(/[-\d.e]+/g).map(Number);
    const start = (Math.atan2(n[7], -n[8]) + 2 * Math.PI + 1e-6) % (2 * Math.PI);
    return [start, path.getAttribute('aria-label')];
  }).sort((a, b) => a[0] - b[0]).map(slice => slice[1]);
  // a label Vega cut to its limit ends with an ellipsis
  const cut = [...card.querySelectorAll('svg text')].map(t => t.textContent)
    .filter(t => t.endsWith('\u2026'));
  return {id: card.id, slices, cut, text: card.innerText + ' ' +
            [...card.querySelectorAll('svg text')].map(t => t.textContent).join(' '),
          outside, collisions, axes,
          empty: (card.querySelector('.empty') || {}).textContent || null};
})"""


def _inspect(
    browser: Any, report: Path, label: str, pages: list[str] = PAGES
) -> dict[str, dict[str, Any]]:
    """Every page of PAGES at both widths: problems found, and the cards at 1440 px."""
    shots = ARTIFACTS / "report-charts"
    shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    cards: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for width in WIDTHS:
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
            else route.abort()
        )  # fmt: skip
        for name in pages:
            if name == "artist/" + TOP_ARTIST:  # the index's first artist: the most played
                index = (report / "artist" / "index.html").read_text(encoding="utf-8")
                found = re.search(r"<li data-key='[^']*'><a href='([^']+)\.html'>", index)
                assert found, "the artist index lists no artist"
                name = f"artist/{found.group(1)}"
            path = report / f"{name}.html"
            if not path.exists():
                continue  # a year the history does not have
            errors.clear()
            page.goto(path.as_uri())
            # charts are drawn as they come near the screen: every one, for the checks
            page.evaluate("window.MT_DRAW_ALL && window.MT_DRAW_ALL()")
            page.wait_for_selector("body[data-rendered]", state="attached", timeout=60_000)
            where = f"{label} {name} @{width}"
            page.screenshot(
                path=str(shots / f"{label}__{name.replace('/', '__')}__{width}.png"),
                full_page=True,
            )
            problems += [f"{where}: console: {e}" for e in errors]
            problems += [f"{where}: {e}" for e in page.evaluate("window.MT_ERRORS || []")]
            page_text = page.evaluate("document.body.innerText")
            problems += [f"{where}: raw code {m!r}" for m in RAW.findall(page_text)]
            for card in page.evaluate(_INSPECT):
                problems += [
                    f"{where} {card['id']}: raw code {m!r}" for m in RAW.findall(card["text"])
                ]
                problems += [
                    f"{where} {card['id']}: {t!r} outside the card" for t in card["outside"]
                ]
                problems += [
                    f"{where} {card['id']}: labels collide: {c}" for c in card["collisions"]
                ]
                problems += [f"{where} {card['id']}: {t!r} cut short" for t in card["cut"]]
                if card["empty"] is not None and "Nothing to show" in card["empty"]:
                    problems.append(f"{where} {card['id']}: empty without saying why")
                if width == 1440:
                    cards[f"{name}#{card['id'].split('--')[1]}"] = card
            if width == 1440:  # the page's title, description, period and its choices
                header = page.evaluate(
                    "(() => { const h = document.querySelector('header');"
                    " return {text: h.innerText, options: [...h.querySelectorAll('option')]"
                    ".map(o => o.textContent)}; })()"
                )
                cards[f"{name}#header"] = header
        page.close()
    assert not problems, "\n".join(problems[:80])
    return cards


def _labels(card: dict[str, Any], title: str) -> list[str]:
    return next(a["labels"] for a in card["axes"] if a["title"] == title)


def test_real_exports_charts_read_right(browser: Any, real_report: Path) -> None:
    """The real exports' report (conftest), before any MusicBrainz lookup."""
    cards = _inspect(browser, real_report / "report", "real")
    # 2018, then nothing until 2023: the four empty years are on the axes
    years = _labels(cards["overview/index#plays_by_year"], "Year")
    assert years == [str(y) for y in range(2018, 2025)], years
    by_year = _labels(cards["tracks-history-time-of-day/index#tracks_by_year"], "Year")
    assert by_year == [str(y) for y in range(2018, 2025)], by_year
    shows = _labels(cards["podcasts/index#shows_discovered"], "Year")  # not 2018 by 2023
    assert shows == [str(y) for y in range(2018, 2025)], shows
    for key in ("overview/index#hours_by_month", "coverage/index#plays_per_source"):
        months = " ".join(_labels(cards[key], "Month"))  # a continuous time line
        assert all(year in months for year in ("2020", "2021", "2022")), (key, months)
    # the listening clock: hours 0..23, Monday first
    clock = cards["listening-clock/index#hour_by_weekday"]
    hours = [int(h) for h in _labels(clock, "Hour of day")]
    assert hours == sorted(hours) and hours[0] == 0 and hours[-1] >= 22, hours
    assert _labels(clock, "Weekday") == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    ]  # fmt: skip
    parts = _labels(cards["tracks-history-time-of-day/index#tracks_by_time_of_day"], "Time of day")
    assert parts == ["Night", "Morning", "Afternoon", "Evening"]
    # the ring of the day's parts turns in time order too, not by name
    ring = [
        re.search(r"Time of day: (\w+)", s)
        for s in cards["listening-clock/index#part_of_day"]["slices"]
    ]
    assert [m.group(1) for m in ring if m] == ["Night", "Morning", "Afternoon", "Evening"]
    seasons = _labels(cards["listening-clock/index#season"], "Season")
    assert seasons == ["Winter", "Spring", "Summer", "Autumn"]
    # the calendar has every week of 2024 up to the newest play (October)
    calendar = _labels(cards["overview/2024#calendar_heatmap"], "Weekday")
    assert calendar[0] == "Monday"
    # not looked up in MusicBrainz: the places and genres say what is missing
    for key in (
        "places/index#empty",  # every card of the page empty: said once
        "tracks-history-geography/index#country_map",
        "tracks-history-artist-genre/index#empty",
        "popularity-and-genres/index#primary_genres",
        "coverage/index#enrichment",  # not one slice of "unknown"
    ):
        assert ENRICH_HINT in (cards[key]["empty"] or ""), key
    assert "popularity" in (cards["popularity-and-genres/index#artist_popularity"]["empty"] or "")
    # Spotify's "Unknown Artist" is counted on Coverage, not ranked
    assert "Unknown Artist" not in cards["top-lists/index#top_artists"]["text"]
    assert "Unknown Artist" in cards["coverage/index#unnamed_plays"]["text"]
    # the last 24 hours say which 24 hours (a day in October 2024), as the headers write days
    assert "3 Oct 2024" in cards["artists-last-24-hours/index#period"]["text"]
    # the last 30 days end at the newest play, two years before the report was built, and
    # say so; the periods offered are the years with plays (none of 2019-2022) and both
    # rolling periods
    with duckdb.connect(str(real_report / "warehouse.duckdb"), read_only=True) as con:
        (newest,) = con.execute("select max(date_sid) from dw.fact_track_played").fetchone()
    first = newest - dt.timedelta(days=29)
    said = (
        f"Last 30 days: {first.day} {first:%b} \u2013 {newest.day} {newest:%b %Y},"
        " up to the newest play"
    )
    header = cards["overview/last-30-days#header"]
    assert said in header["text"], header["text"]
    assert header["options"] == [
        "All time",
        "Last 12 months",
        "Last 30 days",
        "2024",
        "2023",
        "2018",
    ], header["options"]
    assert (
        "Last 12 months: 4 Oct 2023 \u2013 3 Oct 2024"
        in (cards["top-lists/last-12-months#header"]["text"])
    )
    assert "All time: " in cards["overview/index#header"]["text"]
    # the calendar of the last 30 days: its 30 days, not a whole year
    page = (real_report / "report" / "overview" / "last-30-days.html").read_text()
    data = json.loads(re.search(r"id='mt-cards'>(.*?)</script>", page, re.S).group(1))
    calendar = next(c for c in data if c["name"] == "calendar_heatmap")
    assert len(calendar["rows"]) == 30, len(calendar["rows"])


def test_demo_charts_read_right(browser: Any, demo_report: Path) -> None:
    """A small demo history (conftest), its artists placed by a fake MusicBrainz."""
    pages = [
        "overview/index", "listening-clock/index", "places/index", "behaviour/index",
        "coverage/index", "popularity-and-genres/index",
    ]  # fmt: skip
    report = demo_report / "report"
    cards = _inspect(browser, report, "demo", pages)
    # 19 years in a third of the page: every other label may be left out, in order
    years = [int(y) for y in _labels(cards["overview/index#plays_by_year"], "Year")]
    assert years == sorted(years) and years[0] == 2008 and years[-1] >= 2025, years
    # Behaviour offers only the years of the extended history (Spotify, from 2012)
    options = (report / "behaviour" / "index.html").read_text()
    offered = [int(y) for y in re.findall(r"<option value='(\d{4})\.html'", options)]
    assert offered and min(offered) >= 2012, offered
    assert not (report / "behaviour" / "2010.html").exists()
    # places drew for real, and so did the artists placed (some looked up)
    assert cards["places/index#world_map"]["empty"] is None
    assert cards["coverage/index#enrichment"]["empty"] is None


# The first screen of a phone: its pictures (drawn ahead), what the page asked for, and
# the colours a picture's bars and cells take on this page's theme
_FIRST_SCREEN = """() => {
  const pictures = [...document.querySelectorAll('.chart > svg.pre')];
  const fills = pictures.map(svg => {
    const mark = svg.querySelector('g.role-mark path, g.role-mark rect');
    return mark ? getComputedStyle(mark).fill : null;
  });
  const root = getComputedStyle(document.documentElement);
  const named = [...document.querySelectorAll('.chart[aria-label]')];
  return {pictures: pictures.length, fills, c1: root.getPropertyValue('--c1').trim(),
          marks: pictures.map(s => s.querySelectorAll('.role-mark > *').length),
          named: named.map(c => c.getAttribute('aria-label')),
          live: document.querySelectorAll('.chart > svg:not(.pre)').length};
}"""


def test_a_phone_starts_no_chart_library_for_its_first_screen(
    browser: Any, demo_report: Path
) -> None:
    """Vega on the phone's main thread was the pages' blocking time: the first charts are
    pictures in the page, in the reader's colours (light or dark), named for a screen
    reader, and Vega is loaded only when the reader scrolls to a chart drawn live. A
    laptop's wider cards draw every chart live."""
    report = demo_report / "report"
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport={"width": 412, "height": 823}, color_scheme=scheme)
        asked: list[str] = []
        page.on("request", lambda r, asked=asked: asked.append(r.url))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else route.abort())  # fmt: skip
        for name in ("overview/index", "listening-clock/index", "places/index"):
            asked.clear()
            page.goto((report / f"{name}.html").as_uri())  # and its load event
            page.wait_for_timeout(500)  # the first paint, then report.js sorts the charts
            seen = page.evaluate(_FIRST_SCREEN)
            assert seen["pictures"] == 2 and all(n > 3 for n in seen["marks"]), (name, seen)
            assert seen["live"] == 0, (name, seen)
            assert not [url for url in asked if url.endswith("vega.js")], (name, asked)
            assert len(seen["named"]) == 2 and all(seen["named"]), (name, seen)
            for fill in seen["fills"]:  # a palette colour or a mix of the ramp's, never a stand-in
                assert fill and "255, 0," not in fill and fill != "rgb(0, 0, 0)", (name, fill)
            if name == "overview/index":  # bars in the theme's first colour, light or dark
                c1 = seen["c1"].lstrip("#")
                rgb = f"rgb({int(c1[0:2], 16)}, {int(c1[2:4], 16)}, {int(c1[4:6], 16)})"
                assert seen["fills"][0] == rgb, (scheme, seen["fills"][0], rgb)
            # the reader scrolls on: the next chart is drawn live
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_function("document.querySelectorAll('.chart > svg:not(.pre)').length > 0")
            assert [url for url in asked if url.endswith("vega.js")], name
            # pointing at a picture draws it live (its tooltips)
            page.hover(".chart > svg.pre")
            page.wait_for_function(
                "document.querySelectorAll('.chart > svg.pre').length < 2", timeout=30_000
            )
        page.close()
    wide = browser.new_page(viewport={"width": 1440, "height": 900})
    wide.goto((report / "overview" / "index.html").as_uri())
    wide.wait_for_function(
        "document.querySelectorAll('.chart > svg:not(.pre)').length >= 2", timeout=30_000
    )
    wide.close()


# A map card on a phone: the heights of its card, its chart's box and what is drawn in it
_MAP = """(id) => {
  const card = document.getElementById(id), box = card.querySelector('.chart');
  const drawn = box.querySelector('svg');
  const size = e => e ? e.getBoundingClientRect() : {width: 0, height: 0};
  return {card: size(card).height, box: size(box).height, width: size(drawn).width,
          drawn: size(drawn).height, picture: !!box.querySelector('svg.pre')};
}"""


def test_a_phone_sees_the_map_at_the_worlds_height(browser: Any, demo_report: Path) -> None:
    """At 390 px a map is as tall as the world at the card's width, and its legend: no
    empty room above and below it (it was fitted into its desktop cell's 408 px, the world
    170 px of them). As drawn ahead (Places' first chart), and drawn live once pointed at."""
    report = demo_report / "report"
    page = browser.new_page(viewport={"width": 390, "height": 900})
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else route.abort())  # fmt: skip

    def check(where: str, expect_picture: bool, card: str) -> None:
        seen = page.evaluate(_MAP, card)
        assert seen["picture"] == expect_picture, (where, seen)
        world = seen["width"] / 2.0546  # Equal Earth's whole sphere (charts.py)
        # the world, its legend below (about 70 px) and the padding: nothing more
        assert world + 40 < seen["drawn"] < world + 110, (where, seen)
        assert seen["box"] - seen["drawn"] < 8, (where, seen)
        assert seen["card"] - seen["box"] < 60, (where, seen)  # its title and padding

    page.goto((report / "places" / "index.html").as_uri())
    page.wait_for_timeout(500)  # the first paint, then report.js sorts the charts
    check("places, drawn ahead", True, "places--world_map")
    page.hover("#places--world_map .chart > svg.pre")
    page.wait_for_selector("#places--world_map .chart > svg:not(.pre)", timeout=30_000)
    page.wait_for_timeout(300)
    check("places, drawn live when pointed at", False, "places--world_map")
    page.close()


def test_a_card_that_ignores_the_year_says_all_time() -> None:
    from music_tracker.reporting.definitions import load_dashboards

    for dashboard in load_dashboards():
        years = [f.name for f in dashboard.filters if f.kind == "year"]
        for card in dashboard.cards:
            if years and not card.tags() & set(years):
                assert "all time" in card.title.lower(), (dashboard.slug, card.name)


def test_columns_get_words() -> None:
    from music_tracker.reporting.definitions import column_title

    assert column_title("share_of_all_plays_pct") == "Share of all plays (%)"
    assert column_title("year_num") == "Year"
    assert column_title("longest_streak_days") == "Longest streak (days)"
    assert column_title("plays") == "Plays"


def test_chart_colours_are_the_page_theme() -> None:
    """Every colour of every compiled chart is one of report.css's variables (so it follows
    the reader's dark mode), and every variable a chart names is defined, light and dark."""
    import json

    from music_tracker.reporting import charts
    from music_tracker.reporting.definitions import load_dashboards
    from music_tracker.reporting.static_site import ASSETS

    css = (ASSETS / "report.css").read_text(encoding="utf-8")
    light, dark = css.split("@media (prefers-color-scheme: dark)", 1)
    named: set[str] = set()
    for dashboard in load_dashboards():
        for card in dashboard.every_card():
            spec = charts.compiled(card)
            if spec is None:
                continue
            text = json.dumps(spec)
            # the map's bubbles keep their dark outline on either page, the treemap's labels
            # their dark ink on the palette's tiles
            literal = set(re.findall(r'"(#[0-9a-fA-F]{3,8})"', text)) - {"#7f2704", "#1a1a1a"}
            assert not literal, (dashboard.slug, card.name, literal)
            named |= set(re.findall(r"var\((--[a-z0-9-]+)\)", text))
    assert {"--c1", "--ink", "--seq-low", "--seq-high"} <= named
    for name in named - {"--font"}:  # the font is one for both
        assert f"{name}:" in light and f"{name}:" in dark, name


def test_a_count_of_one_or_two_has_no_half_plays_on_its_axis() -> None:
    """An artist played once or twice a month (most of the artist pages: every artist of
    10 plays has one) read "0.5" and "1.5" plays on Plays by month: Vega's tickMinStep
    caps the number of ticks, yet d3 still steps by 0.5 over a domain of 0 to 2. Every
    chart of a count, given counts of 1 and 2, labels its axis in whole plays."""
    import datetime as dt

    import vl_convert

    from music_tracker.reporting import charts
    from music_tracker.reporting.definitions import load_dashboards

    checked = 0
    for dashboard in load_dashboards():
        for card in dashboard.cards:
            if card.viz not in ("bar", "column", "line", "area") or card.color:
                continue
            category, count = (card.y, card.x) if card.viz == "bar" else (card.x, card.y)
            if count is None or card.digits(count) is not None or card.title_of(count) != "Plays":
                continue
            start = dt.date(2020, 1, 1)
            values = [
                {category: (start.replace(month=m).isoformat() if card.time else f"c{m}"),
                 count: 1 + m % 2}
                for m in range(1, 7)
            ]  # fmt: skip
            chart = charts.spec(card)
            assert chart
            chart = {**chart, "data": {"values": values}, "width": 320,
                     "config": charts._merged(charts.THEME, chart.get("config", {}))}  # fmt: skip
            svg = vl_convert.vegalite_to_svg(chart)
            labels = re.findall(r"role-axis-label[^>]*>(.*?)</g></g>", svg)  # every axis's
            texts = [t for block in labels for t in re.findall(r">([^<>]+)</text>", block)]
            halves = [t for t in texts if re.fullmatch(r"\d+\.\d+", t)]
            assert not halves, (dashboard.slug, card.name, texts)
            checked += 1
    assert checked >= 3


_RECT = {
    "$schema": "https://vega.github.io/schema/vega/v5.json",
    "width": 300,
    "height": 100,
    "data": [{"name": "rows"}],
    "marks": [
        {"type": "rect", "from": {"data": "rows"},
         "encode": {"enter": {"x": {"field": "x"}, "y": {"value": 1},
                              "width": {"value": 10}, "height": {"value": 10}}}},
        {"type": "text", "from": {"data": "rows"},
         "encode": {"enter": {"x": {"field": "x"}, "y": {"value": 50},
                              "text": {"field": "name"}}}},
    ],
}  # fmt: skip


def test_pictures_are_drawn_by_a_process_of_their_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's pictures are drawn by vega_worker.py, a process that imports vl-convert
    and nothing of the project's settings or of Prefect (a multiprocessing worker imported
    its parent's main module, Prefect's engine under `serve`: 185-193 MB at a refresh's
    peak against 121), nor a module of the folder the report is run from. A chart it
    cannot draw is drawn live on the page (None), with a warning. A process that ended, or
    did not answer in time, is told once and started again for the next chart, once; after
    that the report's charts are drawn live without a word each. A NUL in a name (it
    aborted vl-convert) is left out of the picture."""
    import signal
    import subprocess
    import sys

    from music_tracker.reporting.pictures import Pictures

    imported = subprocess.run(
        [sys.executable, "-X", "importtime", "-P", "-m", "music_tracker.reporting.vega_worker"],
        input="", capture_output=True, text=True, check=True, timeout=60,
    ).stderr  # fmt: skip
    modules = {line.rsplit("|", 1)[-1].strip() for line in imported.splitlines()}
    assert "vl_convert" in modules
    assert not {m for m in modules if m.startswith(("pydantic", "prefect", "duckdb", "polars"))}
    assert not {m for m in modules if m.startswith("music_tracker.") and "reporting" not in m}

    # the owner's folder holds a json.py: the worker must not import it
    here = tmp_path / "here"
    here.mkdir()
    (here / "json.py").write_text("raise ImportError('the json.py of the folder')\n")
    monkeypatch.chdir(here)
    broken = {**_RECT, "marks": [{"type": "no-such-mark"}]}
    cache = tmp_path / "cache"
    with Pictures(cache, "world.json", answer_timeout_s=2) as pictures:
        drawn = pictures.ask(_RECT, [{"x": 5, "name": "Nul\0Band"}])
        refused = pictures.ask(broken, [])
        svg = pictures.take(drawn)
        assert svg is not None and svg.startswith("<svg") and 'class="marks pre"' in svg
        assert "NulBand" in svg
        assert pictures.take(refused) is None
        for how in (signal.SIGKILL, signal.SIGSTOP):  # ended, then hung
            process = pictures._worker._process
            assert process is not None
            process.send_signal(how)
            if how == signal.SIGKILL:
                process.wait()
            assert pictures.take(pictures.ask(_RECT, [{"x": 7, "name": str(how)}])) is None
            if how == signal.SIGKILL:  # started again for the next chart
                assert pictures.take(pictures.ask(_RECT, [{"x": 8, "name": "again"}]))
        # started again once only: the rest are drawn live, told no more
        assert pictures.take(pictures.ask(_RECT, [{"x": 9, "name": "live"}])) is None
        assert pictures._worker._process is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3, warnings
    assert "Vega to SVG conversion failed" in warnings[0]
    assert warnings[1] == (
        "the picture process ended (exit code -9); the next chart starts it again"
    )
    assert warnings[2] == (
        "the picture process did not answer within 2 s and was stopped; this report's"
        " remaining charts are drawn live"
    )
    assert pictures.drawn == 2
    assert len(list(cache.rglob("*.svg"))) == 2  # kept for the next report


def test_a_series_keeps_its_colour_on_every_page(real_report: Path) -> None:
    """Discovery's "New artist" was blue on all time and orange on 2023 and the last 30
    days, where the first row was a known artist's (helper-64): a card's ``series:`` fixes
    which colour each value gets, on every page, and names every value its rows have."""
    from music_tracker.reporting.definitions import load_dashboards

    (discovery,) = [d for d in load_dashboards() if d.slug == "discovery"]
    series = {card.name: card.series for base in discovery.cards for card in (base, *base.instead)}
    seen = set()
    for page in sorted((real_report / "report" / "discovery").glob("*.html")):
        text = page.read_text(encoding="utf-8")
        for card in json.loads(re.search(r"id='mt-cards'>(.*?)</script>", text, re.S).group(1)):
            if not series.get(card["name"]):
                continue
            (scale,) = [s for s in card["spec"]["scales"] if s["name"] == "color"]
            assert scale["domain"] == series[card["name"]], (page.name, card["name"], scale)
            at = card["columns"].index("kind" if "kind" in card["columns"] else "artist_kind")
            assert {row[at] for row in card["rows"]} <= set(scale["domain"]), page.name
            seen.add((page.stem, card["name"]))
    assert {"index", "2023", "last-30-days"} <= {stem for stem, _ in seen}, seen


def test_a_time_chart_spans_its_period(real_report: Path) -> None:
    """The last 30 days' hours by day ran from the 26th day (the first with plays), and
    2023's hours by month from April (helper-64): a bar chart over time has a bar for
    every day or month of its period, up to the newest play, 0 where nothing was played,
    and the charts of one page share those days."""
    with duckdb.connect(str(real_report / "warehouse.duckdb"), read_only=True) as con:
        (newest,) = con.execute("select max(date_sid) from dw.agg_daily_listening").fetchone()
        (first_2023,) = con.execute(
            "select min(date_sid) from dw.agg_daily_listening where year(date_sid) = 2023"
        ).fetchone()
    assert first_2023 > dt.date(2023, 1, 31)  # the old axis began later than January
    days = [str(newest - dt.timedelta(days=n)) for n in range(29, -1, -1)]
    months = [f"2023-{m:02d}-01" for m in range(1, 13)]
    expected = {
        ("overview", "last-30-days", "hours_by_day"): days,
        ("discovery", "last-30-days", "new_vs_known_by_day"): days,
        ("discovery", "last-30-days", "new_per_day"): days,
        ("overview", "2023", "hours_by_month"): months,
        ("discovery", "2023", "new_vs_known"): months,
        ("discovery", "2023", "new_per_month"): months,
    }
    for (board, stem, name), axis in expected.items():
        text = (real_report / "report" / board / f"{stem}.html").read_text(encoding="utf-8")
        cards = json.loads(re.search(r"id='mt-cards'>(.*?)</script>", text, re.S).group(1))
        (card,) = [c for c in cards if c["name"] == name]
        shown = sorted({str(row[0])[:10] for row in card["rows"]})
        assert shown == axis, (board, stem, name, shown[:3], shown[-3:])
