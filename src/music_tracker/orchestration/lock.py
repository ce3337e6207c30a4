"""One writer at a time: the warehouse has a single DuckDB writer.

Flows and the commands that write take an exclusive ``flock`` on ``<data dir>/.writer.lock``
before they open the warehouse. A flow that finds it taken waits (bounded), then skips
with a log line: never a DuckDB lock traceback, never two transforms at once. The lock
file names the holder (process, what it runs, since when) for the messages; the kernel
releases the lock when its process dies, even by SIGKILL, so a crash never leaves it stuck.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".writer.lock"
POLL_S = 0.2


class WriterBusy(Exception):
    """Another process is writing; the message names it."""


def holder(data_dir: Path) -> str:
    """Who holds (or last held) the lock, in words."""
    try:
        info = json.loads((data_dir / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return "another music-tracker process"
    if not info:
        return "another music-tracker process"
    what, pid, since = info.get("what", "?"), info.get("pid", "?"), info.get("since", "?")
    return f"`{what}` (process {pid}, since {since})"


@contextmanager
def writer_lock(
    data_dir: Path, what: str, *, wait_s: float = 0.0, poll_s: float = POLL_S
) -> Iterator[None]:
    """Hold the writer lock for the block; WriterBusy when ``wait_s`` passes first.

    A data folder that does not exist yet holds no warehouse to protect: the block runs
    without a lock and the folder is not created here (commands that fail on bad input
    create nothing)."""
    if not data_dir.is_dir():
        yield
        return
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WriterBusy(
                        f"{holder(data_dir)} is writing the warehouse"
                        + (f" (waited {wait_s:.0f} s)" if wait_s else "")
                    ) from None
                time.sleep(poll_s)
        info = {"pid": os.getpid(), "what": what, "since": datetime.now(UTC).isoformat()}
        os.ftruncate(fd, 0)
        with suppress(OSError):  # a full disk: the lock holds, unnamed
            os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
