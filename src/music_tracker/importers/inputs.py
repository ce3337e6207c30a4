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

import hashlib
import os
import shutil
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from music_tracker import files
from music_tracker.importers.detect import SNIFF_BYTES
from music_tracker.importers.errors import ImportInputError, NoRoom


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
        with self._reading():
            if self.path is not None:
                with self.path.open("rb") as handle:
                    return handle.read(count)
            assert self.archive is not None and self.member is not None
            with zipfile.ZipFile(self.archive) as archive, archive.open(self.member) as handle:
                return handle.read(count)

    def open_bytes(self) -> Iterator[bytes]:
        with self._reading():
            if self.path is not None:
                with self.path.open("rb") as handle:
                    yield from iter(lambda: handle.read(1 << 20), b"")
            else:
                assert self.archive is not None and self.member is not None
                with zipfile.ZipFile(self.archive) as archive, archive.open(self.member) as f:
                    yield from iter(lambda: f.read(1 << 20), b"")

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


@dataclass(frozen=True)
class Staged:
    """A candidate's private copy, in the import's staging folder."""

    path: Path
    sha256: str
    size: int


def stage(
    candidate: Candidate,
    folder: Path,
    before: tuple[files.Stamp, bytes],
    max_bytes: int,
    min_free_bytes: int,
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
    a zip bomb; a file can grow); so is one the disk has no room for.
    """
    stamp, head = before
    too_big = ImportInputError(
        candidate.display_name,
        f"larger than {max_bytes // 2**20:,} MB uncompressed: not a listening-history file"
        " (or a damaged or malicious archive)",
        hint="raise MUSIC_TRACKER_IMPORT_MAX_FILE_MB if it really is one",
    )
    if candidate.size > max_bytes:
        raise too_big
    check_free_space(folder, candidate.size + min_free_bytes, candidate.display_name)
    target = files.inside(folder, f"{uuid.uuid4().hex}-{candidate.base_name}")
    digest, size, start = hashlib.sha256(), 0, b""
    with target.open("wb") as out:
        for chunk in candidate.open_bytes():
            digest.update(chunk)
            size += len(chunk)
            if size > max_bytes:
                raise too_big
            if len(start) < SNIFF_BYTES:
                start += chunk[: SNIFF_BYTES - len(start)]
            out.write(chunk)
    if start != head or _stamp_now(candidate.on_disk) != stamp:
        raise changed(candidate.display_name)
    return Staged(target, digest.hexdigest(), size)


def _stamp_now(path: Path) -> files.Stamp | None:
    try:
        return files.stamp(path)
    except OSError:  # gone, or its folder replaced or unreadable: a change all the same
        return None


def changed(display_name: str) -> ImportInputError:
    return ImportInputError(
        display_name,
        "changed while it was being read (what was read could be part of one version and"
        " part of another)",
        hint="import it again once nothing is writing it: a download or a sync still under way",
    )


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse, before writing, a copy that would leave less free than ``needed`` says (the
    copy's size plus the margin, MUSIC_TRACKER_MIN_FREE_MB)."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise NoRoom(
            what,
            f"not enough free disk space in {folder} ({free // 2**20:,} MB free,"
            f" {needed // 2**20:,} MB needed, MUSIC_TRACKER_MIN_FREE_MB included)",
            hint="free some space and import again; nothing was changed",
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
        elif not path.is_file():  # read twice (hashed, then parsed): a pipe would hang
            raise ImportInputError(
                str(path),
                "not a regular file (a pipe, a device or a socket)",
                hint="save it to a file and import that",
            )
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
    if not zipfile.is_zipfile(path):
        try:
            size = path.stat().st_size
        except OSError as exc:  # gone since the folder was listed
            raise _unreadable(display, exc) from exc
        return [Candidate(display, path=path, explicit=explicit, size=size)]
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ImportInputError(display, f"not a readable zip archive ({exc})") from exc
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
