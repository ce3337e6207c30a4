"""``music-tracker status``: what the warehouse holds, how the flows and the schedule
fare, and what needs the owner's attention, gathered in one report (the CLI prints it).

The warehouse is read for a moment, read-only. DuckDB lets no reader open the file beside
a writer: then the report is what the last `status` read (``state/status.json``), said so
in a warning.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb

from music_tracker import exclusions, files, warehouse
from music_tracker.console import local
from music_tracker.lock import WAREHOUSE_LOCK_FILE
from music_tracker.orchestration.healthcheck import verdict
from music_tracker.orchestration.notify import load_health as load_flow_health
from music_tracker.orchestration.watchdog import LIVENESS, load_health
from music_tracker.settings import (
    Settings,
    settings_files,
    settings_folder_here,
    user_config_dir,
)
from music_tracker.sources.musicbrainz.enrich import ArtistsUnknown, pending_artists
from music_tracker.sources.spotify.auth import ReauthorizeRequired, TokenStore, expiry_warning
from music_tracker.transform import UNFINISHED_MARK, build_fingerprint

CACHE = "status.json"  # in state/: what the last `status` read
LOCAL_TIMES = ("first_play_at", "last_play_at", "last_import_at", "star_schema_built_at")


class NoWarehouse(Exception):
    """Nothing imported yet in this data folder; the message says what to run."""


def gather(settings: Settings) -> dict[str, Any]:
    """The status report; NoWarehouse before the first import, WarehouseBusy when another
    process holds the warehouse and no earlier `status` was saved."""
    if not settings.warehouse_path.exists():
        raise NoWarehouse(
            f"no warehouse at {settings.warehouse_path}: run `music-tracker import` first"
            f" ({settings_read()})"
        )
    cache = settings.state_dir / CACHE
    busy = None
    try:
        with warehouse.connect(
            settings.warehouse_path, read_only=True, file_wait_s=settings.lock_wait_s
        ) as con:
            report = warehouse.status(con)
            built = warehouse.built_for(con)
            report["star_schema_built_for"] = None if built is None else vars(built)
            report["star_schema_fingerprint"] = warehouse.last_transform_fingerprint(con)
            report["enrichment_backlog"] = _enrichment_backlog(con, settings)
            report["exclusions"] = exclusions.status(con, settings.data_dir)
        files.write_text(
            cache, json.dumps({**report, "read_at": datetime.now(UTC).isoformat()}, default=str)
        )
    except warehouse.WarehouseBusy as exc:
        if not cache.is_file():
            raise
        report = json.loads(cache.read_text())
        busy = f"{exc}; showing the warehouse as it was at {report['read_at']}"
        report["building"] = _building_now(settings)
    # against the project, settings and exclusions.yaml now, also for a copy saved before
    # they changed (helper-69: "up to date" from the copy shown while a writer held it)
    built = report.get("star_schema_built_for")
    check = warehouse.check_build(
        warehouse.BuiltFor(**built) if built else None,
        report.get("star_schema_fingerprint"),
        finished=not (settings.data_dir / UNFINISHED_MARK).exists(),
        timezone=settings.timezone,
        stream_threshold_ms=settings.stream_threshold_ms,
        expected=build_fingerprint(settings),  # None: exclusions.yaml unreadable, told apart
    )
    report["flows"] = _flow_health(settings)
    report["schedule"] = _schedule_health(settings)
    report["warehouse"] = str(settings.warehouse_path.resolve())
    report["settings_files"] = [str(path) for path in settings_files()]
    report["timezone"] = settings.timezone
    report["warnings"] = _warnings(settings, report, check) + ([busy] if busy else [])
    report["star_schema_stale"] = _stale(report, check)
    zone = ZoneInfo(settings.timezone)
    # the same instants, in the configured zone, for people
    report["local"] = {key: local(report[key], zone) for key in LOCAL_TIMES}
    return report


def settings_read() -> str:
    """Where the settings came from, for people: the files read, or where none was found."""
    read = settings_files()
    if read:
        return "settings read from " + ", ".join(str(path) for path in read)
    places = [str(folder) for folder in (settings_folder_here(), user_config_dir()) if folder]
    return (
        "settings: no .env or music-tracker.toml in " + " or ".join(places)
        + "; only the environment, options and defaults"
    )  # fmt: skip


def _schedule_health(settings: Settings) -> dict[str, Any] | None:
    """serve's liveness as its watchdog last wrote it (None when serve never ran here)."""
    health = load_health(settings)
    if health is None:
        return None
    healthy, why = verdict(settings.data_dir)
    running = healthy or not why.startswith("serve's watchdog has not checked")
    return {
        "running": running,
        "healthy": healthy,
        "reasons": health.get("reasons", []) if running else [why],
        "checked_at": health.get("checked_at"),
        "serve_started_at": health.get("serve_started_at"),
    }


def _enrichment_backlog(con: duckdb.DuckDBPyConnection, settings: Settings) -> int | None:
    """Artists MusicBrainz has not been asked about yet (None before the first build)."""
    try:
        return len(pending_artists(con, timedelta(days=settings.musicbrainz_retry_days), None))
    except ArtistsUnknown:
        return None


def _flow_health(settings: Settings) -> dict[str, dict[str, Any]]:
    # the schedule's liveness is not a flow: `schedule` reports it (from health.json)
    return {
        name: {k: v for k, v in health.items() if k != "cause_key"}
        for name, health in sorted(load_flow_health(settings).items())
        if name != LIVENESS
    }


def _building_now(settings: Settings) -> bool:
    """Whether the writer holding the warehouse now is a transform: its turn's lock file
    names it while held (asked only when the warehouse was found held)."""
    try:
        text = (settings.data_dir / WAREHOUSE_LOCK_FILE).read_text(encoding="utf-8")
        return bool(json.loads(text or "{}").get("what") == "transform")
    except (OSError, ValueError, AttributeError):
        return False


def _stale(report: dict[str, Any], check: warehouse.BuildCheck) -> str | None:
    """Why the star schema does not show what is imported under the settings now, beside
    plays imported since its build (None: it does, or it is not built): ``check`` in words
    (helper-63: "up to date" above a warning that it may be incomplete; helper-68: a build
    stopped under a new time zone said it was built for that zone)."""
    if report.get("star_schema_built_at") is None or check.stale is None:
        return None
    if check.stale == "unfinished":
        # helper-69: a build running now was told as one that "did not finish"
        return "being built now" if report.get("building") else "its last build did not finish"
    if check.stale == "settings":
        return "built under other settings"
    return "built before a change of the project, a setting or exclusions.yaml"


def _warnings(settings: Settings, report: dict[str, Any], check: warehouse.BuildCheck) -> list[str]:
    warnings = list(report.get("exclusions", {}).get("warnings", []))
    warnings += [
        f"plays may be missing between {gap['from']} and {gap['to']} (polling gap): "
        "import an extended export covering it"
        for gap in report["gaps"]
        if not gap["closed"]
    ]
    unfinished = check.stale == "unfinished"
    if check.differs:
        warnings.append(
            f"{check.differs}: its dates, hours and streams are the old ones until"
            " `music-tracker transform` rebuilds it"
        )
    if unfinished and report.get("building"):
        warnings.append(
            "a `music-tracker transform` is building the star schema now: what status shows"
            " of it is from before"
        )
    elif unfinished:
        warnings.append(
            "the last `music-tracker transform` did not finish (stopped or failed): the star"
            " schema may be incomplete until the next one, which rebuilds everything"
        )
    try:
        token = TokenStore(settings.state_dir).load()
    except ReauthorizeRequired as exc:  # a damaged token file: status still answers
        warnings.append(str(exc))
        token = None
    if token is not None and (warning := expiry_warning(token)):
        warnings.append(warning)
    for name, health in report.get("flows", {}).items():
        if health.get("failing"):
            warnings.append(
                f"the {name} flow has been failing since {health.get('failing_since')}: "
                f"{health.get('cause')}"
            )
    schedule = report.get("schedule")
    if schedule and schedule["running"] and not schedule["healthy"]:
        warnings += [f"the schedule is stalled: {reason}" for reason in schedule["reasons"]]
    backlog = report.get("enrichment_backlog")
    if backlog and backlog > 100:
        warnings.append(
            f"{backlog:,} artists wait for their MusicBrainz lookup "
            "(`music-tracker enrich`; the schedule looks up "
            f"{settings.enrich_artists_per_run} after each ingest)"
        )
    return warnings
