"""`music-tracker metabase provision` against a fake Metabase that speaks real HTTP.

The fake checks every request against the OpenAPI subset in ../shared/specs/metabase and
answers in the shapes of the recorded real responses; it opens the serving copy read-only
like the DuckDB driver, and its public dashboard cards run their SQL on that copy.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from conftest import SHARED, Cli, query
from music_tracker.fakes.metabase import FakeMetabase
from music_tracker.metabase.client import MetabaseError
from music_tracker.metabase.embed import LINKS_CADDY, LINKS_JSON
from music_tracker.metabase.handoff import serving_copies
from music_tracker.metabase.provision import provision
from music_tracker.publish import publish
from music_tracker.reporting.definitions import Dashboard, load_dashboards
from music_tracker.settings import Settings
from music_tracker.transform import write_manifest

SPEC = SHARED / "specs" / "metabase" / "metabase-openapi-subset.json"
ADMIN = {"email": "owner@example.com", "password": "a-long-Passw0rd-for-tests"}


@pytest.fixture
def data_dir(built_copy: Path) -> Path:
    return built_copy


@pytest.fixture
def fake(data_dir: Path) -> Iterator[FakeMetabase]:
    with FakeMetabase(spec=SPEC, path_map={"/serving": str(data_dir / "serving")}) as server:
        yield server
    assert server.rejected == []  # every request the code made matched the spec


def _settings(data_dir: Path, url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "metabase_url": url,
        "metabase_site_url": "https://music.example.com",
        "metabase_admin_email": ADMIN["email"],
        "metabase_admin_password": ADMIN["password"],
        "metabase_wait_s": 10,
        "serving_grace_minutes": 0,
    }
    return Settings(**(values | extra))


def _fast(_: float) -> None:  # the provisioner's polling, compressed
    time.sleep(0.01)


@pytest.fixture
def manifest(data_dir: Path) -> Path:
    return write_manifest(Settings(data_dir=data_dir))


def _provision(settings: Settings, dashboards: list[Dashboard] | None = None, **kw: Any) -> Any:
    return provision(
        settings, dashboards or load_dashboards(), sleep=_fast, **({"manifest": None} | kw)
    )


def _state(fake: FakeMetabase) -> dict[str, Any]:
    """What a visitor or an admin could see change (not timestamps)."""

    def strip(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in ("updated_at", "created_at")}

    return copy.deepcopy(
        {
            "settings": fake.settings,
            "databases": {i: strip(d.row) for i, d in fake.databases.items()},
            "collections": fake.collections,
            "cards": {i: strip(c) for i, c in fake.cards.items()},
            "dashboards": {
                i: {**strip(d), "dashcards": [strip(dc) for dc in d["dashcards"]]}
                for i, d in fake.dashboards.items()
            },
            "fields": {
                (t["name"], f["name"]): strip(f)
                for d in fake.databases.values()
                for t in d.tables
                for f in t["fields"]
            },
        }
    )


def test_a_new_instance_is_set_up_with_every_dashboard_and_public_links(
    fake: FakeMetabase, data_dir: Path, manifest: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "METABASE_URL": fake.root_url,
        "METABASE_SITE_URL": "https://music.example.com",
        "METABASE_ADMIN_EMAIL": ADMIN["email"],
        "METABASE_ADMIN_PASSWORD": ADMIN["password"],
    }.items():
        monkeypatch.setenv(f"MUSIC_TRACKER_{key}", value)
    cli("publish")
    result = json.loads(cli("metabase", "provision", "--json").stdout)
    assert ADMIN["password"] not in json.dumps(result)
    assert result["set_up"] and fake.users == {ADMIN["email"]: ADMIN["password"]}
    assert fake.settings["enable-public-sharing"] is True
    assert fake.settings["site-url"] == "https://music.example.com"

    (database,) = fake.databases.values()
    copy_name = serving_copies(data_dir / "serving")[-1].name
    assert database.row["engine"] == "duckdb"
    details = database.row["details"]
    assert details["database_file"] == f"/serving/{copy_name}"
    assert details["read_only"] is True and details["memory_limit"] == "384MB"
    assert database.opened == f"/serving/{copy_name}"  # held open, like the driver does

    dashboards = load_dashboards()
    assert len(fake.dashboards) == len(dashboards)
    assert len(fake.cards) == sum(len(d.cards) for d in dashboards)
    for definition in dashboards:
        made = next(d for d in fake.dashboards.values() if d["name"] == definition.title)
        assert made["public_uuid"] and made["width"] == "full"
        assert [p["slug"] for p in made["parameters"]] == [f.name for f in definition.filters]
        by_card = {fake.cards[dc["card_id"]]["name"]: dc for dc in made["dashcards"]}
        for card in definition.cards:
            dashcard = by_card[card.title]
            assert (dashcard["row"], dashcard["col"], dashcard["size_x"], dashcard["size_y"]) == (
                card.layout.row,
                card.layout.col,
                card.layout.width,
                card.layout.height,
            )
            wired = {m["target"][1][1] for m in dashcard["parameter_mappings"]}
            assert wired == card.tags()  # every filter a card uses is wired to it
            stored = fake.cards[dashcard["card_id"]]["dataset_query"]["stages"][0]
            assert set(stored.get("template-tags", {})) == card.tags()

    links = json.loads((data_dir / LINKS_JSON).read_text())
    assert set(links) == {d.slug for d in dashboards} == set(result["public_links"])
    assert links["overview"]["url"].startswith("https://music.example.com/public/dashboard/")
    caddy = (data_dir / LINKS_CADDY).read_text()
    assert f"redir /dashboards/overview /public/dashboard/{links['overview']['uuid']}" in caddy
    # a snippet per dashboard for the owner's own pages: the public link, sized to its grid
    for definition in dashboards:
        snippet = (data_dir / "embeds" / f"{definition.slug}.html").read_text()
        frame = re.fullmatch(
            r'<iframe src="([^"#]+)#bordered=false&amp;titled=false" title="([^"]+)" '
            r'width="100%" height="(\d+)" loading="lazy" [^>]*></iframe>\n',
            snippet,
        )
        assert frame, snippet
        assert frame.group(1) == links[definition.slug]["url"]
        assert frame.group(2) == definition.title
        bottom = max(c.layout.row + c.layout.height for c in definition.cards)
        assert int(frame.group(3)) >= 40 * bottom
    assert (data_dir / "embeds" / "index.html").read_text().count("<iframe") == len(dashboards)
    # public, for Caddy's user and for copying into the owner's site
    for public in (LINKS_JSON, LINKS_CADDY, *(f"embeds/{d.slug}.html" for d in dashboards)):
        assert oct((data_dir / public).stat().st_mode & 0o777) == "0o644", public

    # a visitor's view: the public dashboard and one card's rows, computed on the copy
    overview = httpx.get(f"{fake.root_url}/api/public/dashboard/{links['overview']['uuid']}")
    assert overview.status_code == 200
    plays = next(dc for dc in overview.json()["dashcards"] if dc["card"]["name"] == "Plays")
    year = next(p for p in overview.json()["parameters"] if p["slug"] == "year")
    answer = httpx.get(
        f"{fake.root_url}/api/public/dashboard/{links['overview']['uuid']}"
        f"/dashcard/{plays['id']}/card/{plays['card_id']}",
        params={"parameters": json.dumps([{"id": year["id"], "value": "1999-01-01~1999-12-31"}])},
    ).json()
    assert answer["status"] == "completed" and answer["data"]["rows"] == [[0]]
    everything = httpx.get(
        f"{fake.root_url}/api/public/dashboard/{links['overview']['uuid']}"
        f"/dashcard/{plays['id']}/card/{plays['card_id']}"
    ).json()
    assert everything["data"]["rows"][0][0] > 1000

    # the data model from dbt: descriptions, the foreign keys the driver cannot report
    track_sid = fake.field_by_name("fact_track_played", "track_sid")
    assert track_sid["semantic_type"] == "type/FK"
    assert track_sid["fk_target_field_id"] == fake.field_by_name("dim_track", "track_sid")["id"]
    assert fake.field_by_name("dim_track", "track_sid")["semantic_type"] == "type/PK"
    assert fake.table_by_name("fact_track_played")["description"]


def test_a_second_run_changes_nothing(fake: FakeMetabase, data_dir: Path, manifest: Path) -> None:
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    _provision(settings, manifest=manifest)
    before = _state(fake)
    fake.reset_log()
    again = _provision(settings, manifest=manifest)
    assert not again.changed and again.unchanged == len(fake.cards)
    assert _state(fake) == before
    # only a login, its logout and dbt-metabase's sync request: no object was written
    assert {(w.method, w.path.rstrip("/")) for w in fake.writes()} <= {
        ("POST", "/api/session"),
        ("DELETE", "/api/session"),
        ("POST", f"/api/database/{again.database_id}/sync_schema"),
    }


def test_a_changed_card_is_updated_in_place_and_a_removed_dashboard_archived(
    fake: FakeMetabase, data_dir: Path
) -> None:
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    dashboards = load_dashboards()
    first = _provision(settings, dashboards)
    ids = set(fake.cards)
    overview = next(d for d in dashboards if d.slug == "overview")
    changed_card = overview.cards[0].model_copy(
        update={"title": "Plays (all sources)", "sql": overview.cards[0].sql + "\n-- v2\n"}
    )
    changed = overview.model_copy(update={"cards": [changed_card, *overview.cards[1:]]})
    coverage = next(d for d in dashboards if d.slug == "coverage")
    edited = [changed if d is overview else d for d in dashboards if d is not coverage]

    second = _provision(settings, edited)
    assert second.updated == ["card overview/plays"]
    assert set(fake.cards) == ids  # updated in place, nothing new
    card = next(c for c in fake.cards.values() if c["name"] == "Plays (all sources)")
    assert card["dataset_query"]["stages"][0]["native"].endswith("-- v2")
    gone = next(d for d in fake.dashboards.values() if d["name"] == coverage.title)
    assert gone["archived"] and gone["public_uuid"] is None  # no longer public
    assert f"dashboard {coverage.title!r}" in second.archived
    assert sum(c["archived"] for c in fake.cards.values()) == len(coverage.cards)
    assert "coverage" not in json.loads((data_dir / LINKS_JSON).read_text())
    public = httpx.get(f"{fake.root_url}/api/public/dashboard/{first.links['coverage']['uuid']}")
    assert public.status_code == 404

    # back in the definitions: the cards come back (same ids), the dashboard is new
    third = _provision(settings, dashboards)
    assert set(fake.cards) == ids and not any(c["archived"] for c in fake.cards.values())
    assert "dashboard coverage" in third.created
    live = [d for d in fake.dashboards.values() if not d["archived"]]
    assert len(live) == len(dashboards)


def test_a_new_serving_copy_is_served_and_the_old_one_let_go(
    fake: FakeMetabase, data_dir: Path
) -> None:
    settings = _settings(data_dir, fake.root_url)
    old = publish(settings).path
    _provision(settings)
    (database,) = fake.databases.values()
    assert database.opened == f"/serving/{old.name}"
    # Metabase holds the old copy open: publishing never waits for it
    new = publish(settings)
    assert new.metabase == f"'Music Tracker' now reads {new.path.name}"
    assert database.row["details"]["database_file"] == f"/serving/{new.path.name}"
    assert database.opened == f"/serving/{new.path.name}"
    assert new.removed == [old.name] and not old.exists()  # grace period 0 in this test
    assert not _provision(settings).changed  # the provisioner agrees with what publish did


def test_publish_with_metabase_down_keeps_every_copy(data_dir: Path, fake: FakeMetabase) -> None:
    settings = _settings(data_dir, fake.root_url)
    first = publish(settings).path
    _provision(settings)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}"
    result = publish(settings.model_copy(update={"metabase_url": down}))
    assert result.metabase.startswith("not updated: Metabase at")
    assert result.removed == [] and first.exists()  # it may still be reading the old one


def test_wrong_credentials_on_an_instance_set_up_by_someone_else(
    fake: FakeMetabase, data_dir: Path
) -> None:
    fake.add_admin("someone@example.com", "their-password")
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    with pytest.raises(MetabaseError) as error:
        _provision(settings)
    message = str(error.value)
    assert "refused the login" in message and "MUSIC_TRACKER_METABASE_ADMIN_PASSWORD" in message
    assert "set up before" in message and ADMIN["password"] not in message
    assert not fake.databases and not fake.cards  # nothing half-done
    # with that instance's admin (or an API key) the second run finishes the job
    key = fake.add_api_key()
    done = _provision(settings.model_copy(update={"metabase_api_key": SecretStr(key)}))
    assert not done.set_up and len(fake.dashboards) == len(load_dashboards())


def test_setup_taken_by_someone_else_meanwhile(fake: FakeMetabase, data_dir: Path) -> None:
    fake.setup_race = ("first@example.com", "their-password")
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    with pytest.raises(MetabaseError, match="set up before, by someone else") as error:
        _provision(settings)
    assert ADMIN["password"] not in str(error.value)
    assert fake.users == {"first@example.com": "their-password"}  # theirs, not replaced
    # the owner of that instance's admin account finishes the job
    theirs = settings.model_copy(
        update={
            "metabase_admin_email": "first@example.com",
            "metabase_admin_password": SecretStr("their-password"),
        }
    )
    done = _provision(theirs)
    assert not done.set_up and len(fake.dashboards) == len(load_dashboards())


def test_a_starting_metabase_is_waited_for(data_dir: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = _settings(data_dir, f"http://127.0.0.1:{port}", metabase_wait_s=0.3)
    publish(settings)
    # nothing listens yet: connection refused until the wait is over, then a clear message
    with pytest.raises(MetabaseError, match=r"not up after 0 s .*run `music-tracker metabase"):
        _provision(settings)
    # it starts later (connection refused meanwhile), then answers 503 while it migrates
    fake = FakeMetabase(spec=SPEC, path_map={"/serving": str(data_dir / "serving")}, port=port)
    fake.starting_requests = 5

    def start_late() -> None:
        time.sleep(0.5)
        fake.__enter__()

    starter = threading.Thread(target=start_late)
    starter.start()
    try:
        done = _provision(settings.model_copy(update={"metabase_wait_s": 30}))
        assert done.set_up and len(fake.dashboards) == len(load_dashboards())
        assert fake.starting_requests == 0 and fake.rejected == []
    finally:
        starter.join()
        fake.__exit__()


def test_a_database_that_fails_to_sync_is_reported_and_the_next_run_finishes(
    fake: FakeMetabase, data_dir: Path
) -> None:
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    fake.fail_sync = True
    with pytest.raises(MetabaseError) as error:
        _provision(settings)
    assert "could not sync /serving/dw-" in str(error.value)
    assert "mounted at /serving" in str(error.value)
    assert not fake.cards
    fake.fail_sync = False
    done = _provision(settings)
    assert not done.set_up  # the admin from the first run is reused
    assert len(fake.cards) == sum(len(d.cards) for d in load_dashboards())


def test_the_fake_rejects_requests_outside_the_spec(fake: FakeMetabase) -> None:
    bad = [
        ("POST", "/api/card/", {"name": "no query"}),  # dataset_query etc. required
        ("GET", "/api/card/?f=everything", None),  # not in the enum
        ("GET", "/api/dashboard/abc", None),  # ids are integers
        ("PATCH", "/api/card/1", {}),  # no such method
        ("GET", "/api/nothing-here", None),
    ]
    for method, path, body in bad:
        answer = httpx.request(method, fake.root_url + path, json=body)
        assert answer.status_code in (400, 404), (method, path)
    assert len(fake.rejected) == len(bad)
    fake.rejected.clear()


def test_the_demo_provisions_its_fake_metabase(data_dir: Path) -> None:
    from music_tracker.demo.run import demo_metabase

    # the demo's step 8: publish, then the same provisioner on a fake checked against the spec
    result = demo_metabase(Settings(data_dir=data_dir), print, spec=SPEC)
    assert result["site"] == "https://music.example.com"
    assert set(result["public_links"]) == {d.slug for d in load_dashboards()}
    assert all(
        link["url"].startswith("https://music.example.com/public/dashboard/")
        for link in result["public_links"].values()
    )
    assert (data_dir / LINKS_JSON).is_file() and len(serving_copies(data_dir / "serving")) == 1


def _dashboard_named(fake: FakeMetabase, title: str) -> dict[str, Any]:
    return next(d for d in fake.dashboards.values() if d["name"] == title and not d["archived"])


def _dashcard(fake: FakeMetabase, dashboard: dict[str, Any], card_title: str) -> dict[str, Any]:
    return next(
        dc for dc in dashboard["dashcards"] if fake.cards[dc["card_id"]]["name"] == card_title
    )


def test_dashboards_read_in_metabase_as_in_the_report(fake: FakeMetabase, data_dir: Path) -> None:
    """Time axes, column titles and units, descriptions, a click from an artist to its
    dashboard, and year filters that offer only the years with something to draw: the fake
    checked every setting against the results of the card's SQL on the serving copy."""
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    result = _provision(settings)
    cards = {c["name"]: c["visualization_settings"] for c in fake.cards.values()}
    months = cards["Hours by month"]
    assert months["graph.x_axis.scale"] == "timeseries"
    assert months["graph.y_axis.title_text"] == "Hours (h)"
    assert months["column_settings"]['["name","hours"]'] == {
        "column_title": "Hours",
        "decimals": 1,  # as the report writes hours: "1.0" beside "35.2"
        "suffix": " h",
    }
    assert cards["Plays by year"]["graph.x_axis.scale"] == "ordinal"
    # the parts of the day turn from night to evening, as the query orders them
    assert cards["Hours by part of day"]["pie.sort_rows"] is False
    facts = cards["The artist"]["column_settings"]
    assert facts['["name","share_of_all_plays_pct"]']["column_title"] == "Share of all plays (%)"
    places = next(c for c in fake.cards.values() if c["name"] == "Plays by artist country")
    # what an empty map means, to a visitor (what the owner runs is not public)
    assert "have not been looked up" in places["description"]
    assert "music-tracker" not in places["description"]

    # the top artists link to the Artist dashboard, filtered on the artist clicked
    artist_page = _dashboard_named(fake, "Artist")
    artist_filter = next(p for p in artist_page["parameters"] if p["slug"] == "artist")
    top = _dashcard(fake, _dashboard_named(fake, "Top artists, tracks and albums"), "Top artists")
    click = top["visualization_settings"]["column_settings"]['["name","artist"]']["click_behavior"]
    assert (click["linkType"], click["targetId"]) == ("dashboard", artist_page["id"])
    assert set(click["parameterMapping"]) == {artist_filter["id"]}
    chart = _dashcard(fake, _dashboard_named(fake, "Artists, last 24 hours"), "Top artists")
    assert chart["visualization_settings"]["click_behavior"]["targetId"] == artist_page["id"]
    # following the click: the artist's dashboard answers for that artist
    links = result.links
    facts_card = _dashcard(fake, artist_page, "The artist")
    top_rows = httpx.get(
        f"{fake.root_url}/api/public/dashboard/{links['top-lists']['uuid']}"
        f"/dashcard/{top['id']}/card/{top['card_id']}"
    ).json()["data"]
    first_artist = top_rows["rows"][0][[c["name"] for c in top_rows["cols"]].index("artist")]
    answer = httpx.get(
        f"{fake.root_url}/api/public/dashboard/{links['artist']['uuid']}"
        f"/dashcard/{facts_card['id']}/card/{facts_card['card_id']}",
        params={"parameters": json.dumps([{"id": artist_filter["id"], "value": [first_artist]}])},
    ).json()
    assert answer["status"] == "completed" and answer["data"]["rows"][0][2] == 1  # rank 1

    _check_periods(fake, data_dir, result.links)
    _check_rankings(fake, result.links)


def _public_rows(
    fake: FakeMetabase, link: dict[str, Any], dashcard: dict[str, Any], given: dict[str, Any]
) -> list[dict[str, Any]]:
    """A visitor's rows of one dashcard, with parameter values by id."""
    answer = httpx.get(
        f"{fake.root_url}/api/public/dashboard/{link['uuid']}"
        f"/dashcard/{dashcard['id']}/card/{dashcard['card_id']}",
        params={"parameters": json.dumps([{"id": k, "value": [v]} for k, v in given.items()])},
    ).json()
    assert answer["status"] == "completed", answer
    names = [col["name"] for col in answer["data"]["cols"]]
    return [dict(zip(names, row, strict=True)) for row in answer["data"]["rows"]]


def _check_rankings(fake: FakeMetabase, links: dict[str, Any]) -> None:
    """Every dashboard with a ranked card has a Rank by filter (plays or time listened, one
    at a time, its default the definition's), wired to every ranked card and to nothing
    else; no card's tag is left unwired anywhere. A visitor's choice reorders the rows,
    and a chart's bars show the measure ranked by."""
    assert fake.unwired_tags() == []
    ranked = 0
    for definition in load_dashboards():
        flt = definition.rank_filter
        assert (flt is None) == (not any(card.rank for card in definition.cards)), definition.slug
        if flt is None:
            continue
        made = _dashboard_named(fake, definition.title)
        (parameter,) = [p for p in made["parameters"] if p["slug"] == flt.name]
        assert parameter["type"] == "string/=" and parameter["isMultiSelect"] is False
        assert parameter["default"] == [flt.default]
        assert parameter["values_source_config"]["values"] == ["plays", "time listened"]
        for card in definition.cards:
            dashcard = _dashcard(fake, made, card.title)
            wired = [m["target"] for m in dashcard["parameter_mappings"]
                     if m["parameter_id"] == parameter["id"]]  # fmt: skip
            assert wired == ([["variable", ["template-tag", flt.name]]] if card.rank else [])
            if card.rank:
                tags = fake.cards[dashcard["card_id"]]["dataset_query"]["stages"][0]
                assert tags["template-tags"][flt.name]["type"] == "text"
                ranked += 1
    assert ranked == sum(1 for d in load_dashboards() for c in d.cards if c.rank)
    # a visitor: Top lists by time listened, by plays, and unset (the default, plays)
    board = _dashboard_named(fake, "Top artists, tracks and albums")
    rank_by = next(p["id"] for p in board["parameters"] if p["slug"] == "rank_by")
    top = _dashcard(fake, board, "Top artists")
    by_time = _public_rows(fake, links["top-lists"], top, {rank_by: "time listened"})
    by_plays = _public_rows(fake, links["top-lists"], top, {rank_by: "plays"})
    assert [r["time_rank"] for r in by_time] == list(range(1, len(by_time) + 1))
    assert [r["hours"] for r in by_time] == sorted((r["hours"] for r in by_time), reverse=True)
    assert [r["plays_rank"] for r in by_plays] == list(range(1, len(by_plays) + 1))
    assert _public_rows(fake, links["top-lists"], top, {}) == by_plays
    assert [r["artist"] for r in by_time] != [r["artist"] for r in by_plays]
    # Last 24 hours: its bars, by time unless asked for plays, show what they rank by
    board = _dashboard_named(fake, "Artists, last 24 hours")
    rank_by = next(p["id"] for p in board["parameters"] if p["slug"] == "rank_by")
    chart = _dashcard(fake, board, "Top artists")
    settings = fake.cards[chart["card_id"]]["visualization_settings"]
    assert settings["graph.metrics"] == ["measure"]
    assert settings["column_settings"]['["name","minutes_played"]']["suffix"] == " min"
    unset = _public_rows(fake, links["artists-last-24-hours"], chart, {})
    assert [r["measure"] for r in unset] == [r["minutes_played"] for r in unset]
    asked = _public_rows(fake, links["artists-last-24-hours"], chart, {rank_by: "plays"})
    assert [r["measure"] for r in asked] == [r["plays"] for r in asked]
    assert [r["plays_rank"] for r in asked] == list(range(1, len(asked) + 1))
    # and the check above would see a mapping that went missing
    chart["parameter_mappings"] = []
    assert fake.unwired_tags() == ["Artists, last 24 hours / Top artists: rank_by"]


def _check_periods(fake: FakeMetabase, data_dir: Path, links: dict[str, Any]) -> None:
    """Every dashboard with a year filter takes a date range in Metabase (Year in review,
    a review of one year against the year before, keeps its year): a date filter wired to
    the play's day in every card that uses it, the others all time and saying so."""
    date_field = fake.field_by_name("dim_date", "date")
    assert date_field["base_type"] == "type/Date"
    newest = query(
        data_dir,
        "select max(year_num) from dw.dim_date where date_sid in"
        " (select date_sid from dw.fact_track_played)",
    )[0][0]
    periods = set()
    for definition in load_dashboards():
        made = _dashboard_named(fake, definition.title)
        by_slug = {p["slug"]: p for p in made["parameters"]}
        for flt in definition.filters:
            if flt.kind != "year":
                continue
            parameter = by_slug[flt.name]
            # "current": the newest year with plays (with something to draw, when the
            # filter lists its years), else all time
            years = (
                [y for (y,) in query(data_dir, flt.options_query())]
                if flt.options_sql
                else [newest]
            )
            current = max(years, default=None) if flt.default == "current" else None
            if definition.slug == "year-in-review":
                assert parameter["type"] == "number/=" and parameter["default"] == [current]
                continue
            periods.add(definition.slug)
            assert (parameter["type"], parameter["sectionId"]) == ("date/all-options", "date")
            assert "values_source_config" not in parameter  # a range, not a list of years
            if current is not None:  # that year, whole
                assert parameter["default"] == f"{current}-01-01~{current}-12-31"
            else:
                assert "default" not in parameter  # all time
            for dashcard in made["dashcards"]:
                card = fake.cards[dashcard["card_id"]]
                stage = card["dataset_query"]["stages"][0]
                wired = [m for m in dashcard["parameter_mappings"]
                         if m["parameter_id"] == parameter["id"]]  # fmt: skip
                if flt.name not in stage.get("template-tags", {}):
                    assert wired == [], card["name"]
                    assert "All time" in (card["description"] or ""), card["name"]
                    continue
                assert [m["target"] for m in wired] == [
                    ["dimension", ["template-tag", flt.name]]
                ], card["name"]
                tag = stage["template-tags"][flt.name]
                assert tag["type"] == "dimension" and tag["widget-type"] == "date/all-options"
                assert tag["dimension"][:2] == ["field", date_field["id"]], card["name"]
                assert f"from dw.dim_date where {{{{{flt.name}}}}}" in stage["native"]
    assert len(periods) == 11  # every dashboard with a year but Year in review
    # a visitor picks a range: the cards answer for it, as the report does for a year
    board = _dashboard_named(fake, "Overview")
    (period,) = board["parameters"]
    plays = _dashcard(fake, board, "Plays")

    def plays_in(value: str | None) -> Any:
        given = [] if value is None else [{"id": period["id"], "value": value}]
        return httpx.get(
            f"{fake.root_url}/api/public/dashboard/{links['overview']['uuid']}"
            f"/dashcard/{plays['id']}/card/{plays['card_id']}",
            params={"parameters": json.dumps(given)},
        ).json()["data"]["rows"][0][0]

    def counted(where: str) -> Any:
        return query(
            data_dir,
            f"select count(*) from dw.fact_track_played as fact where {where}",
        )[0][0]

    assert plays_in(f"{newest}-01-01~{newest}-12-31") == counted(f"year(date_sid) = {newest}")
    assert plays_in(f"{newest}-03") == counted(f"strftime(date_sid, '%Y-%m') = '{newest}-03'")
    assert plays_in(None) == counted("true") > plays_in(f"{newest}-01-01~{newest}-12-31") > 0
    _check_grain_follows_the_range(fake, data_dir, links, newest)


def _check_grain_follows_the_range(
    fake: FakeMetabase, data_dir: Path, links: dict[str, Any], newest: int
) -> None:
    """The static report draws hours by day on the last 30 days and by month on longer
    periods (definitions: periods, instead); Metabase's one card does the same with the
    range chosen: by day on a month, by month on a year or all time, and says so."""
    board = _dashboard_named(fake, "Overview")
    (period,) = board["parameters"]
    hours = _dashcard(fake, board, "Hours by month")
    card = fake.cards[hours["card_id"]]
    assert "Hours by day on a period of 31 days or less." in card["description"]
    assert card["visualization_settings"]["graph.x_axis.title_text"] == "Month or day"

    def rows_in(value: str | None) -> list[list[Any]]:
        given = [] if value is None else [{"id": period["id"], "value": value}]
        answer = httpx.get(
            f"{fake.root_url}/api/public/dashboard/{links['overview']['uuid']}"
            f"/dashcard/{hours['id']}/card/{hours['card_id']}",
            params={"parameters": json.dumps(given)},
        ).json()
        assert answer["status"] == "completed", answer
        return [[str(value) for value in row] for row in answer["data"]["rows"]]

    def hours_by(grain: str, where: str) -> list[list[Any]]:
        """Every day or month of the range up to the newest play, 0 without plays."""
        return [
            [str(day), str(value)]
            for day, value in query(
                data_dir,
                f"select date_trunc('{grain}', date_sid)::date as x,"
                " round(coalesce(sum(ms_played), 0) / 3600000, 1) from dw.dim_date"
                " left join dw.agg_daily_listening using (date_sid)"
                " where date_sid between (select min(date_sid) from dw.agg_daily_listening)"
                " and (select max(date_sid) from dw.agg_daily_listening)"
                f" and {where} group by x order by x",
            )
        ]

    month = f"strftime(date_sid, '%Y-%m') = '{newest}-03'"
    by_day = rows_in(f"{newest}-03")
    assert by_day == hours_by("day", month) and len(by_day) > 1, by_day
    assert rows_in(f"{newest}-01-01~{newest}-12-31") == hours_by(
        "month", f"year(date_sid) = {newest}"
    )
    assert rows_in(None) == hours_by("month", "date_sid > date '1900-01-01'")


def test_the_fake_rejects_settings_metabase_could_not_draw(
    fake: FakeMetabase, data_dir: Path
) -> None:
    settings = _settings(data_dir, fake.root_url)
    publish(settings)
    _provision(settings)
    session = httpx.post(f"{fake.root_url}/api/session", json={
        "username": ADMIN["email"], "password": ADMIN["password"]}).json()["id"]  # fmt: skip
    headers = {"X-Metabase-Session": session}
    card = next(c for c in fake.cards.values() if c["name"] == "Plays per source per month")
    query = {
        "database": card["database_id"],
        "type": "native",
        # the old month: text, which Metabase cannot put on a time axis
        "native": {"query": "select strftime(date_sid, '%Y-%m') as month, 1 as plays "
                            "from dw.agg_daily_listening"},
    }  # fmt: skip
    artist_page = _dashboard_named(fake, "Artist")
    old_month = {"graph.dimensions": ["month"], "graph.metrics": ["plays"]}
    bad_settings = [
        old_month | {"graph.x_axis.scale": "timeseries"},
        {"graph.dimensions": ["no_such_column"], "graph.metrics": ["plays"]},
        {"graph.x_axis.scale": "sideways"},
        {"graph.colour": "red"},
        {"column_settings": {"plays": {"column_title": "Plays"}}},
        {"click_behavior": {"type": "link", "linkType": "dashboard", "targetId": 99999}},
        {"click_behavior": {
            "type": "link", "linkType": "dashboard", "targetId": artist_page["id"],
            "parameterMapping": {"nope": {"id": "nope", "source": {"type": "column", "id": "month"},
                                          "target": {"type": "parameter", "id": "nope"}}}}},
    ]  # fmt: skip
    for viz in bad_settings:
        answer = httpx.put(
            f"{fake.root_url}/api/card/{card['id']}",
            json={"dataset_query": query, "visualization_settings": viz},
            headers=headers,
        )
        assert answer.status_code == 400, viz
    good = {
        "graph.dimensions": ["month"],
        "graph.metrics": ["plays"],
        "graph.x_axis.scale": "ordinal",
    }
    answer = httpx.put(
        f"{fake.root_url}/api/card/{card['id']}",
        json={"dataset_query": query, "visualization_settings": good},
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    assert len(fake.rejected) == len(bad_settings)
    fake.rejected.clear()

    # parameters Metabase would refuse or could not filter with
    board = _dashboard_named(fake, "Overview")
    (period,) = board["parameters"]
    plays = _dashcard(fake, board, "Plays")
    tag = fake.cards[plays["card_id"]]["dataset_query"]["stages"][0]["template-tags"]["year"]
    text_field = fake.field_by_name("dim_artist", "artist_name")["id"]
    native = {"query": "select 1 as plays from dw.dim_date where {{year}}"}
    bad_tags = [
        tag | {"dimension": ["field", 999_999, None]},  # no such field
        tag | {"dimension": ["field", text_field, None]},  # a date filter on text
        tag | {"widget-type": "date/someday"},
        {k: v for k, v in tag.items() if k != "dimension"},
    ]
    for bad in bad_tags:
        answer = httpx.put(
            f"{fake.root_url}/api/card/{plays['card_id']}",
            json={"dataset_query": {**query, "native": native | {"template-tags": {"year": bad}}}},
            headers=headers,
        )
        assert answer.status_code == 400, bad
    wrong_mapping = {**plays, "parameter_mappings": [{
        "parameter_id": period["id"], "card_id": plays["card_id"],
        "target": ["variable", ["template-tag", "year"]]}]}  # fmt: skip
    bad_boards = [
        {"parameters": [period | {"type": "date/someday"}]},
        {"parameters": [period | {"default": "last Tuesday"}]},
        {"parameters": [period | {"type": "number/="}], "dashcards": [plays]},  # not a date
        {"parameters": [period], "dashcards": [wrong_mapping]},  # a field filter's target
    ]
    for body in bad_boards:
        answer = httpx.put(f"{fake.root_url}/api/dashboard/{board['id']}", json=body,
                           headers=headers)  # fmt: skip
        assert answer.status_code == 400, body
    assert len(fake.rejected) == len(bad_tags) + len(bad_boards)
    fake.rejected.clear()


def test_the_fake_reads_relative_periods_as_metabase_does() -> None:
    """A relative period is whole calendar units before the current one ("past3years" on
    2026-12-03: 2023 to 2025, not the 36 months to December), "~" adds the current unit
    whole; the fake's answers are what the dashboards' checks compare with."""
    from datetime import date

    from music_tracker.fakes.metabase import _date_bounds

    today = date(2026, 12, 3)
    cases = {
        "past3years": (date(2023, 1, 1), date(2026, 1, 1)),
        "past1years~": (date(2025, 1, 1), date(2027, 1, 1)),
        "past2months": (date(2026, 10, 1), date(2026, 12, 1)),
        "past2months~": (date(2026, 10, 1), date(2027, 1, 1)),
        "past2quarters": (date(2026, 4, 1), date(2026, 10, 1)),
        "past30days": (date(2026, 11, 3), date(2026, 12, 3)),
        "past30days~": (date(2026, 11, 3), date(2026, 12, 4)),
        "2022-12-15~2023-01-15": (date(2022, 12, 15), date(2023, 1, 16)),  # across years
        "~2018-12-31": (None, date(2019, 1, 1)),
        "2023-04-01~": (date(2023, 4, 1), None),
    }
    assert {value: _date_bounds(value, today) for value in cases} == cases


def test_a_card_stored_but_answered_too_late_is_not_made_twice(
    fake: FakeMetabase, data_dir: Path
) -> None:
    """Under load Metabase stores a card and answers after the client's timeout; the client
    sends the request again, which Metabase refuses (the entity id is taken): the card
    stands, once, and the run goes on."""
    settings = _settings(data_dir, fake.root_url, http_timeout_s=0.5)
    publish(settings)
    fake.answer_late("POST", "/api/card/", 1.5)
    result = _provision(settings)
    entity_ids = [card["entity_id"] for card in fake.cards.values()]
    created = [label for label in result.created if label.startswith("card ")]
    assert len(entity_ids) == len(set(entity_ids)) == len(created)
    refused = [r for r in fake.log if (r.method, r.path, r.status) == ("POST", "/api/card/", 400)]
    assert len(refused) == 1  # the request sent again
