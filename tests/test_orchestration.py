"""The flows against the fakes (Prefect's test harness), and `serve` as a real process."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina

from conftest import EXTENDED_DIR, SHARED, Cli, cli_json, completed_runs, query
from music_tracker.fakes.metabase import FakeMetabase
from music_tracker.fakes.spotify import FakeSpotify
from music_tracker.fakes.webhook import FakeWebhook
from music_tracker.orchestration import notify
from music_tracker.orchestration.serve import SERVER_SERVICES, prefect_environment
from music_tracker.settings import Settings
from music_tracker.sources.http import HttpError
from music_tracker.sources.spotify import auth

CLI = str(Path(sys.executable).with_name("music-tracker"))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prefect's test harness: a temporary API server and database for this module, set
    as `serve` sets its own: no analytics (the harness's server otherwise looks up its
    telemetry host, and tests reach nothing outside), the same trimmed services."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("prefect-home"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in {**prefect_environment(settings), **SERVER_SERVICES}.items():
            patch.setenv(key, value)
        from prefect.testing.utilities import prefect_test_harness

        with prefect_test_harness(server_startup_timeout=120):
            yield


Receiver = FakeWebhook  # the webhook the messages go to


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with FakeWebhook() as hook:
        yield hook


@pytest.fixture
def data_dir(built_2018_copy: Path) -> Path:
    """The 2018 export built: the flows build, publish and write the report of it after each
    poll, so a smaller real history (not the whole exports) keeps each run cheap."""
    return built_2018_copy


@pytest.fixture
def spotify() -> Iterator[FakeSpotify]:
    with FakeSpotify(seed=3, plays_per_day=300) as server:
        server.advance(timedelta(hours=3))
        yield server


def _environment(fake: FakeSpotify, data_dir: Path, **extra: str) -> dict[str, str]:
    values = {
        "MUSIC_TRACKER_DATA_DIR": str(data_dir),
        "MUSIC_TRACKER_SPOTIFY_API_BASE": fake.api_base,
        "MUSIC_TRACKER_SPOTIFY_ACCOUNTS_BASE": fake.accounts_base,
        "MUSIC_TRACKER_SPOTIFY_CLIENT_ID": "test-client",
        "MUSIC_TRACKER_HTTP_TIMEOUT_S": "2",
        "MUSIC_TRACKER_TASK_RETRIES": "2",
        "MUSIC_TRACKER_TASK_RETRY_DELAY_S": "0",
        "MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES": "0",
        "MUSIC_TRACKER_WRITER_WAIT_S": "0.5",
        # the real exports' tracks have no metadata yet: a few lookups per run, not 500
        "MUSIC_TRACKER_SPOTIFY_REQUESTS_PER_RUN": "10",
    }
    return values | extra


@pytest.fixture
def env(
    spotify: FakeSpotify, data_dir: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    values = _environment(spotify, data_dir, MUSIC_TRACKER_NOTIFY_WEBHOOK_URL=receiver.url)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    access, refresh = spotify.grant_tokens()
    now = datetime.now(UTC)
    auth.TokenStore(data_dir / "state").save(
        auth.Token(access, refresh, now + timedelta(hours=1), now)
    )
    return values


def _api_plays(data_dir: Path) -> int:
    return int(query(data_dir, "select count(*) from raw.spotify_api_plays")[0][0])


def test_a_failed_poll_is_retried_and_a_musicbrainz_outage_stops_nothing(
    harness: None,
    env: dict[str, str],
    spotify: FakeSpotify,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterName

    from music_tracker.orchestration.flows import ingest_flow

    spotify.inject("503")  # the first poll fails; the HTTP layer gives up at once here
    with socket.socket() as s:  # MusicBrainz is down: nothing listens there
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/ws/2"
    monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_BASE", down)
    monkeypatch.setenv("MUSIC_TRACKER_CONTACT", "tests@example.com")
    monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S", "0.01")
    with stamina.set_testing(True, attempts=1):
        result = ingest_flow(data_dir=str(data_dir))
    assert result["enrich"]["failed"] == 30 and result["enrich"]["found"] == 0  # went on
    assert result["ingest"]["new_plays"] > 0
    assert _api_plays(data_dir) == result["ingest"]["new_plays"]
    assert result["transform"]["succeeded"] > 0
    assert Path(result["publish"]["path"]).exists()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="ingest"))
        )
    assert max(run.run_count for run in runs) == 2  # failed once, retried by Prefect
    health = notify.load_health(Settings(data_dir=data_dir))
    assert health["ingest"]["failing"] is False and health["ingest"]["last_success"]


def test_a_lasting_failure_is_told_once_and_the_recovery_too(
    harness: None,
    env: dict[str, str],
    spotify: FakeSpotify,
    data_dir: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    cli: Cli,
) -> None:
    from music_tracker.orchestration.flows import ingest_flow

    monkeypatch.setenv("MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES", "100000")  # polls only
    spotify.inject(*["503"] * 30)  # Spotify keeps failing, the same way
    with stamina.set_testing(True, attempts=1):
        for _ in range(3):  # three scheduled runs in a row, same cause
            with pytest.raises(HttpError):
                ingest_flow(data_dir=str(data_dir))
    assert len(receiver.messages) == 1
    assert receiver.messages[0]["text"].startswith("ingest failed:")
    report = cli_json(cli, "status")  # what the owner sees
    assert report["flows"]["ingest"]["failing"] is True
    assert any(w.startswith("the ingest flow has been failing since") for w in report["warnings"])
    spotify.queued_faults.clear()
    ingest_flow(data_dir=str(data_dir))
    assert len(receiver.messages) == 2
    assert receiver.messages[1]["text"].startswith("ingest works again")


def test_a_second_flow_skips_or_waits_while_another_writes(
    harness: None, env: dict[str, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from music_tracker.orchestration.flows import ingest_flow, refresh_flow

    results: dict[str, Any] = {}
    # a real overlap: an ingest that stores plays and builds (several seconds)...
    first = threading.Thread(
        target=lambda: results.update(first=ingest_flow(data_dir=str(data_dir)))
    )
    first.start()
    from music_tracker.lock import holder

    deadline = time.monotonic() + 60  # a busy machine takes seconds to start a flow run
    while "ingest flow" not in holder(data_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    # ... while the hourly refresh is due: with a short wait it skips, saying why
    results["skipped"] = refresh_flow(data_dir=str(data_dir))
    # with a longer wait it waits for the writer, then runs
    monkeypatch.setenv("MUSIC_TRACKER_WRITER_WAIT_S", "120")
    results["waited"] = refresh_flow(data_dir=str(data_dir))
    first.join()
    assert "`ingest flow` (process" in results["skipped"]["skipped"]
    assert results["first"]["ingest"]["new_plays"] > 0 and "transform" in results["first"]
    # it ran after the ingest's build: nothing new arrived meanwhile, so it had nothing to do
    assert results["waited"] == {"skipped": "nothing arrived since the last build"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_WORKER_POLL = """
from docket import Docket
from docket.worker import Worker
from music_tracker.orchestration.prefect_server import poll_seconds, slow_down_the_worker
slow_down_the_worker(poll_seconds())
worker = Worker(Docket(name="probe", url="memory://"))
print(worker.minimum_check_interval.total_seconds(), worker.scheduling_resolution.total_seconds())
"""


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, "5.0 5.0"),  # Prefect's defaults: its fastest loops run every 5 s
        ({"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1"}, "1.0 1.0"),
        ({"PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2"}, "2.0 2.0"),
        # a disabled service does not count
        (
            {
                "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "2",
                "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
            },
            "5.0 5.0",
        ),
    ],
)
def test_the_prefect_server_worker_polls_as_often_as_its_fastest_service(
    settings: dict[str, str], expected: str
) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_POLL],
        env={**environment, **settings},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == expected  # docket's own default is 0.25 s


def test_serve_fires_the_schedule_and_stops_cleanly(
    spotify: FakeSpotify, data_dir: Path, tmp_path: Path
) -> None:
    port = _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MUSIC_TRACKER_", "PREFECT_"))},
        "MUSIC_TRACKER_DBT_TARGET_DIR": os.environ.get("MUSIC_TRACKER_DBT_TARGET_DIR", ""),
        **_environment(spotify, data_dir),
        # a schedule of a few seconds; no transform in this test (polls only)
        "MUSIC_TRACKER_INGEST_INTERVAL_MINUTES": "0.05",
        "MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES": "100000",
        "MUSIC_TRACKER_PREFECT_PORT": str(port),
        # Prefect's own loops, compressed: the scheduler plans runs, the runner polls
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    if not environment["MUSIC_TRACKER_DBT_TARGET_DIR"]:
        del environment["MUSIC_TRACKER_DBT_TARGET_DIR"]
    access, refresh = spotify.grant_tokens()
    now = datetime.now(UTC)
    auth.TokenStore(data_dir / "state").save(
        auth.Token(access, refresh, now + timedelta(hours=1), now)
    )
    stop_clock = threading.Event()

    def listen() -> None:  # the listener goes on: ten simulated minutes a second
        while not stop_clock.wait(1.0):
            spotify.advance(timedelta(minutes=10))

    clock = threading.Thread(target=listen, daemon=True)
    clock.start()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([CLI, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if completed_runs(api, "every-10-minutes") >= 2:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        else:
            pytest.fail(
                "the schedule did not fire twice:\n" + (tmp_path / "serve.log").read_text()[-3000:]
            )
        # the Prefect server it supervises dies (an out-of-memory kill): it comes back
        server = subprocess.run(
            ["pgrep", "-f", f"orchestration.prefect_server --host 127.0.0.1 --port {port}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        for pid in server:
            os.kill(int(pid), signal.SIGKILL)
        time.sleep(3)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        else:
            pytest.fail("the Prefect server was not restarted")
        assert "restarting it" in (tmp_path / "serve.log").read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        stop_clock.set()
        _stop(proc)
        log.close()
    assert _api_plays(data_dir) > 0  # the runs polled the fake Spotify and stored plays
    # nothing left behind: the Prefect server it started is gone with it
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
    leftovers = subprocess.run(
        ["pgrep", "-f", f"orchestration.prefect_server --host 127.0.0.1 --port {port}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert leftovers.stdout.strip() == ""


def test_a_command_that_writes_says_who_else_is_writing(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from music_tracker.lock import writer_lock

    cli("import", str(EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"))
    monkeypatch.setenv("MUSIC_TRACKER_LOCK_WAIT_S", "0.3")  # it waits that long, then 75
    monkeypatch.setenv("MUSIC_TRACKER_WRITER_WAIT_S", "0.3")  # enrich, before each write
    monkeypatch.setenv("MUSIC_TRACKER_CONTACT", "owner@example.org")
    with writer_lock(data_dir, "ingest flow", wait_s=0):
        for command in ("transform", "publish", "ingest", "enrich"):
            result = cli(command, expect=75)
            assert "`ingest flow` (process" in result.output, result.output
            again = (
                "the lookups stored so far are kept; run `music-tracker enrich` again"
                if command == "enrich"
                else f"run `music-tracker {command}` again when it has finished"
            )
            assert again in result.output
    cli("publish")  # free again


def test_run_is_the_whole_pipeline_once(
    harness: None, env: dict[str, str], data_dir: Path, cli: Cli
) -> None:
    result = cli_json(cli, "run")  # as a flow, on the harness's Prefect server
    assert result["ingest"]["new_plays"] > 0  # the fake Spotify's plays
    assert result["transform"]["succeeded"] > 0
    assert Path(result["publish"]["path"]).is_file()
    assert result["report"]["pages"] > 10 and (data_dir / "report" / "index.html").is_file()
    assert cli_json(cli, "status")["flows"]["pipeline"]["failing"] is False


# -- a hung dependency delays one run, by its timeouts; the next run goes on ----------------


def _timed(flow: Any, data_dir: Path) -> tuple[float, Any]:
    started = time.monotonic()
    try:
        result = flow(data_dir=str(data_dir))
    except Exception as exc:  # the run failed: what matters is that it ended
        result = exc
    return time.monotonic() - started, result


@pytest.fixture
def hang_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request waits at most 1 s for an answer; a network task is tried twice."""
    monkeypatch.setenv("MUSIC_TRACKER_HTTP_TIMEOUT_S", "1")
    monkeypatch.setenv("MUSIC_TRACKER_TASK_RETRIES", "1")


def test_a_hung_spotify_fails_one_run_within_its_timeouts(
    harness: None, hang_env: None, spotify: FakeSpotify, data_dir: Path, receiver: Receiver
) -> None:
    from music_tracker.orchestration.flows import ingest_flow

    spotify.hang()  # it accepts every connection and never answers
    with stamina.set_testing(True, attempts=2):
        seconds, result = _timed(ingest_flow, data_dir)
    assert isinstance(result, HttpError), result
    assert seconds < 30, seconds  # 2 tries x 2 requests x 1 s, plus the run's own start
    assert "timed out" in str(result) or "timeout" in str(result).lower(), str(result)
    assert receiver.messages and receiver.messages[0]["text"].startswith("ingest failed")
    spotify.release()
    seconds, result = _timed(ingest_flow, data_dir)
    assert isinstance(result, dict) and result["ingest"]["new_plays"] > 0, result


def test_a_hung_musicbrainz_delays_a_run_and_stops_nothing(
    harness: None,
    hang_env: None,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from music_tracker.fakes.musicbrainz import FakeMusicBrainz
    from music_tracker.orchestration.flows import ingest_flow

    with FakeMusicBrainz([], min_interval_s=0.01) as musicbrainz:
        monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_BASE", f"{musicbrainz.root_url}/ws/2")
        monkeypatch.setenv("MUSIC_TRACKER_CONTACT", "tests@example.com")
        monkeypatch.setenv("MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S", "0.01")
        monkeypatch.setenv("MUSIC_TRACKER_ENRICH_ARTISTS_PER_RUN", "3")
        musicbrainz.hang()
        with stamina.set_testing(True, attempts=1):
            seconds, result = _timed(ingest_flow, data_dir)
        assert isinstance(result, dict), result
        assert result["ingest"]["new_plays"] > 0 and "publish" in result  # it went on
        assert result["enrich"]["failed"] == 3 and result["enrich"]["found"] == 0, result
        # the hang costs its timeouts (3 artists, a request of 1 s each, tried once); the
        # build and publish after it take what a busy machine gives them, not counted
        built = result["transform"]["seconds"] + result["publish"]["seconds"]
        assert seconds - built < 45, (seconds, built)


@contextlib.contextmanager
def _metabase_provisioned(
    data_dir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeMetabase]:
    """The fake Metabase configured for every run (the 2 GB plan), the built history
    published and the dashboards provisioned on it."""
    spec = SHARED / "specs" / "metabase" / "metabase-openapi-subset.json"
    with FakeMetabase(spec=spec, path_map={"/serving": str(data_dir / "serving")}) as metabase:
        for key, value in {
            "MUSIC_TRACKER_METABASE_URL": metabase.root_url,
            "MUSIC_TRACKER_METABASE_SITE_URL": "https://music.example.com",
            "MUSIC_TRACKER_METABASE_ADMIN_EMAIL": "owner@example.com",
            "MUSIC_TRACKER_METABASE_ADMIN_PASSWORD": "a-long-Passw0rd-for-tests",
        }.items():
            monkeypatch.setenv(key, value)
        cli("publish")
        cli("metabase", "provision")
        yield metabase


def test_a_metabase_hung_on_the_repoint_fails_one_run_and_the_next_publishes(
    harness: None,
    hang_env: None,
    spotify: FakeSpotify,
    data_dir: Path,
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from music_tracker.orchestration.flows import ingest_flow

    monkeypatch.setenv("MUSIC_TRACKER_METABASE_WAIT_S", "1")
    with _metabase_provisioned(data_dir, cli, monkeypatch) as metabase:
        metabase.hang()
        spotify.advance(timedelta(hours=2))
        seconds, result = _timed(ingest_flow, data_dir)
        # the copy is published; Metabase is pointed at it by the next run
        assert isinstance(result, dict), result
        assert result["publish"]["metabase"].startswith("not updated"), result
        assert seconds < 60, seconds
        metabase.release()
        spotify.advance(timedelta(hours=2))
        seconds, result = _timed(ingest_flow, data_dir)
        assert isinstance(result, dict) and "now reads" in result["publish"]["metabase"], result


def test_with_metabase_the_hourly_refresh_writes_the_report_the_polls_left(
    harness: None, env: dict[str, str], spotify: FakeSpotify, data_dir: Path, cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """With Metabase configured a poll that builds publishes without the static report (the
    2 GB plan: the report is hourly). The poll has built what arrived by the time the
    hourly refresh runs, so the refresh writes the report alone; then, with nothing new,
    it does nothing."""
    from music_tracker.orchestration.flows import ingest_flow, refresh_flow
    from music_tracker.reporting.front_page import long_date

    index = data_dir / "report" / "index.html"
    with _metabase_provisioned(data_dir, cli, monkeypatch):
        spotify.advance(timedelta(hours=2))
        polled = ingest_flow(data_dir=str(data_dir))
        assert polled["ingest"]["new_plays"] > 0 and "publish" in polled, polled
        assert "report" not in polled and not index.exists()
        refreshed = refresh_flow(data_dir=str(data_dir))
        assert set(refreshed) == {"report"} and refreshed["report"]["pages"] > 0, refreshed
        newest = query(data_dir, "select max(played_at_local) from dw.fact_track_played")[0][0]
        # the front page's periods end at the newest play: the poll's, not 2018's
        assert f"to {long_date(newest.date())}" in index.read_text()
        assert refresh_flow(data_dir=str(data_dir)) == {
            "skipped": "nothing arrived since the last build"
        }
        # the next poll's build leaves it behind again; the refresh catches up
        written = index.stat().st_mtime_ns
        spotify.advance(timedelta(hours=2))
        assert "publish" in ingest_flow(data_dir=str(data_dir))
        assert index.stat().st_mtime_ns == written
        assert set(refresh_flow(data_dir=str(data_dir))) == {"report"}
        assert index.stat().st_mtime_ns > written


def _names_the_hung_run(data_dir: Path) -> bool:
    """Whether the unhealthy verdict names the run stuck in Running. On a busy machine the
    verdict can come before the hung run's process has started (18 s after the last poll,
    the schedule's next run still on its way): it then names the run before it, ended
    Completed (seen once in a CI run), and the next check, a second later, the hung one."""
    reasons = _health(data_dir).get("reasons") or [""]
    return "the last run is stuck in Running since" in reasons[0]


def _health(data_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((data_dir / "state" / "health.json").read_text()))
    except (OSError, ValueError):
        return {}


def _until(what: str, probe: Any, timeout_s: float, log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if probe():
            return time.monotonic() - started
        time.sleep(0.5)
    pytest.fail(f"{what} within {timeout_s:.0f} s:\n" + log.read_text()[-4000:])


def test_a_hung_run_is_stopped_told_and_the_schedule_goes_on(
    spotify: FakeSpotify, data_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """serve on a 6 s schedule; Spotify hangs and the client waits (no timeout of its own):
    unhealthy within three intervals, a message, the run stopped at its time limit, and
    runs resume with a recovery message once Spotify answers again."""
    from music_tracker.orchestration.healthcheck import verdict

    port = _free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MUSIC_TRACKER_", "PREFECT_"))},
        **_environment(spotify, data_dir),
        "MUSIC_TRACKER_INGEST_INTERVAL_MINUTES": "0.1",  # 6 s
        "MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES": "100000",  # polls only
        "MUSIC_TRACKER_HTTP_TIMEOUT_S": "600",  # the request itself would wait 10 minutes
        "MUSIC_TRACKER_RUN_TIMEOUT_MINUTES": "0.5",  # 30 s
        "MUSIC_TRACKER_WATCHDOG_INTERVAL_S": "1",
        "MUSIC_TRACKER_NOTIFY_WEBHOOK_URL": receiver.url,
        "MUSIC_TRACKER_PREFECT_PORT": str(port),
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    if os.environ.get("MUSIC_TRACKER_DBT_TARGET_DIR"):
        environment["MUSIC_TRACKER_DBT_TARGET_DIR"] = os.environ["MUSIC_TRACKER_DBT_TARGET_DIR"]
    access, refresh = spotify.grant_tokens()
    now = datetime.now(UTC)
    auth.TokenStore(data_dir / "state").save(
        auth.Token(access, refresh, now + timedelta(hours=1), now)
    )
    settings = Settings(data_dir=data_dir)
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen([CLI, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)

    told_before = 0

    def texts() -> list[str]:
        return [message["text"] for message in receiver.messages[told_before:]]

    def last_poll() -> str | None:
        return notify.load_health(settings).get("ingest", {}).get("last_poll")

    try:
        _until("no poll", lambda: last_poll() is not None, 150, log_path)
        # on a busy machine the first poll can come after three intervals: the next
        # check (every second) finds it
        _until("not healthy after the poll", lambda: _health(data_dir).get("healthy"), 10, log_path)
        assert verdict(data_dir) == (True, "healthy")
        # on a busy machine the first poll can be late enough to be told (and its recovery):
        # that episode is over; what follows is about the hang alone
        told_before = len(texts())
        spotify.hang()  # accepts every request, answers none
        hung_after = last_poll()
        waited = _until(
            "not unhealthy",
            lambda: _health(data_dir).get("healthy") is False,
            60,
            log_path,
        )
        stale_for = datetime.now(UTC) - datetime.fromisoformat(hung_after or "")
        # three intervals (18 s) after the last poll, and a watchdog check (1 s)
        assert stale_for < timedelta(seconds=18 + 3), (stale_for, waited)
        reason = _health(data_dir)["reasons"][0]
        assert reason.startswith("no successful poll of Spotify for"), reason
        _until("the hung run not named", lambda: _names_the_hung_run(data_dir), 20, log_path)
        healthy, why = verdict(data_dir)
        assert not healthy and why.startswith("no successful poll of Spotify"), why
        _until(
            "no liveness message",
            lambda: any("schedule failed" in t for t in texts()),
            10,
            log_path,
        )
        # the run is stopped at its time limit, reported crashed with why, told once
        _until(
            "the hung run was not stopped",
            lambda: any("timed out" in t for t in texts()),
            40,
            log_path,
        )
        stopped = [t for t in texts() if "timed out" in t]
        assert len(stopped) == 1 and stopped[0].startswith(
            "ingest failed: timed out: the ingest run"
        )
        assert "was still Running after 30 seconds" in stopped[0], stopped
        spotify.release()
        _until("no poll after the release", lambda: last_poll() != hung_after, 60, log_path)
        _until("not healthy again", lambda: _health(data_dir).get("healthy") is True, 30, log_path)
        _until(
            "no recovery message",
            lambda: any(t.startswith("schedule works again") for t in texts()),
            10,
            log_path,
        )
        # one message per cause: the liveness failure once, however many checks saw it
        assert sum("schedule failed" in t for t in texts()) == 1, "\n".join(texts())
        # serve killed outright (an out-of-memory kill): its Prefect server goes with it
        proc.kill()
        proc.wait(timeout=10)
        _until("the Prefect server outlived serve", lambda: not _server_pids(port), 30, log_path)
    finally:
        spotify.release()
        _stop(proc)
        log.close()


def _server_pids(port: int) -> list[str]:
    return subprocess.run(
        ["pgrep", "-f", f"orchestration.prefect_server --host 127.0.0.1 --port {port}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM first: serve stops its Prefect server on the way out."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_stuck_writer_delays_each_run_by_its_wait_and_a_dead_one_by_nothing(
    harness: None, env: dict[str, str], data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that took the writer lock and hangs (stopped): each run waits
    MUSIC_TRACKER_WRITER_WAIT_S, skips and polls nothing, which liveness counts; once the
    process is dead the kernel has freed its lock and the next run polls at once."""
    from music_tracker.orchestration.flows import ingest_flow

    monkeypatch.setenv("MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES", "100000")  # polls only
    monkeypatch.setenv("MUSIC_TRACKER_WRITER_WAIT_S", "2")
    settings = Settings(data_dir=data_dir)
    code = (
        "import sys, time; from pathlib import Path\n"
        "from music_tracker.lock import writer_lock\n"
        "with writer_lock(Path(sys.argv[1]), 'a stuck writer', wait_s=0):\n"
        "    print('held', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        holder.send_signal(signal.SIGSTOP)  # alive, holding the lock, never done
        for _ in range(2):  # two scheduled runs in a row
            seconds, result = _timed(ingest_flow, data_dir)
            assert "a stuck writer" in result["skipped"] and 2 <= seconds < 15, (seconds, result)
        assert notify.load_health(settings).get("ingest", {}).get("last_poll") is None
        holder.kill()  # it dies still holding the lock: the kernel lets go of it
        holder.wait()
        assert "a stuck writer" in (data_dir / ".writer.lock").read_text()  # its name stays
        seconds, result = _timed(ingest_flow, data_dir)
        assert result["ingest"]["new_plays"] > 0 and seconds < 20, (seconds, result)
        assert notify.load_health(settings)["ingest"]["last_poll"]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_a_writer_waiting_on_a_folder_removed_under_it_takes_a_lock_that_holds(
    tmp_path: Path,
) -> None:
    """The first holder made the data folder and leaves it empty, so it removes the folder
    and its lock file as it lets go; the writer that was waiting on that file must not
    believe itself alone: it takes the lock anew, and a third one is kept out."""
    from music_tracker.lock import WriterBusy, writer_lock

    data = tmp_path / "new" / "data"
    events: list[str] = []
    first_holds, release_first, second_done = (threading.Event() for _ in range(3))

    def first() -> None:
        with writer_lock(data, "first", wait_s=0):
            first_holds.set()
            release_first.wait(30)

    def second() -> None:
        with writer_lock(data, "second", wait_s=30, poll_s=0.05):
            events.append("second holds")
            try:
                with writer_lock(data, "third", wait_s=0):
                    events.append("third holds too")
            except WriterBusy as exc:
                events.append(str(exc))
            (data / "warehouse.duckdb").write_text("")  # it writes: the folder stays
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_holds.wait(30)
    threads[1].start()
    time.sleep(0.3)  # the second is waiting, on the lock file the first will remove
    release_first.set()
    assert second_done.wait(30)
    for thread in threads:
        thread.join()
    assert events[0] == "second holds", events
    assert events[1].startswith("`second` (process") and "is writing" in events[1], events
    assert sorted(p.name for p in data.iterdir()) == [".writer.lock", "warehouse.duckdb"]


def test_a_backup_flow_that_finds_the_warehouse_held_fails_with_the_cause_alone(
    harness: None,
    env: dict[str, str],
    data_dir: Path,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Issue 26, item 7: the scheduled backup, with the warehouse held by a DuckDB shell,
    waits MUSIC_TRACKER_LOCK_WAIT_S, then fails naming the holder: its one failure message
    says why, and no traceback is logged."""
    from music_tracker.orchestration.flows import backup_flow

    monkeypatch.setenv("MUSIC_TRACKER_LOCK_WAIT_S", "0.5")
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1])\n"
        "print('held', flush=True); sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(data_dir / "warehouse.duckdb")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        capfd.readouterr()
        state = backup_flow(data_dir=str(data_dir), return_state=True)
        logged = "".join(capfd.readouterr())
    finally:
        holder.communicate("\n", timeout=30)
    assert state.is_failed(), state
    assert f"(PID {holder.pid})" in str(state.message), state.message
    assert "Traceback" not in logged, logged
    assert [m["text"].split(":", 1)[0] for m in receiver.messages] == ["backup failed"]
    assert f"(PID {holder.pid})" in receiver.messages[0]["text"]
    assert not (data_dir.parent / "backups").is_dir() or not [
        p for p in (data_dir.parent / "backups").iterdir() if p.name != ".backup.lock"
    ]
    # free again: the next one is made
    assert backup_flow(data_dir=str(data_dir))["files"] > 0


# -- the lite plan: the same jobs without a Prefect server ----------------------------------


def _lite_environment(spotify: FakeSpotify, data_dir: Path, **extra: str) -> dict[str, str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MUSIC_TRACKER_", "PREFECT_"))},
        **_environment(spotify, data_dir),
        "MUSIC_TRACKER_SCHEDULER": "lite",
        **extra,
    }
    if os.environ.get("MUSIC_TRACKER_DBT_TARGET_DIR"):
        environment["MUSIC_TRACKER_DBT_TARGET_DIR"] = os.environ["MUSIC_TRACKER_DBT_TARGET_DIR"]
    access, refresh = spotify.grant_tokens()
    now = datetime.now(UTC)
    auth.TokenStore(data_dir / "state").save(
        auth.Token(access, refresh, now + timedelta(hours=1), now)
    )
    return environment


def _runs(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "state" / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _lite_children(data_dir: Path) -> list[int]:
    """Run processes of a lite serve on ``data_dir`` still alive."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"music_tracker.orchestration.lite" in command and str(data_dir).encode() in environ:
            found.append(int(entry.name))
    return found


def test_lite_serve_polls_builds_the_report_and_stops_cleanly(
    spotify: FakeSpotify, data_dir: Path, tmp_path: Path
) -> None:
    """`serve --lite` on a 3 s schedule, no Metabase: each poll that stores plays builds the
    star schema and rewrites the report (the lite plan's dashboards); every run is recorded;
    SIGTERM stops it with its run, and no process is left."""
    environment = _lite_environment(
        spotify,
        data_dir,
        MUSIC_TRACKER_INGEST_INTERVAL_MINUTES="0.05",
        MUSIC_TRACKER_WATCHDOG_INTERVAL_S="1",
    )
    report = data_dir / "report" / "index.html"
    report.unlink(missing_ok=True)
    plays_before = _api_plays(data_dir)
    spotify.advance(timedelta(hours=2))
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [CLI, "serve", "--lite"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _until(
            "two ingest runs completed, one with a build and the report",
            lambda: (
                sum(r["flow"] == "ingest" and r["state"] == "Completed" for r in _runs(data_dir))
                >= 2
                and any((r.get("result") or {}).get("report") for r in _runs(data_dir))
            ),
            240,
            log_path,
        )
        assert report.is_file()
        # on a 3 s schedule a build under load outlasts three intervals: the verdict is
        # healthy again once the next poll is on time
        _until("healthy", lambda: _health(data_dir).get("healthy") is True, 60, log_path)
        assert "serving the schedules without a Prefect server" in log_path.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        _stop(proc)
        log.close()
    assert _api_plays(data_dir) > plays_before
    built = [r for r in _runs(data_dir) if (r.get("result") or {}).get("transform")]
    assert built and built[0]["result"]["publish"]["tables"] > 0
    assert "prefect" not in {p.name for p in data_dir.iterdir()}  # no Prefect server was run
    assert not _lite_children(data_dir)


def test_a_hung_lite_run_is_stopped_told_and_the_schedule_goes_on(
    spotify: FakeSpotify, data_dir: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """The lite loop on a 6 s schedule; Spotify hangs and the client waits: unhealthy within
    three intervals and told once, the run killed at its time limit and told once, runs
    resume with a recovery message when Spotify answers again."""
    from music_tracker.orchestration.healthcheck import verdict

    environment = _lite_environment(
        spotify,
        data_dir,
        MUSIC_TRACKER_INGEST_INTERVAL_MINUTES="0.1",  # 6 s
        MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES="100000",  # polls only
        MUSIC_TRACKER_HTTP_TIMEOUT_S="600",  # the request itself would wait 10 minutes
        MUSIC_TRACKER_RUN_TIMEOUT_MINUTES="0.5",  # 30 s
        MUSIC_TRACKER_WATCHDOG_INTERVAL_S="1",
        MUSIC_TRACKER_NOTIFY_WEBHOOK_URL=receiver.url,
    )
    settings = Settings(data_dir=data_dir)
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen([CLI, "serve"], env=environment, stdout=log, stderr=subprocess.STDOUT)

    def texts() -> list[str]:
        return [message["text"] for message in receiver.messages]

    def last_poll() -> str | None:
        return notify.load_health(settings).get("ingest", {}).get("last_poll")

    try:
        _until("no poll", lambda: last_poll() is not None, 120, log_path)
        spotify.hang()
        hung_after = last_poll()
        _until("not unhealthy", lambda: _health(data_dir).get("healthy") is False, 60, log_path)
        stale_for = datetime.now(UTC) - datetime.fromisoformat(hung_after or "")
        assert stale_for < timedelta(seconds=18 + 3), stale_for
        _until("the hung run not named", lambda: _names_the_hung_run(data_dir), 20, log_path)
        healthy, why = verdict(data_dir)
        assert not healthy and why.startswith("no successful poll of Spotify"), why
        _until("no timeout message", lambda: any("timed out" in t for t in texts()), 45, log_path)
        stopped = [t for t in texts() if "timed out" in t]
        assert len(stopped) == 1 and stopped[0].startswith(
            "ingest failed: timed out: the ingest run"
        )
        assert "was still running after 30 seconds" in stopped[0], stopped
        assert any(r["state"] == "Crashed" for r in _runs(data_dir))
        spotify.release()
        _until("no poll after the release", lambda: last_poll() != hung_after, 60, log_path)
        _until("not healthy again", lambda: _health(data_dir).get("healthy") is True, 30, log_path)
        _until(
            "no recovery message",
            lambda: any(t.startswith("schedule works again") for t in texts()),
            10,
            log_path,
        )
        assert sum("schedule failed" in t for t in texts()) == 1, "\n".join(texts())
        # serve killed outright: its run's process goes with it
        proc.kill()
        proc.wait(timeout=10)
        _until("a run outlived serve", lambda: not _lite_children(data_dir), 30, log_path)
    finally:
        spotify.release()
        _stop(proc)
        log.close()


def test_the_lite_loop_outlives_a_state_file_it_cannot_write(tmp_path: Path) -> None:
    """health.json cannot be replaced (a full disk, say): the loop logs it and goes on
    scheduling; the healthcheck sees health.json go stale instead of serve dying."""
    data_dir = tmp_path / "data"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MUSIC_TRACKER_", "PREFECT_"))},
        "MUSIC_TRACKER_DATA_DIR": str(data_dir),
        "MUSIC_TRACKER_INGEST_INTERVAL_MINUTES": "0.05",  # 3 s; no Spotify app: a skip
        "MUSIC_TRACKER_WATCHDOG_INTERVAL_S": "1",
    }
    log_path = tmp_path / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [CLI, "serve", "--lite"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _until("no run", lambda: len(_runs(data_dir)) >= 1, 60, log_path)
        # every replace of health.json now fails: a folder in its place (rename: EISDIR)
        health = data_dir / "state" / "health.json"
        while not health.is_dir():
            health.unlink(missing_ok=True)
            with contextlib.suppress(FileExistsError):
                health.mkdir()
        runs = len(_runs(data_dir))
        _until("no runs after", lambda: len(_runs(data_dir)) >= runs + 2, 60, log_path)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert "could not record the schedule's health" in log_path.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        _stop(proc)
        log.close()
