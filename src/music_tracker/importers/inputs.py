"""The files an import is given: folders and zip archives expanded into candidate files.

A folder is walked (hidden files and folders left out), a zip archive is told by its
content, not its name, and each of its members is a candidate of its own. What turns out
to be listening history is copied into the import's staging folder while it is hashed
(``stage``): one read of the input, and everything after (the parse, the file kept under
landing/) reads that private copy. A file that is gone or unreadable by the time it is
read (a browser renaming its download, a folder moved away) is a message naming it, not
a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
import stat
import time
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from music_tracker import files
from music_tracker.importers.detect import SNIFF_BYTES
from music_tracker.importers.errors import ImportInputError, NoRoom

_PIECE = 1 << 20  # what a copy reads and writes at a time
_LEASE_WAIT_S = 60  # the longest a lease's holder takes to give it up, and a margin


@dataclass
class Candidate:
    """One file to consider: on disk, or a member of a zip archive."""

    display_name: str
    path: Path | None = None
    archive: Path | None = None
    member: str | None = None
    explicit: bool = False
    size: int = 0  # bytes on disk, or as the zip declares the member uncompressed

    @property
    def base_name(self) -> str:
        return Path(self.member or str(self.path)).name

    def head(self, count: int) -> bytes:
        """The first ``count`` bytes: enough to tell the format, without extracting."""
        read = b""
        with self._reading(), self._opened() as handle:
            while len(read) < count and (more := handle.read(count - len(read))):
                read += more
        return read

    def pieces(self) -> Iterator[memoryview]:
        """The content, in pieces of up to 1 MB read into one buffer: each piece is valid
        until the next is asked for (no new 1 MB object a piece: a third of the copy's
        CPU time at 10 million plays)."""
        buffer = bytearray(_PIECE)
        with self._reading(), self._opened() as handle:
            while count := handle.readinto(buffer):
                yield memoryview(buffer)[:count]

    @contextmanager
    def _opened(self) -> Iterator[io.FileIO | io.BufferedIOBase]:
        with _open_regular(self.on_disk, self.display_name) as handle:
            if self.member is None:
                yield handle
                return
            with zipfile.ZipFile(handle) as archive, archive.open(self.member) as member:
                yield cast(zipfile.ZipExtFile, member)

    def stamp(self) -> files.Stamp:
        """The stamp of the file on disk, or of the zip it is in, before anything is read
        of it (compared once it is copied: ``stage``)."""
        with self._reading():
            return files.stamp(self.on_disk)

    @property
    def on_disk(self) -> Path:
        """The file read: the candidate itself, or the zip it is in."""
        found = self.path or self.archive
        assert found is not None
        return found

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        # a zip replaced since it was listed: a member gone (KeyError), cut short, damaged
        except (OSError, zipfile.BadZipFile, KeyError, zlib.error, EOFError) as exc:
            raise _unreadable(self.display_name, exc) from exc


def _open_regular(path: Path, display_name: str) -> io.FileIO:
    """``path`` opened for reading, refused unless it is a regular file: a pipe renamed
    over a file since it was listed would hang the import at its first read."""
    waited = 0.0
    while True:
        try:  # without waiting for a writer (a regular file reads the same either way)
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            break
        except BlockingIOError:
            # a lease (Samba, NFS): the open asked its holder to give it up, which takes
            # milliseconds, or the kernel's lease-break-time (45 s) at most; asked again,
            # never blocking (a pipe swapped in meanwhile would hang a blocking open)
            if waited >= _LEASE_WAIT_S:
                raise
            time.sleep(0.05)
            waited += 0.05
    handle = io.FileIO(fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        handle.close()
        raise _not_regular(display_name)
    # read as any file from here: a file system that honours O_NONBLOCK on regular files
    # (some network and FUSE ones) would answer "nothing yet", read as an end of file
    os.set_blocking(fd, True)
    return handle


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip archive (told by content), without waiting on a pipe."""
    try:
        with _open_regular(path, str(path)) as handle:
            return zipfile.is_zipfile(handle)
    except (OSError, ImportInputError):
        return False


@dataclass(frozen=True)
class Staged:
    """A candidate read: its private copy in the import's staging folder, unless the disk
    had no room for it (``no_room``, raised unless its checksum is of a file imported)."""

    path: Path | None
    sha256: str
    size: int
    no_room: NoRoom | None = None


def stage(
    candidate: Candidate,
    folder: Path,
    before: tuple[files.Stamp, bytes],
    max_bytes: int,
    min_free_bytes: int,
    shown_as: Path,
) -> Staged:
    """Copy ``candidate`` into ``folder`` while hashing it: the input's only read.

    Its rows are parsed from this copy and the same copy is landed (``landing.land``), so
    the rows, the checksum and the file kept are of one content, whatever writes the input
    meanwhile. ``before`` holds the candidate's stamp and its first ``SNIFF_BYTES``, which
    told its format, both taken before: the copy must begin with those bytes (else the
    format was told from another version), and a candidate whose stamp changed while it
    was read (a download or a sync still writing it) is refused as changed, not parsed as
    a torn file. One written after it was read is imported as it was read.

    A file larger than ``max_bytes`` is refused before anything is written (by the size
    found, or the zip's declared size), and again while copying (a declared size can lie:
    a zip bomb; a file can grow). Where the disk (``folder``'s, told as ``shown_as``) has
    no room for the copy, or fills while it is written, the file is still read and hashed
    without a copy: one imported before is known by its checksum (an import of the same
    export again, a poll that brought nothing new), any other is refused (``no_room``).
    """
    stamp, head = before
    archive = " (or a damaged or malicious archive)" if candidate.member else ""
    too_big = ImportInputError(
        candidate.display_name,
        f"larger than {max_bytes // 2**20:,} MB uncompressed: not a listening-history"
        f" file{archive}",
        hint="raise MUSIC_TRACKER_IMPORT_MAX_FILE_MB if it really is one",
    )
    if candidate.size > max_bytes:
        raise too_big
    no_room = _no_room_for(
        folder, candidate.size + min_free_bytes, candidate.display_name, shown_as
    )
    # the copy's name is its own: a name near 255 bytes would not fit beside a prefix, and
    # DuckDB would take a ".gz" or ".zst" at its end for a compression
    target = None if no_room else files.inside(folder, uuid.uuid4().hex)
    digest, size, start = hashlib.sha256(), 0, b""
    with ExitStack() as copying:
        out = None
        if target is not None:
            try:
                out = copying.enter_context(target.open("wb", buffering=0))
            except OSError as exc:  # no inode left: the file is still known by its checksum
                if not files.disk_full(exc):
                    raise
                no_room, target = _filled(candidate.display_name, shown_as, exc), None
        for piece in candidate.pieces():
            digest.update(piece)
            size += len(piece)
            if size > max_bytes:
                raise too_big
            if len(start) < SNIFF_BYTES:
                start += piece[: SNIFF_BYTES - len(start)]
            try:
                while out is not None and piece:  # unbuffered: a third of the CPU time
                    piece = piece[out.write(piece) :]
            except OSError as exc:
                if target is None or not files.disk_full(exc):
                    raise
                copying.close()
                target.unlink()
                out, target = None, None
                no_room = _filled(candidate.display_name, shown_as, exc)
    if start != head or _stamp_now(candidate.on_disk) != stamp:
        raise _changed(candidate.display_name)
    return Staged(target, digest.hexdigest(), size, no_room)


def _stamp_now(path: Path) -> files.Stamp | None:
    try:
        return files.stamp(path)
    except OSError:  # gone, or its folder replaced or unreadable: a change all the same
        return None


def _changed(display_name: str) -> ImportInputError:
    return ImportInputError(
        display_name,
        "changed while it was being read (what was read could be part of one version and"
        " part of another)",
        hint="import it again once nothing is writing it: a download or a sync still under way",
    )


def _no_room_for(folder: Path, needed: int, what: str, shown_as: Path) -> NoRoom | None:
    """Whether a copy into ``folder`` would leave less free than ``needed`` says (the
    copy's size plus the margin, MUSIC_TRACKER_MIN_FREE_MB): the refusal, or None."""
    free = shutil.disk_usage(folder).free
    if free >= needed:
        return None
    return NoRoom(
        what,
        f"not enough free disk space for its copy in {shown_as} ({free // 2**20:,} MB free,"
        f" {-(-needed // 2**20):,} MB needed, MUSIC_TRACKER_MIN_FREE_MB included)",
        hint="free some space and run it again; nothing was changed",
    )


def _filled(what: str, shown_as: Path, error: OSError) -> NoRoom:
    remedy = (
        "raise the limit on a file's size (ulimit -f)"
        if error.errno == errno.EFBIG
        else "free some space"
    )
    return NoRoom(
        what,
        f"could not be copied into {shown_as} ({error.strerror or error})",
        hint=f"{remedy} and run it again; nothing was changed",
    )


def _not_regular(display_name: str) -> ImportInputError:
    # read as it is copied, and a pipe's writer could hold the import for ever
    return ImportInputError(
        display_name,
        "not a regular file (a pipe, a device or a socket)",
        hint="save it to a file and import that",
    )


def _unreadable(display_name: str, exc: Exception) -> ImportInputError:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ImportInputError(
        display_name,
        f"could not be read ({why})",
        hint="if it was there a moment before (a download renamed, a folder moved), import"
        " again once it is back; otherwise make it readable",
    )


def discover(paths: list[Path]) -> list[Candidate]:
    """Expand files, folders and zip archives (told by content) into candidate files."""
    found: list[Candidate] = []
    for path in paths:
        try:
            if not path.exists():
                raise ImportInputError(str(path), "no such file or folder")
        except OSError as exc:  # under a folder that can be listed but not entered
            raise _unreadable(str(path), exc) from exc
        if path.is_dir():
            for file in _files_in(path):
                found.extend(_expand(file, str(file), explicit=False))
        elif not path.is_file():
            raise _not_regular(str(path))
        else:
            found.extend(_expand(path, str(path), explicit=True))
    return found


def _files_in(folder: Path) -> list[Path]:
    """Every regular file under ``folder``, sorted, hidden files and folders left out, links
    to folders not followed. A folder that cannot be read stops the import, named
    (pathlib's rglob left it out without a word)."""

    def refuse(error: OSError) -> None:
        raise _unreadable(error.filename or str(folder), error)

    found: list[Path] = []
    for root, folders, names in os.walk(folder, onerror=refuse):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in names:
            path = Path(root, name)
            try:
                regular = not name.startswith(".") and path.is_file()
            except OSError as exc:  # a folder that can be listed but not entered
                raise _unreadable(str(path), exc) from exc
            if regular:
                found.append(path)
    return sorted(found)


def _expand(path: Path, display: str, *, explicit: bool) -> list[Candidate]:
    infos: list[zipfile.ZipInfo] | None = None
    try:
        with _open_regular(path, display) as handle:
            size = os.fstat(handle.fileno()).st_size
            if zipfile.is_zipfile(handle):
                with zipfile.ZipFile(handle) as archive:
                    infos = archive.infolist()
    except OSError as exc:  # gone since the folder was listed, or unreadable
        raise _unreadable(display, exc) from exc
    except zipfile.BadZipFile as exc:
        raise ImportInputError(display, f"not a readable zip archive ({exc})") from exc
    if infos is None:
        return [Candidate(display, path=path, explicit=explicit, size=size)]
    # only a member's file name is ever used as a path (staged, then landed under its
    # content's hash), never its folders: a name that climbs (../) or starts at the root
    # stays inside like any other. A member with no file name at all is refused.
    entries = [info for info in infos if not info.filename.endswith("/")]  # not folders
    for info in entries:
        if not Path(info.filename).name:
            why = "a damaged or malicious archive"
            raise ImportInputError(
                display, f"a member without a file name ({info.filename!r}): {why}"
            )
    members = [
        info
        for info in entries
        if not info.filename.startswith("__MACOSX/")
        and not Path(info.filename).name.startswith(".")
    ]
    return [
        Candidate(
            f"{display}:{info.filename}",
            archive=path,
            member=info.filename,
            explicit=False,
            size=info.file_size,
        )
        for info in sorted(members, key=lambda info: info.filename)
    ]
