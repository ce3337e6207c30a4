"""One writer at a time: the warehouse has a single DuckDB writer.

Flows and the commands that write take an exclusive ``flock`` on ``<data dir>/.writer.lock``
before they open the warehouse. A flow that finds it taken waits (bounded), then skips
with a log line: never a DuckDB lock traceback, never two transforms at once. The lock
file names the holder (process, what it runs, since when) for the messages; the kernel
releases the lock when its process dies, even by SIGKILL, so a crash never leaves it stuck.

The lock comes before any other file: a data folder that does not exist yet is created
here, to hold it (two first imports at once would otherwise both write unlocked, and the
one that lost DuckDB's own lock used to delete the warehouse the other was writing). A
folder made here that holds nothing but the lock file when the lock is let go is removed
again, so a command that fails on bad input still leaves nothing behind.

The static report has a lock of its own, ``<data dir>/.report.lock`` (``report_lock``):
it only reads the warehouse, so it takes no writer lock (a writer it waits for by the
warehouse's reader/writer lock, below), but two reports at once
(the owner's `music-tracker report` during a scheduled refresh) would write one
``report/``, its ``.partial`` folder and its caches together.

A backup folder has one too, ``<backup folder>/.backup.lock`` (``backup_folder_lock``):
data folders side by side share one (``<data dir>/../backups``), and their backups, each
under its own writer lock, would otherwise name theirs the same second, sweep each
other's half-written backup as a leftover and prune landing files the other's backup,
not yet complete, has just stored.

Readers and writers of the warehouse itself take turns by ``<data dir>/.warehouse.lock``
(``warehouse_lock``): shared while a read-only connection is open (status, report,
export, publish, the flows' checks), exclusive while a process has, or is about to have,
it open read-write (every read-write connection; a transform for the whole build, since
dbt opens the file itself after our own connection has closed). DuckDB's own file lock
cannot do this: it is held only while a connection is open, and a reader that opened the
file in a gap between two of a writer's connections made the writer's next open fail at
once (dbt does not wait). A process that holds it exclusively may read too (the hold
nests); the same process never waits for itself.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".writer.lock"
REPORT_LOCK_FILE = ".report.lock"  # the static report's own (the module's docstring)
BACKUP_LOCK_FILE = ".backup.lock"  # a backup folder's (the module's docstring)
WAREHOUSE_LOCK_FILE = ".warehouse.lock"  # readers shared, writers exclusive (the docstring)
POLL_S = 0.2


class WriterBusy(Exception):
    """Another process is writing; the message names it."""


class ReportBusy(WriterBusy):
    """Another process is writing the report; the message names it."""


class BackupFolderBusy(WriterBusy):
    """Another data folder's backup or restore is writing the backup folder; the message
    names it."""


class DataFolderError(Exception):
    """The data folder cannot be created or written (no such place, read-only, not ours);
    the message names it and the setting that chose it."""


class WarehouseLocked(Exception):
    """The warehouse's reader/writer lock was not had within the wait; the message names
    the writer holding it, or says that readers do (``warehouse.WarehouseBusy`` for the
    commands)."""


class WarehouseDamaged(Exception):
    """``warehouse.duckdb`` cannot be read as a DuckDB database (cut short, overwritten);
    the message names it and how to put a backup back. Here beside DataFolderError, so
    that ``__main__`` turns it into one line without importing DuckDB."""


# sysexits' EX_DATAERR: the warehouse file's contents are wrong; a restore mends them
EXIT_DAMAGED = 65


def _unusable(folder: Path, exc: OSError) -> Exception:
    """The error for a data folder we cannot use; a full disk stays an OSError (the
    commands say so with their own exit code)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return exc
    return DataFolderError(
        f"cannot use the data folder {folder}: {exc.strerror or exc}; name a folder you can"
        " write with --data-dir or MUSIC_TRACKER_DATA_DIR"
    )


def holder(data_dir: Path, lock_file: str = LOCK_FILE) -> str:
    """Who holds (or last held) the lock, in words."""
    try:
        info = json.loads((data_dir / lock_file).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another music-tracker process"
    if not info:
        return "another music-tracker process"
    what, pid, since = info.get("what", "?"), info.get("pid", "?"), info.get("since", "?")
    return f"`{what}` (process {pid}, since {since})"


@contextmanager
def writer_lock(
    data_dir: Path, what: str, *, wait_s: float, poll_s: float = POLL_S
) -> Iterator[None]:
    """Hold the writer lock for the block; WriterBusy when ``wait_s`` passes first (a
    command passes ``lock_wait_s``, a flow ``writer_wait_s``: docs/architecture.md, "Two
    waits"). DuckDB's own file lock is another wait (``warehouse.connect``'s ``file_wait_s``).

    Creates ``data_dir`` (0700) when it is missing, and removes what it created when the
    block leaves the folder holding only the lock file (see the module's docstring)."""
    with _file_lock(data_dir, what, LOCK_FILE, WriterBusy, wait_s=wait_s, poll_s=poll_s):
        yield


@contextmanager
def report_lock(
    data_dir: Path, what: str, *, wait_s: float, poll_s: float = POLL_S
) -> Iterator[None]:
    """Hold the report's lock for the block (one report written at a time); ReportBusy
    when ``wait_s`` passes first. Taken inside the writer lock by the flows, never the
    other way round."""
    with _file_lock(data_dir, what, REPORT_LOCK_FILE, ReportBusy, wait_s=wait_s, poll_s=poll_s):
        yield


@contextmanager
def backup_folder_lock(
    root: Path, what: str, *, wait_s: float, poll_s: float = POLL_S
) -> Iterator[None]:
    """Hold the backup folder ``root``'s lock for the block (one backup or fetch into it
    at a time, whichever data folder it is for); BackupFolderBusy when ``wait_s`` passes
    first. Taken before the writer lock, never the other way round."""
    with _file_lock(root, what, BACKUP_LOCK_FILE, BackupFolderBusy, wait_s=wait_s, poll_s=poll_s):
        yield


@contextmanager
def _file_lock(
    data_dir: Path,
    what: str,
    lock_file: str,
    busy: type[WriterBusy],
    *,
    wait_s: float,
    poll_s: float,
) -> Iterator[None]:
    path = data_dir / lock_file
    deadline = time.monotonic() + wait_s
    made: list[Path] = []
    while True:
        made += make_folders(data_dir)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the holder before us removed its empty folder just now
            continue
        except OSError as exc:  # read-only, not ours
            raise _unusable(data_dir, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                writing = {ReportBusy: "the report", BackupFolderBusy: "the backups"}.get(
                    busy, "the warehouse"
                )
                raise busy(
                    f"{holder(data_dir, lock_file)} is writing {writing}"
                    + (f" (waited {wait_s:.0f} s)" if wait_s else "")
                ) from None
            time.sleep(poll_s)
            continue
        if _still_named(fd, path):
            break
        # the holder before us removed the lock file as it let go of a folder it had made
        # and left empty: this lock guards nothing any more; take the one the name holds now
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "what": what, "since": datetime.now(UTC).isoformat()}
        os.ftruncate(fd, 0)
        with suppress(OSError):  # a full disk: the lock holds, unnamed
            os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            if made:
                _remove_if_unused(data_dir, made, lock_file)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@dataclass
class _Hold:
    """This process's hold of one warehouse lock: its file, and each nested hold's mode."""

    fd: int
    named: bool  # taken exclusively: the file names this process
    exclusive: list[bool] = field(default_factory=list)


_holds: dict[Path, _Hold] = {}
_holds_changed = threading.Condition()


@contextmanager
def warehouse_lock(
    warehouse: Path, *, exclusive: bool, wait_s: float, what: str = "", poll_s: float = POLL_S
) -> Iterator[None]:
    """Hold the warehouse's reader/writer lock (the module's docstring) for the block:
    shared for a reader, ``exclusive`` for a writer, waiting ``wait_s`` for the other kind
    to let go, then WarehouseLocked. Nests within this process: a reader inside a writer's
    hold (or a reader's), a writer inside a writer's, go on at once; a writer after a
    reader of another thread waits for it like any other. ``what`` names a writer in the
    lock file for the messages (default: the command line's first word)."""
    key = warehouse.parent.resolve() / WAREHOUSE_LOCK_FILE
    deadline = time.monotonic() + wait_s
    with _holds_changed:
        while (hold := _holds.get(key)) is not None and exclusive and not any(hold.exclusive):
            if not _holds_changed.wait(max(deadline - time.monotonic(), 0)):
                raise WarehouseLocked(f"{warehouse} is being read (waited {wait_s:.0f} s)")
        if hold is not None:
            hold.exclusive.append(exclusive)
    if hold is None:
        fd = _take_warehouse_lock(key, warehouse, exclusive, deadline, wait_s, poll_s, what)
        hold = _Hold(fd, exclusive, [exclusive])
        with _holds_changed:
            _holds[key] = hold
    try:
        yield
    finally:
        with _holds_changed:
            hold.exclusive.pop()
            if not hold.exclusive:
                del _holds[key]
                if hold.fd >= 0:
                    if hold.named:
                        with suppress(OSError):
                            os.ftruncate(hold.fd, 0)
                    os.close(hold.fd)  # lets go of the flock
                _holds_changed.notify_all()


def _take_warehouse_lock(
    path: Path,
    warehouse: Path,
    exclusive: bool,
    deadline: float,
    wait_s: float,
    poll_s: float,
    what: str,
) -> int:
    """The lock file open and locked (-1 when a reader cannot open it: a folder it may not
    write holds no writer of ours either, so the reader goes on without it)."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            if exclusive:
                make_folders(path.parent)
                continue
            return -1  # no folder: DuckDB says the warehouse is missing
        except OSError as exc:
            if exclusive:
                raise _unusable(path.parent, exc) from None
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                return -1
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                if exclusive:
                    busy = f"{warehouse} is being read by another music-tracker command"
                else:
                    busy = f"{holder(path.parent, WAREHOUSE_LOCK_FILE)} is writing {warehouse}"
                raise WarehouseLocked(
                    busy + (f" (waited {wait_s:.0f} s)" if wait_s else "")
                ) from None
            time.sleep(poll_s)
            continue
        except OSError:  # a file system that locks nothing (NFS may say EBADF): as before,
            return fd  # DuckDB's own lock alone
        if not _still_named(fd, path):  # let go of with its empty folder (_remove_if_unused)
            os.close(fd)
            continue
        if exclusive:
            what = what or " ".join(["music-tracker", *sys.argv[1:2]])
            info = {"pid": os.getpid(), "what": what, "since": datetime.now(UTC).isoformat()}
            with suppress(OSError):  # a full disk: the lock holds, unnamed
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
        return fd


def make_folders(folder: Path, data_dir: Path | None = None) -> list[Path]:
    """Create ``folder`` (0700) and its missing parents; return those this call created,
    outermost first (one another process created meanwhile is not among them).
    DataFolderError when it cannot be made (/proc/x, a read-only place), naming
    ``data_dir`` when ``folder`` is one of its folders (what the owner chose)."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        missing.append(candidate)
    made = []
    for candidate in reversed(missing):
        try:
            candidate.mkdir(mode=0o700 if candidate == folder else 0o777)
        except FileExistsError:
            continue
        except OSError as exc:
            raise _unusable(data_dir or folder, exc) from None
        made.append(candidate)
    return made


def _still_named(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        named = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _remove_if_unused(data_dir: Path, made: list[Path], lock_file: str) -> None:
    """Remove the folders this lock made if the block left nothing in the data folder but
    the lock file; called holding the lock, which a waiter then finds no longer named."""
    if data_dir not in made:
        return
    with suppress(OSError):
        left = {entry.name for entry in data_dir.iterdir()}
        if lock_file not in left or left - {lock_file, WAREHOUSE_LOCK_FILE}:
            return
        for name in left:
            (data_dir / name).unlink()
        for folder in reversed(made):
            folder.rmdir()  # another process's file in it: it stays, and so do its parents
