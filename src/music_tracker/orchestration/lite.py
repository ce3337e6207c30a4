"""The lite plan's scheduler: the same jobs on the same schedules, without a Prefect server.

``music-tracker serve --lite`` (``MUSIC_TRACKER_SCHEDULER=lite``) is for the 1 GB VM, where
a Prefect server (about 220 MB idle) does not fit beside the pipeline's builds. One loop:

- **Schedules**: ingest every ``ingest_interval_minutes`` from the start, the refresh and
  the backup on their cron lines (``refresh_cron``, ``backup_cron``), in
  ``schedule_timezone``. One run at a time; a run that comes due while another runs is
  dropped, not queued, as under Prefect (the next poll fetches what it would have).
- **Runs**: each in a child process (``python -m music_tracker.orchestration.lite run
  FLOW``) calling ``jobs.py``, as the Prefect flows do, with the same steps, retries and
  step timeouts; its memory is given back when it ends. A run past its time limit
  (``run_timeout_minutes``, a backup three times that) is killed, told and the next run
  goes on.
- **Records**: every run is a line of ``state/runs.jsonl`` (flow, start, end, state,
  message); failures and recoveries go to ``state/flows.json`` and the webhook, once per
  cause, through ``notify.py``, as under Prefect.
- **Liveness**: the same rule as ``watchdog.py`` (no successful poll for three intervals,
  no refresh for two hours), written to ``state/health.json`` for the container
  healthcheck and ``status``.

Why not Prefect without a server: Prefect's temporary server does not run schedules, and
starting one per run cost 14 CPU-seconds and 28 s here for a run that does nothing (it
is a uvicorn server in a subprocess); 144 runs a day would spend more than the builds.
Why not a systemd timer on the host: the container is what is deployed and restarted,
and a loop inside it keeps compose's restart policy, the healthcheck and the liveness
rule of the full plan. Nothing here imports Prefect.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

from music_tracker import files
from music_tracker.orchestration import jobs, notify
from music_tracker.orchestration.processes import die_with_parent, stop_group
from music_tracker.orchestration.watchdog import (
    Run,
    Verdict,
    assess,
    clock_text,
    duration_text,
    tell,
    time_limit,
    timed_out_key,
    write_health,
)
from music_tracker.settings import Settings

log = logging.getLogger(__name__)

RUNS_FILE = "runs.jsonl"
RESULT_FILE = "lite-run.json"
KEEP_RUNS = 5_000  # lines of runs.jsonl kept: a month of ingest runs
SCHEDULED = ("ingest", "refresh", "backup")  # also the order when several are due at once


# -- schedules ------------------------------------------------------------------------------


def next_fire(settings: Settings, flow: str, after: datetime, started: datetime) -> datetime:
    """When ``flow`` is next due strictly after ``after`` (UTC)."""
    if flow == "ingest":
        interval = timedelta(minutes=settings.ingest_interval_minutes)
        elapsed = max(timedelta(0), after - started)
        return started + (elapsed // interval + 1) * interval
    from cronsim import CronSim

    cron = settings.refresh_cron if flow == "refresh" else settings.backup_cron
    zone = ZoneInfo(settings.schedule_timezone or settings.timezone)
    fire: datetime = next(CronSim(cron, after.astimezone(zone)))
    return fire.astimezone(UTC)


# -- a run, in its own process ----------------------------------------------------------------


class StepTimeout(Exception):
    """A step ran past its time limit (jobs.TIMEOUTS)."""


@contextmanager
def _time_limit(seconds: float, step: str) -> Iterator[None]:
    """Raise StepTimeout in the main thread after ``seconds`` (a run's process is
    single-threaded; a call stuck in C code is caught at the run's own limit instead)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise StepTimeout(f"{step} took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class PlainSteps:
    """jobs.Steps without Prefect: retries with a doubling delay and a timeout per step."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self.last_error = ""

    def __call__(
        self, step: str, settings: Settings, *, retry: bool = False, optional: str = ""
    ) -> dict[str, Any] | None:
        delays = jobs.retry_delays(settings) if retry else []
        error: Exception | None = None
        for attempt in range(len(delays) + 1):
            try:
                with _time_limit(jobs.TIMEOUTS[step], step):
                    return jobs.STEPS[step](settings)
            except Exception as exc:  # any failure of a step: retried, told, or raised
                error = exc
                if attempt < len(delays):
                    self.log.warning(
                        "%s failed (%s); trying again in %g s", step, exc, delays[attempt]
                    )
                    time.sleep(delays[attempt])
        assert error is not None
        if not optional:
            raise error
        self.last_error = str(error)
        self.log.warning("%s failed, the run goes on: %s", optional, error)
        return None


def run_once(settings: Settings, flow: str) -> int:
    """The child process: one run of ``flow``; its outcome in ``state/lite-run.json``."""
    logger = logging.getLogger(f"music_tracker.run.{flow}")
    outcome: dict[str, Any]
    try:
        outcome = {"state": "Completed", "result": jobs.JOBS[flow](settings, PlainSteps(logger))}
    except jobs.JobFailed as exc:
        outcome = {"state": "Failed", "message": str(exc)}
    except Exception as exc:  # the cause goes to the owner; the traceback to the log
        logger.exception("the %s run failed", flow)
        outcome = {"state": "Failed", "message": f"{type(exc).__name__}: {exc}"}
    files.write_text(settings.state_dir / RESULT_FILE, json.dumps(outcome, default=str))
    return 0 if outcome["state"] == "Completed" else 1


# -- the loop --------------------------------------------------------------------------------


@dataclass
class Record:
    flow: str
    started_at: datetime
    ended_at: datetime | None
    state: str  # Running, Completed, Failed, Crashed
    message: str = ""

    def as_run(self) -> Run:
        return Run(
            id="",
            name=f"{self.flow} at {self.started_at:%H:%M:%S}",
            flow=self.flow,
            state=self.state,
            state_type=self.state.upper(),
            since=self.ended_at or self.started_at,
            message=self.message,
        )


def load_runs(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` runs recorded, oldest first."""
    try:
        lines = (settings.state_dir / RUNS_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    runs = []
    for line in lines[-limit:]:
        with contextlib.suppress(ValueError):
            run = json.loads(line)
            if isinstance(run, dict):
                runs.append(run)
    return runs


class LiteScheduler:
    """The loop of the module's docstring."""

    def __init__(self, settings: Settings, *, python: str = sys.executable) -> None:
        self.settings = settings
        self.python = python
        self.started = datetime.now(UTC)
        self._stop = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._last_ingest: Record | None = None
        self.due = {
            # the first poll at once: a restart must not wait an interval to catch up
            "ingest": self.started,
            **{
                flow: next_fire(settings, flow, self.started, self.started)
                for flow in SCHEDULED[1:]
            },
        }

    def stop(self, *_: object) -> None:
        self._stop.set()

    def run_forever(self) -> None:
        write_health(self.settings, Verdict(True, []), self.started, self.started)
        interval = self.settings.watchdog_interval_s
        next_check = time.monotonic() + interval
        log.info(
            "serving the schedules without a Prefect server: ingest every %g min, refresh "
            "'%s', backup '%s'",
            self.settings.ingest_interval_minutes,
            self.settings.refresh_cron,
            self.settings.backup_cron,
        )
        while not self._stop.is_set():
            now = datetime.now(UTC)
            due = [flow for flow in SCHEDULED if self.due[flow] <= now]
            if due:
                flow = due[0]
                self.due[flow] = next_fire(self.settings, flow, now, self.started)
                self.run(flow)
                continue
            if time.monotonic() >= next_check:
                self.check_safely(now)
                next_check = time.monotonic() + interval
            wait = min(
                (min(self.due.values()) - now).total_seconds(), next_check - time.monotonic()
            )
            self._stop.wait(max(0.05, wait))

    def check_safely(self, now: datetime, running: Record | None = None) -> None:
        """The check, whose failure (a full disk, a state folder gone read-only) is logged:
        the schedule goes on, and the healthcheck sees health.json go stale."""
        try:
            self.check(now, running)
        except OSError as exc:
            log.error("could not record the schedule's health: %s", exc)

    def check(self, now: datetime, running: Record | None = None) -> Verdict:
        flows = notify.load_health(self.settings)
        last = running if running and running.flow == "ingest" else self._last_ingest
        verdict = assess(
            self.settings,
            now=now,
            serve_started_at=self.started,
            flows=flows,
            last_ingest_run=last.as_run() if last else None,
        )
        tell(self.settings, verdict, flows, now, self.started)
        return verdict

    def run(self, flow: str) -> Record:
        record = Record(flow, datetime.now(UTC), None, "Running")
        log.info("%s: run started", flow)
        result_path = self.settings.state_dir / RESULT_FILE
        try:
            result_path.unlink(missing_ok=True)
            child = subprocess.Popen(
                [self.python, "-m", "music_tracker.orchestration.lite", "run", flow],
                env={**os.environ, "MUSIC_TRACKER_DATA_DIR": str(self.settings.data_dir)},
                start_new_session=True,  # its own process group: stopped as a whole
                preexec_fn=die_with_parent,
            )
        except OSError as exc:  # no memory to fork, a state folder gone: told, and go on
            record.ended_at, record.state = datetime.now(UTC), "Crashed"
            record.message = f"the run could not start: {exc}"
            log.error("%s: %s", flow, record.message)
            with contextlib.suppress(OSError):
                notify.record_failure(self.settings, flow, record.message)
                self._remember(record, None)
            return record
        self._child = child
        limit = time_limit(self.settings, flow)
        deadline = time.monotonic() + limit.total_seconds()
        timed_out = stopped = False
        while True:
            remaining = deadline - time.monotonic()
            try:
                child.wait(timeout=max(0.05, min(self.settings.watchdog_interval_s, remaining)))
                break
            except subprocess.TimeoutExpired:
                pass
            if self._stop.is_set():
                stopped = True
                stop_group(child)  # DuckDB rolls back what the run had not committed
                break
            if time.monotonic() >= deadline:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                break
            self.check_safely(datetime.now(UTC), running=record)
        self._child = None
        record.ended_at = datetime.now(UTC)
        outcome = _read_outcome(result_path)
        key = None
        if timed_out:
            record.state = "Crashed"
            record.message = (
                f"timed out: the {flow} run started {clock_text(record.started_at, self.settings)}"
                f" was still running after {duration_text(limit)}; it was stopped and the next "
                "run goes on (MUSIC_TRACKER_RUN_TIMEOUT_MINUTES)"
            )
            key = timed_out_key(flow)
        elif stopped:
            record.state, record.message = "Crashed", "stopped when serve shut down"
        elif child.returncode < 0:
            record.state = "Crashed"
            record.message = (
                f"crashed (killed by signal {-child.returncode}); an out-of-memory kill looks "
                "like this"
            )
        elif outcome.get("state") == "Completed":
            record.state, record.message = "Completed", ""
        else:
            record.state = "Failed"
            record.message = str(
                outcome.get("message") or f"the run's process exited with {child.returncode}"
            )
        if record.state != "Completed" and not stopped:
            log.error("%s: %s", flow, record.message)
        try:
            self._remember(record, outcome.get("result"))
            if record.state == "Completed":
                notify.record_success(self.settings, flow, "")
            elif not stopped:
                notify.record_failure(self.settings, flow, record.message, key=key)
        except OSError as exc:  # the run itself is done; its record could not be kept
            log.error("%s: could not record the run: %s", flow, exc)
        log.info("%s: run %s in %.1f s", flow, record.state.lower(), _seconds(record))
        if flow == "ingest":
            self._last_ingest = record
        return record

    def _remember(self, record: Record, result: Any) -> None:
        path = self.settings.state_dir / RUNS_FILE
        line = {
            "flow": record.flow,
            "started_at": record.started_at.isoformat(),
            "ended_at": record.ended_at.isoformat() if record.ended_at else None,
            "state": record.state,
            "message": record.message,
            "result": result,
        }
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # as state files
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, default=str) + "\n")
        if path.stat().st_size > 4_000_000:  # about a month and a half of runs
            lines = path.read_text(encoding="utf-8").splitlines()[-KEEP_RUNS:]
            files.write_text(path, "\n".join(lines) + "\n")


def _seconds(record: Record) -> float:
    return ((record.ended_at or record.started_at) - record.started_at).total_seconds()


def _read_outcome(path: Path) -> dict[str, Any]:
    try:
        outcome = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return outcome if isinstance(outcome, dict) else {}


def serve_lite(settings: Settings, *, install_signals: bool = True) -> None:
    """Run the schedules until SIGTERM or Ctrl+C."""
    scheduler = LiteScheduler(settings)
    if install_signals:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, scheduler.stop)
    scheduler.run_forever()


def main(argv: list[str], run: Callable[[Settings, str], int] = run_once) -> int:
    from music_tracker.settings import get_settings

    if len(argv) != 2 or argv[0] != "run" or argv[1] not in jobs.JOBS:
        print(f"usage: python -m {__name__} run {{{','.join(jobs.JOBS)}}}", file=sys.stderr)
        return 2
    settings = get_settings()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    return run(settings, argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
