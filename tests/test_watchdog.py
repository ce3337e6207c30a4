"""serve's watchdog and the container healthcheck, on real files, processes and HTTP
(the watchdog in a real `serve` with a hung Spotify: tests/test_orchestration.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import SecretStr

from music_tracker.fakes.webhook import FakeWebhook
from music_tracker.orchestration import healthcheck, notify
from music_tracker.orchestration.watchdog import LIVENESS, Watchdog, refresh_limit
from music_tracker.settings import Settings


@pytest.fixture
def messages() -> Iterator[tuple[str, list[str]]]:
    """A webhook on 127.0.0.1: its URL and the texts it was sent."""
    with FakeWebhook() as hook:
        yield hook.url, hook.texts


@pytest.fixture
def quiet_prefect() -> Iterator[str]:
    """A Prefect API with no runs at all: its three answers the watchdog reads."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"0" if self.path.endswith("/flow_runs/count") else b"[]"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()
    server.server_close()


def _closed_port() -> str:
    with socket.socket() as s:  # nothing listens there once it is closed
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/api"


def _settings(tmp_path: Path, hook: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        timezone="Europe/Berlin",
        spotify_client_id="owner-app",
        notify_webhook_url=SecretStr(hook),
    )


def _polled(settings: Settings, at: datetime) -> None:
    notify.record_poll(settings)
    health = json.loads((settings.state_dir / notify.STATE_FILE).read_text())
    health["ingest"]["last_poll"] = at.isoformat()
    (settings.state_dir / notify.STATE_FILE).write_text(json.dumps(health))


def test_the_refresh_limit_follows_the_longest_gap_of_its_cron(tmp_path: Path) -> None:
    sunday = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    hourly = Settings(data_dir=tmp_path, timezone="UTC")
    assert refresh_limit(hourly, sunday) == timedelta(hours=2)
    weekdays = hourly.model_copy(update={"refresh_cron": "5 9 * * 1-5"})
    assert refresh_limit(weekdays, sunday) == 2 * timedelta(days=3)  # Friday to Monday
    mornings = hourly.model_copy(update={"refresh_cron": "5 8,9 * * *"})
    assert refresh_limit(mornings, sunday) == 2 * timedelta(hours=23)


def test_with_the_prefect_api_down_a_stale_schedule_is_still_told(
    tmp_path: Path, messages: tuple[str, list[str]]
) -> None:
    hook, texts = messages
    settings = _settings(tmp_path, hook)
    now = datetime.now(UTC)
    _polled(settings, now - timedelta(hours=5))
    watchdog = Watchdog(settings, _closed_port(), on_stall=lambda cause: None)
    watchdog.started = now - timedelta(hours=5)  # serve has run all along
    verdicts = [watchdog.check(now + timedelta(seconds=n)) for n in range(3)]
    assert [v.healthy for v in verdicts] == [False, False, False]
    assert verdicts[0].reasons[0] == "no successful poll of Spotify for 5.0 hours"
    assert "the Prefect API has not answered 3 checks in a row" in verdicts[2].reasons[-1]
    written = json.loads((settings.state_dir / "health.json").read_text())
    assert written["healthy"] is False and written["reasons"] == verdicts[2].reasons
    # one message for the stale poll, one more when the API's silence became a reason
    assert [t.split(":")[0] for t in texts] == ["schedule failed", "schedule failed"], texts
    assert healthcheck.verdict(tmp_path)[0] is False
    watchdog.api.close()


def test_a_restart_of_serve_is_no_recovery_only_a_poll_is(
    tmp_path: Path, messages: tuple[str, list[str]], quiet_prefect: str
) -> None:
    hook, texts = messages
    settings = _settings(tmp_path, hook)
    now = datetime.now(UTC)
    _polled(settings, now - timedelta(minutes=50))
    first = Watchdog(settings, quiet_prefect, on_stall=lambda cause: None)
    first.started = now - timedelta(hours=1)
    assert not first.check(now).healthy
    assert texts == [
        "schedule failed: no successful poll of Spotify for 50 minutes: no ingest run has started"
    ]
    # serve restarts (its healthcheck, a deploy): healthy for three intervals, nothing ran
    second = Watchdog(settings, quiet_prefect, on_stall=lambda cause: None)
    second.started = now
    assert second.check(now + timedelta(minutes=1)).healthy
    assert len(texts) == 1 and notify.load_health(settings)[LIVENESS]["failing"]
    # still no poll after three intervals: told again? no: the same cause, the real age
    verdict = second.check(now + timedelta(minutes=31))
    assert verdict.reasons == [
        "no successful poll of Spotify for 81 minutes: no ingest run has started"
    ]
    assert len(texts) == 1
    _polled(settings, now + timedelta(minutes=32))
    assert second.check(now + timedelta(minutes=33)).healthy
    assert texts[-1].startswith("schedule works again")
    for watchdog in (first, second):
        watchdog.api.close()


def _sleeper(name: str) -> subprocess.Popen[bytes]:
    """A process whose command line names ``serve``, as the container's does."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", name])


def _health(data_dir: Path, pid: int, checked: float) -> None:
    (data_dir / "state").mkdir(parents=True, exist_ok=True)
    (data_dir / "state" / "health.json").write_text(
        json.dumps(
            {
                "healthy": True,
                "reasons": [],
                "checked_at": datetime.fromtimestamp(checked, UTC).isoformat(),
                "check_interval_s": 60,
                "pid": pid,
            }
        )
    )


def test_the_healthcheck_stops_only_the_serve_that_went_silent(tmp_path: Path) -> None:
    serve = _sleeper("serve")
    other = _sleeper("status")
    try:
        time.sleep(1.5)  # both run before health.json is written
        written = time.time()
        _health(tmp_path, other.pid, written)
        assert healthcheck.verdict(tmp_path, written + 60, stop_stuck=True) == (True, "healthy")
        # silent for 5 minutes: unhealthy, not stopped yet
        healthy, why = healthcheck.verdict(tmp_path, written + 300, stop_stuck=True)
        assert not healthy and "has not checked for 5 minutes" in why and "stopped" not in why
        # silent for 12 minutes: a pid that is not serve's is left alone
        healthy, why = healthcheck.verdict(tmp_path, written + 720, stop_stuck=True)
        assert f"process {other.pid} is not serve" in why and other.poll() is None
        # a serve started after the file was written (an old pid, reused) is left alone
        _health(tmp_path, serve.pid, written - 10)
        healthy, why = healthcheck.verdict(tmp_path, written + 720, stop_stuck=True)
        assert "started after that" in why and serve.poll() is None
        # the serve that wrote it, silent for 12 minutes: stopped, to be restarted
        _health(tmp_path, serve.pid, written)
        healthy, why = healthcheck.verdict(tmp_path, written + 720, stop_stuck=True)
        assert f"stopped serve (process {serve.pid})" in why
        assert serve.wait(timeout=10) == -9
    finally:
        for proc in (serve, other):
            proc.kill()
            proc.wait()


_WRITER = """
import sys
from pathlib import Path
from music_tracker.orchestration import notify
from music_tracker.settings import Settings
settings = Settings(data_dir=Path(sys.argv[1]))
for n in range(40):
    if sys.argv[2] == "poll":
        notify.record_poll(settings)
    else:
        notify.record_failure(settings, "refresh", f"cause {n}", key="same")
"""


def test_flows_json_keeps_every_writers_update(tmp_path: Path) -> None:
    """serve's watchdog, its crash hook and each run's process write flows.json at once."""
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), kind])
        for kind in ("poll", "failure", "poll", "failure")
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    health = notify.load_health(Settings(data_dir=tmp_path))
    assert health["ingest"]["last_poll"] and health["refresh"]["failing"] is True
