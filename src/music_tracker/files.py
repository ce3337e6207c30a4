"""Files written whole or not at all, private to the owner.

Every small state file (token, cursor, flow health, the last status, cached assets) and
every landed export goes through here: written under a ``.partial`` name beside the target,
made private (0600, in a 0700 folder when it creates one), then renamed over the target,
so a crash or a full disk leaves the previous file, never half of one. A small file's
``.partial`` name is its own (two processes writing one state file at once, two ``status``
calls, each write theirs), and a write sweeps away the leftovers of writers killed before
their rename, an hour old or more; a copy (an export landed, a backup's file), which the
writer lock keeps to one writer, has one fixed ``.partial`` name, which the next try
writes over.

And paths that come from outside (a backup's manifest, a bucket's listing) are joined onto
a folder only through ``inside``: one that would climb out of it is refused.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
import time
from contextlib import suppress
from pathlib import Path

# a killed writer's own .partial older than this is a leftover (a write takes milliseconds)
STALE_PARTIAL_S = 3600
# the part of the target's name its .partial names keep: with the random part and the
# suffix, a name of 255 bytes (the usual limit) stays within it
_NAME_CHARS = 64


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step."""
    _make_folders(path.parent)
    fd, name = tempfile.mkstemp(
        prefix=f"{path.name[:_NAME_CHARS]}.", suffix=".partial", dir=path.parent
    )
    partial = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.chmod(0o600)  # an umask could have narrowed it further, never widened
    partial.replace(path)
    _sweep(path)


def copy(source: Path, path: Path) -> None:
    """Replace ``path`` with a copy of ``source`` in one step (one writer at a time)."""
    _make_folders(path.parent)
    partial = path.with_name(path.name + ".partial")
    try:
        shutil.copyfile(source, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.chmod(0o600)
    partial.replace(path)


def _make_folders(folder: Path) -> None:
    # each folder it creates is private (mkdir's parents=True would leave the upper ones
    # at the umask's mode)
    missing = [parent for parent in (folder, *folder.parents) if not parent.exists()]
    for parent in reversed(missing):
        parent.mkdir(mode=0o700, exist_ok=True)


def _sweep(path: Path) -> None:
    """Remove the ``.partial`` files of ``path`` that writers killed before their rename
    left, an hour old or more (a writer at work now is younger)."""
    cutoff = time.time() - STALE_PARTIAL_S
    for stale in path.parent.glob(f"{glob.escape(path.name[:_NAME_CHARS])}.*.partial"):
        with suppress(OSError):  # another writer's sweep took it first
            if stale.stat().st_mtime < cutoff:
                stale.unlink()


class OutsideFolder(ValueError):
    """A relative path from outside that would lead out of the folder it is joined onto."""


def plain_relative(relative: str) -> bool:
    """Whether ``relative``, by its text alone, stays inside any folder it is joined onto:
    not absolute, no ``..``, ``.`` or empty part (what ``Path.relative_to`` gives)."""
    return (
        bool(relative)
        and "\x00" not in relative
        and all(part not in ("", ".", "..") for part in relative.split("/"))
    )


def inside(folder: Path, relative: str) -> Path:
    """``folder / relative``, when it is and resolves (symlinks followed) inside ``folder``;
    else OutsideFolder naming it."""
    path = folder / relative
    if not plain_relative(relative) or not path.resolve().is_relative_to(folder.resolve()):
        raise OutsideFolder(f"{relative!r} points outside its folder ({folder})")
    return path


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "File too large")


def disk_full(error: BaseException | str) -> bool:
    """Whether an error (an OSError, DuckDB's or dbt's message) says the disk is full."""
    if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
        return True
    return any(text in str(error) for text in _DISK_FULL_TEXTS)


def disk_full_hint(folder: Path, what: str) -> str:
    """What to do when a write failed for want of disk space (DuckDB rolls the failed
    transaction back: what was stored before stays)."""
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:,.0f} MB free"
    except OSError:
        free = "free space unknown"
    return (
        f"\nthe disk holding {folder} is full ({free}): `{what}` stopped and the "
        f"write that failed was rolled back; no stored play was lost. Free some space, then "
        f"run `music-tracker {what}` again"
    )
