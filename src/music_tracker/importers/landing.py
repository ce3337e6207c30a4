"""Each imported file kept as received: ``landing/<family>/<sha256>/<name>``, written once.

An import reads each input once: it copies it into its staging folder (inside landing/,
so on landing's disk) while hashing it (``inputs.stage``), parses that private copy, and
lands the same copy by renaming it here, in the import's transaction. So the rows stored,
the checksum recorded and the file kept are of one content, whatever writes the input
meanwhile (a sync client, a download still under way, a write through a memory map that
leaves the file's times as they were). Landing costs no copy and no disk space of its
own; what was landed stays, by content, should the transaction fail after it.
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from music_tracker import files
from music_tracker.importers.errors import ImportInputError


@dataclass(frozen=True)
class ToLand:
    """One file read by an import: its private copy and what names its place."""

    staged: Path  # the import's own copy, in its staging folder
    family: str  # the source's folder under landing/
    sha256: str  # of the copy, made while it was written
    name: str
    display_name: str  # as the import names it in messages


# what to do when landing/ cannot be written (told by landing and by the staging folder)
WRITABLE_HINT = "landing/ and the folders in it must be folders the import can write to"


def land(item: ToLand, landing: Path) -> Path:
    """Keep the file under landing/ unless it is there whole (kept by an earlier run whose
    transaction failed after: a copy since damaged is replaced by this one)."""
    try:
        target = files.inside(landing, f"{item.family}/{item.sha256}/{item.name}")
    except (files.OutsideFolder, RuntimeError) as exc:  # a folder linked elsewhere, a loop
        raise _not_kept(item, landing, exc) from exc
    try:
        if target.parent.is_dir():
            # what a writer killed mid-copy left (an earlier version's copy, or
            # ``files.move`` across file systems): nothing else writes here under the
            # writer lock, and a backup would find a file that is not its folder's content
            for leftover in target.parent.iterdir():
                if files.is_leftover(leftover, item.sha256):
                    leftover.unlink()
        if target.is_file() and files.sha256(target) == item.sha256:
            return target
        # exports hold personal data (IP addresses, user agents): private to the owner
        files.move(item.staged, target)
    except OSError as exc:
        _remove_folders(target)
        if files.disk_full(exc):
            raise  # told as a full disk, with where to make room (cli._writing)
        raise _not_kept(item, landing, exc) from exc
    return target


def _remove_folders(target: Path) -> None:
    """The file's folder and its source's, made for it, would stay empty otherwise."""
    for folder in (target.parent, target.parent.parent):  # <sha256>/, then <family>/
        with suppress(OSError):
            folder.rmdir()


def _not_kept(item: ToLand, landing: Path, exc: Exception) -> ImportInputError:
    if isinstance(exc, OSError):
        why = f"{exc.strerror or exc}: {exc.filename or item.staged}"
    else:
        why = str(exc)
    return ImportInputError(
        item.display_name,
        f"could not be kept under {landing} ({why})",
        hint=WRITABLE_HINT,
    )
