"""Each imported file kept as received: ``landing/<family>/<sha256>/<name>``, written once.

A large import copies its files on a thread of its own while it matches and stores the
plays (``in_background``): the copies are disk work and the matching uses a core, so the
import no longer waits for one, then the other (at 10 million plays, 6.9 GB of files: 20 s
of a 164 s import). The rows are committed only with every file landed: the import takes
the future's ``result()`` before its record. A run that fails or is interrupted stops the
copy under way within 16 MB (no partial file), and what was landed stays, by content.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from music_tracker import files, interrupts
from music_tracker.importers.errors import ImportInputError


@dataclass(frozen=True)
class ToLand:
    """One file read by an import: where it is now and what names its place."""

    staged: Path  # the input itself, or a zip member extracted into the staging folder
    family: str  # the source's folder under landing/
    sha256: str
    name: str
    display_name: str  # as the import names it in messages


@contextmanager
def in_background(items: list[ToLand], landing: Path) -> Iterator[Future[list[Path]]]:
    """``items`` landed on a thread of their own; the future holds their paths."""
    stop = threading.Event()

    def stopped() -> bool:  # a Ctrl+C stops the copies at once, wherever it lands
        return stop.is_set() or interrupts.received()

    lander = ThreadPoolExecutor(1, thread_name_prefix="import-land")
    try:
        yield lander.submit(lambda: [land(item, landing, stopped) for item in items])
    finally:
        # the copy under way stops within 16 MB and leaves no partial file; a second
        # Ctrl+C meanwhile waits too (an interrupted join would leave the thread to die
        # mid-copy at exit, its partial file behind)
        with interrupts.held():
            stop.set()
            lander.shutdown(wait=True)


def land(item: ToLand, landing: Path, stopped: Callable[[], bool] | None = None) -> Path:
    """Keep the file under landing/ unless it is there (``stopped``: ``files.copy``)."""
    target = files.inside(landing, f"{item.family}/{item.sha256}/{item.name}")
    if not target.exists():
        # exports hold personal data (IP addresses, user agents): private to the owner
        try:
            files.copy(item.staged, target, stopped=stopped)
        except files.CopyStopped:
            with suppress(OSError):  # the file's folder, made for it, stays empty otherwise
                target.parent.rmdir()
            raise
        except OSError as exc:
            if files.disk_full(exc):
                raise  # told as a full disk, with where to make room (cli._writing)
            where = exc.filename or item.staged
            raise ImportInputError(
                item.display_name,
                f"could not be kept under {landing} ({exc.strerror or exc}: {where})",
                hint="landing/ and the folders in it must be folders the import can write to",
            ) from exc
    return target
