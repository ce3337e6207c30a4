"""Publish: the serving copy of the star schema that Metabase reads.

Metabase keeps its DuckDB file open (a lock, even read-only) and DuckDB allows one writer,
so Metabase never opens ``warehouse.duckdb``. Each publish writes a new, versioned file
``serving/dw-<UTC time>.duckdb`` holding the ``dw`` schema and nothing else (no raw plays,
no IP addresses, masked artists without ids), complete and checkpointed under a hidden
temporary name before a rename makes it visible. Then Metabase's database is pointed at it
(``PUT /api/database/:id``, which rebuilds Metabase's connection pool) and copies replaced
longer than the grace period ago, that Metabase no longer points at, are deleted.

A new copy starts from the last one when it can: the file is copied as it is, and only
what the builds since changed is written into it. Every build journals, per `dw` table,
the groups of rows it replaced (a key column's values) or that it made the table whole
(raw.serving_journal, transform/macros/serving_journal.sql). A copy's side file
(``dw-<time>.duckdb.json``) names the build it holds; the next publish deletes the
journalled groups from the copy and inserts the warehouse's rows of them, makes the tables
built whole again, and keeps the rest as they are. A copy of every table instead (as the
first publish) when the last copy or its side file is missing, was written by another
format, or holds a build the warehouse does not know (a restored backup, a build the
journal no longer keeps), or with ``full=True`` (`music-tracker publish --full`).

A crash at any step leaves the previous copy serving: before the rename nothing visible
changed; after it, Metabase still points at the old copy until the API call succeeds,
and the old copy is never deleted while Metabase points at it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from music_tracker import interrupts, warehouse
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
from music_tracker.warehouse import damaged

log = logging.getLogger(__name__)

PARTIAL = ".partial"
# a serving copy's side file: the build it holds (``<copy>.json``)
HOLDS = ".json"
# what a side file says and how a copy is written; another value: the next copy is whole
PUBLISH_FORMAT = 1


class PublishError(Exception):
    """Publishing could not happen; the message says why and what to do."""


@dataclass
class Copied:
    """How a copy was written: from the last copy (``since``: its name) with the tables
    ``written``, or whole (``since`` None) and why."""

    tables: int
    rows: int
    since: str | None
    written: list[str]
    why_whole: str | None = None


@dataclass
class PublishResult:
    path: Path
    copied: Copied
    bytes: int
    seconds: float
    metabase: str
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tables": self.copied.tables,
            "rows": self.copied.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 2),
            "metabase": self.metabase,
            "removed": self.removed,
            # null: every table copied (why_whole says why); else the copy it started from
            "since": self.copied.since,
            "written": self.copied.written,
            "why_whole": self.copied.why_whole,
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
    full: bool = False,
) -> tuple[Path, Copied]:
    """Write the next serving copy, from the last one when it can (``full``: never).
    Nothing is visible until the copy is complete: a failure removes the partial file
    and raises PublishError."""
    warehouse = settings.warehouse_path
    if not warehouse.exists():
        raise PublishError(
            f"no warehouse at {warehouse}: import your history and run "
            "`music-tracker transform` before publishing"
        )
    serving_dir = settings.serving_dir
    name = _copy_name(serving_dir, now or datetime.now(UTC))
    partial = serving_dir / f".{name}{PARTIAL}"
    con = connect_duckdb(config={"memory_limit": settings.duckdb_memory_limit, "threads": 2})
    try:
        try:
            con.execute(f"attach '{_quote(warehouse)}' as wh (read_only)")
        except duckdb.IOException as exc:
            if (damage := damaged(warehouse, exc)) is not None:
                raise damage from None
            raise PublishError(
                f"cannot read {warehouse} ({_first_line(exc)}): another program has it open,"
                " not a music-tracker command; publish again when it has let go of it"
            ) from None
        if not serving_dir.is_dir():
            serving_dir.mkdir(parents=True, exist_ok=True)
            # made once the warehouse could be read; Metabase reads it as another user:
            # open whatever the umask (a folder there before is left as its owner set it)
            serving_dir.chmod(0o755)
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
        holds = _last_build(con)
        base, since, why_whole = (
            (None, 0, "asked for (--full)") if full else _base(con, serving_dir)
        )
        if base is not None:
            try:
                shutil.copyfile(base, partial)
                con.execute(f"attach '{_quote(partial)}' as serving")
                written = _write_changes(con, tables, since=since, on_table=on_table)
            except duckdb.Error as exc:  # the last copy damaged since it was written
                why_whole = f"{base.name} could not be read ({_first_line(exc)})"
                log.warning("%s: copying every table", why_whole)
                base = None
                con.execute("detach database if exists serving")
                _remove_partial(partial)
        if base is None:
            con.execute(
                f"attach '{_quote(partial)}' as serving"
                f" (storage_version '{SERVING_STORAGE_VERSION}')"
            )
            con.execute("create schema serving.dw")
            written = []
            for table in tables:
                _copy_table(con, table)
                written.append(table)
                if on_table:
                    on_table(table, len(tables))
        rows = 0
        for table in tables:
            (count,) = con.execute(f'select count(*) from serving.dw."{table}"').fetchone()  # type: ignore[misc]
            rows += count
        _check_masking(con)
        con.execute("checkpoint serving")
        con.execute("detach serving")
    except BaseException:
        con.close()
        _remove_partial(partial)
        raise
    con.close()
    partial.chmod(0o644)  # Metabase runs as another user in its container
    _fsync(partial)
    target = serving_dir / name
    if holds is not None:  # before the copy is visible: a copy never lacks its side file
        side = Path(f"{target}{HOLDS}")
        side.write_text(
            json.dumps(
                holds
                | {"format": PUBLISH_FORMAT, "storage": SERVING_STORAGE_VERSION}
                | {"bytes": partial.stat().st_size}
            )
        )
        side.chmod(0o644)
    partial.rename(target)
    _fsync(serving_dir)
    copied = Copied(
        tables=len(tables),
        rows=rows,
        since=base.name if base is not None else None,
        written=written,
        why_whole=why_whole,
    )
    return target, copied


def _remove_partial(partial: Path) -> None:
    partial.unlink(missing_ok=True)
    Path(f"{partial}.wal").unlink(missing_ok=True)


def _copy_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(f'create or replace table serving.dw."{table}" as select * from wh.dw."{table}"')


def _last_build(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The newest build the warehouse journalled (raw.serving_builds), or None (a warehouse
    from before the journal, or never built since)."""
    try:
        row = con.execute(
            "select build_id, token from wh.raw.serving_builds order by build_id desc limit 1"
        ).fetchone()
    except duckdb.CatalogException:
        return None
    return {"build_id": int(row[0]), "token": row[1]} if row else None


def _base(con: duckdb.DuckDBPyConnection, serving_dir: Path) -> tuple[Path | None, int, str | None]:
    """The last copy and the build it holds, when the next can start from it; else None
    and why not."""
    base = current_copy(serving_dir)
    if base is None:
        return None, 0, "the first copy"
    try:
        holds = json.loads(Path(f"{base}{HOLDS}").read_text())
        build_id, token = int(holds["build_id"]), str(holds["token"])
        if (holds.get("format"), holds.get("storage")) != (PUBLISH_FORMAT, SERVING_STORAGE_VERSION):
            return None, 0, f"{base.name} was written by another version"
        if base.stat().st_size != int(holds["bytes"]):  # truncated, or replaced
            return None, 0, f"{base.name} changed since it was written"
    except (OSError, ValueError, KeyError, TypeError):
        return None, 0, f"{base.name} has no readable {HOLDS} side file"
    try:
        known = con.execute(
            "select count(*) from wh.raw.serving_builds where build_id = ? and token = ?",
            [build_id, token],
        ).fetchone()
    except duckdb.CatalogException:
        known = None
    if not known or not known[0]:
        return (
            None,
            0,
            (
                f"{base.name} holds a build this warehouse does not know (restored, or older "
                "than the journal keeps)"
            ),
        )
    return base, build_id, None


def _columns(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, list[tuple[str, str]]]:
    columns: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in con.execute(
        "select table_name, column_name, data_type from duckdb_columns()"
        " where database_name = ? and schema_name = 'dw' order by table_name, column_index",
        [database],
    ).fetchall():
        columns.setdefault(table, []).append((column, kind))
    return columns


def _write_changes(
    con: duckdb.DuckDBPyConnection,
    tables: list[str],
    *,
    since: int,
    on_table: Callable[[str, int], None] | None,
) -> list[str]:
    """Make the copy attached as ``serving`` (a copy of the one holding build ``since``)
    equal to the warehouse's ``dw``: per table, the groups of rows journalled since are
    replaced, a table built whole (or whose columns changed) is copied whole, and tables no
    longer in the warehouse are dropped. Returns the tables written."""
    wanted, have = _columns(con, "wh"), _columns(con, "serving")
    journal = {
        table: (key_columns, whole)
        for table, key_columns, whole in con.execute(
            "select table_name, list(distinct key_column), bool_or(key_value is null)"
            " from wh.raw.serving_journal where build_id > ? group by table_name",
            [since],
        ).fetchall()
    }
    written = []
    for table in have.keys() - wanted.keys():
        con.execute(f'drop table serving.dw."{table}"')
        written.append(table)
    for table in tables:
        if on_table:
            on_table(table, len(tables))
        if table not in journal and have.get(table) == wanted[table]:
            continue  # no build since changed it
        written.append(table)
        key_columns, whole = journal.get(table, ([], True))
        types = dict(wanted[table])
        if have.get(table) != wanted[table] or whole or len(key_columns) != 1:
            _copy_table(con, table)
            continue
        (key,) = key_columns
        if key not in types:
            _copy_table(con, table)
            continue
        con.execute(
            f"create or replace temporary table changed_keys as select distinct"
            f' cast(key_value as {types[key]}) as "{key}" from wh.raw.serving_journal'
            " where build_id > ? and table_name = ?",
            [since, table],
        )
        con.execute(
            f'delete from serving.dw."{table}" where "{key}" in (select "{key}" from changed_keys)'
        )
        con.execute(
            f'insert into serving.dw."{table}" select * from wh.dw."{table}"'
            f' where "{key}" in (select "{key}" from changed_keys)'
        )
    return sorted(written)


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
        for leftover in (Path(f"{older}.wal"), Path(f"{older}{HOLDS}"), older):
            leftover.unlink(missing_ok=True)
        _remove_tree(Path(f"{older}.tmp"))  # the driver's temp_directory for this file
        removed.append(older.name)
    for partial in serving_dir.glob(f".{PREFIX}*{PARTIAL}"):
        if now - partial.stat().st_mtime >= grace_s:
            partial.unlink(missing_ok=True)
            removed.append(partial.name)
    for side in serving_dir.glob(f"{PREFIX}*{SUFFIX}{HOLDS}"):  # a crash before the rename
        copy = side.with_name(side.name.removesuffix(HOLDS))
        if not copy.exists() and now - side.stat().st_mtime >= grace_s:
            side.unlink(missing_ok=True)
            removed.append(side.name)
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
    full: bool = False,
) -> PublishResult:
    """Write a serving copy (``full``: every table, not only what changed since the last),
    point Metabase at it when configured, remove old copies."""
    from music_tracker.metabase.client import MetabaseError

    started = time.perf_counter()
    # a reader's turn: a transform does not start while the copy reads (lock.py)
    with warehouse.turn(settings.warehouse_path, read_only=True, wait_s=settings.lock_wait_s):
        path, copied = write_copy(settings, now=now, on_table=on_table, full=full)
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
        copied=copied,
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
