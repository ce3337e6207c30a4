"""The backups' layout, shared by the local folder (``backup.py``) and the bucket that
mirrors it (``bucket.py``): what a backup's folder is named, its manifest and how it is
checked, which backups are complete and whole, and which data folder each came from.

    <backup folder>/
      <UTC time>/manifest.json     every file of that backup with its size and SHA-256,
                                   and the id of the data folder it was made from
      landing/<source>/<sha256>/   landing files, stored once across backups

Whose backup it is: several data folders may share one backup folder or bucket (the
default ``<data dir>/../backups`` of folders side by side, one bucket setting in the
owner's settings file). Each data folder has an id, ``state/data-folder.json`` (minted by
its first backup, with the folder's path), and each backup's manifest names it
(``data_folder``): a backup prunes only the backups of its own data folder, and ``restore``
without a named backup picks the newest of the target folder's own (``choose``). The id
follows the data, not the path: a restored folder continues the backup's id (``restore``
writes it), a folder moved keeps it; a copy of a data folder (its id file naming another
folder that still holds the same id) gets an id of its own at its first backup. Backups
made before manifests named their data folder belong to none: no data folder's pruning
deletes them.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from music_tracker.files import OutsideFolder, inside, plain_relative, write_text
from music_tracker.settings import Settings

MANIFEST = "manifest.json"
# what ``backup`` names its folders (UTC time); nothing else in the backup folder or the
# bucket is taken for a backup, pruned or fetched
BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# a data folder's id (``state/data-folder.json``), named in every backup it makes
FOLDER_ID_FILE = "data-folder.json"
FOLDER_ID = re.compile(r"[0-9a-f]{32}")


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


class DamagedBackup(BackupError):
    """A backup whose manifest cannot be trusted; ``why`` says what is wrong with it."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where} is damaged: {why}")
        self.why = why


def damaged_warning(where: str, why: str) -> str:
    """What a backup says about a damaged one it skipped."""
    return (
        f"{where} is damaged ({why}): skipped, neither pruned nor counted among the backups"
        " kept, and `restore` refuses it; look at it, then delete it yourself"
    )


def backup_root(settings: Settings) -> Path:
    return settings.backup_dir or settings.data_dir.parent / "backups"


def backups(root: Path) -> list[Path]:
    """Complete backups (a folder named by its time, with a manifest), oldest first; their
    manifests may still be damaged (``read_backups``)."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        # a backup's name only: not one being written or deleted (hidden, ``_prune``)
        if BACKUP_NAME.fullmatch(p.name) and p.is_dir() and (p / MANIFEST).is_file()
    )


def parse_manifest(text: str, where: str) -> dict[str, Any]:
    """A manifest's content, checked to be what ``backup`` writes; DamagedBackup if not.

    Every path in it must be relative and free of ``..``: it is joined onto the backup's
    folder, the shared landing folder and, on restore, the data folder."""
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise DamagedBackup(where, f"not valid JSON, cut short or edited: {exc}") from None
    if not isinstance(manifest, dict):
        raise DamagedBackup(where, "not a JSON object")
    for section in ("files", "landing"):
        entries = manifest.get(section)
        if not isinstance(entries, dict):
            raise DamagedBackup(where, f"no {section!r} section")
        for key, facts in entries.items():
            if not plain_relative(key):
                raise DamagedBackup(where, f"its {section} entry {key!r} points outside its folder")
            if not (
                isinstance(facts, dict)
                and isinstance(facts.get("bytes"), int)
                and isinstance(facts.get("sha256"), str)
                and SHA256_HEX.fullmatch(facts["sha256"])
            ):
                raise DamagedBackup(where, f"its {section} entry {key!r} has no size and checksum")
    if "warehouse.duckdb" not in manifest["files"]:
        raise DamagedBackup(where, "it names no warehouse.duckdb")
    folder = manifest.get("data_folder")  # absent from backups older than the ids
    if folder is not None and not (
        isinstance(folder, dict)
        and isinstance(folder.get("id"), str)
        and FOLDER_ID.fullmatch(folder["id"])
        and isinstance(folder.get("path"), str)
    ):
        raise DamagedBackup(where, "its data_folder entry has no id and path")
    return manifest


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the backup in ``folder``, checked (``parse_manifest``), its paths
    resolving inside the backup's folder and the landing folder beside it."""
    path = folder / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedBackup(str(path), f"not text: {exc}") from None
    manifest = parse_manifest(text, str(path))
    try:
        for rel in manifest["files"]:
            inside(folder, rel)
        for rel in manifest["landing"]:
            inside(folder.parent / "landing", rel)
    except OutsideFolder as exc:
        raise DamagedBackup(str(path), f"its entry {exc}") from None
    return manifest


def read_backups(root: Path) -> tuple[dict[Path, dict[str, Any]], dict[str, str]]:
    """The complete backups under ``root`` whose manifests are whole, oldest first, with
    their manifests; and the damaged ones (folder -> what is wrong)."""
    good: dict[Path, dict[str, Any]] = {}
    damaged: dict[str, str] = {}
    for folder in backups(root):
        try:
            good[folder] = read_manifest(folder)
        except DamagedBackup as exc:
            damaged[str(folder)] = exc.why
    return good, damaged


# -- whose backup -------------------------------------------------------------------------


def owner(manifest: dict[str, Any]) -> str | None:
    """The id of the data folder a backup was made from; None for one made before
    backups named it."""
    folder = manifest.get("data_folder")
    return folder["id"] if isinstance(folder, dict) else None


def left_alone(names: dict[str, str | None]) -> dict[str, list[str]]:
    """Backups (name -> the data folder's id) no pruning of this data folder touches, by
    why: another data folder's, or made before backups named theirs."""
    return {
        "other_data_folders": [name for name, folder in names.items() if folder is not None],
        "without_data_folder": [name for name, folder in names.items() if folder is None],
    }


def read_folder_id(data_dir: Path) -> tuple[str, str] | None:
    """A data folder's id and the path it was recorded at; None when it has none (or an
    unreadable one: its next backup gives it a new one)."""
    try:
        found = json.loads((data_dir / "state" / FOLDER_ID_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        isinstance(found, dict)
        and isinstance(found.get("id"), str)
        and FOLDER_ID.fullmatch(found["id"])
        and isinstance(found.get("path"), str)
    ):
        return found["id"], found["path"]
    return None


def write_folder_id(data_dir: Path, folder_id: str) -> None:
    state = data_dir / "state"
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = {"id": folder_id, "path": str(data_dir)}
    write_text(state / FOLDER_ID_FILE, json.dumps(record, indent=1) + "\n")


def _same_folder(one: Path, other: Path) -> bool:
    try:
        return one.samefile(other)
    except OSError:
        return False


def own_folder_id(data_dir: Path) -> tuple[str, str | None]:
    """This data folder's id, given one (and recorded) when it has none; with a note
    when it had to be changed. A folder whose id file names another folder was moved,
    copied or restored there: a copy (the other folder still there with the same id) gets
    an id of its own, so that the two never prune each other's backups; a moved one keeps
    its id, its new path recorded."""
    found = read_folder_id(data_dir)
    if found is None:
        folder_id = uuid.uuid4().hex
        write_folder_id(data_dir, folder_id)
        return folder_id, None
    folder_id, recorded = found
    if Path(recorded) == data_dir or _same_folder(Path(recorded), data_dir):
        return folder_id, None
    original = read_folder_id(Path(recorded))
    if original is not None and original[0] == folder_id:
        new = uuid.uuid4().hex
        write_folder_id(data_dir, new)
        return new, (
            f"{data_dir} is a copy of the data folder {recorded} (both had the id"
            f" {folder_id[:8]}): it now has an id of its own ({new[:8]}), and its backups"
            f" count apart from those of {recorded}, which are left alone"
        )
    write_folder_id(data_dir, folder_id)  # moved (or restored) here: the same lineage
    return folder_id, None


def _describe(manifests: dict[str, dict[str, Any]], groups: dict[str | None, list[str]]) -> str:
    """The data folders whose backups are in one place, for a message: each one's id,
    where its newest backup was made from, how many and the newest."""
    said = []
    for folder_id, names in groups.items():
        if folder_id is None:
            said.append(
                f"{len(names)} made before backups named their data folder, the newest {names[-1]}"
            )
        else:
            path = manifests[names[-1]]["data_folder"]["path"]
            said.append(
                f"{len(names)} of the data folder {folder_id[:8]} (backed up from {path}),"
                f" the newest {names[-1]}"
            )
    return "; ".join(said)


def choose(
    where: str,
    manifests: dict[str, dict[str, Any]],
    damaged: set[str],
    into: Path,
) -> str:
    """Which backup ``restore`` without a named one takes from ``where`` (a backup folder
    or a bucket): of the whole ones (name -> manifest) the newest of the target data
    folder's own id, when it has one; with none, the newest when all are of one data
    folder (or all from before the ids). BackupError naming the candidates otherwise.
    A damaged backup that is the newest of all is returned: it may be the one wanted,
    and restoring it says what is wrong."""
    names = sorted(set(manifests) | damaged)
    if not names:
        raise BackupError(f"{where}: no complete backup there")
    if names[-1] in damaged:
        return names[-1]
    groups: dict[str | None, list[str]] = {}
    for name in sorted(manifests):
        groups.setdefault(owner(manifests[name]), []).append(name)
    target = read_folder_id(into)
    if target is not None:
        if target[0] in groups:
            return groups[target[0]][-1]
        why = f"none is of the data folder {into} (id {target[0][:8]})"
    else:
        ids = [folder_id for folder_id in groups if folder_id is not None]
        if not ids:
            return names[-1]  # all older than the ids: the newest, as before them
        if len(ids) == 1 and owner(manifests[names[-1]]) == ids[0]:
            return names[-1]
        why = f"they are of more than one data folder and {into} has no id to pick one by"
    raise BackupError(
        f"{where}: which backup to restore cannot be told: {why} ({_describe(manifests, groups)});"
        f" nothing was restored: name the one to restore, as in `music-tracker restore"
        f" {where.rstrip('/')}/{names[-1]}`"
    )
