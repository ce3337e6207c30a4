"""Files written whole or not at all, private to the owner.

Every small state file (token, cursor, flow health, the last status, cached assets) goes
through here: written under a ``.partial`` name beside the target, made private (0600, in
a 0700 folder when it creates one), then renamed over the target, so a crash or a full
disk leaves the previous file, never half of one. A landed export is the import's own
whole copy, moved into place the same way (``move``). Each write's
``.partial`` name is its own (two processes writing one state file at once, two ``status``
calls, each write theirs), and the first write into a folder in a process sweeps away the
leftovers of writers killed before their rename, an hour old or more.

And paths that come from outside (a backup's manifest, a bucket's listing) are joined onto
a folder only through ``inside``: one that would climb out of it is refused.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
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
# what tempfile.mkstemp adds: eight of a-z, 0-9 and _, then the suffix
_OWN_PARTIAL = re.compile(r"\.[a-z0-9_]{8}\.partial$")
_swept: set[Path] = set()


# what tells that a file changed while it was read: its device and inode (replaced by a
# rename), size, and modification and change times in nanoseconds (written in place; the
# change time cannot be set back by the writer, as the modification time can). Not a
# proof: a write through a memory map can leave all five as they were
Stamp = tuple[int, int, int, int, int]


def stamp(path: Path) -> Stamp:
    """``path``'s stamp (``Stamp``); OSError as ``stat`` raises it."""
    facts = path.stat()
    return (facts.st_dev, facts.st_ino, facts.st_size, facts.st_mtime_ns, facts.st_ctime_ns)


def sha256(path: Path) -> str:
    """The file's SHA-256, hex (what names a landed file and a backup's copy)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step; the owner's alone unless
    ``mode`` says otherwise (0o644: what other users read, such as Caddy's redirects)."""
    fd, partial = _partial(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.chmod(mode)  # an umask could have narrowed it further, never widened
    partial.replace(path)
    _sweep(path.parent)


def copy(source: Path, path: Path) -> None:
    """Replace ``path`` with a copy of ``source`` in one step."""
    fd, partial = _partial(path)
    os.close(fd)
    try:
        shutil.copyfile(source, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.chmod(0o600)
    partial.replace(path)
    _sweep(path.parent)


def move(source: Path, path: Path) -> None:
    """Put ``source``, a file of ours, at ``path`` in one step, private as ``copy`` leaves
    it: renamed on one file system, else copied, then removed."""
    make_folders(path.parent)
    source.chmod(0o600)  # an umask could have narrowed it further, never widened
    try:
        source.replace(path)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy(source, path)
        source.unlink()


def make_folders(folder: Path, *, mode: int = 0o700) -> None:
    """``folder`` and those above it that are missing, each at ``mode`` whatever the umask
    (private unless said otherwise; mkdir's parents=True would leave the upper ones at the
    umask's mode)."""
    missing = [above for above in (folder, *folder.parents) if not above.exists()]
    for above in reversed(missing):
        try:
            above.mkdir(mode=mode)
        except FileExistsError:  # made meanwhile by another process: left as it is
            if not above.is_dir():
                raise
            continue
        above.chmod(mode)  # mkdir's mode is narrowed by the umask


def _partial(path: Path) -> tuple[int, Path]:
    """A new file beside ``path`` (0600, open for writing): ``<name>.<random>.partial``,
    the name cut to its first 64 characters."""
    make_folders(path.parent)
    fd, name = tempfile.mkstemp(
        prefix=f"{path.name[:_NAME_CHARS]}.", suffix=".partial", dir=path.parent
    )
    return fd, Path(name)


def is_leftover(path: Path, sha256_hex: str) -> bool:
    """Whether ``path``, in a folder named by its files' checksum, is what a copy killed
    mid-way left there: one of this module's ``.partial`` names, and not that content (a
    file kept under such a name, whole, is not)."""
    return (
        bool(_OWN_PARTIAL.search(path.name))
        and path.is_file()
        and not path.is_symlink()
        and sha256(path) != sha256_hex
    )


def _sweep(folder: Path) -> None:
    """Remove the ``.partial`` files writers killed before their rename left in ``folder``,
    an hour old or more (a writer at work now is younger); once per folder per process (a
    report writes hundreds of files into one cache folder)."""
    if folder in _swept:
        return
    _swept.add(folder)
    cutoff = time.time() - STALE_PARTIAL_S
    with suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if _OWN_PARTIAL.search(entry.name):
                with suppress(OSError):  # another process's sweep took it first
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        Path(entry.path).unlink()


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


def _full_folder(error: BaseException, data_dir: Path) -> Path:
    """The folder to name when ``error`` says a disk is full: ``data_dir``, unless the file
    the write failed on (an OSError names it) is on another disk (``landing/`` mounted
    from a larger volume, say): then its nearest folder still there."""
    name = error.filename if isinstance(error, OSError) else None
    if not name:
        return data_dir
    path = Path(os.fsdecode(name))
    for folder in path.parents:
        try:
            if folder.is_dir():
                return folder if folder.stat().st_dev != data_dir.stat().st_dev else data_dir
        except OSError:
            return data_dir
    return data_dir


def disk_full_hint(folder: Path, what: str, error: BaseException | None = None) -> str:
    """What to do when a write failed for want of disk space (DuckDB rolls the failed
    transaction back: what was stored before stays), naming ``folder``'s disk, or the one
    the file ``error`` names is on when that is another (``_full_folder``)."""
    if error is not None:
        folder = _full_folder(error, folder)
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:,.0f} MB free"
    except OSError:
        free = "free space unknown"
    return (
        f"\nthe disk holding {folder} is full ({free}): `{what}` stopped and the "
        f"write that failed was rolled back; no stored play was lost. Free some space, then "
        f"run `music-tracker {what}` again"
    )
