"""What each scheduled flow does, step by step, with no scheduler in it.

The same four jobs run under either scheduler: Prefect's (``flows.py``, for ``serve`` on
the full plan, where each step is a Prefect task) and the lite plan's (``lite.py``, no
Prefect server: each run is a child process calling these functions). A job is handed a
:class:`Steps` that runs one named step (retried or not, optional or not) and a logger;
nothing here imports Prefect.

- ``ingest``: poll Spotify, look up a bounded number of new artists in MusicBrainz, then
  transform and publish when the poll stored new plays (at most every
  ``transform_min_interval_minutes``). Without Metabase (the lite plan) the static report
  is the dashboards, so it is rewritten with every such build.
- ``refresh``: transform, publish and rewrite the static report when anything arrived
  since the last build (plays from any source, artists from MusicBrainz), else nothing.
- ``pipeline``: ``music-tracker run``, everything once.
- ``backup``: a consistent backup of what cannot be rebuilt.

Every job holds the writer lock while it writes (waiting at most ``writer_wait_s``, then
skipping with a log line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from music_tracker.lock import WriterBusy, writer_lock
from music_tracker.orchestration import notify
from music_tracker.settings import Settings

# Seconds a step may take before it is stopped (a hung request, a runaway build).
TIMEOUTS = {
    "ingest": 300,
    "enrich": 1_800,
    "transform": 1_800,
    "publish": 600,
    "report": 900,
    "backup": 1_800,
}


class JobFailed(Exception):
    """The job cannot go on; the message is the whole cause (no traceback is wanted)."""


class Steps(Protocol):
    """How a scheduler runs one step of a job."""

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[Any]: ...

    def __call__(
        self, step: str, settings: Settings, *, retry: bool = False, optional: str = ""
    ) -> dict[str, Any] | None:
        """The step's result. ``retry``: on failure, run it again ``task_retries`` times
        with a doubling delay. ``optional``: a failure is logged under this name and gives
        None (the job goes on); otherwise it raises."""
        ...


def retry_delays(settings: Settings) -> list[float]:
    return [settings.task_retry_delay_s * 2**n for n in range(settings.task_retries)]


# -- the steps: each one the function a command runs ---------------------------------------


def ingest_step(settings: Settings) -> dict[str, Any]:
    from music_tracker.ingest import ingest

    return ingest(settings).as_dict()


def enrich_step(settings: Settings) -> dict[str, Any]:
    from music_tracker.sources.musicbrainz.enrich import run_enrichment

    return run_enrichment(settings, limit=settings.enrich_artists_per_run).as_dict()


def transform_step(settings: Settings) -> dict[str, Any]:
    from music_tracker.transform import run_build

    # an owner's `report` or `status` may be reading: wait for it as for a writer
    result = run_build(settings, wait_s=settings.writer_wait_s)
    return {
        "scope": result.scope,
        "succeeded": result.succeeded,
        "seconds": result.seconds,
        "replayed": result.replayed,
    }


def publish_step(settings: Settings) -> dict[str, Any]:
    from music_tracker.publish import publish

    return publish(settings).as_dict()


def report_step(settings: Settings) -> dict[str, Any]:
    from music_tracker.report import report

    # a `music-tracker report` of the owner's may be writing it: wait as for a writer
    return {"pages": report(settings, wait_s=settings.writer_wait_s)["pages"]}


def backup_step(settings: Settings) -> dict[str, Any]:
    """The backup, or ``{"not_made": why}`` when it could not be made for a reason the
    message says in full (busy, no warehouse, the bucket): returned, not raised, since a
    raised exception is logged with its traceback."""
    from music_tracker.backup import backup
    from music_tracker.backup_layout import BackupError
    from music_tracker.warehouse import WarehouseBusy

    try:
        return backup(settings, wait_s=settings.writer_wait_s).as_dict()
    except (WriterBusy, WarehouseBusy) as exc:
        return {"not_made": f"{exc}; the next backup is on schedule, or run `music-tracker backup`"}
    except BackupError as exc:
        return {"not_made": str(exc)}


STEPS: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "ingest": ingest_step,
    "enrich": enrich_step,
    "transform": transform_step,
    "publish": publish_step,
    "report": report_step,
    "backup": backup_step,
}


# -- the jobs -------------------------------------------------------------------------------


def needs_build(settings: Settings, *, min_interval_minutes: float) -> tuple[bool, str, str | None]:
    """(build?, why, when the star schema was last built): data arrived since the last
    build, and the last build is old enough."""
    from music_tracker import warehouse

    if not settings.warehouse_path.exists():
        return False, "no warehouse yet (import an export first)", None
    with warehouse.connect(
        settings.warehouse_path, file_wait_s=settings.lock_wait_s, read_only=True
    ) as con:
        built_at, plays = warehouse.since_last_build(con)
        (enriched,) = con.execute(
            "select max(looked_up_at) from raw.musicbrainz_artists"
        ).fetchone() or (None,)
    if built_at is None:
        return True, "the star schema was never built", None
    built = built_at.isoformat()
    age = datetime.now(UTC) - built_at
    new_artists = enriched is not None and enriched > built_at
    if not plays and not new_artists:
        return False, "nothing arrived since the last build", built
    if age < timedelta(minutes=min_interval_minutes):
        why = (
            f"built {age.total_seconds() / 60:.0f} min ago; at most every "
            f"{min_interval_minutes:g} min (MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES)"
        )
        return False, why, built
    return True, f"{plays} plays arrived since the last build", built


def build_and_publish(settings: Settings, steps: Steps, *, report: bool) -> dict[str, Any]:
    done: dict[str, Any] = {"transform": steps("transform", settings)}
    done["publish"] = steps("publish", settings, retry=True, optional="publish")
    if done["publish"] is None:
        raise JobFailed(f"publish failed: {getattr(steps, 'last_error', '')}")
    if report:
        done["report"] = steps("report", settings, optional="report")
    return done


def poll_and_enrich(settings: Settings, steps: Steps) -> dict[str, Any]:
    """The poll (retried) when a Spotify app is configured, then a bounded MusicBrainz
    round when a contact is set (its failure is logged; the job goes on)."""
    done: dict[str, Any] = {}
    if settings.spotify_client_id:
        done["ingest"] = steps("ingest", settings, retry=True)
        notify.record_poll(settings)
    else:
        steps.log.info("no Spotify app configured (MUSIC_TRACKER_SPOTIFY_CLIENT_ID): no poll")
    if settings.contact and settings.enrich_artists_per_run:
        done["enrich"] = steps("enrich", settings, optional="MusicBrainz enrichment")
    return done


def ingest(settings: Settings, steps: Steps) -> dict[str, Any]:
    """Poll Spotify, enrich a few artists, transform and publish when plays arrived."""
    summary: dict[str, Any] = {}
    try:
        with writer_lock(settings.data_dir, "ingest flow", wait_s=settings.writer_wait_s):
            summary |= poll_and_enrich(settings, steps)
            build, why, _ = needs_build(
                settings, min_interval_minutes=settings.transform_min_interval_minutes
            )
            steps.log.info("transform and publish: %s (%s)", "yes" if build else "no", why)
            if build:
                # without Metabase the report is the dashboards: as fresh as the build
                summary |= build_and_publish(settings, steps, report=not settings.metabase_url)
    except WriterBusy as exc:
        steps.log.info("skipped: %s", exc)
        summary["skipped"] = str(exc)
    return summary


def report_behind(settings: Settings, built: str | None) -> str | None:
    """Why the static report is older than the star schema built at ``built`` (never
    written, or written before that build), or None. With Metabase configured the polls'
    builds leave the report to this hourly flow, and by then they have usually built what
    arrived."""
    if built is None:
        return None
    index = settings.report_dir / "index.html"  # the report's folder is replaced whole
    if not index.is_file():
        return "the report was never written"
    written = datetime.fromtimestamp(index.stat().st_mtime, UTC)
    if written >= datetime.fromisoformat(built):
        return None
    return f"the report was written before the last build ({built})"


def refresh(settings: Settings, steps: Steps) -> dict[str, Any]:
    """Transform, publish and rewrite the report if anything arrived; rewrite the report
    alone if a build since it (a poll's, with Metabase configured) left it behind."""
    try:
        with writer_lock(settings.data_dir, "refresh flow", wait_s=settings.writer_wait_s):
            build, why, built = needs_build(settings, min_interval_minutes=0)
            steps.log.info("transform, publish, report: %s (%s)", "yes" if build else "no", why)
            if build:
                return build_and_publish(settings, steps, report=True)
            behind = report_behind(settings, built)
            if behind is None:
                return {"skipped": why}
            steps.log.info("report: yes (%s)", behind)
            return {"report": steps("report", settings, optional="report")}
    except WriterBusy as exc:
        steps.log.info("skipped: %s", exc)
        return {"skipped": str(exc)}


def pipeline(settings: Settings, steps: Steps) -> dict[str, Any]:
    """`music-tracker run`: ingest, enrich, transform, publish and the report, once."""
    summary: dict[str, Any] = {}
    with writer_lock(settings.data_dir, "run", wait_s=settings.writer_wait_s):
        summary |= poll_and_enrich(settings, steps)
        if not settings.warehouse_path.exists():
            raise JobFailed(f"no warehouse at {settings.warehouse_path}: import an export first")
        summary |= build_and_publish(settings, steps, report=True)
    return summary


def backup(settings: Settings, steps: Steps) -> dict[str, Any]:
    """A backup not made fails the job with the cause as its message (one failure message,
    no traceback): unlike a poll, the next chance is a day away."""
    result = steps("backup", settings)
    assert result is not None  # not optional
    if "not_made" in result:
        steps.log.error("no backup: %s", result["not_made"])
        raise JobFailed(f"no backup: {result['not_made']}")
    for warning in result["warnings"]:  # damaged backups, skipped: the owner should look
        steps.log.warning(warning)
    return result


JOBS: dict[str, Callable[[Settings, Steps], dict[str, Any]]] = {
    "ingest": ingest,
    "refresh": refresh,
    "pipeline": pipeline,
    "backup": backup,
}
