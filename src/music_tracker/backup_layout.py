"""The backups' layout, shared by the local folder (``backup.py``) and the bucket that
mirrors it (``bucket.py``): what a backup's folder is named, its manifest and how it is
checked, and which backups are complete and whole.

    <backup folder>/
      <UTC time>/manifest.json     every file of that backup with its size and SHA-256
      landing/<source>/<sha256>/   landing files, stored once across backups
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from music_tracker.files import OutsideFolder, inside, plain_relative
from music_tracker.settings import Settings

MANIFEST = "manifest.json"
# what ``backup`` names its folders (UTC time); nothing else in the backup folder or the
# bucket is taken for a backup, pruned or fetched
BACKUP_NAME = re.compile(r"\d{8}T\d{6}Z")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


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
