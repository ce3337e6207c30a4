"""Prefect flows over the functions the commands run (no second copy of the logic).

- ``ingest``: every 10 minutes. Poll Spotify, look up a bounded number of new artists in
  MusicBrainz, then transform and publish when the poll stored new plays (at most every
  ``transform_min_interval_minutes``).
- ``refresh``: hourly (cron). Transform, publish and rewrite the static report when
  anything arrived since the last build (plays from any source, artists from MusicBrainz),
  else nothing.
- ``pipeline``: ``music-tracker run``, everything once.

Every flow holds the writer lock while it writes (waiting at most ``writer_wait_s``, then
skipping with a log line). Network tasks retry with a doubling delay; every task has a
timeout, and under ``serve`` every run a time limit (``watchdog.py`` kills a run that
exceeds it); a MusicBrainz or Metabase failure is logged and the rest of the flow goes on.
A failed or crashed flow (an out-of-memory kill included) sends one message per cause;
the next success sends a recovery message (``notify.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State
from prefect.flows import Flow
from prefect.states import Failed

from music_tracker.orchestration import notify
from music_tracker.orchestration.lock import WriterBusy, writer_lock
from music_tracker.settings import Settings, get_settings

# Seconds a task may take before it is stopped (a hung request, a runaway build).
TIMEOUTS = {
    "ingest": 300,
    "enrich": 1_800,
    "transform": 1_800,
    "publish": 600,
    "report": 900,
    "backup": 1_800,
}


def _settings(data_dir: str | None) -> Settings:
    from music_tracker import warehouse

    settings = get_settings(data_dir=Path(data_dir)) if data_dir else get_settings()
    # how long opening the warehouse waits for another process, as in the commands
    warehouse.LOCK_WAIT_S = settings.lock_wait_s
    return settings.model_copy(update={"data_dir": settings.data_dir.resolve()})


def _delays(settings: Settings) -> list[float]:
    return [settings.task_retry_delay_s * 2**n for n in range(settings.task_retries)]


# -- tasks: each one the function a command runs -------------------------------------------


@task(name="ingest", cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS["ingest"])
def ingest_task(settings: Settings) -> dict[str, Any]:
    from music_tracker.sources.spotify.ingest import ingest

    return ingest(settings).as_dict()


@task(name="enrich", cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS["enrich"])
def enrich_task(settings: Settings) -> dict[str, Any]:
    from music_tracker.sources.musicbrainz.enrich import run_enrichment

    return run_enrichment(settings, limit=settings.enrich_artists_per_run).as_dict()


@task(name="transform", cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS["transform"])
def transform_task(settings: Settings) -> dict[str, Any]:
    from music_tracker.transform import run_build

    result = run_build(settings)
    return {"scope": result.scope, "succeeded": result.succeeded, "seconds": result.seconds}


@task(name="publish", cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS["publish"])
def publish_task(settings: Settings) -> dict[str, Any]:
    from music_tracker.publish import publish

    return publish(settings).as_dict()


@task(name="report", cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS["report"])
def report_task(settings: Settings) -> dict[str, Any]:
    from music_tracker.reporting.definitions import load_dashboards
    from music_tracker.reporting.static_site import Context, build_report

    context = Context(
        timezone=settings.timezone,
        stream_threshold_ms=settings.stream_threshold_ms,
        built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    summary = build_report(
        settings.warehouse_path,
        settings.report_dir,
        context,
        dashboards=load_dashboards(),
        memory_limit=settings.duckdb_memory_limit,
    )
    return {"pages": summary.as_dict()["pages"]}


@task(name="backup", cache_policy=NO_CACHE, timeout_seconds=TIMEOUTS["backup"])
def backup_task(settings: Settings) -> dict[str, Any]:
    """The backup, or ``{"not_made": why}`` when it could not be made for a reason the
    message says in full (busy, no warehouse, the bucket): returned, not raised, since
    Prefect logs a raised exception with its traceback."""
    from music_tracker.backup import BackupError, backup
    from music_tracker.warehouse import WarehouseBusy

    try:
        return backup(settings).as_dict()
    except (WriterBusy, WarehouseBusy) as exc:
        return {"not_made": f"{exc}; the next backup is on schedule, or run `music-tracker backup`"}
    except BackupError as exc:
        return {"not_made": str(exc)}


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


def _needs_build(settings: Settings, *, min_interval_minutes: float) -> tuple[bool, str]:
    """(build?, why): data arrived since the last build, and the last build is old enough."""
    from music_tracker import warehouse

    if not settings.warehouse_path.exists():
        return False, "no warehouse yet (import an export first)"
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        report = warehouse.status(con)
        (enriched,) = con.execute(
            "select max(looked_up_at) from raw.musicbrainz_artists"
        ).fetchone() or (None,)
    built = report["star_schema_built_at"]
    if built is None:
        return True, "the star schema was never built"
    built_at = datetime.fromisoformat(built)
    age = datetime.now(UTC) - built_at
    new_artists = enriched is not None and enriched > built_at
    if not report["plays_imported_since_build"] and not new_artists:
        return False, "nothing arrived since the last build"
    if age < timedelta(minutes=min_interval_minutes):
        return False, (
            f"built {age.total_seconds() / 60:.0f} min ago; at most every "
            f"{min_interval_minutes:g} min (MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES)"
        )
    return True, f"{report['plays_imported_since_build']} plays arrived since the last build"


def _optional(name: str, future_state: State[Any]) -> Any:
    """A task whose failure must not stop the flow: its result, or None with a warning."""
    logger = get_run_logger()
    if future_state.is_completed():
        return future_state.result()
    logger.warning("%s failed, the flow goes on: %s", name, future_state.message)
    return None


def _build_and_publish(settings: Settings, *, report: bool) -> dict[str, Any]:
    done: dict[str, Any] = {"transform": transform_task(settings)}
    published = publish_task.with_options(
        retries=settings.task_retries, retry_delay_seconds=_delays(settings)
    )(settings, return_state=True)
    done["publish"] = _optional("publish", published)
    if done["publish"] is None:
        raise RuntimeError(f"publish failed: {published.message}")
    if report:
        done["report"] = _optional("report", report_task(settings, return_state=True))
    return done


def _poll_and_enrich(settings: Settings) -> dict[str, Any]:
    """The poll (retried) when a Spotify app is configured, then a bounded MusicBrainz
    round when a contact is set (its failure is logged; the flow goes on)."""
    done: dict[str, Any] = {}
    if settings.spotify_client_id:
        done["ingest"] = ingest_task.with_options(
            retries=settings.task_retries, retry_delay_seconds=_delays(settings)
        )(settings)
        notify.record_poll(settings)
    else:
        get_run_logger().info(
            "no Spotify app configured (MUSIC_TRACKER_SPOTIFY_CLIENT_ID): no poll"
        )
    if settings.contact and settings.enrich_artists_per_run:
        done["enrich"] = _optional(
            "MusicBrainz enrichment", enrich_task(settings, return_state=True)
        )
    return done


@flow(name="ingest", **HOOKS)
def ingest_flow(data_dir: str | None = None) -> dict[str, Any]:
    """Poll Spotify, enrich a few artists, transform and publish when plays arrived."""
    settings = _settings(data_dir)
    logger = get_run_logger()
    summary: dict[str, Any] = {}
    try:
        with writer_lock(settings.data_dir, "ingest flow", wait_s=settings.writer_wait_s):
            summary |= _poll_and_enrich(settings)
            build, why = _needs_build(
                settings, min_interval_minutes=settings.transform_min_interval_minutes
            )
            logger.info("transform and publish: %s (%s)", "yes" if build else "no", why)
            if build:
                summary |= _build_and_publish(settings, report=False)
    except WriterBusy as exc:
        logger.info("skipped: %s", exc)
        summary["skipped"] = str(exc)
    return summary


@flow(name="refresh", **HOOKS)
def refresh_flow(data_dir: str | None = None) -> dict[str, Any]:
    """Hourly: transform, publish and rewrite the report if anything arrived."""
    settings = _settings(data_dir)
    logger = get_run_logger()
    try:
        with writer_lock(settings.data_dir, "refresh flow", wait_s=settings.writer_wait_s):
            build, why = _needs_build(settings, min_interval_minutes=0)
            logger.info("transform, publish, report: %s (%s)", "yes" if build else "no", why)
            return _build_and_publish(settings, report=True) if build else {"skipped": why}
    except WriterBusy as exc:
        logger.info("skipped: %s", exc)
        return {"skipped": str(exc)}


@flow(name="pipeline", **HOOKS)
def pipeline_flow(data_dir: str | None = None) -> dict[str, Any]:
    """`music-tracker run`: ingest, enrich, transform, publish and the report, once."""
    settings = _settings(data_dir)
    summary: dict[str, Any] = {}
    with writer_lock(settings.data_dir, "run", wait_s=settings.writer_wait_s):
        summary |= _poll_and_enrich(settings)
        if not settings.warehouse_path.exists():
            raise RuntimeError(f"no warehouse at {settings.warehouse_path}: import an export first")
        summary |= _build_and_publish(settings, report=True)
    return summary


@flow(name="backup", **HOOKS)
def backup_flow(data_dir: str | None = None) -> dict[str, Any] | State[Any]:
    """Daily: a consistent backup of what cannot be rebuilt (it takes the writer lock).

    A backup not made fails the run with the cause as its message (one failure message,
    no traceback): unlike a poll, the next chance is a day away."""
    result = backup_task(_settings(data_dir))
    if "not_made" in result:
        get_run_logger().error("no backup: %s", result["not_made"])
        return Failed(message=f"no backup: {result['not_made']}")
    for warning in result["warnings"]:  # damaged backups, skipped: the owner should look
        get_run_logger().warning(warning)
    return result
