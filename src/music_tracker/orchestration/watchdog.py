"""`serve`'s watchdog: no run holds the schedule past its time limit, and a stall is told.

Prefect's runner runs one flow run at a time (``limit=1``): a run that never ends would
keep every later run waiting as "Scheduled" while ``serve`` itself looks fine. So a thread
of ``serve`` checks, every ``MUSIC_TRACKER_WATCHDOG_INTERVAL_S`` (60 s):

- **Time limits.** A run still Pending or Running after ``MUSIC_TRACKER_RUN_TIMEOUT_MINUTES``
  (20; a backup three times that) has its process killed (SIGKILL: a SIGTERM would make
  Prefect reschedule it). Prefect's runner then reports it crashed and runs the flow's
  crash hook, which sends the cause written here ("timed out ...") once. A run whose
  process is gone (left by a ``serve`` that was itself killed) is marked crashed through
  the API and told the same way. DuckDB rolls back what the killed process had not
  committed, and the kernel frees the writer lock it held.
- **Liveness.** Unhealthy when the newest successful poll of Spotify (or, without a
  Spotify app, the newest successful ingest run) is older than three ingest intervals, or
  the newest successful refresh older than two hours (or two of its cron periods), counted
  from when ``serve`` started. The verdict goes to ``state/health.json`` (the container
  healthcheck reads it: ``python -m music_tracker.orchestration.healthcheck``), to
  ``status``, and to the webhook once per cause ("no successful ingest for 35 minutes:
  the last run is stuck in Running since 14:03 UTC"), with a recovery message after.
- **A runner that no longer starts runs** (nothing in progress, while ingest runs have been
  due for more than an interval, for longer than an interval and at least two minutes):
  ``serve`` stops itself with an error, so that the container's ``restart:
  unless-stopped`` starts it again; no amount of waiting would help.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from music_tracker import files
from music_tracker.orchestration import notify
from music_tracker.settings import Settings

log = logging.getLogger(__name__)

HEALTH_FILE = "health.json"
STOPPED_FILE = "stopped-runs.json"
LIVENESS = "schedule"  # its entry in flows.json: one message per cause, a recovery message
STALE_INGEST_INTERVALS = 3
STALE_REFRESH = timedelta(hours=2)
IN_PROGRESS = ["PENDING", "RUNNING"]


@dataclass(frozen=True)
class Run:
    """A flow run as the Prefect API tells it."""

    id: str
    name: str
    flow: str
    state: str  # the state's name: Running, Pending, Failed, ...
    state_type: str
    since: datetime  # when it started (or entered its state, if it never started)
    message: str

    @classmethod
    def from_api(cls, row: dict[str, Any], flows: dict[str, str]) -> Run:
        state = row.get("state") or {}
        since = row.get("start_time") or state.get("timestamp") or row["expected_start_time"]
        return cls(
            id=row["id"],
            name=row["name"],
            flow=flows.get(row["flow_id"], "?"),
            state=state.get("name") or row.get("state_name") or "?",
            state_type=row.get("state_type") or state.get("type") or "?",
            since=datetime.fromisoformat(since),
            message=(state.get("message") or "")[:300],
        )


class PrefectRuns:
    """The few questions the watchdog asks the Prefect API (plain HTTP: no event loop)."""

    def __init__(self, api_url: str, timeout_s: float = 10) -> None:
        self._http = httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=timeout_s)
        self._flows: dict[str, str] = {}

    def close(self) -> None:
        self._http.close()

    def _flow_names(self) -> dict[str, str]:
        answer = self._http.post("flows/filter", json={"limit": 200})
        answer.raise_for_status()
        self._flows = {row["id"]: row["name"] for row in answer.json()}
        return self._flows

    def _runs(self, body: dict[str, Any]) -> list[Run]:
        answer = self._http.post("flow_runs/filter", json=body)
        answer.raise_for_status()
        rows = answer.json()
        flows = self._flows
        if any(row["flow_id"] not in flows for row in rows):
            flows = self._flow_names()
        return [Run.from_api(row, flows) for row in rows]

    def in_progress(self) -> list[Run]:
        """Runs of served deployments that are Pending or Running (a `music-tracker run`
        elsewhere has no deployment and is not this serve's to stop)."""
        return self._runs(
            {
                "flow_runs": {
                    "state": {"type": {"any_": IN_PROGRESS}},
                    "deployment_id": {"is_null_": False},
                },
                "limit": 50,
            }
        )

    def newest(self, flow: str) -> Run | None:
        """The newest run of ``flow`` that has left Scheduled."""
        runs = self._runs(
            {
                "flows": {"name": {"any_": [flow]}},
                "flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}},
                "sort": "EXPECTED_START_TIME_DESC",
                "limit": 1,
            }
        )
        return runs[0] if runs else None

    def overdue(self, flow: str, before: datetime) -> int:
        """Scheduled runs of ``flow`` that were due before ``before`` and never started."""
        answer = self._http.post(
            "flow_runs/count",
            json={
                "flows": {"name": {"any_": [flow]}},
                "flow_runs": {
                    "state": {"type": {"any_": ["SCHEDULED"]}},
                    "expected_start_time": {"before_": before.isoformat()},
                },
            },
        )
        answer.raise_for_status()
        return int(answer.json())

    def crash(self, run: Run, message: str) -> bool:
        """Mark ``run`` crashed; False when Prefect refuses (it ended meanwhile: a final
        state is never replaced)."""
        answer = self._http.post(
            f"flow_runs/{run.id}/set_state",
            json={"state": {"type": "CRASHED", "message": message}, "force": False},
        )
        answer.raise_for_status()
        return bool(answer.json().get("status") == "ACCEPT")


def time_limit(settings: Settings, flow: str) -> timedelta:
    minutes = settings.run_timeout_minutes * (3 if flow == "backup" else 1)
    return timedelta(minutes=minutes)


def run_processes(run_id: str, parent: int | None = None) -> list[int]:
    """Processes (children of ``parent``, default this one) running flow run ``run_id``:
    Prefect's runner starts each with ``PREFECT__FLOW_RUN_ID`` in its environment."""
    parent = os.getpid() if parent is None else parent
    marker = f"PREFECT__FLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == parent and marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return found


def timed_out_key(flow: str) -> str:
    """One message for a run stopped at its time limit, however many runs in a row are."""
    return f"timed out: {flow}"


def stopped_cause(settings: Settings, run_id: str) -> str | None:
    """Why the watchdog stopped ``run_id``, if it did (the crash hook's message)."""
    try:
        stopped = json.loads((settings.state_dir / STOPPED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cause = stopped.get(run_id) if isinstance(stopped, dict) else None
    return cause if isinstance(cause, str) else None


def _remember_stopped(settings: Settings, run_id: str, cause: str) -> None:
    path = settings.state_dir / STOPPED_FILE
    try:
        stopped = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stopped = {}
    stopped = dict(list(stopped.items())[-50:]) if isinstance(stopped, dict) else {}
    stopped[run_id] = cause
    files.write_text(path, json.dumps(stopped, indent=2))


def clock_text(moment: datetime, settings: Settings) -> str:
    from zoneinfo import ZoneInfo

    return f"{moment.astimezone(ZoneInfo(settings.timezone)):%Y-%m-%d %H:%M %Z}"


def duration_text(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    return f"{seconds / 60:.0f} minutes" if seconds < 7200 else f"{seconds / 3600:.1f} hours"


def refresh_limit(settings: Settings, now: datetime | None = None) -> timedelta:
    """Two hours, or twice the longest gap between two refreshes in the coming week (a
    cron that skips weekends or fires twice in a morning has gaps of days)."""
    from zoneinfo import ZoneInfo

    from cronsim import CronSim

    zone = ZoneInfo(settings.schedule_timezone or settings.timezone)
    start = (now or datetime.now(UTC)).astimezone(zone)
    fires = CronSim(settings.refresh_cron, start)
    previous, longest = next(fires), timedelta(0)
    while previous - start < timedelta(days=8):
        following = next(fires)
        longest = max(longest, following - previous)
        previous = following
    return max(STALE_REFRESH, 2 * longest)


def _age(now: datetime, last: str | None, serve_started_at: datetime) -> str:
    if last:
        return f"for {duration_text(now - datetime.fromisoformat(last))}"
    return f"since serve started {duration_text(now - serve_started_at)} ago"


@dataclass
class Verdict:
    healthy: bool
    reasons: list[str]
    stalled_runner: bool = False
    kinds: tuple[str, ...] = ()  # what is stale, without the details: one message per kind


def assess(
    settings: Settings,
    *,
    now: datetime,
    serve_started_at: datetime,
    flows: dict[str, dict[str, Any]],
    last_ingest_run: Run | None,
    stalled_runner: bool = False,
    overdue_ingest_runs: int = 0,
    runs_known: bool = True,
) -> Verdict:
    """The liveness rule (the module's docstring), from what serve and Prefect know."""
    reasons = []
    stale = [False, False]  # ingest, refresh
    ingest = flows.get("ingest", {})
    last = ingest.get("last_poll") if settings.spotify_client_id else ingest.get("last_success")
    since = max(serve_started_at, datetime.fromisoformat(last)) if last else serve_started_at
    interval = timedelta(minutes=settings.ingest_interval_minutes)
    if now - since > STALE_INGEST_INTERVALS * interval:
        what = "poll of Spotify" if settings.spotify_client_id else "ingest"
        # the age is the real one: serve's start (a restart) only defers the verdict
        reason = f"no successful {what} " + _age(now, last, serve_started_at)
        if not runs_known:  # the Prefect API did not answer: no word on the runs
            pass
        elif last_ingest_run is None:
            reason += ": no ingest run has started"
        elif last_ingest_run.state_type in IN_PROGRESS:
            reason += (
                f": the last run is stuck in {last_ingest_run.state} since "
                f"{clock_text(last_ingest_run.since, settings)}"
            )
        else:
            reason += (
                f": the last run ended {last_ingest_run.state} at "
                f"{clock_text(last_ingest_run.since, settings)}"
            )
            if last_ingest_run.message:
                reason += f" ({last_ingest_run.message})"
            elif ingest.get("summary"):
                reason += f" ({str(ingest['summary'])[:200]})"
        if stalled_runner:
            reason += f"; {overdue_ingest_runs} due runs were never started"
        reasons.append(reason)
        stale[0] = True
    refreshed = flows.get("refresh", {}).get("last_success")
    since = (
        max(serve_started_at, datetime.fromisoformat(refreshed)) if refreshed else serve_started_at
    )
    if now - since > refresh_limit(settings, now):
        reasons.append("no successful refresh " + _age(now, refreshed, serve_started_at))
        stale[1] = True
    kinds = tuple(kind for kind, late in zip(("ingest", "refresh"), stale, strict=True) if late)
    return Verdict(not reasons, reasons, stalled_runner and bool(reasons), kinds)


def write_health(settings: Settings, verdict: Verdict, now: datetime, started: datetime) -> None:
    files.write_text(
        settings.state_dir / HEALTH_FILE,
        json.dumps(
            {
                "healthy": verdict.healthy,
                "reasons": verdict.reasons,
                "checked_at": now.isoformat(),
                "serve_started_at": started.isoformat(),
                "check_interval_s": settings.watchdog_interval_s,
                "pid": os.getpid(),  # serve's: the healthcheck stops it if it goes silent
            },
            indent=2,
        ),
    )


def load_health(settings: Settings) -> dict[str, Any] | None:
    try:
        health = json.loads((settings.state_dir / HEALTH_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return health if isinstance(health, dict) else None


def _recovered(
    flows: dict[str, dict[str, Any]], liveness: dict[str, Any], settings: Settings
) -> bool:
    """Whether what was stale has succeeded since the schedule was found failing: after a
    restart of serve the verdict is healthy for three intervals, with nothing run yet."""
    since = liveness.get("failing_since")
    if not since:
        return True
    ingest = flows.get("ingest", {})
    times = {
        "ingest": ingest.get("last_poll" if settings.spotify_client_id else "last_success"),
        "refresh": flows.get("refresh", {}).get("last_success"),
    }
    stale = str(liveness.get("cause_key") or "").removeprefix("stale: ").split(", ")
    return all(
        (times[kind] or "") > since for kind in stale if kind in times
    )  # ISO times in UTC compare as text


def tell(
    settings: Settings,
    verdict: Verdict,
    flows: dict[str, dict[str, Any]],
    now: datetime,
    started: datetime,
) -> None:
    """The verdict to health.json, and to the owner once per cause, with a recovery
    message after (both schedulers: Prefect's watchdog and the lite loop)."""
    write_health(settings, verdict, now, started)
    liveness = flows.get(LIVENESS, {})
    if verdict.healthy:
        if liveness.get("failing") and _recovered(flows, liveness, settings):
            notify.record_success(settings, LIVENESS, "runs again")
    else:
        cause = "; ".join(verdict.reasons)
        log.error("watchdog: %s", cause)
        notify.record_failure(settings, LIVENESS, cause, key="stale: " + ", ".join(verdict.kinds))


class Watchdog:
    """The checks of the module's docstring, on a thread of ``serve``."""

    def __init__(
        self, settings: Settings, api_url: str, *, on_stall: Callable[[str], None]
    ) -> None:
        self.settings = settings
        self.api = PrefectRuns(api_url)
        self.started = datetime.now(UTC)
        self._on_stall = on_stall
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._killed: dict[str, datetime] = {}
        self._idle_since: datetime | None = None
        self._api_failures = 0
        # the runner counts as stalled after this long without a run while runs are due: at
        # least two minutes, as a busy machine (a slow Prefect server, a run's process that
        # takes seconds to start) leaves gaps of tens of seconds between runs (seen in the
        # soak on a 6 s schedule, with other work on both cores)
        self._idle_limit = max(
            timedelta(minutes=settings.ingest_interval_minutes),
            timedelta(seconds=3 * float(os.environ.get("PREFECT_RUNNER_POLL_FREQUENCY", 30))),
            timedelta(seconds=5 * settings.watchdog_interval_s),
            timedelta(minutes=2),
        )

    def start(self) -> None:
        # healthy until the first check can tell otherwise (the healthcheck's start period)
        write_health(self.settings, Verdict(True, []), self.started, self.started)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.api.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.watchdog_interval_s):
            try:
                self.check()
            except Exception as exc:  # the Prefect server restarting, a full disk: next time
                log.warning("watchdog: check failed, trying again next time: %s", exc)

    def check(self, now: datetime | None = None) -> Verdict:
        now = now or datetime.now(UTC)
        interval = timedelta(minutes=self.settings.ingest_interval_minutes)
        flows = notify.load_health(self.settings)
        in_progress: list[Run] = []
        newest: Run | None = None
        overdue = 0
        api_error: Exception | None = None
        try:
            in_progress = self.api.in_progress()
            for run in in_progress:
                if now - run.since > time_limit(self.settings, run.flow):
                    self._stop_run(run, now)
            newest = self.api.newest("ingest")
            overdue = self.api.overdue("ingest", now - interval)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            # the liveness rule needs only what serve itself wrote: it is judged and told
            # all the same; only the details, time limits and the stalled runner wait
            api_error = exc
            self._api_failures += 1
            log.warning("watchdog: the Prefect API did not answer: %s", exc)
        else:
            self._api_failures = 0
        # the runner no longer starts runs: none in progress, yet runs due for more than an
        # interval, and so for longer than the runner could take to notice them
        if api_error is None and (in_progress or not overdue):
            self._idle_since = None
        elif api_error is None and self._idle_since is None:
            self._idle_since = now
        verdict = assess(
            self.settings,
            now=now,
            serve_started_at=self.started,
            flows=flows,
            last_ingest_run=newest,
            stalled_runner=self._idle_since is not None
            and now - self._idle_since > self._idle_limit,
            overdue_ingest_runs=overdue,
            runs_known=api_error is None,
        )
        if api_error is not None and self._api_failures >= 3:
            verdict.healthy = False
            verdict.reasons.append(
                f"the Prefect API has not answered {self._api_failures} checks in a row "
                f"({api_error}): no run can start"
            )
            verdict.kinds += ("prefect api",)
        tell(self.settings, verdict, flows, now, self.started)
        if verdict.stalled_runner:
            self._on_stall("; ".join(verdict.reasons))
        return verdict

    def _stop_run(self, run: Run, now: datetime) -> None:
        limit = time_limit(self.settings, run.flow)
        cause = (
            f"timed out: the {run.flow} run '{run.name}' was still {run.state} after "
            f"{duration_text(limit)} (since {clock_text(run.since, self.settings)}); it was "
            "stopped and the next run goes on (MUSIC_TRACKER_RUN_TIMEOUT_MINUTES)"
        )
        if run.id in self._killed and now - self._killed[run.id] < 3 * timedelta(
            seconds=self.settings.watchdog_interval_s
        ):
            return  # the runner is still reporting the kill
        pids = run_processes(run.id)
        _remember_stopped(self.settings, run.id, cause)
        self._killed[run.id] = now
        if pids:
            log.error("watchdog: %s (process %s)", cause, ", ".join(map(str, pids)))
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return  # the runner reports it crashed and runs the crash hook (one message)
        # no process of this serve runs it (an earlier serve was killed): nobody else will
        # ever end it, and while it counts as running its deployment starts no other run
        if self.api.crash(run, cause):
            log.error("watchdog: %s (no process of it left)", cause)
            notify.record_failure(self.settings, run.flow, cause, key=timed_out_key(run.flow))
