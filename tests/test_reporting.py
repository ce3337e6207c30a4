"""Dashboards as code: definitions checked on load, every card run on the real star schema,
figures cross-checked against the export files, the static report drawn in Chromium."""

from __future__ import annotations

import os
import re
import shutil
import textwrap
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from conftest import (
    ACCOUNT_DIR,
    ARTIFACTS,
    BROWSER_FLAGS,
    CHROMIUM,
    EXTENDED_DIR,
    Cli,
    cli_json,
    extended_plays,
    load_rows,
    query,
)
from music_tracker.reporting import charts, ranking
from music_tracker.reporting.definitions import (
    RANK_BY,
    DefinitionError,
    bind,
    load_dashboard,
    load_dashboards,
)
from music_tracker.reporting.static_site import Context, ReportError, run_card, write_report
from music_tracker.warehouse.contents import status

DENVER = ZoneInfo("America/Denver")
CONTEXT = Context(timezone="America/Denver", stream_threshold_ms=30_000, built_at="test")


# -- definitions ------------------------------------------------------------------------


def test_fifteen_dashboards_the_owner_four_first() -> None:
    dashboards = load_dashboards()
    assert len(dashboards) == 15
    assert [d.origin for d in dashboards[:4]] == ["original"] * 4
    assert [d.title for d in dashboards[:4]] == [
        "Artists, last 24 hours",
        "Tracks history - time of day",
        "Tracks history - artist genre",
        "Tracks history - geography",
    ]
    # the original defaults: genre and geography pages open on the current year
    defaults = {d.slug: d.filters[0].default for d in dashboards if d.filters}
    assert defaults["tracks-history-artist-genre"] == "current"
    assert defaults["tracks-history-geography"] == "current"
    # "Count Tracks Played in Genre" is counted on fact_artist_genre
    genre = next(d for d in dashboards if d.slug == "tracks-history-artist-genre")
    assert all("dw.fact_artist_genre" in card.sql for card in genre.cards)


HEAD = """
title: T
description: D
origin: new
order: 1
cards:
"""


RANKED = """
title: T
description: D
origin: new
order: 1
filters:
  - name: rank_by
    label: Rank by
    kind: rank
    default: plays
cards:
  - name: artists
    title: Artists
    viz: table
    rank: {plays: plays, time: hours, top: 10}
    sql: |
      select artist_name, plays, hours, plays_rank, time_rank from dw.some_ranking
      where coalesce([[case {{rank_by}} when 'time listened' then time_rank end,]]
                     plays_rank) <= 10
    layout: {row: 0, col: 0, width: 6, height: 2}
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("title: [unclosed", "not readable YAML"),
        ("- a list", "a mapping of fields"),
        ("title: T\norigin: new\norder: 1\ncards: []", "description: Field required"),
        (
            HEAD
            + """
              - name: plays
                title: Plays
                viz: sparkle
                sql: select 1 as plays from dw.fact_track_played
                layout: {row: 0, col: 0, width: 4, height: 2}
            """,
            "cards[plays].viz: Input should be",
        ),
        (
            HEAD
            + """
              - name: plays
                title: Plays
                viz: bar
                x: plays
                sql: select 1 as plays from dw.fact_track_played
                layout: {row: 0, col: 0, width: 4, height: 2}
            """,
            "cards[plays]: Value error, a bar card needs y",
        ),
        (
            HEAD
            + """
              - name: secrets
                title: Raw rows
                viz: table
                sql: select * from raw.spotify_extended_history
                layout: {row: 0, col: 0, width: 4, height: 2}
            """,
            "cards read the dw schema only",
        ),
        (
            HEAD
            + """
              - name: plays
                title: Plays
                viz: kpi
                y: plays
                sql: select count(*) as plays from dw.dim_date where year_num = {{year}}
                layout: {row: 0, col: 20, width: 6, height: 2}
            """,
            "cards[plays].layout: Value error, col + width must be at most 24",
        ),
        (
            HEAD
            + """
              - name: plays
                title: Plays
                viz: kpi
                y: plays
                sql: select count(*) as plays from dw.dim_date where year_num = {{year}}
                layout: {row: 0, col: 0, width: 6, height: 2}
            """,
            "card 'plays' uses undefined filter ['year']",
        ),
        (  # a month's chart of the last 30 days draws one or two bars
            HEAD.replace("cards:", "filters: [{name: year, label: Year, kind: year}]\ncards:")
            + """
              - name: hours
                title: Hours by month
                viz: column
                x: month
                y: hours
                time: month
                periods: [all, last-30-days]
                sql: select month_start_date as month, 1 as hours from dw.dim_date
                  where true [[and year_num = {{year}}]]
                layout: {row: 0, col: 0, width: 24, height: 6}
            """,
            "cards[hours]: Value error, a chart by month is not shown on last-30-days",
        ),
        (  # two cards in one place on the same page
            HEAD.replace("cards:", "filters: [{name: year, label: Year, kind: year}]\ncards:")
            + """
              - name: hours
                title: Hours by month
                viz: column
                x: month
                y: hours
                time: month
                sql: select month_start_date as month, 1 as hours from dw.dim_date
                  where true [[and year_num = {{year}}]]
                layout: {row: 0, col: 0, width: 24, height: 6}
                instead:
                  - {name: hours_by_week, time: week}
            """,
            "hours_by_week: shown on last-12-months, year already",
        ),
        (  # the pages are public: what the owner runs is to_fill:, not the visitor's words
            HEAD
            + """
              - name: places
                title: Places
                viz: table
                empty: Nothing here yet. Run `music-tracker enrich`.
                sql: select country_code from dw.dim_artist
                layout: {row: 0, col: 0, width: 4, height: 2}
            """,
            "cards[places].empty: Value error, visitors read this and cannot run commands",
        ),
        (
            HEAD
            + """
              - name: places
                title: Places
                viz: table
                to_fill: Run `music-tracker enrich`.
                sql: select country_code from dw.dim_artist
                layout: {row: 0, col: 0, width: 4, height: 2}
            """,
            "cards[places]: Value error, a card with to_fill or empty_when says what is missing",
        ),
        # a ranked card without the dashboard's rank filter (Metabase would not reach it)
        (
            RANKED.replace("{{rank_by}}", "'plays'"),
            "card 'artists': a card with rank: uses the dashboard's rank filter",
        ),
        (
            RANKED.replace("kind: rank\n    default: plays", "kind: rank\n    default: all"),
            "filters[rank_by]: Value error, a rank filter's default is one of 'plays'",
        ),
        (RANKED.replace("time: hours", "time: ms_played"), "rank.time names hours or minutes"),
        (RANKED.replace("top: 10", "top: 20"), "keeps the rows ranked <= 20"),
    ],
)
def test_a_bad_definition_names_the_file_and_the_field(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "99_broken.yml"
    path.write_text(textwrap.dedent(body))
    with pytest.raises(DefinitionError) as caught:
        load_dashboard(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_optional_clauses_follow_the_filter_values() -> None:
    sql = "select 1 where true [[and year_num = {{year}}]] [[and country = {{country}}]]"
    assert bind(sql, {}) == ("select 1 where true  ", {})
    text, params = bind(sql, {"year": 2024})
    assert text == "select 1 where true and year_num = $year " and params == {"year": 2024}


# -- every card on the real star schema -------------------------------------------------


def _values(dashboard_filters: list, con: duckdb.DuckDBPyConnection) -> list[dict]:
    """All time, a year, and the first value of each text filter."""
    sets: list[dict] = [{}]
    for flt in dashboard_filters:
        if flt.kind == "year":
            sets.append({flt.name: 2024})
        elif flt.kind == "rank":
            sets += [{flt.name: value} for value in RANK_BY]
        else:
            (first,) = con.execute(flt.options_query()).fetchone() or (None,)
            sets.append({flt.name: first})
    return sets


def test_every_card_runs_on_the_real_star_schema(built: Path) -> None:
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        for dashboard in load_dashboards():
            for values in _values(dashboard.filters, con):
                for card in dashboard.cards:
                    where = f"{dashboard.source_file} {card.name} {values}"
                    columns, rows = run_card(con, card, values)
                    assert card.columns() <= set(columns), where
                    if card.viz == "map":
                        assert {"lat", "long"} <= set(columns), where
                    if card.viz == "kpi":
                        assert len(rows) == 1, where
    # a chart spec for every drawn card, none for HTML cards
    for dashboard in load_dashboards():
        for card in dashboard.cards:
            assert (charts.spec(card) is None) == (card.viz in ("kpi", "table"))


def test_a_broken_card_names_the_file_and_card(built: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dashboards"
    folder.mkdir()
    (folder / "01_broken.yml").write_text(
        textwrap.dedent(
            """
            title: Broken
            description: A column that does not exist.
            origin: new
            order: 1
            cards:
              - name: plays
                title: Plays
                viz: kpi
                y: plays
                sql: select count(no_such_column) as plays from dw.fact_track_played
                layout: {row: 0, col: 0, width: 6, height: 2}
            """
        )
    )
    dashboards = load_dashboards(folder)
    with (
        duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con,
        pytest.raises(ReportError, match=r"01_broken.yml, card 'plays'.*no_such_column"),
    ):
        write_report(con, dashboards, tmp_path / "report", CONTEXT)
    assert not (tmp_path / "report").exists()


# -- figures computed independently, from the export files ------------------------------


def _export_plays() -> list[tuple[datetime, str, int]]:
    """(end UTC, artist, ms played) of every music play in the real exports."""
    plays = [
        (datetime.fromisoformat(r["ts"].replace("Z", "+00:00")),
         r["master_metadata_album_artist_name"], r["ms_played"])
        for r in extended_plays(
            *sorted(EXTENDED_DIR.glob("Streaming_History_Audio_*.json"))
        ).values()  # the natural key and plays written twice (docs/deduplication.md, conftest)
    ]  # fmt: skip
    account = {
        tuple(r.values()): r
        for path in sorted(ACCOUNT_DIR.glob("StreamingHistory_music_*.json"))
        for r in load_rows(path)
        if r["msPlayed"] > 0
    }
    plays += [
        (datetime.fromisoformat(r["endTime"]).replace(tzinfo=UTC), r["artistName"], r["msPlayed"])
        for r in account.values()
    ]
    return plays


def _card_rows(built: Path, slug: str, card_name: str, values: dict) -> list[dict]:
    dashboard = next(d for d in load_dashboards() if d.slug == slug)
    card = next(c for c in dashboard.cards if c.name == card_name)
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        columns, rows = run_card(con, card, values)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_plays_per_year_match_the_export_files(built: Path) -> None:
    expected = Counter(str(end.astimezone(DENVER).year) for end, _, _ in _export_plays())
    rows = _card_rows(built, "overview", "plays_by_year", {"year": None})
    assert {row["year"]: row["plays"] for row in rows if row["plays"]} == dict(expected)
    # every year between the first and the last play has its row: 2019-2022 had none
    assert [row["year"] for row in rows] == [str(y) for y in range(2018, 2025)]
    (kpi,) = _card_rows(built, "overview", "plays", {"year": 2024})
    assert kpi["plays"] == expected["2024"]


def test_top_artist_matches_the_export_files(built: Path) -> None:
    counts = Counter(artist for _, artist, _ in _export_plays())
    (top_name, top_plays), (_, second) = counts.most_common(2)
    assert top_plays > second  # a clear winner, so the check cannot pass by a tie
    rows = _card_rows(built, "top-lists", "top_artists", {"year": None})
    assert (rows[0]["plays_rank"], rows[0]["artist"], rows[0]["plays"]) == (1, top_name, top_plays)


def test_minutes_of_the_last_24_hours_match_the_export_files(built: Path) -> None:
    plays = _export_plays()
    newest = max(end for end, _, _ in plays)
    window = [(artist, ms) for end, artist, ms in plays if end > newest - timedelta(hours=24)]
    assert window, "the fixture has plays in its last 24 hours"
    (kpi,) = _card_rows(built, "artists-last-24-hours", "minutes_played", {})
    assert kpi["minutes_played"] == round(sum(ms for _, ms in window) / 60000, 1)
    (artists,) = _card_rows(built, "artists-last-24-hours", "distinct_artists", {})
    assert artists["distinct_artists"] == len({artist for artist, _ in window})


def test_the_24_hours_shown_across_a_change_of_the_clock(built: Path, tmp_path: Path) -> None:
    """The 24 hours shown are the 24 real hours the figures count, also when the clocks
    went back in them (Denver, 3 Nov 2024 at 02:00): From is 13:00 the day before, not
    the newest play's 12:00 less 24 hours (helper-71)."""
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(built / "warehouse.duckdb", copy)
    newest = datetime(2024, 11, 3, 19, tzinfo=UTC)  # 12:00 in Denver, after the change
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "insert into dw.fact_track_played"
            " select fact.* replace ('dst-' || n as play_sid, ts as played_at,"
            "  ts - interval 3 minute as started_at,"
            "  timezone('America/Denver', ts) as played_at_local)"
            " from (select * from dw.fact_track_played limit 1) as fact"
            " cross join (select range as n, $newest - range * interval 30 minute as ts"
            "  from range(50))",
            {"newest": newest},
        )
        dashboard = next(d for d in load_dashboards() if d.slug == "artists-last-24-hours")
        card = next(c for c in dashboard.cards if c.name == "period")
        _, [(period_from, period_to)] = run_card(con, card, {})
    assert period_to == datetime(2024, 11, 3, 12)
    start = (newest - timedelta(hours=24)).astimezone(DENVER)
    assert start.utcoffset() != newest.astimezone(DENVER).utcoffset()  # the clock changed
    assert period_from == start.replace(tzinfo=None) == datetime(2024, 11, 2, 13)


def test_the_longest_session_starts_when_its_first_play_began(built: Path) -> None:
    """Behaviour's longest sessions: Started is the local time the session's first play
    began (it was that play's end, a few minutes late: helper-71; the model converts the
    start itself, so a change of the clock in between cannot shift it: helper-73);
    sessions are plays whose start is less than 30 minutes after the end of the play
    before, as the model counts."""
    sessions: list[list[tuple[datetime, datetime]]] = []
    previous_end: datetime | None = None
    for end, _, ms in sorted(_export_plays()):
        start = end - timedelta(milliseconds=ms)
        if previous_end is not None and start - previous_end < timedelta(minutes=30):
            sessions[-1].append((start, end))
        else:
            sessions.append([(start, end)])
        previous_end = end
    longest = max(sessions, key=lambda s: max(e for _, e in s) - min(b for b, _ in s))
    first_start = min(b for b, _ in longest)
    row = _card_rows(built, "behaviour", "longest_sessions", {"year": None})[0]
    assert row["plays"] == len(longest)
    assert row["started_local"] == first_start.astimezone(DENVER).replace(tzinfo=None)


# -- the static report in a browser -----------------------------------------------------


@pytest.fixture(scope="module")
def enriched(tmp_path_factory: pytest.TempPathFactory, built: Path) -> Path:
    """The real exports with their 40 most played artists placed by a fake MusicBrainz,
    so that maps and genres have something to draw; then the report."""
    from typer.testing import CliRunner

    from music_tracker.cli import app
    from music_tracker.fakes.musicbrainz import FakeArtist, FakeMusicBrainz, standard_areas
    from music_tracker.settings import _cached_settings

    data_dir = tmp_path_factory.mktemp("enriched") / "data"
    shutil.copytree(built, data_dir)
    names = [name for (name,) in query(
        data_dir,
        "select artist_name from dw.dim_artist where artist_name is not null"
        " order by play_count desc, artist_name limit 40",
    )]  # fmt: skip
    areas = list(standard_areas().values())
    places = [a for a in areas if a.area_type in ("City", "Country", "District")]
    genres = [["indie rock", "rock"], ["jazz"], ["ambient", "electronic"], ["hip hop"], ["folk"]]
    fakes = [
        FakeArtist(
            mbid=f"00000000-0000-4000-8000-{i:012d}",
            name=name,
            area=places[i % len(places)].area_id,
            genres=genres[i % len(genres)],
        )
        for i, name in enumerate(names)
    ]
    runner = CliRunner()
    with FakeMusicBrainz(fakes, min_interval_s=0.01) as fake:
        env = {
            "MUSIC_TRACKER_MUSICBRAINZ_BASE": fake.base_url,
            "MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S": "0.03",
            "MUSIC_TRACKER_CONTACT": "owner@example.org",
        }
        os.environ.update(env)
        _cached_settings.cache_clear()
        try:
            for args in (["enrich", "--limit", "40"], ["transform"], ["report"]):
                result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
                assert result.exit_code == 0, result.output
        finally:
            for key in env:
                os.environ.pop(key)
            _cached_settings.cache_clear()
    return data_dir


# a table cell (or a one-row card's figure) whose text starts with a day
_ISO_CELL = re.compile(r"<(?:td|dd)[^>]*>(?:<a [^>]*>)?\d{4}-\d{2}-\d{2}")
_DAY_CELL = re.compile(r"<(?:td|dd)[^>]*>(?:<a [^>]*>)?\d{1,2} [A-Z][a-z]{2} \d{4}")


def test_report_command_writes_every_dashboard(enriched: Path, cli: Cli) -> None:
    result = cli_json(cli, "report", "--data-dir", str(enriched))
    assert result["dashboards"] == 15
    years = query(enriched, "select count(distinct year(date_sid)) from dw.agg_daily_listening")
    assert result["pages"] > 14 + years[0][0]
    report = enriched / "report"
    assert (report / "index.html").is_file() and (report / "assets" / "vega.js").is_file()
    # nothing is fetched at view time: no remote script, style or data in any page
    dated = 0
    for page in report.rglob("*.html"):
        text = page.read_text()
        assert "src='http" not in text and "href='http" not in text, page
        # a table writes a day as the headers do ("4 Nov 2023"), never as ISO
        assert not _ISO_CELL.search(text), (page, _ISO_CELL.search(text))
        dated += len(_DAY_CELL.findall(text))
    assert dated  # some table shows days: the check above can fail
    # masked names only: the seed's real names never reach a page
    masked = query(enriched, "select artist_name from dw.dim_artist where is_masked")
    assert not masked  # the shipped seed masks no one; the dbt unit tests pin the masking


def test_report_without_a_star_schema_says_what_to_do(cli: Cli) -> None:
    result = cli("report", expect=1)
    assert "run `music-tracker import`" in result.output


def test_report_tells_the_owner_what_to_run_and_where(built_copy: Path, cli: Cli) -> None:
    """The pages tell visitors what is missing; `report` tells the owner what to run: each
    instruction once, with the dashboards whose cards were empty for want of it (the real
    exports, never looked up in MusicBrainz, with no album data from Spotify's API)."""
    result = cli_json(cli, "report", "--data-dir", str(built_copy))
    hints = {hint["to_fill"]: hint["dashboards"] for hint in result["to_fill"]}
    assert len(hints) == len(result["to_fill"])  # each instruction once
    (enrich,) = [text for text in hints if "`music-tracker enrich`" in text]
    assert hints[enrich] == [
        "Tracks history - artist genre",
        "Tracks history - geography",
        "Artist",
        "Places",
        "Popularity and genres",
        "Year in review",
        "Coverage",
    ]
    # only cards that were empty: Overview has no card that needs MusicBrainz
    assert not any("Overview" in titles for titles in hints.values())
    (polls,) = [text for text in hints if "`music-tracker serve`" in text]
    assert hints[polls] == ["Coverage"]  # never polled: the history is the exports'
    said = " ".join(cli("report", "--data-dir", str(built_copy)).output.split())
    assert f"{enrich} empty on: {', '.join(hints[enrich])}" in said
    assert said.count("`music-tracker enrich`") == 1


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (apt-get install chromium); CI installs it",
)
def test_every_page_draws_its_charts_offline(enriched: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Chromium is required in CI (.ci/run installs it)"
    report = enriched / "report"
    shots = ARTIFACTS / "report"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    pages = [report / "index.html"]
    for folder in sorted(p for p in report.iterdir() if p.is_dir() and p.name != "assets"):
        variants = sorted(folder.glob("*.html"))
        pages += [folder / "index.html", *[v for v in variants if v.name != "index.html"][:1]]
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        remote: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))

        def offline(route) -> None:  # type: ignore[no-untyped-def]
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                remote.append(route.request.url)
                route.abort()

        page.route("**/*", offline)
        for path in pages:
            errors.clear()
            page.goto(path.as_uri())
            name = str(path.relative_to(report)).replace("/", "__").removesuffix(".html")
            if path.parent == report:
                assert page.locator("ul.dashboards li").count() == 15
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                continue
            page.evaluate("window.MT_DRAW_ALL && window.MT_DRAW_ALL()")  # off screen too
            page.wait_for_selector("body[data-rendered]", timeout=30_000)
            drawn = page.evaluate(
                """() => [...document.querySelectorAll('section.card')].map(s => ({
                    id: s.id, viz: s.className,
                    marks: s.querySelectorAll('svg path, svg rect, svg circle').length,
                    empty: !!s.querySelector('.empty'),
                    text: s.querySelector('.body').innerText.trim().length}))"""
            )
            page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
            for card in drawn:
                charted = not any(
                    k in card["viz"] for k in ("card-kpi", "card-table", "card-ranked")
                )
                if card["empty"]:
                    continue  # "No plays in this period." is a drawn answer too
                if charted and card["marks"] < 3:
                    problems.append(f"{name}: {card['id']} drew {card['marks']} marks")
                if not charted and not card["text"]:
                    problems.append(f"{name}: {card['id']} shows nothing")
            problems += [f"{name}: {e}" for e in errors]
            problems += [f"{name}: {e}" for e in page.evaluate("window.MT_ERRORS || []")]
        browser.close()
    assert not remote, f"pages tried to reach the network: {remote[:5]}"
    assert not problems, problems
    # the maps and genres drew for real on the enriched data
    for slug in ("tracks-history-geography", "places", "tracks-history-artist-genre"):
        assert (shots / f"{slug}__index.png").stat().st_size > 20_000


def test_page_names_are_safe_and_unique(built: Path) -> None:
    from music_tracker.reporting.static_site import _slug, variants

    assert [_slug(n) for n in ("Björk", "AC/DC", "宇多田ヒカル")] == ["bjork", "ac-dc", "value"]
    artist = next(d for d in load_dashboards() if d.slug == "artist")
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        pages = variants(con, artist, [2024, 2023, 2018])
    stems = [stem for stem, _, _ in pages]
    assert len(stems) == len(set(stems)) == 15 and stems[0] == "index"


def test_coverage_counts_the_rows_set_aside_as_status_does(built: Path) -> None:
    """Coverage's "Rows set aside and why" on the real exports shows what the import
    summary and `status` report: 346 rows of 0 ms, stored but not plays (music and other
    content alike), not "Nothing set aside"."""
    with duckdb.connect(str(built / "warehouse.duckdb"), read_only=True) as con:
        reported = status(con)["set_aside_rows"]
    rows = _card_rows(built, "coverage", "set_aside", {})
    shown: Counter[str] = Counter()
    for row in rows:
        shown[row["reason"]] += row["rows"]
    assert dict(shown) == reported
    assert sum(reported.values()) == 346
    # per source: the extended history's music rows and its podcasts' and videos' rows
    sources = {row["source"] for row in rows}
    assert "Spotify extended history" in sources


def test_podcasts_add_up_to_the_plays_kept_apart(built: Path) -> None:
    """The Podcasts dashboard on the real exports: hours per show, episodes started and
    finished, the clock and the shows found each year agree with the podcast plays."""
    podcasts = query(
        built,
        "select show_name, item_name, ms_played, reason_end, year(played_at_local)"
        " from dw.fact_other_played where content_type = 'podcast'",
    )
    assert len(podcasts) > 100
    hours = {
        row["show_name"]: row["hours"]
        for row in _card_rows(built, "podcasts", "hours_per_show", {})
    }
    totals: dict[str, int] = {}
    for show, _, ms, _, _ in podcasts:
        totals[show] = totals.get(show, 0) + ms
    top = max(totals, key=lambda show: totals[show])
    assert hours[top] == round(totals[top] / 3_600_000, 1)
    episodes = {r["show_name"]: r for r in _card_rows(built, "podcasts", "episodes", {})}
    started = {item for show, item, *_ in podcasts if show == top}
    finished = {item for show, item, _, end, _ in podcasts if show == top and end == "trackdone"}
    told = any(end is not None for show, _, _, end, _ in podcasts if show == top)
    assert (episodes[top]["episodes_started"], episodes[top]["episodes_finished"]) == (
        len(started),
        len(finished) if told else None,
    )
    # a show whose plays say nothing of how they ended (account data) has no count of
    # finished episodes, not 0 (helper-64)
    silent = {show for show, *_ in podcasts} - {s for s, _, _, end, _ in podcasts if end}
    assert silent, "the real exports have shows known from the account data alone"
    assert all(episodes[show]["episodes_finished"] is None for show in silent & set(episodes))
    clock = _card_rows(built, "podcasts", "hour_by_weekday", {})
    assert len(clock) == 7 * 24
    assert sum(r["minutes"] for r in clock) == pytest.approx(
        sum(ms for _, _, ms, _, _ in podcasts) / 60_000, abs=7 * 24
    )
    first_year: dict[str, int] = {}
    for show, _, _, _, year in podcasts:
        first_year[show] = min(year, first_year.get(show, year))
    found = {
        int(r["year"]): r["shows"] for r in _card_rows(built, "podcasts", "shows_discovered", {})
    }
    assert sum(found.values()) == len(first_year)
    discovered = {y: list(first_year.values()).count(y) for y in set(first_year.values())}
    # every year from the first show to the last, the ones without a new show at 0
    years = range(min(discovered), max(discovered) + 1)
    assert found == {y: discovered.get(y, 0) for y in years}


def _ranked(con: duckdb.DuckDBPyConnection, dashboard: Any, card: Any, mode: str | None) -> Any:
    """A ranked card's columns and rows as Metabase asks for them: ranked by ``mode`` (plays
    or time listened; None: the filter unset), the page filter on its first value."""
    values: dict[str, Any] = {"rank_by": mode}
    page = dashboard.page_filter
    if page is not None and page.kind == "text":
        (values[page.name],) = con.execute(page.options_sql).fetchone() or (None,)
    return values, run_card(con, card, values)


@pytest.mark.parametrize("which", ["built", "demo_report"])
def test_every_ranked_card_ranks_by_plays_or_by_time(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Every ranked card (rank:), on the real exports and on the demo's history (which
    has genres and places): Metabase's "plays" and "time listened" each give the top rows
    of that measure, numbered 1 to n, the measure never rising; unset, the filter's
    default; the bars show the measure ranked by. The static report's one query ("both")
    holds both orderings, each equal to Metabase's. Where the data makes the orderings
    differ they differ (on the real exports: Top lists, the year in review)."""
    data_dir: Path = request.getfixturevalue(which)
    differ, checked = set(), 0
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        for dashboard in load_dashboards():
            report = ranking.for_report(dashboard)
            for card, bound in zip(dashboard.cards, report.cards, strict=True):
                if card.rank is None:
                    continue
                where = f"{dashboard.slug}/{card.name}"
                answers = {}
                for key, _, mode in ranking.ORDERINGS:
                    values, (columns, rows) = _ranked(con, dashboard, card, mode)
                    at, rank = columns.index, ranking.RANK_COLUMNS[key]
                    measure = card.rank.plays if key == ranking.PLAYS else card.rank.time
                    assert [r[at(rank)] for r in rows] == list(range(1, len(rows) + 1)), where
                    assert len(rows) <= card.rank.top, where
                    shown = [r[at(measure)] for r in rows]
                    assert shown == sorted(shown, reverse=True), (where, key)
                    if "measure" in columns:  # Metabase's bars: the measure ranked by
                        assert [r[at("measure")] for r in rows] == shown, (where, key)
                    answers[key] = (columns, rows)
                flt = dashboard.rank_filter
                assert flt is not None
                default = next(k for k, _, mode in ranking.ORDERINGS if mode == flt.default)
                assert _ranked(con, dashboard, card, None)[1] == answers[default], where
                # the report's one query: both orderings, each Metabase's
                values.pop("rank_by")
                columns, both = run_card(con, bound, values)
                for way in ranking.orderings(bound, columns, both):
                    names, rows = answers[way.key]
                    label = next(c for c in names if c not in ranking.RANK_COLUMNS.values())
                    expected = [r[names.index(label)] for r in rows]
                    assert [r[way.columns.index(label)] for r in way.rows] == expected, where
                if answers[ranking.PLAYS][1] != answers[ranking.TIME][1]:
                    differ.add(where)
                checked += 1
    assert checked == sum(1 for d in load_dashboards() for c in d.cards if c.rank)
    if which == "built":
        assert {"top-lists/top_artists", "top-lists/top_tracks", "top-lists/top_albums",
                "year-in-review/top_artists", "year-in-review/top_tracks"} <= differ  # fmt: skip
    else:  # genres and places: the demo's artists are looked up
        assert {"tracks-history-artist-genre/genre_treemap", "places/cities"} <= differ


def test_a_history_of_podcasts_alone_is_told_why_there_is_no_report() -> None:
    """Podcasts imported and built, no song: the report has no music to draw and says so,
    not that nothing was imported ("holds no plays yet: import, then transform" sent the
    owner to do again what was done)."""
    import duckdb

    from music_tracker.reporting.static_site import _why_no_plays

    con = duckdb.connect()
    con.execute("create schema dw")
    con.execute("create table dw.agg_excluded_plays (play_count bigint)")
    con.execute("create table dw.fact_other_played (content_type varchar)")
    assert "import" in _why_no_plays(con)
    con.execute("insert into dw.fact_other_played values ('podcast'), ('podcast'), ('video')")
    said = _why_no_plays(con)
    assert "no music" in said and "3 podcast, audiobook or video plays" in said, said
