"""Each imported file kept as received: ``landing/<family>/<sha256>/<name>``, written once.

A large import copies its files on a thread of its own while it matches and stores the
plays (``in_background``): the copies are disk work and the matching uses a core, so the
import no longer waits for one, then the other (at 10 million plays, 6.9 GB of files: 20 s
of a 164 s import). The rows are committed only with every file landed: the import takes
the future's ``result()`` before its record. A run that fails or is interrupted stops the
copy under way within 16 MB (no partial file), and what was landed stays, by content.

A file on disk is read three times (hashed, parsed, copied here): if it changed meanwhile
(a sync client or a download still writing it), its rows, its hash and its kept copy
would not be of one file, so the run fails, naming it, and keeps no copy of it. Its
stamp (``files.stamp``), taken before anything is read of it, is compared once it is
parsed (``check_unchanged``), and its copy is hashed before it takes its checksum's name
(``land``; a write through a memory map can leave the stamp as it was).
"""

from __future__ import annotations

import shutil
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
    on_disk: bool = False  # the input itself, read where it is (else our own copy)


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
    """Keep the file under landing/ unless it is there (``stopped``: ``files.copy``).

    Its rows were parsed from the content that was hashed (``check_unchanged``, when it
    was parsed); a copy of a file on disk is checked against that checksum before it
    takes its name, so no other content is ever kept under it: a file written since
    (even in place through a memory map, which leaves its stamp as it was) is refused,
    one only touched (a sync setting its attributes, a new hard link) is kept."""
    target = files.inside(landing, f"{item.family}/{item.sha256}/{item.name}")
    if target.exists():  # kept by an earlier run, checked then
        return target

    def check(copy: Path) -> None:
        # our own copies (zip members, extracted while hashed) cannot have changed
        if item.on_disk and files.sha256(copy) != item.sha256:
            raise changed(item.display_name)

    # exports hold personal data (IP addresses, user agents): private to the owner
    try:
        files.copy(item.staged, target, stopped=stopped, check=check)
    except BaseException as exc:
        _remove_folders(target)
        if not isinstance(exc, OSError):
            raise
        if item.on_disk and exc.filename == str(item.staged):
            # the input itself is gone or unreadable since it was read
            raise changed(item.display_name, exc) from exc
        if files.disk_full(exc):
            raise  # told as a full disk, with where to make room (cli._writing)
        raise _not_kept(item, landing, exc) from exc
    return target


def check_unchanged(path: Path, stamp: files.Stamp | None, display_name: str) -> None:
    """Raise ``changed`` unless the file on disk at ``path`` is as stamped before its hash
    (its rows were then parsed from the content hashed; None: our own copy)."""
    if stamp is not None and _stamp_now(path) != stamp:
        raise changed(display_name)


def changed(display_name: str, error: OSError | None = None) -> ImportInputError:
    why = f" ({error.strerror or error})" if error is not None else ""
    return ImportInputError(
        display_name,
        "changed while it was being imported (its rows, its checksum and the copy kept"
        f" under landing/ would not be of one file){why}",
        hint="import it again once nothing is writing it: a download or a sync still under way",
    )


def _stamp_now(path: Path) -> files.Stamp | None:
    try:
        return files.stamp(path)
    except OSError:  # gone, or its folder replaced or unreadable: a change all the same
        return None


def _remove_folders(target: Path) -> None:
    """The file's folder and its source's, made for it, would stay empty otherwise."""
    for folder in (target.parent, target.parent.parent):  # <sha256>/, then <family>/
        with suppress(OSError):
            folder.rmdir()


def _not_kept(item: ToLand, landing: Path, exc: OSError) -> ImportInputError:
    where = exc.filename or item.staged
    return ImportInputError(
        item.display_name,
        f"could not be kept under {landing} ({exc.strerror or exc}: {where})",
        hint="landing/ and the folders in it must be folders the import can write to",
    )


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse, before writing, a copy that would leave less free than ``needed`` says (the
    copy's size plus the margin, MUSIC_TRACKER_MIN_FREE_MB)."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise ImportInputError(
            what,
            f"not enough free disk space in {folder} ({free // 2**20:,} MB free,"
            f" {needed // 2**20:,} MB needed, MUSIC_TRACKER_MIN_FREE_MB included)",
            hint="free some space and import again; nothing was changed",
        )
