"""Opening the warehouse: readers and writers taking turns (our reader/writer lock, then
DuckDB's own), the schema in place on first use, and all-or-nothing transactions."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

import duckdb

from music_tracker import interrupts
from music_tracker.connections import connect_duckdb
from music_tracker.lock import WarehouseDamaged, WarehouseLocked, warehouse_lock
from music_tracker.settings import memory_bytes
from music_tracker.warehouse.schema import (
    DDL,
    RAW_SCHEMA_VERSION,
    drop_primary_keys,
    rekey_api_plays,
)

DEFAULT_MEMORY_LIMIT = "128MB"
# How long opening the warehouse waits, by default, for another process to let go of it:
# our readers and writers by the warehouse's reader/writer lock (lock.warehouse_lock), any
# other program (a DuckDB shell) by DuckDB's own file lock. Not the writer lock, which our
# own writers take first. Callers with settings pass MUSIC_TRACKER_LOCK_WAIT_S
# (``Settings.lock_wait_s``).
FILE_WAIT_S = 10.0


def open_warehouse(
    path: Path,
    *,
    read_only: bool = False,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    file_wait_s: float = FILE_WAIT_S,
) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create) the warehouse with the raw schema in place.

    DuckDB would otherwise cache up to 80% of the machine's memory; the production VM has
    2 GB shared with Metabase, so the limit is explicit (it spills to disk beyond it).
    ``file_wait_s``: how long to wait for another program to let go of the file. Takes
    no lock of ours: :func:`connect` does (a reader's turn or a writer's).
    """
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit}
    if read_only:
        con = _connect(path, read_only=True, config=config, wait_s=file_wait_s)
        _session(con)
        _checked(con, path)
        return con
    new = not path.exists()
    # the warehouse holds personal data (IP addresses, user agents in raw): a new data
    # folder and warehouse are private to the owner; existing ones keep their modes
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    con = _connect(path, read_only=False, config=config, wait_s=file_wait_s)
    if new:
        path.chmod(0o600)
    _session(con)
    (exists,) = con.execute(
        "select count(*) from duckdb_tables()"
        " where schema_name = 'raw' and table_name = 'schema_version'"
    ).fetchone()  # type: ignore[misc]
    current = None
    if exists:
        (current,) = con.execute("select max(version) from raw.schema_version").fetchone()  # type: ignore[misc]
    if current is None:  # a new warehouse (the DDL is idempotent, but costs time per open)
        con.execute(DDL)
        con.execute("insert into raw.schema_version values (?)", [RAW_SCHEMA_VERSION])
    elif current < RAW_SCHEMA_VERSION:  # an older warehouse: add what later versions added
        with transaction(con, work=False):
            con.execute(DDL)
            if current < 4:
                rekey_api_plays(con)
            if current < 6:
                drop_primary_keys(con)
            if current < 8:  # the moves stored before: the latest of each row
                con.execute(
                    "insert into raw.play_id_moves by name select * from raw.play_id_overrides"
                )
            con.execute("update raw.schema_version set version = ?", [RAW_SCHEMA_VERSION])
    else:
        _checked(con, path)
    return con


def _checked(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    try:
        _check_tables(con, path)
    except WarehouseDamaged:
        con.close()
        raise


_RAW_TABLES = re.findall(r"create table if not exists raw\.(\w+)", DDL)


def _check_tables(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuse a warehouse of this version missing a raw table (dropped outside Music
    Tracker): every command would stop on it with DuckDB's catalog error (helper-75)."""
    present = {
        name
        for (name,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'raw'"
        ).fetchall()
    }
    if "schema_version" not in present:
        return  # a new warehouse, made on its first writer's open
    missing = [f"raw.{name}" for name in _RAW_TABLES if name not in present]
    if not missing:
        return
    (version,) = con.execute("select max(version) from raw.schema_version").fetchone()  # type: ignore[misc]
    if version == RAW_SCHEMA_VERSION:  # an older one is brought up to date by its writer
        raise WarehouseDamaged(
            f"{path} has no table {', '.join(missing)}: it was changed outside"
            " music-tracker; nothing was changed: put your last backup back with"
            " `music-tracker restore backups/<time> --replace` (or `restore"
            " s3://bucket/prefix --replace`)"
        )


def single_threaded(con: duckdb.DuckDBPyConnection) -> None:
    """Let DuckDB run this connection's queries on one thread (the import's parts:
    PARTS_ON_ONE_THREAD in importers/run.py; its two readers, each a file at a time)."""
    con.execute("set threads = 1")


# less than this cached is not worth the two statements
_CACHED_WORTH_DROPPING = 2**20


def drop_cached_blocks(con: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
    """Let go of the table blocks DuckDB keeps in memory after writing or reading them
    (they are on disk). An import's parts left 30-70 MB of them behind, part after part,
    which the next part's matching stacked on (1.5 million plays: 270 MB resident after
    a part's insert, 240 without them). DuckDB evicts such blocks first when its cap is
    lowered: the cap is lowered to what its other memory holds and 16 MiB, then set back
    to ``memory_limit``, the connection's cap in force as it was set (``capped``'s while
    an import stores; DuckDB shows its cap rounded, and cannot read back some of the
    units it shows).

    Between statements nothing else is pinned, so the lower cap is always reached. Were it
    not, DuckDB's error says so, and the transaction it aborted is not used again here.
    """
    (cached, other) = con.execute(
        "select coalesce(sum(memory_usage_bytes) filter (where tag = 'BASE_TABLE'), 0),"
        " coalesce(sum(memory_usage_bytes) filter (where tag <> 'BASE_TABLE'), 0)"
        " from duckdb_memory()"
    ).fetchone()  # type: ignore[misc]
    if cached < _CACHED_WORTH_DROPPING:
        return
    _set_cap(con, f"{int(other) // 2**20 + 16} MiB")
    _set_cap(con, memory_limit)


def _set_cap(con: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
    con.execute("set memory_limit = $limit", {"limit": memory_limit})


@contextmanager
def capped(con: duckdb.DuckDBPyConnection, share: float, memory_limit: str) -> Iterator[str]:
    """DuckDB's cap at ``share`` of ``memory_limit`` (the connection's own cap as
    configured) during the block, which gets the lower cap as text; ``memory_limit`` again
    after it. For work that holds memory of its own beside DuckDB's: DuckDB fills its cap
    with the table blocks it has written or read (on disk already) before it evicts any."""
    lower = f"{max(int(memory_bytes(memory_limit) * share) // 2**20, 1)} MiB"
    _set_cap(con, lower)
    try:
        yield lower
    except BaseException:
        # a connection that failed is closed after this: its own error is the one to tell
        with suppress(duckdb.Error):
            _set_cap(con, memory_limit)
        raise
    _set_cap(con, memory_limit)


def uncached_files(con: duckdb.DuckDBPyConnection) -> None:
    """Keep no copy of the files this connection reads in DuckDB's memory (its external
    file cache, on by default for local files too): an import reads each staged file once
    or twice, and the cached copies took room in the cap that its inserts needed."""
    con.execute("set enable_external_file_cache = false")


def _session(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("set TimeZone = 'UTC'")


@contextmanager
def committed_view(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A second connection to ``con``'s warehouse, with its session's settings, for reads
    beside ``con``'s work (a DuckDB connection runs one statement at a time): it sees what
    is committed, never the rows of ``con``'s open transaction."""
    with con.cursor() as view:
        _session(view)
        yield view


class WarehouseBusy(Exception):
    """Another process has the warehouse open: DuckDB allows one writer and no reader
    beside it. Our own commands take turns (the writer lock among writers, the warehouse's
    reader/writer lock between readers and writers); the message names the music-tracker
    command writing, or the other program holding the file."""


_LOCK_HELD = "Could not set lock"


def held_by_another(exc: BaseException) -> bool:
    """Whether DuckDB's error says another process holds the file's lock."""
    return _LOCK_HELD in str(exc)


# what DuckDB says of a file it cannot read as a database: cut short, overwritten
_DAMAGED = ("Could not read enough bytes", "not a valid DuckDB database file", "Corrupt database")


def damaged(path: Path, exc: BaseException) -> WarehouseDamaged | None:
    """The error for a warehouse file DuckDB cannot read, or None for another error."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if not any(sign in first for sign in _DAMAGED):
        return None
    return WarehouseDamaged(
        f"{path} is damaged or not a DuckDB database ({first.removeprefix('IO Error: ')});"
        " nothing was changed: put your last backup back with `music-tracker restore"
        " backups/<time> --replace` (or `restore s3://bucket/prefix --replace`)"
    )


@contextmanager
def turn(path: Path, *, read_only: bool, wait_s: float, what: str = "") -> Iterator[None]:
    """This process's turn at the warehouse (``lock.warehouse_lock``): a reader's, beside
    other readers, or a writer's, alone; WarehouseBusy after ``wait_s``, naming the writer."""
    with ExitStack() as held:
        try:
            held.enter_context(
                warehouse_lock(path, exclusive=not read_only, wait_s=wait_s, what=what)
            )
        except WarehouseLocked as exc:  # the block's own errors are not the lock's
            raise WarehouseBusy(str(exc)) from None
        yield


def _connect(
    path: Path,
    *,
    read_only: bool,
    config: dict[str, str | bool | int | float | list[str]],
    wait_s: float,
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return connect_duckdb(path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if (damage := damaged(path, exc)) is not None:
                raise damage from None
            if not held_by_another(exc):
                raise
            if time.monotonic() >= deadline:
                raise busy_by_another_program(path, exc, wait_s) from None
            time.sleep(0.2)


def busy_by_another_program(path: Path, exc: BaseException, wait_s: float) -> WarehouseBusy:
    """DuckDB's lock error as WarehouseBusy: our own commands take turns first (``turn``),
    so what holds the file is another program (a DuckDB shell, a notebook)."""
    held = re.search(r"Conflicting lock is held in (.*?) \(PID (\d+)\)", str(exc))
    by = f", {held.group(1)} (PID {held.group(2)})," if held else ""
    waited = f" (waited {wait_s:g} s)" if wait_s else ""
    return WarehouseBusy(f"{path} is open in another program{by} not music-tracker{waited}")


def checkpoint(
    path: Path, *, memory_limit: str = DEFAULT_MEMORY_LIMIT, file_wait_s: float = FILE_WAIT_S
) -> None:
    """Fold the write-ahead log into the file (a backup copies it then), as it is: no
    schema upgrade. Waits for another process to let go of the file like every writer
    (``file_wait_s``), then WarehouseBusy naming it."""
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit}
    with (
        turn(path, read_only=False, wait_s=file_wait_s),
        _connect(path, read_only=False, config=config, wait_s=file_wait_s) as con,
    ):
        # a backup of a warehouse missing a table would push a good one out of those kept
        _check_tables(con, path)
        con.execute("checkpoint")


def wait_until_free(path: Path, *, file_wait_s: float = FILE_WAIT_S) -> None:
    """Return once no other process has the file open (waiting ``file_wait_s``, then
    WarehouseBusy naming it): before a restore replaces it. A file DuckDB cannot read
    (the damaged one a restore replaces) is free as far as this goes. The caller holds a
    writer's ``turn`` while it replaces the file."""
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": DEFAULT_MEMORY_LIMIT}
    with turn(path, read_only=False, wait_s=file_wait_s):
        try:
            _connect(path, read_only=False, config=config, wait_s=file_wait_s).close()
        except (duckdb.Error, WarehouseDamaged):
            return


@contextmanager
def connect(
    path: Path,
    *,
    read_only: bool = False,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    file_wait_s: float = FILE_WAIT_S,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context-managed :func:`open_warehouse` in this process's :func:`turn` (a reader's
    or a writer's, waiting ``file_wait_s`` for it as for DuckDB's own lock); the
    connection is closed on exit, then the turn let go of."""
    with turn(path, read_only=read_only, wait_s=file_wait_s):
        con = open_warehouse(
            path, read_only=read_only, memory_limit=memory_limit, file_wait_s=file_wait_s
        )
        try:
            yield con
        finally:
            con.close()


@contextmanager
def transaction(
    con: duckdb.DuckDBPyConnection, *, work: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit when the block ends normally, roll back on any exception.

    Ctrl+C during the commit waits for it to return (``interrupts.held``): the command then
    knows whether it was stored. ``work=False``: a schema upgrade on opening, which does
    not finish the command that opened the warehouse (``interrupts.committed``).
    """
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        # a Ctrl+C can land between the block's error and this rollback: the generator is
        # then closed later, after the connection, whose close rolled the transaction back
        # (helper-43 saw "Connection already closed" printed after the interrupt's line)
        with suppress(duckdb.ConnectionException):
            con.execute("rollback")
        raise
    with interrupts.held():
        con.execute("commit")
        if work:
            interrupts.committed()
