"""Publish: the serving copy of the star schema that Metabase reads.

Metabase keeps its DuckDB file open (a lock, even read-only) and DuckDB allows one writer,
so Metabase never opens ``warehouse.duckdb``. Each publish writes a new, versioned file
``serving/dw-<UTC time>.duckdb`` holding the ``dw`` schema and nothing else (no raw plays,
no IP addresses, masked artists without ids), complete and checkpointed under a hidden
temporary name before a rename makes it visible. Then Metabase's database is pointed at it
(``PUT /api/database/:id``, which rebuilds Metabase's connection pool) and copies replaced
longer than the grace period ago, that Metabase no longer points at, are deleted.

A crash at any step leaves the previous copy serving: before the rename nothing visible
changed; after it, Metabase still points at the old copy until the API call succeeds,
and the old copy is never deleted while Metabase points at it.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from music_tracker import interrupts
from music_tracker.connections import connect_duckdb
from music_tracker.metabase import SERVING_STORAGE_VERSION
from music_tracker.metabase.handoff import (
    PREFIX,
    SUFFIX,
    current_copy,
    point_database_at,
    serving_copies,
)
from music_tracker.settings import Settings

log = logging.getLogger(__name__)

PARTIAL = ".partial"


class PublishError(Exception):
    """Publishing could not happen; the message says why and what to do."""


@dataclass
class PublishResult:
    path: Path
    tables: int
    rows: int
    bytes: int
    seconds: float
    metabase: str
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tables": self.tables,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "metabase": self.metabase,
            "removed": self.removed,
        }


def _copy_name(serving_dir: Path, now: datetime) -> str:
    stem = f"{PREFIX}{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}"
    name, n = f"{stem}{SUFFIX}", 1
    while (serving_dir / name).exists():  # two publishes in one microsecond
        name, n = f"{stem}-{n}{SUFFIX}", n + 1
    return name


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_copy(
    settings: Settings,
    *,
    now: datetime | None = None,
    on_table: Callable[[str, int], None] | None = None,
) -> tuple[Path, int, int]:
    """Write the next serving copy; returns (path, tables, rows). Nothing is visible until
    the copy is complete: a failure removes the partial file and raises PublishError."""
    warehouse = settings.warehouse_path
    if not warehouse.exists():
        raise PublishError(
            f"no warehouse at {warehouse}: import your history and run "
            "`music-tracker transform` before publishing"
        )
    serving_dir = settings.serving_dir
    serving_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    name = _copy_name(serving_dir, now or datetime.now(UTC))
    partial = serving_dir / f".{name}{PARTIAL}"
    con = connect_duckdb(config={"memory_limit": settings.duckdb_memory_limit, "threads": 2})
    try:
        try:
            con.execute(f"attach '{_quote(warehouse)}' as wh (read_only)")
        except duckdb.IOException as exc:
            raise PublishError(
                f"cannot read {warehouse} ({_first_line(exc)}): another process is writing "
                "it; publish again when it has finished"
            ) from None
        tables = [
            name
            for (name,) in con.execute(
                "select table_name from duckdb_tables()"
                " where database_name = 'wh' and schema_name = 'dw' order by table_name"
            ).fetchall()
        ]
        if not tables:
            raise PublishError(
                f"{warehouse} has no star schema yet: run `music-tracker transform` first"
            )
        con.execute(
            f"attach '{_quote(partial)}' as serving (storage_version '{SERVING_STORAGE_VERSION}')"
        )
        con.execute("create schema serving.dw")
        rows = 0
        for table in tables:
            con.execute(f'create table serving.dw."{table}" as select * from wh.dw."{table}"')
            (count,) = con.execute(f'select count(*) from serving.dw."{table}"').fetchone()  # type: ignore[misc]
            rows += count
            if on_table:
                on_table(table, len(tables))
        _check_masking(con)
        con.execute("checkpoint serving")
        con.execute("detach serving")
    except BaseException:
        con.close()
        partial.unlink(missing_ok=True)
        Path(f"{partial}.wal").unlink(missing_ok=True)
        raise
    con.close()
    partial.chmod(0o644)  # Metabase runs as another user in its container
    _fsync(partial)
    target = serving_dir / name
    partial.rename(target)
    _fsync(serving_dir)
    return target, len(tables), rows


def _check_masking(con: duckdb.DuckDBPyConnection) -> None:
    """The public copy never carries a masked artist's ids (the model hides them; this is
    the last line before they would become public)."""
    has_masking = con.execute(
        "select count(*) from duckdb_columns() where database_name = 'serving'"
        " and schema_name = 'dw' and table_name = 'dim_artist' and column_name = 'is_masked'"
    ).fetchone()
    if not has_masking or not has_masking[0]:
        return
    (leaks,) = con.execute(
        "select count(*) from serving.dw.dim_artist"
        " where is_masked and (artist_id is not null or mbid is not null)"
    ).fetchone()  # type: ignore[misc]
    if leaks:
        raise PublishError(
            f"{leaks} masked artists still carry their Spotify or MusicBrainz id in "
            "dw.dim_artist: nothing was published; run `music-tracker transform --full-refresh`"
        )


def remove_old_copies(
    serving_dir: Path, *, in_use: set[str] | None, grace_s: float, now: float | None = None
) -> list[str]:
    """Delete copies replaced more than ``grace_s`` ago that Metabase no longer uses.

    ``in_use`` holds the file names Metabase points at; ``None`` means "unknown" (Metabase
    configured but not answering), and then nothing is deleted. The newest copy is always
    kept. A copy's replacement time is when its successor was written. Crash leftovers
    (hidden ``.partial`` files) older than the grace period go too.
    """
    if in_use is None:
        return []
    now = time.time() if now is None else now
    removed: list[str] = []
    copies = serving_copies(serving_dir)
    for older, newer in itertools.pairwise(copies):
        replaced_at = newer.stat().st_mtime
        if older.name in in_use or now - replaced_at < grace_s:
            continue
        for leftover in (Path(f"{older}.wal"), older):
            leftover.unlink(missing_ok=True)
        _remove_tree(Path(f"{older}.tmp"))  # the driver's temp_directory for this file
        removed.append(older.name)
    for partial in serving_dir.glob(f".{PREFIX}*{PARTIAL}"):
        if now - partial.stat().st_mtime >= grace_s:
            partial.unlink(missing_ok=True)
            removed.append(partial.name)
    return removed


def _remove_tree(path: Path) -> None:
    if not path.is_dir():
        return
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink(missing_ok=True)
    path.rmdir()


def publish(
    settings: Settings,
    *,
    now: datetime | None = None,
    on_table: Callable[[str, int], None] | None = None,
) -> PublishResult:
    """Write a serving copy, point Metabase at it when configured, remove old copies."""
    from music_tracker.metabase.client import MetabaseError

    started = time.perf_counter()
    path, tables, rows = write_copy(settings, now=now, on_table=on_table)
    in_use: set[str] | None = set()
    if not settings.metabase_url:
        metabase = "not configured (MUSIC_TRACKER_METABASE_URL is empty)"
    else:
        try:
            in_use = point_database_at(settings, path.name)
            metabase = f"{settings.metabase_database_name!r} now reads {path.name}"
        except MetabaseError as exc:
            # the copy is written and complete; the next publish or provision points at it
            in_use = None
            metabase = f"not updated: {exc}"
            log.warning("Metabase %s", metabase)
    removed = remove_old_copies(
        settings.serving_dir, in_use=in_use, grace_s=settings.serving_grace_minutes * 60
    )
    return PublishResult(
        path=path,
        tables=tables,
        rows=rows,
        bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
        metabase=metabase,
        removed=removed,
    )


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def interrupted_line(settings: Settings, before: Path | None) -> str:
    """The state a Ctrl+C left publishing in: a copy is visible only once complete."""
    after = current_copy(settings.serving_dir)
    if after == before:
        return interrupts.LINES["publish"]
    if settings.metabase_url:
        return (
            f"interrupted: {after} is complete, but Metabase may still read the copy before"
            " it: run `music-tracker publish` again"
        )
    return f"interrupted: {after} was published; replaced copies are removed next time"
