"""The hand-off between ``publish`` and Metabase: which serving copy is current
(``serving/dw-<UTC time>.duckdb``, the newest complete one) and pointing Metabase's
DuckDB database at it (``PUT /api/database/:id``). ``publish`` calls it after each new
copy; ``metabase provision`` creates the database on the current copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from music_tracker.metabase.client import MetabaseClient, MetabaseError
from music_tracker.settings import Settings

SITE_NAME = "Music Tracker"
# serving copies: the name's time sorts them (publish writes them, Metabase reads them)
PREFIX = "dw-"
SUFFIX = ".duckdb"


def serving_copies(serving_dir: Path) -> list[Path]:
    """Complete serving copies, oldest first (names sort by their UTC time)."""
    if not serving_dir.is_dir():
        return []
    return sorted(p for p in serving_dir.glob(f"{PREFIX}*{SUFFIX}") if p.is_file())


def current_copy(serving_dir: Path) -> Path | None:
    copies = serving_copies(serving_dir)
    return copies[-1] if copies else None


def container_path(settings: Settings, name: str) -> str:
    """A serving copy's path as Metabase sees it (the serving folder's mount point)."""
    return f"{settings.metabase_serving_dir.rstrip('/')}/{name}"


def database_details(settings: Settings, copy_name: str) -> dict[str, Any]:
    return {
        "database_file": container_path(settings, copy_name),
        "read_only": True,
        "memory_limit": settings.metabase_duckdb_memory_limit,
        "old_implicit_casting": True,
        "allow_unsigned_extensions": False,
    }


def _find_database(mb: MetabaseClient, name: str) -> dict[str, Any] | None:
    for database in mb.call("GET", "/api/database/"):
        if database.get("name") == name:
            return dict(database)
    return None


def _files_in_use(databases: list[dict[str, Any]]) -> set[str]:
    """The serving copies (file names) any DuckDB database in Metabase points at."""
    return {
        Path(str(db.get("details", {}).get("database_file", ""))).name
        for db in databases
        if db.get("engine") == "duckdb" and db.get("details", {}).get("database_file")
    }


def _details_match(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(current.get(key) == value for key, value in wanted.items())


def point_database_at(settings: Settings, copy_name: str) -> set[str]:
    """Point the provisioned database at a new serving copy (what ``publish`` calls).

    Returns the copies Metabase still points at afterwards. Metabase must be up and
    provisioned; otherwise MetabaseError, and the copy waits for the next publish."""
    with MetabaseClient(settings) as mb:
        mb.wait_until_up(0)
        sign_in_provisioned(mb)
        databases = [dict(db) for db in mb.call("GET", "/api/database/")]
        database = next(
            (db for db in databases if db.get("name") == settings.metabase_database_name), None
        )
        if database is None:
            raise MetabaseError(
                f"Metabase has no database named {settings.metabase_database_name!r} yet: run "
                "`music-tracker metabase provision`"
            )
        wanted = database_details(settings, copy_name)
        if not _details_match(database.get("details") or {}, wanted):
            database["details"] = {**(database.get("details") or {}), **wanted}
            mb.call("PUT", f"/api/database/{database['id']}", {"details": database["details"]})
        return _files_in_use(databases)


def sign_in_provisioned(mb: MetabaseClient) -> None:
    properties = mb.call("GET", "/api/session/properties")
    if properties.get("setup-token") and not properties.get("has-user-setup"):
        raise MetabaseError(
            f"Metabase at {mb.url} is not set up yet: run `music-tracker metabase provision`"
        )
    mb.sign_in(site_name=SITE_NAME)


def ensure_database(
    mb: MetabaseClient, settings: Settings, copy: Path, result_log: list[str]
) -> tuple[dict[str, Any], bool]:
    """The DuckDB database on ``copy``; True when it was created or re-pointed."""
    wanted = database_details(settings, copy.name)
    database = _find_database(mb, settings.metabase_database_name)
    if database is None:
        database = mb.call(
            "POST",
            "/api/database/",
            {
                "name": settings.metabase_database_name,
                "engine": "duckdb",
                "details": wanted,
                "is_full_sync": True,
                "is_on_demand": False,
                "connection_source": "admin",
                "auto_run_queries": True,
            },
        )
        result_log.append(f"database {settings.metabase_database_name!r}")
        return database, True
    if database.get("engine") != "duckdb":
        raise MetabaseError(
            f"Metabase's database {settings.metabase_database_name!r} uses the "
            f"{database.get('engine')!r} engine, not duckdb: rename it in Metabase or set "
            "MUSIC_TRACKER_METABASE_DATABASE_NAME to another name"
        )
    if _details_match(database.get("details") or {}, wanted):
        return database, False
    details = {**(database.get("details") or {}), **wanted}
    database = mb.call("PUT", f"/api/database/{database['id']}", {"details": details})
    return database, True
