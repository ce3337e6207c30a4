"""`music-tracker serve`: the schedules, firing for real, in one long-running process.

Prefect's temporary server (what a flow uses when ``PREFECT_API_URL`` is unset) does not
run the scheduler service, so served flows would register and never fire. With
``PREFECT_API_URL`` set (the compose stack runs a Prefect server, which also gives the
owner its UI) that server is used. Without it, ``serve`` starts ``prefect server start``
(through ``prefect_server.py``: its background worker polls less) on 127.0.0.1 with its
SQLite database under ``<data dir>/prefect/``, restarts it if it dies, and stops it when
``serve`` stops (SIGTERM or Ctrl+C): no process is left behind.

A watchdog thread (``watchdog.py``) stops a run that exceeds its time limit, writes the
liveness the container healthcheck reads, and stops ``serve`` (to be restarted) if the
runner no longer starts runs.

Nothing here imports Prefect at module level: its settings are read when it is imported,
so the environment (``PREFECT_HOME``, ``PREFECT_API_URL``) is set first.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from music_tracker.lock import make_folders
from music_tracker.orchestration.processes import die_with_parent, stop_group
from music_tracker.settings import Settings

log = logging.getLogger(__name__)

START_TIMEOUT_S = 120.0


class ServeError(Exception):
    """The scheduler cannot start; the message says why."""


def prefect_environment(settings: Settings) -> dict[str, str]:
    """Prefect's settings for this data folder (applied before Prefect is imported);
    DataFolderError when the folder cannot be made or written."""
    home = settings.data_dir / "prefect"
    make_folders(home, settings.data_dir)
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_LOGGING_LEVEL": settings.log_level,
        # the runner asks for due runs every 30 s (Prefect's default: 10 s); a run starts
        # at most 30 s late, on a schedule of 10 minutes
        "PREFECT_RUNNER_POLL_FREQUENCY": os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", "30"),
        # our own messages say which flow failed and why; no hosted extras
        "PREFECT_CLOUD_ENABLE_ORCHESTRATION_TELEMETRY": "false",
    }


# The Prefect server's background services, trimmed for one person's pipeline on a small
# VM (every loop is a database query; idle CPU is what the 2 GB plan's 20% baseline
# pays for). Kept: the scheduler (it makes schedules fire), lease reclaiming (deployment
# concurrency limits use leases), cancellation clean-up, task-run records (the UI shows
# task runs), the slower ones at a slower pace. Off: work-pool health (serve uses no work
# pools), pause expirations (no flow pauses), marking runs "late" (a label), automations'
# triggers and the event store (no automations; the UI's event feed stays empty). The
# compose file sets the same.
SERVER_SERVICES = {
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "120",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "300",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_LOOP_SECONDS": "300",
}


class LocalPrefectServer:
    """``prefect server start`` as a supervised child process."""

    def __init__(self, settings: Settings, *, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or settings.prefect_port
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None
        self.restarts = 0

    def _spawn(self) -> None:
        log_file = (self.settings.data_dir / "prefect" / "server.log").open("ab")
        env = {
            **os.environ,
            **prefect_environment(self.settings),
            **SERVER_SERVICES,
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(self.port),
        }
        env.pop("PREFECT_API_URL", None)
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "music_tracker.orchestration.prefect_server",  # `prefect server start`
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
            preexec_fn=die_with_parent,
        )
        log_file.close()

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ServeError(
                    f"the Prefect server exited with code {self._proc.returncode} while "
                    f"starting (port {self.port} taken? MUSIC_TRACKER_PREFECT_PORT); see "
                    f"{self.settings.data_dir / 'prefect' / 'server.log'}"
                )
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise ServeError(f"the Prefect server did not answer within {START_TIMEOUT_S:.0f} s")

    def start(self) -> None:
        self._spawn()
        self._wait_healthy()
        self._watcher = threading.Thread(target=self._watch, name="prefect-server", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Restart the server when it dies (an out-of-memory kill, a crash)."""
        while not self._stopping.wait(2.0):
            proc = self._proc
            if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                log.warning("the Prefect server stopped (exit %s); restarting it", proc.returncode)
                try:
                    self._spawn()
                    self._wait_healthy()
                except ServeError as exc:
                    log.error("%s", exc)

    def stop(self) -> None:
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        stop_group(proc)


def _deployments(settings: Settings) -> list[Any]:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.schedules import Cron, Interval

    from music_tracker.orchestration.flows import backup_flow, ingest_flow, refresh_flow

    zone = settings.schedule_timezone or settings.timezone
    parameters = {"data_dir": str(settings.data_dir)}
    # a run that comes due while the previous one still runs is dropped, not queued: the
    # next poll fetches what it would have (Spotify keeps the last 50 plays)
    one_at_a_time = ConcurrencyLimitConfig(
        limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )
    return [
        ingest_flow.to_deployment(
            name="every-10-minutes",
            schedule=Interval(timedelta(minutes=settings.ingest_interval_minutes), timezone=zone),
            parameters=parameters,
            concurrency_limit=one_at_a_time,
            description="Poll Spotify; enrich; transform and publish after new plays.",
        ),
        refresh_flow.to_deployment(
            name="hourly",
            schedule=Cron(settings.refresh_cron, timezone=zone),
            parameters=parameters,
            concurrency_limit=one_at_a_time,
            description="Transform, publish and the report when anything arrived.",
        ),
        backup_flow.to_deployment(
            name="daily",
            schedule=Cron(settings.backup_cron, timezone=zone),
            parameters=parameters,
            concurrency_limit=one_at_a_time,
            description="Back up the warehouse, landing files, state and Metabase's database.",
        ),
    ]


def serve(settings: Settings) -> None:
    """Run the schedules until SIGTERM or Ctrl+C (see the module's docstring); on the
    lite plan (``MUSIC_TRACKER_SCHEDULER=lite``) without a Prefect server (``lite.py``).
    DataFolderError, before anything starts, when the data folder cannot be written."""
    make_folders(settings.state_dir, settings.data_dir)
    if settings.scheduler == "lite":
        from music_tracker.orchestration.lite import serve_lite

        serve_lite(settings)
        return
    from music_tracker.orchestration.watchdog import Verdict, write_health

    os.environ.update(prefect_environment(settings))
    # this serve's pid and start, at once: the healthcheck must never take the pid of a
    # serve before it (left in health.json) for this one while it waits for its API
    started = datetime.now(UTC)
    write_health(settings, Verdict(True, []), started, started)
    server: LocalPrefectServer | None = None
    if os.environ.get("PREFECT_API_URL"):
        # a server of its own (compose): it may still be starting, as this process is
        _wait_for_api(os.environ["PREFECT_API_URL"])
    else:
        server = LocalPrefectServer(settings)
        log.info("starting a Prefect server on 127.0.0.1:%s", server.port)
        server.start()
        os.environ["PREFECT_API_URL"] = server.api_url
    from music_tracker.orchestration.watchdog import Watchdog

    stalled: list[str] = []

    def restart(cause: str) -> None:
        # the runner starts no more runs: stop (SIGTERM is the runner's own clean shutdown)
        # and exit non-zero, so that the container's restart policy starts serve again; a
        # runner too stuck to shut down is left behind after a minute
        if not stalled:
            stalled.append(cause)
            log.error("the runner starts no more runs; stopping serve to be restarted")
            os.kill(os.getpid(), signal.SIGTERM)
            threading.Timer(60, os._exit, (1,)).start()

    watchdog = Watchdog(settings, os.environ["PREFECT_API_URL"], on_stall=restart)
    watchdog.start()
    try:
        from prefect import serve as prefect_serve

        log.info("serving the schedules (Prefect API %s)", os.environ["PREFECT_API_URL"])
        # one flow run at a time: they would wait for the writer lock anyway, and each
        # run's process costs memory the 2 GB VM shares with Metabase; schedules stay
        # active across restarts (no pause on shutdown)
        prefect_serve(
            *_deployments(settings),
            print_starting_message=False,
            limit=1,
            pause_on_shutdown=False,
        )
    finally:
        watchdog.stop()
        if server is not None:
            _flush_to_api()
            server.stop()
    if stalled:
        raise ServeError(f"stopped to be restarted: {stalled[0]}")


def _wait_for_api(api_url: str, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{api_url.rstrip('/')}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise ServeError(
                f"the Prefect server at PREFECT_API_URL={api_url} does not answer after "
                f"{timeout_s:.0f} s: check that it runs (in compose: the prefect service)"
            )
        log.info("waiting for the Prefect server at %s", api_url)
        time.sleep(2)


def _flush_to_api() -> None:
    """Send Prefect's queued logs and events while the server still answers (otherwise
    they retry against a stopped server at exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    try:
        for service in (APILogWorker, EventsWorker):
            service.drain_all(timeout=5)
    except Exception as exc:  # shutting down either way
        log.debug("could not flush Prefect's logs: %s", exc)
