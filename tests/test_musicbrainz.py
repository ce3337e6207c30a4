"""MusicBrainz enrichment through the fake: right facts, the 1 request/s rule, resumable."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import stamina

from conftest import Cli, query
from music_tracker import warehouse
from music_tracker.fakes.musicbrainz import FakeArtist, FakeMusicBrainz, standard_areas
from music_tracker.lock import writer_lock
from music_tracker.settings import Settings, _cached_settings
from music_tracker.sources.http import Budget
from music_tracker.sources.musicbrainz import client as musicbrainz_client

AREAS = standard_areas()
AREA_BY_NAME = {area.name: area for area in AREAS.values()}
# (area, begin area, expected country code, expected city, expected state code)
PLACES = [
    ("Hollywood", None, "US", "Los Angeles", "US-CA"),
    ("Los Angeles", None, "US", "Los Angeles", "US-CA"),
    ("Manchester", None, "GB", "Manchester", "GB-ENG"),
    ("Toronto", None, "CA", "Toronto", "CA-ON"),
    ("Stockholm", None, "SE", "Stockholm", None),
    ("Japan", None, "JP", None, None),
    (None, "Toronto", "CA", "Toronto", "CA-ON"),
    (None, None, None, None, None),
]
GENRES = [["indie rock", "rock"], ["rock"], ["jazz"], ["hip hop", "rap"], []]
# The service's one request a second, compressed 100 times for the tests that look up many
# artists: the fake refuses more than one request per FAST_S (measured over ten), the client
# spaces them FAST_S * 1.05, production's margin. What the tests assert of the rate is what
# each side can know under any load: the client's own send times (it keeps the spacing),
# and the fake's count of requests per window. Not the gap between two arrivals: requests
# queue on a busy machine and arrive together (sent 40 ms apart, seen 2 ms apart).
# test_one_failing_artist_does_not_stop_the_run keeps the real second.
FAST_S = 0.01
CLIENT_MARGIN = 1.05


def _dataset(count: int) -> list[dict]:
    """count artists, split over the four ways of finding them (URL, ISRC, name, none)."""
    artists = []
    for i in range(count):
        place = PLACES[i % len(PLACES)]
        way = ("spotify_url", "isrc", "search", "missing")[min(i * 4 // count, 3)]
        artists.append(
            {
                "name": f"Artist Number {i:03d}",
                "spotify_id": f"sp{i:020d}",
                "isrc": f"QZAAA{i:07d}",
                "way": way,
                "area": place,
                "genres": GENRES[i % len(GENRES)],
                "type": "Person" if i % 3 == 0 else "Group",
            }
        )
    return artists


def _fake_artists(dataset: list[dict]) -> list[FakeArtist]:
    fakes = []
    for row in dataset:
        if row["way"] == "missing":
            continue
        area, begin, *_ = row["area"]
        fakes.append(
            FakeArtist(
                mbid=f"00000000-0000-4000-8000-{int(row['name'][-3:]):012d}",
                name=row["name"],
                artist_type=row["type"],
                area=AREA_BY_NAME[area].area_id if area else None,
                begin_area=AREA_BY_NAME[begin].area_id if begin else None,
                spotify_id=row["spotify_id"] if row["way"] == "spotify_url" else None,
                isrcs=[row["isrc"]] if row["way"] == "isrc" else [],
                genres=[]
                if row["type"] == "Person" and row["genres"] == ["jazz"]
                else row["genres"],
                tags=["jazz"] if row["type"] == "Person" and row["genres"] == ["jazz"] else [],
            )
        )
    return fakes


def _write_history(dataset: list[dict], folder: Path) -> None:
    """Plays of every artist: API pages (ids and ISRCs) and an extended export (names only)."""
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    items, extended = [], []
    for i, row in enumerate(dataset):
        played = start + timedelta(minutes=5 * i)
        if row["way"] in ("spotify_url", "isrc"):
            items.append(
                {
                    "played_at": played.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "context": None,
                    "track": {
                        "id": f"tr{i:020d}",
                        "name": f"Song {i}",
                        "duration_ms": 200_000,
                        "external_ids": {"isrc": row["isrc"]},
                        "artists": [{"id": row["spotify_id"], "name": row["name"]}],
                        "album": {"id": f"al{i:020d}", "name": f"Album {i}"},
                    },
                }
            )
        else:
            extended.append(
                {
                    "ts": played.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ms_played": 200_000,
                    "master_metadata_track_name": f"Song {i}",
                    "master_metadata_album_artist_name": row["name"],
                    "master_metadata_album_album_name": f"Album {i}",
                    "spotify_track_uri": None,
                    "reason_end": "trackdone",
                }
            )
    for page, first in enumerate(range(0, len(items), 50)):
        body = {"items": items[first : first + 50], "cursors": None, "limit": 50}
        (folder / f"recently-played-{page}.json").write_text(json.dumps(body))
    (folder / "Streaming_History_Audio_2026.json").write_text(json.dumps(extended))


@pytest.fixture
def musicbrainz_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MUSIC_TRACKER_CONTACT", "owner@example.org")
    _cached_settings.cache_clear()
    yield
    _cached_settings.cache_clear()


def _prepare(
    cli: Cli,
    data_dir: Path,
    dataset: list[dict],
    fake: FakeMusicBrainz,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_BASE", fake.base_url)
    monkeypatch.setenv(
        "MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S", str(fake.min_interval_s * CLIENT_MARGIN)
    )
    _cached_settings.cache_clear()
    _write_history(dataset, data_dir.parent / "history")
    cli("import", str(data_dir.parent / "history"))
    cli("transform")


def _assert_the_rate_kept(fake: FakeMusicBrainz, since: float, interval_s: float) -> None:
    """The client sent every request the fake saw, ``interval_s`` apart at least (its own
    clock); the fake counted no more than one per its interval over any window of ten
    (allowing the two that can arrive late and early at its edges), and refused none."""
    sent = musicbrainz_client.send_times(since)
    assert len(sent) == len(fake.log), (len(sent), len(fake.log))
    gaps = [later - earlier for earlier, later in itertools.pairwise(sent)]
    assert min(gaps) >= interval_s, min(gaps)
    window = fake.rate_window_s
    most = fake.most_requests_in(window)
    assert most <= window / fake.min_interval_s + 2, (most, window)
    assert all(r.status != 503 for r in fake.log)


def test_a_few_hundred_artists(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch, musicbrainz_env: None
) -> None:
    dataset = _dataset(200)
    with FakeMusicBrainz(_fake_artists(dataset), min_interval_s=FAST_S) as fake:
        _prepare(cli, data_dir, dataset, fake, monkeypatch)
        started = time.monotonic()
        result = json.loads(cli("enrich", "--json").stdout)
        _assert_the_rate_kept(fake, started, FAST_S * CLIENT_MARGIN)
        assert all(
            r.user_agent.startswith("music-tracker/") and "owner@example.org" in r.user_agent
            for r in fake.log
        )
    assert result["looked_up"] == 200
    assert result["matched_by"] == {"spotify_url": 50, "isrc": 50, "search": 50}
    assert result["missing"] == 50
    cli("transform")
    rows = {
        name: (country_code, country, continent, city, state, artist_type, genre, lat)
        for name, country_code, country, continent, city, state, artist_type, genre, lat in query(
            data_dir,
            "select artist_name, country_code, country, continent, city, state_province_code,"
            " artist_type, primary_genre, lat from dw.dim_artist",
        )
    }
    assert len(rows) == 200
    for row in dataset:
        code, country, continent, city, state, artist_type, genre, lat = rows[row["name"]]
        if row["way"] == "missing" or row["area"][2] is None:
            assert code is None and country == "Unknown" and continent == "Unknown"
            continue
        assert code == row["area"][2], row
        assert city == row["area"][3] and state == row["area"][4], row
        assert artist_type == row["type"]
        assert lat is not None
        expected_genres = row["genres"] or ["no genre defined"]
        assert genre in expected_genres
    # every fact row survives the joins, enriched or not
    ((facts,),) = query(data_dir, "select count(*) from dw.fact_track_played")
    assert facts == 200
    (usa,) = query(
        data_dir, "select continent from dw.dim_artist where country_code = 'US' limit 1"
    )
    assert usa == ("North America",)


def test_requests_that_queue_on_the_way_are_neither_refused_nor_miscounted() -> None:
    """A busy machine: every other request reaches the fake 95 ms late, just before the
    next one (sent 105 ms after it). Two arrivals come closer than the service's interval,
    yet the client kept its spacing: no request is refused, and the rate is told as it was.
    At a tenth of the real second: a round trip under load must stay below the interval."""
    artists = _fake_artists(_dataset(8))
    interval = FAST_S * 10
    with FakeMusicBrainz(artists, min_interval_s=interval) as fake:
        fake.late_s, fake.late_every = interval * 0.95, 2
        client = musicbrainz_client.MusicBrainzClient(
            fake.base_url,
            "owner@example.org",
            timeout_s=10,
            budget=Budget(limit=100),
            min_interval_s=interval * CLIENT_MARGIN,
        )
        started = time.monotonic()
        with stamina.set_testing(True, attempts=1):  # a refusal fails, not retried
            for artist in artists * 4:
                assert client.artist(artist.mbid)["name"] == artist.name
        client.close()
        arrivals = sorted(r.at for r in fake.log)
        assert min(b - a for a, b in itertools.pairwise(arrivals)) < interval
        _assert_the_rate_kept(fake, started, interval * CLIENT_MARGIN)


def test_resume_retry_interval_and_faults(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch, musicbrainz_env: None
) -> None:
    dataset = _dataset(8)
    with FakeMusicBrainz(_fake_artists(dataset), min_interval_s=FAST_S) as fake:
        _prepare(cli, data_dir, dataset, fake, monkeypatch)
        first = json.loads(cli("enrich", "--limit", "3", "--json").stdout)
        assert first["looked_up"] == 3
        # interrupted after three: the rest is done next time, nothing twice
        fake.fail_next = [503, 503]  # survived with backoff
        fake.slow_s, fake.slow_next = 2.5, 1  # a timeout, retried
        monkeypatch.setenv("MUSIC_TRACKER_HTTP_TIMEOUT_S", "2")
        _cached_settings.cache_clear()
        with stamina.set_testing(True, attempts=4):
            second = json.loads(cli("enrich", "--json").stdout)
        assert second["looked_up"] == 5 and second["failed"] == 0
        lookups = [
            r.path for r in fake.log if r.path.startswith("/ws/2/artist/") and r.status == 200
        ]
        assert len(lookups) == len(set(lookups))
        # misses are not retried before the interval...
        third = json.loads(cli("enrich", "--json").stdout)
        assert third["looked_up"] == 0
    ((misses,),) = query(
        data_dir, "select count(*) from raw.musicbrainz_artists where status = 'missing'"
    )
    assert misses == 2
    monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_RETRY_DAYS", "0")
    _cached_settings.cache_clear()
    with FakeMusicBrainz(_fake_artists(dataset), min_interval_s=FAST_S) as fake:
        monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_BASE", fake.base_url)
        _cached_settings.cache_clear()
        fourth = json.loads(cli("enrich", "--json").stdout)
    assert fourth["looked_up"] == 2  # ...and are after it


def test_a_short_interval_is_refused_for_the_real_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S", "0.5")
    with pytest.raises(ValueError, match="one request a second"):
        Settings()
    monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_BASE", "http://127.0.0.1:9/ws/2")
    assert Settings().musicbrainz_min_interval_s == 0.5


def test_enrich_needs_the_star_schema(
    cli: Cli, data_dir: Path, shared: Path, musicbrainz_env: None
) -> None:
    from conftest import EXTENDED_DIR

    cli("import", str(EXTENDED_DIR / "Streaming_History_Audio_2018.json"))
    result = cli("enrich", expect=1)
    assert "run `music-tracker transform` first" in result.output


def test_one_failing_artist_does_not_stop_the_run(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch, musicbrainz_env: None
) -> None:
    """At the real rate: the production interval keeps a second between requests, and
    another writer gets its turn in the middle of the run."""
    dataset = _dataset(4)  # one artist per way of finding it
    with FakeMusicBrainz(_fake_artists(dataset)) as fake:
        assert fake.min_interval_s == 1.0
        _prepare(cli, data_dir, dataset, fake, monkeypatch)
        monkeypatch.delenv("MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S")
        _cached_settings.cache_clear()
        fake.fail_next = [500, 500, 500]  # the first artist's lookup fails every retry
        # another writer (a scheduled poll) two seconds into the run gets its turn between
        # two lookups: enrich holds the warehouse only to store each one
        turn: dict[str, float] = {}

        def another_writer() -> None:
            time.sleep(2.0)
            with (
                writer_lock(data_dir, "ingest flow", wait_s=10),
                warehouse.connect(data_dir / "warehouse.duckdb"),
            ):
                turn["at"] = time.monotonic()

        other = threading.Thread(target=another_writer)
        started = time.monotonic()
        other.start()
        with stamina.set_testing(True, attempts=3):
            result = json.loads(cli("enrich", "--json").stdout)
        finished = time.monotonic()
        other.join()
        assert started < turn["at"] < finished - 1.0, (started, turn, finished)
        # the real rule: a second and a bit between sends, one a second as the service counts
        assert len(fake.log) >= 8
        _assert_the_rate_kept(fake, started, musicbrainz_client.MIN_INTERVAL_S)
    assert result["failed"] == 1
    assert result["looked_up"] == 3
    ((stored,),) = query(data_dir, "select count(*) from raw.musicbrainz_artists")
    assert stored == 3  # the failure is not recorded as a miss: it is tried again next run
