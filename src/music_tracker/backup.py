"""Backups: a consistent copy of everything that cannot be rebuilt, and its restore.

What is copied: the warehouse (the raw plays and everything built from them), the landing
files (every export and API response as received), ``state/`` (tokens, cursors, flow
health) and, when configured, Metabase's application database. Not copied: what is
rebuilt from those (``serving/``, ``report/``, dbt's files, Prefect's database).

Layout of the backup folder (``MUSIC_TRACKER_BACKUP_DIR``, default ``<data dir>/../backups``)::

    backups/
      landing/<source>/<sha256>/<file>   shared by every backup: files are immutable and
                                         named by their content, so each is stored once
      20261128T031500Z/
        warehouse.duckdb                 copied under the writer lock, after a checkpoint
        state/...
        metabase/...                     Metabase's H2 files, when configured
        manifest.json                    every file with its size and SHA-256
      ...

Consistency: the backup holds the writer lock (no flow or command writes meanwhile) and
copies the warehouse after a checkpoint, so the copy is the database as of that moment,
without a write-ahead log. A backup is written under a hidden name and renamed when
complete; older backups beyond ``MUSIC_TRACKER_BACKUP_KEEP`` are deleted afterwards. With
``MUSIC_TRACKER_BACKUP_BUCKET`` set, the folder is then mirrored to that bucket
(``bucket.py``), and ``restore s3://...`` fetches a backup from it first.
``restore`` checks every file against the manifest before it touches the data folder,
and refuses a folder that already holds a warehouse unless told to replace it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from music_tracker.files import copy as copy_file
from music_tracker.orchestration.lock import writer_lock
from music_tracker.settings import Settings

PARTIAL = ".partial"
_DELETING = ".deleting"
MANIFEST = "manifest.json"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    files: int
    bytes: int
    landing_new: int
    seconds: float
    removed: list[str] = field(default_factory=list)
    bucket: dict[str, int] | None = None  # what the copy to the bucket did, when configured

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "landing_files_new": self.landing_new,
            "seconds": round(self.seconds, 2),
            "removed": self.removed,
            "bucket": self.bucket,
        }


def backup_root(settings: Settings) -> Path:
    return settings.backup_dir or settings.data_dir.parent / "backups"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_tree(source: Path, target: Path) -> list[Path]:
    copied = []
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied.append(destination)
    return copied


def backup(settings: Settings, *, now: datetime | None = None) -> BackupResult:
    """Write one backup (see the module's docstring)."""
    started = time.perf_counter()
    if not settings.warehouse_path.exists():
        raise BackupError(f"no warehouse at {settings.warehouse_path}: nothing to back up yet")
    root = backup_root(settings)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}"
    target = root / name
    if target.exists():
        raise BackupError(f"{target} exists already: one backup per second at most")
    partial = root / f".{name}{PARTIAL}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    landing_new = 0
    try:
        with writer_lock(settings.data_dir, "backup", wait_s=settings.writer_wait_s):
            # what a backup killed midway left (serve's time limit, the kernel): only one
            # backup runs at a time, under this lock
            for left in root.glob(f".*{PARTIAL}"):
                if left != partial:
                    shutil.rmtree(left, ignore_errors=True)
            # a checkpoint folds the write-ahead log into the file: the copy is complete
            config: dict[str, str | bool | int | float | list[str]] = {
                "memory_limit": settings.duckdb_memory_limit
            }
            with duckdb.connect(str(settings.warehouse_path), config=config) as con:
                con.execute("checkpoint")
            files = [partial / "warehouse.duckdb"]
            shutil.copy2(settings.warehouse_path, files[0])
            if settings.state_dir.is_dir():
                files += _copy_tree(settings.state_dir, partial / "state")
            if settings.metabase_app_db_dir and settings.metabase_app_db_dir.is_dir():
                files += _copy_tree(settings.metabase_app_db_dir, partial / "metabase")
            landing: list[str] = []
            if settings.landing_dir.is_dir():
                for path in sorted(settings.landing_dir.rglob("*")):
                    if not path.is_file():
                        continue
                    relative = path.relative_to(settings.landing_dir)
                    stored = root / "landing" / relative
                    landing.append(str(relative))
                    # content-addressed: same name, same bytes; a copy is whole or absent
                    # (copied under another name, then renamed), and one cut short by an
                    # older version is copied again
                    if not stored.exists() or stored.stat().st_size != path.stat().st_size:
                        copy_file(path, stored)
                        landing_new += 1
        manifest: dict[str, Any] = {
            "created_at": datetime.now(UTC).isoformat(),
            "files": {
                str(f.relative_to(partial)): {"bytes": f.stat().st_size, "sha256": _sha256(f)}
                for f in files
            },
            # the checksums of the landing files themselves, not of the stored copies: a
            # damaged copy then fails restore's check instead of passing it
            "landing": {
                rel: {
                    "bytes": (settings.landing_dir / rel).stat().st_size,
                    "sha256": _sha256(settings.landing_dir / rel),
                }
                for rel in landing
            },
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(target)
    removed = _prune(root, settings.backup_keep)
    copied = None
    if settings.backup_bucket:
        from music_tracker.bucket import BucketError, mirror

        try:
            copied = mirror(settings, root)
        except BucketError as exc:
            raise BackupError(f"backed up to {target}, but not to the bucket: {exc}") from exc
    size = sum(v["bytes"] for v in manifest["files"].values())
    return BackupResult(
        path=target,
        files=len(manifest["files"]) + len(manifest["landing"]),
        bytes=size,
        landing_new=landing_new,
        seconds=time.perf_counter() - started,
        removed=removed,
        bucket=copied,
    )


def backups(root: Path) -> list[Path]:
    """Complete backups, oldest first."""
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        # hidden: one being written, or being deleted (``_prune``)
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()
    )


def _prune(root: Path, keep: int) -> list[str]:
    """Delete backups beyond the newest ``keep``, and landing files no backup names."""
    complete = backups(root)
    removed = []
    for old in complete[: max(0, len(complete) - keep)]:
        # no longer a backup before any of it goes: a half-deleted one stopped by Ctrl+C
        # or a crash is never listed as complete (and the next prune finishes it)
        going = root / f".{old.name}{_DELETING}"
        old.rename(going)
        shutil.rmtree(going)
        removed.append(old.name)
    for left in root.glob(f".*{_DELETING}"):
        shutil.rmtree(left, ignore_errors=True)
    named: set[str] = set()
    for kept in backups(root):
        named |= set(json.loads((kept / MANIFEST).read_text(encoding="utf-8"))["landing"])
    landing = root / "landing"
    if landing.is_dir():
        for path in sorted(landing.rglob("*"), reverse=True):
            if path.is_file() and str(path.relative_to(landing)) not in named:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return removed


def refuse_to_overwrite(settings: Settings, *, replace: bool) -> None:
    """A restore goes into a data folder without a warehouse, unless told to replace it."""
    if settings.warehouse_path.exists() and not replace:
        raise BackupError(
            f"{settings.warehouse_path} exists: restore into an empty data folder "
            "(--data-dir), or pass --replace to overwrite it"
        )


def restore(settings: Settings, source: Path, *, replace: bool = False) -> dict[str, Any]:
    """Put a backup back into the data folder, after checking every file's checksum."""
    source = source.resolve()
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(
            f"{source} is not a complete backup (no {MANIFEST}); backups are the dated "
            f"folders in {backup_root(settings)}"
        )
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    landing_root = source.parent / "landing"
    problems = [
        rel
        for rel, facts in manifest["files"].items()
        if not (source / rel).is_file() or _sha256(source / rel) != facts["sha256"]
    ] + [
        f"landing/{rel}"
        for rel, facts in manifest["landing"].items()
        if not (landing_root / rel).is_file() or _sha256(landing_root / rel) != facts["sha256"]
    ]
    if problems:
        raise BackupError(
            f"{source}: {len(problems)} files missing or damaged ({', '.join(problems[:3])}"
            f"{' ...' if len(problems) > 3 else ''}); nothing was restored: use an older backup"
        )
    refuse_to_overwrite(settings, replace=replace)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with writer_lock(settings.data_dir, "restore", wait_s=settings.writer_wait_s):
        partial = settings.data_dir / f".warehouse.duckdb{PARTIAL}"
        shutil.copy2(source / "warehouse.duckdb", partial)
        partial.chmod(0o600)
        Path(f"{settings.warehouse_path}.wal").unlink(missing_ok=True)
        partial.replace(settings.warehouse_path)
        if (source / "state").is_dir():
            _copy_tree(source / "state", settings.state_dir)
        for rel in manifest["landing"]:
            target = settings.landing_dir / rel
            if not target.exists():
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                shutil.copy2(landing_root / rel, target)
    return {
        "restored_from": str(source),
        "warehouse": str(settings.warehouse_path),
        "files": len(manifest["files"]) + len(manifest["landing"]),
        "metabase": str(source / "metabase") if (source / "metabase").is_dir() else None,
    }
