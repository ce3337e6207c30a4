"""Prefect flows over the jobs in ``jobs.py`` (no second copy of the logic).

- ``ingest``: every 10 minutes. Poll Spotify, look up a bounded number of new artists in
  MusicBrainz, then transform and publish when the poll stored new plays (at most every
  ``transform_min_interval_minutes``).
- ``refresh``: hourly (cron). Transform, publish and rewrite the static report when
  anything arrived since the last build (plays from any source, artists from MusicBrainz),
  else rewrite the report alone if it is older than the last build, else nothing.
- ``backup``: daily (cron).
- ``pipeline``: ``music-tracker run``, everything once.

Each step of a job is a Prefect task here (retries with a doubling delay, a timeout, its
own record in the UI); under ``serve`` every run has a time limit (``watchdog.py`` kills
a run that exceeds it); a MusicBrainz or Metabase failure is logged and the rest of the
flow goes on. A failed or crashed flow (an out-of-memory kill included) sends one message
per cause; the next success sends a recovery message (``notify.py``). The lite plan runs
the same jobs without Prefect (``lite.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State
from prefect.flows import Flow
from prefect.states import Failed

from music_tracker.orchestration import jobs, notify
from music_tracker.settings import Settings, get_settings

TIMEOUTS = jobs.TIMEOUTS


def _settings(data_dir: str | None) -> Settings:
    settings = get_settings(data_dir=Path(data_dir)) if data_dir else get_settings()
    return settings.model_copy(update={"data_dir": settings.data_dir.resolve()})


# -- tasks: each one a step of jobs.py ------------------------------------------------------

TASKS = {
    name: task(name=name, cache_policy=NO_CACHE, timeout_seconds=jobs.TIMEOUTS[name])(function)
    for name, function in jobs.STEPS.items()
}


class PrefectSteps:
    """jobs.Steps as Prefect tasks, inside a flow run."""

    def __init__(self) -> None:
        self.log = get_run_logger()
        self.last_error = ""

    def __call__(
        self, step: str, settings: Settings, *, retry: bool = False, optional: str = ""
    ) -> dict[str, Any] | None:
        runnable = TASKS[step]
        if retry:
            runnable = runnable.with_options(
                retries=settings.task_retries, retry_delay_seconds=jobs.retry_delays(settings)
            )
        if not optional:
            result: dict[str, Any] = runnable(settings)
            return result
        state = runnable(settings, return_state=True)
        if state.is_completed():
            completed: dict[str, Any] = state.result()
            return completed
        self.last_error = state.message or ""
        self.log.warning("%s failed, the flow goes on: %s", optional, state.message)
        return None


# -- health hooks: one message per cause, a recovery message ------------------------------


def _flow_settings(flow_run: FlowRun) -> Settings:
    return _settings((flow_run.parameters or {}).get("data_dir"))


def _on_failure(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    from music_tracker.orchestration.watchdog import stopped_cause, timed_out_key

    settings = _flow_settings(flow_run)
    cause = state.message or state.name or "failed"
    key = None
    if state.is_crashed():
        # killed by serve's watchdog at its time limit, or by something else (the kernel)
        stopped = stopped_cause(settings, str(flow_run.id))
        if stopped:
            cause, key = stopped, timed_out_key(flow.name)
        elif "status code: -15" in cause:
            cause = f"stopped when serve shut down ({cause})"
        else:
            cause = f"crashed ({cause}); an out-of-memory kill looks like this"
    notify.record_failure(settings, flow.name, cause, key=key)


def _on_success(flow: Flow[Any, Any], flow_run: FlowRun, state: State[Any]) -> None:
    notify.record_success(_flow_settings(flow_run), flow.name, state.message or "")


HOOKS: dict[str, Any] = {
    "on_failure": [_on_failure],
    "on_crashed": [_on_failure],
    "on_completion": [_on_success],
}


# -- flows ----------------------------------------------------------------------------------


def _job(name: str, data_dir: str | None) -> dict[str, Any]:
    try:
        return jobs.JOBS[name](_settings(data_dir), PrefectSteps())
    except jobs.JobFailed as exc:  # the cause is the whole message: no traceback
        raise RuntimeError(str(exc)) from None


@flow(name="ingest", **HOOKS)
def ingest_flow(data_dir: str | None = None) -> dict[str, Any]:
    """Poll Spotify, enrich a few artists, transform and publish when plays arrived."""
    return _job("ingest", data_dir)


@flow(name="refresh", **HOOKS)
def refresh_flow(data_dir: str | None = None) -> dict[str, Any]:
    """Hourly: transform, publish and rewrite the report if anything arrived."""
    return _job("refresh", data_dir)


@flow(name="pipeline", **HOOKS)
def pipeline_flow(data_dir: str | None = None) -> dict[str, Any]:
    """`music-tracker run`: ingest, enrich, transform, publish and the report, once."""
    return _job("pipeline", data_dir)


@flow(name="backup", **HOOKS)
def backup_flow(data_dir: str | None = None) -> dict[str, Any] | State[Any]:
    """Daily: a consistent backup of what cannot be rebuilt (it takes the writer lock).

    A backup not made fails the run with the cause as its message (one failure message,
    no traceback): unlike a poll, the next chance is a day away."""
    try:
        return jobs.backup(_settings(data_dir), PrefectSteps())
    except jobs.JobFailed as exc:
        return Failed(message=str(exc))
