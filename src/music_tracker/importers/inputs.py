"""The files an import is given: folders and zip archives expanded into candidate files.

A folder is walked (hidden files and folders left out), a zip archive is told by its
content, not its name, and each of its members is a candidate of its own; nothing is
extracted here (``run._stage`` extracts what turns out to be listening history). A file
that is gone or unreadable by the time it is read (a browser renaming its download, a
folder moved away) is a message naming it, not a traceback.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from music_tracker import files
from music_tracker.importers.errors import ImportInputError


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
        """A file on disk's stamp, before anything is read of it (compared once it is
        parsed: ``landing.check_unchanged``)."""
        assert self.path is not None
        with self._reading():
            return files.stamp(self.path)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        # a zip replaced since it was listed: a member gone (KeyError), cut short, damaged
        except (OSError, zipfile.BadZipFile, KeyError, zlib.error, EOFError) as exc:
            raise _unreadable(self.display_name, exc) from exc


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
