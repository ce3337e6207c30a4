"""The static report's periods on the real exports' star schema: every card's rows for all
periods at once (one query) equal its rows period by period, in order; a period's figures
equal the same sums taken directly on the star schema; and the pages offered are the
periods a dashboard has something to draw in."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import ARTIFACTS, BROWSER_FLAGS, CHROMIUM, offline_tab
from music_tracker.reporting import periods, ranking
from music_tracker.reporting.definitions import load_dashboards
from music_tracker.reporting.static_site import run_card, variants


def _newest(con: duckdb.DuckDBPyConnection) -> dt.date:
    (newest,) = con.execute("select max(date_sid) from dw.agg_daily_listening").fetchone()  # type: ignore[misc]
    return newest  # type: ignore[no-any-return]


def test_every_period_in_one_query_equals_one_query_per_period(built: Path) -> None:
    """Each card of a year filter, over every year with plays and the two rolling periods:
    the one query (a LATERAL over the periods) gives each period the rows the card gives
    that period alone, in the same order for lists (tables, bars). Every card takes the one
    query (none falls back)."""
    fell_back, differ = [], []
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        newest = _newest(con)
        years = [y for (y,) in con.execute(
            "select distinct year(date_sid) from dw.agg_daily_listening order by 1"
        ).fetchall()]  # fmt: skip
        chosen = [*map(periods.of_year, years), *periods.rolling(newest)]
        compared = 0
        for dashboard in map(ranking.for_report, load_dashboards()):  # as the report runs
            page = dashboard.page_filter
            if page is None or page.kind != "year":
                continue
            name = page.name
            for card in dashboard.every_card():  # and those shown instead on some periods
                if not periods.uses_period(card, name):
                    continue
                columns, _ = run_card(con, card, {name: None})
                grouped = periods.run_grouped(con, card, chosen, columns)
                if grouped is None:
                    fell_back.append(f"{dashboard.slug}/{card.name}")
                    continue
                for period in chosen:
                    columns, rows = run_card(con, card, {name: period})
                    got = grouped[period.stem]
                    if card.viz not in ("table", "bar"):  # drawn in the chart's own order
                        got, rows = (got[0], sorted(got[1], key=repr)), sorted(rows, key=repr)
                    if got != (columns, rows):
                        differ.append(f"{dashboard.slug}/{card.name} {period.stem}")
                    compared += 1
    assert not fell_back, fell_back
    assert not differ, differ
    assert compared > 200


def test_a_periods_figures_are_the_star_schemas(built: Path) -> None:
    """The last 30 days on Overview and Top lists, against sums over fact_track_played
    between the newest play's day and 29 days before it (both included)."""
    dashboards = {d.slug: d for d in load_dashboards()}
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        newest = _newest(con)
        last_30 = periods.rolling(newest)[1]
        assert (last_30.first_date, last_30.last_date) == (newest - dt.timedelta(days=29), newest)
        bounds = {"first": last_30.first_date, "last": last_30.last_date}
        plays, hours, artists = con.execute(
            "select count(*), round(sum(ms_played) / 3600000, 1), count(distinct artist_sid)"
            " from dw.fact_track_played where date_sid between $first and $last",
            bounds,
        ).fetchone()  # type: ignore[misc]
        assert plays > 0
        overview = {card.name: card for card in dashboards["overview"].cards}
        values = {"year": last_30}
        assert run_card(con, overview["plays"], values)[1] == [(plays,)]
        assert run_card(con, overview["hours"], values)[1] == [(hours,)]
        assert run_card(con, overview["distinct_artists"], values)[1] == [(artists,)]
        # the top artists of the period, by plays and by time listened
        ranked = con.execute(
            "select artist.artist_name, count(*), sum(fact.ms_played)"
            " from dw.fact_track_played as fact"
            " join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
            " where fact.date_sid between $first and $last"
            "   and artist.artist_name is not null and artist.artist_name != 'Unknown Artist'"
            " group by 1",
            bounds,
        ).fetchall()
        by_plays = sorted(ranked, key=lambda r: (-r[1], -r[2], r[0]))
        by_time = sorted(ranked, key=lambda r: (-r[2], -r[1], r[0]))
        # as the report has them: one query, both orderings
        top = {card.name: card for card in ranking.for_report(dashboards["top-lists"]).cards}
        columns, rows = run_card(con, top["top_artists"], values)
        ways = {way.key: way for way in ranking.orderings(top["top_artists"], columns, rows)}
        for key, expected in ((ranking.PLAYS, by_plays), (ranking.TIME, by_time)):
            at = ways[key].columns.index("artist")
            assert [row[at] for row in ways[key].rows] == [r[0] for r in expected[:25]], key
        assert [r[0] for r in by_plays[:25]] != [r[0] for r in by_time[:25]]  # they differ


def test_only_periods_with_something_to_draw_are_offered(built: Path) -> None:
    """Behaviour draws skips and reasons from the extended history only: its periods are
    those with extended-history plays; Overview offers every year with plays and both
    rolling periods, each page ending at the newest play."""
    dashboards = {d.slug: d for d in load_dashboards()}
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        newest = _newest(con)
        years = [y for (y,) in con.execute(
            "select distinct year(date_sid) from dw.agg_daily_listening order by 1 desc"
        ).fetchall()]  # fmt: skip
        overview = variants(con, dashboards["overview"], years, newest)
        stems = [stem for stem, _, _ in overview]
        assert stems == ["index", "last-12-months", "last-30-days", *map(str, years)]
        extended = con.execute(
            "select min(date_sid), max(date_sid) from dw.fact_track_played"
            " where source = 'spotify_extended_history'"
        ).fetchone()
        assert extended is not None
        behaviour = {stem for stem, _, _ in variants(con, dashboards["behaviour"], years, newest)}
        for period in periods.rolling(newest):
            # offered when the extended history reaches into the period
            assert (period.stem in behaviour) == (extended[1] >= period.first_date), period
    said = periods.rolling(dt.date(2026, 12, 2))[1].statement(dt.date(2026, 12, 2))
    assert said == "Last 30 days: 3 Nov \u2013 2 Dec 2026, up to the newest play"
    assert periods.of_year(2024).statement(dt.date(2026, 12, 2)) == "2024: 1 Jan \u2013 31 Dec 2024"
    # a year the history starts in is told from its first play (helper-64: the account
    # export's 2023, from 2 October, was headed "1 Jan - 31 Dec 2023")
    first = dt.date(2023, 10, 2)
    assert (
        periods.of_year(2023).statement(dt.date(2024, 10, 3), first)
        == "2023: 2 Oct \u2013 31 Dec 2023, from the first play"
    )
    assert (
        periods.of_year(2023).statement(dt.date(2023, 11, 4), first)
        == "2023: 2 Oct \u2013 4 Nov 2023, the first play to the newest"
    )
    assert periods.of_year(2024).statement(dt.date(2024, 10, 3), first) == (
        "2024: 1 Jan \u2013 3 Oct 2024, up to the newest play"
    )
    # a first play after the period (podcasts' 2022 before the first song, 2023-06-01,
    # were headed "2022: 1 Jun 2023 - 31 Dec 2022": helper-68) does not move its start
    assert periods.of_year(2022).statement(dt.date(2023, 12, 31), dt.date(2023, 6, 1)) == (
        "2022: 1 Jan \u2013 31 Dec 2022"
    )


def test_podcasts_after_the_last_song_end_the_podcast_pages_periods(built_copy: Path) -> None:
    """Podcasts (fact_other_played) are not in agg_daily_listening: an episode heard after
    the newest song got a page "2025: 1 Jan 2025 - 3 Oct 2024, up to the newest play" and
    was left out of the podcast pages' last 30 days. Their periods end at the newest episode
    now; the music pages still end at the newest song."""
    import re

    from music_tracker.reporting.layout import Context
    from music_tracker.reporting.static_site import write_report

    with duckdb.connect(str(built_copy / "warehouse.duckdb")) as con:
        song = _newest(con)
        con.execute(
            "insert into dw.fact_other_played by name select 'review-new-episode' as play_sid,"
            " date '2025-02-10' as date_sid, * exclude (play_sid, date_sid)"
            " from dw.fact_other_played where content_type = 'podcast'"
            " order by date_sid desc, play_sid limit 1"
        )
        (hours,) = con.execute(
            "select round(sum(ms_played) / 3600000, 1) from dw.fact_other_played"
            " where content_type = 'podcast' and date_sid between $first and $last",
            {"first": dt.date(2025, 1, 12), "last": dt.date(2025, 2, 10)},
        ).fetchone()  # type: ignore[misc]
        boards = [d for d in load_dashboards() if d.slug in ("podcasts", "overview")]
        write_report(con, boards, built_copy / "report", Context("UTC", 30_000, "now"))

    def said(page: str) -> str:
        text = (built_copy / "report" / page).read_text(encoding="utf-8")
        return re.findall(r"<p class='period'>(.*?)</p>", text)[0]  # type: ignore[no-any-return]

    assert song < dt.date(2025, 1, 1)
    assert said("podcasts/2025.html") == "2025: 1 Jan \u2013 10 Feb 2025, up to the newest play"
    assert said("podcasts/last-30-days.html") == (
        "Last 30 days: 12 Jan \u2013 10 Feb 2025, up to the newest play"
    )
    assert f"{hours}" in (built_copy / "report/podcasts/last-30-days.html").read_text("utf-8")
    assert said("overview/last-30-days.html").endswith(
        f"{song.day} {song:%b %Y}, up to the newest play"
    )


def test_every_period_choice_leads_to_a_page_also_without_javascript(real_report: Path) -> None:
    """The Period select navigates by JavaScript only: a visitor with it off saw a select
    that goes nowhere. Every page offers the same choices as plain links (noscript), each
    choice names a page that exists, and the page shown is marked."""
    import re

    checked = 0
    for page in sorted((real_report / "report").glob("*/*.html")):
        text = page.read_text(encoding="utf-8")
        select = re.search(r"<select onchange='location.href=this.value'>(.*?)</select>", text)
        if select is None:
            continue
        options = re.findall(r"<option value='([^']+)'", select.group(1))
        plain = re.search(r"<noscript><p class='filter-links'>(.*?)</p></noscript>", text)
        assert plain is not None, page
        assert re.findall(r"<a href='([^']+)'", plain.group(1)) == options, page
        assert len(re.findall(r"aria-current=page", plain.group(1))) == 1, page
        missing = [o for o in options if not (page.parent / o).is_file()]
        assert not missing, (page, missing)
        checked += 1
    assert checked > 30


_FIRST_SONG_BEFORE = """
select fact.played_at_local as played_at, track.track_name as song,
       artist.artist_name as artist
from dw.fact_track_played as fact
join dw.dim_date as calendar on calendar.date_sid = fact.date_sid
join dw.dim_track as track on track.track_sid = fact.track_sid
join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid
where calendar.year_num = $year
order by fact.played_at_local, fact.play_sid
limit 1
"""


def test_the_first_song_of_each_year_is_one_grouped_arg_min(built: Path) -> None:
    """Year in review's first song: the old "order by played_at_local, play_sid limit 1"
    ran for all years at once as a window over every play (40 s at 10 million plays).
    The arg_min gives each year the same row (none for a year without plays), alone and
    with every year at once, and the query for all years at once has no window."""
    story = next(d for d in load_dashboards() if d.page == "story")
    card = next(c for c in story.cards if c.name == "first_song")
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        years = [y for (y,) in con.execute(
            "select distinct year(date_sid) from dw.agg_daily_listening order by 1"
        ).fetchall()]  # fmt: skip
        chosen = [periods.of_year(y) for y in [*years, years[-1] + 2]]
        columns, _ = run_card(con, card, {"year": chosen[0]})
        grouped = periods.run_grouped(con, card, chosen, columns)
        assert grouped is not None
        for period in chosen:
            before = con.execute(_FIRST_SONG_BEFORE, {"year": period.year})
            expected = ([d[0] for d in before.description], before.fetchall())
            assert run_card(con, card, {"year": period})[1] == expected[1], period
            assert grouped[period.stem] == expected, period
        assert sum(bool(grouped[p.stem][1]) for p in chosen) == len(years)
        text, params = periods._rewrite(
            card.sql, "period.first_date", "period.last_date", "cast(period.year as integer)"
        )
        plan = con.execute(
            f"explain select * from {periods.TABLE} as period, lateral ({text}) as card", params
        ).fetchall()
        assert "WINDOW" not in str(plan)


# -- short periods in a browser ------------------------------------------------------------

# the dashboards whose cards change with the period (a grain, a card left out)
_CHANGING = [
    "overview",
    "discovery",
    "listening-clock",
    "tracks-history-time-of-day",
    "tracks-history-artist-genre",
    "places",
]
# the page's cards as drawn, and the points of the area they span that no card is near (a
# hole): a lattice of 8 px, each point within half a grid gap (6 px, and a pixel) of a card
_HOLES = """() => {
  const cards = [...document.querySelectorAll('main.grid > section.card')]
    .map(c => c.getBoundingClientRect());
  if (!cards.length) return [];
  const left = Math.min(...cards.map(r => r.left)), right = Math.max(...cards.map(r => r.right));
  const top = Math.min(...cards.map(r => r.top)), bottom = Math.max(...cards.map(r => r.bottom));
  const holes = [];
  for (let y = top; y <= bottom; y += 8) for (let x = left; x <= right; x += 8) {
    const near = r => x >= r.left - 7 && x <= r.right + 7 && y >= r.top - 7 && y <= r.bottom + 7;
    if (!cards.some(near))
      holes.push([Math.round(x), Math.round(y + window.scrollY)]);
  }
  return holes;
}"""


def _short_pages(report: Path) -> list[str]:
    """The last 30 days and the newest year of each dashboard that has them."""
    pages = []
    for slug in _CHANGING:
        years = sorted(p.stem for p in (report / slug).glob("[0-9][0-9][0-9][0-9].html"))
        pages += [f"{slug}/{stem}" for stem in ("last-30-days", *years[-1:])]
    return [page for page in pages if (report / f"{page}.html").exists()]


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)
@pytest.mark.parametrize("which", ["real_report", "demo_report"])
def test_short_periods_draw_their_own_grain_and_leave_no_hole(
    which: str, request: pytest.FixtureRequest
) -> None:
    """On the last 30 days and a year: every chart over time has more than two bars or
    points (a month's chart of 30 days drew two wide bars, a chart of years one), and the
    cards a period leaves out leave no empty rectangle, at 390 and 1440 px, with the
    console clean and the network cut off."""
    from playwright.sync_api import sync_playwright

    report = Path(request.getfixturevalue(which)) / "report"
    boards = {d.slug: d for d in load_dashboards()}
    pages = _short_pages(report)
    assert len(pages) >= 8, pages
    problems: list[str] = []
    # the charts' rows as written: a time axis (or years) has more than two values
    for page in pages:
        text = (report / f"{page}.html").read_text(encoding="utf-8")
        found = re.search(r"id='mt-cards'>(.*?)</script>", text, re.S)
        cards = {c.name: c for c in boards[page.split("/")[0]].every_card()}
        for chart in json.loads(found.group(1)) if found else []:
            card = cards[chart["name"]]
            over_time = card.time is not None or card.x in ("year", "year_num")
            if over_time and card.viz != "heatmap" and chart["rows"]:
                x = chart["columns"].index(card.x)
                buckets = {row[x] for row in chart["rows"]}
                if len(buckets) <= 2:
                    problems.append(f"{page} {card.name}: {len(buckets)} {card.time or 'year'}")
    shots = ARTIFACTS / "report-periods" / which
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        for width in (390, 1440):
            tab, errors = offline_tab(browser, width)
            for page in pages:
                errors.clear()
                tab.goto((report / f"{page}.html").as_uri())
                tab.evaluate("window.MT_DRAW_ALL && window.MT_DRAW_ALL()")
                tab.wait_for_selector("body[data-rendered]", state="attached", timeout=60_000)
                tab.screenshot(
                    path=str(shots / f"{page.replace('/', '__')}-{width}.png"), full_page=True
                )
                where = f"{page} at {width}"
                problems += [f"{where}: {e}" for e in errors]
                problems += [f"{where}: {e}" for e in tab.evaluate("window.MT_ERRORS || []")]
                holes = tab.evaluate(_HOLES)
                if holes:
                    problems.append(f"{where}: {len(holes)} points in no card, first {holes[0]}")
            tab.close()
        browser.close()
    assert not problems, problems
