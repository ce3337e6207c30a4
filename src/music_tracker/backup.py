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
        manifest.json                    every file with its size and SHA-256, and the
                                         id of the data folder it came from
      ...

Consistency: the backup holds the writer lock (no flow or command writes meanwhile) and
copies the warehouse after a checkpoint, so the copy is the database as of that moment,
without a write-ahead log. Both wait like every writer: for the lock ``wait_s`` (the
command's MUSIC_TRACKER_LOCK_WAIT_S, a flow's MUSIC_TRACKER_WRITER_WAIT_S), then
WriterBusy; for another process holding the file itself (a DuckDB shell)
MUSIC_TRACKER_LOCK_WAIT_S, then WarehouseBusy; both name the holder. Before those, the
backup folder's own lock (``lock.backup_folder_lock``, ``wait_s`` too, then
BackupFolderBusy): data folders side by side share the folder, and one backup (or a fetch
from the bucket) writes it at a time; a backup takes the next UTC second for its name
when another data folder's took this one.

A backup is written under a hidden name and renamed when complete; older backups of the
same data folder beyond ``MUSIC_TRACKER_BACKUP_KEEP`` are deleted afterwards (renamed to a
hidden name first, so a prune cut short leaves nothing counted as a backup). Backups of
other data folders sharing the backup folder, and those made before backups named their
data folder, are never pruned by it (``backup_layout``: whose backup). A full disk stops
the backup with BackupDiskFull and nothing of it left; a landing file that no longer
matches the checksum in its name never replaces the whole copy earlier backups name
(docs/deployment.md).
With ``MUSIC_TRACKER_BACKUP_BUCKET`` set, the folder is then mirrored to that bucket
(``bucket.py``), and ``restore s3://...`` fetches a backup from it first. ``restore`` of
a backup folder or bucket without a backup's name takes the newest of the target data
folder's own, and refuses, naming the candidates, when that cannot be told.
``restore`` checks every file against the manifest before it touches the data folder,
and refuses a folder that already holds a warehouse unless told to replace it.

A manifest is trusted only once read whole: valid JSON in the shape ``backup`` writes,
every path in it inside its folder (``files.inside``). A backup whose manifest is not
(cut short by a full disk, edited) is damaged: ``restore`` refuses it, naming the entry,
before anything is written; ``backup`` warns about it each time and goes on, and never
prunes it nor counts it among the kept ones. While one is there no landing file is
pruned either: which ones it needs cannot be known.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from music_tracker import interrupts, warehouse
from music_tracker.backup_layout import (
    MANIFEST,
    SHA256_HEX,
    BackupError,
    DamagedBackup,
    backup_root,
    backups,
    choose,
    damaged_warning,
    left_alone,
    own_folder_id,
    owner,
    read_backups,
    read_folder_id,
    read_manifest,
    write_folder_id,
)
from music_tracker.bucket import BucketError, choose_in_bucket, download, mirror
from music_tracker.files import OutsideFolder, disk_full, inside, is_leftover, sha256
from music_tracker.files import copy as copy_file
from music_tracker.lock import BACKUP_LOCK_FILE, backup_folder_lock, writer_lock
from music_tracker.settings import Settings

PARTIAL = ".partial"
_DELETING = ".deleting"


class BackupDiskFull(BackupError):
    """The disk holding the backups filled up while a backup was written: the new backup
    was removed, the earlier ones are untouched."""

    def __init__(self, root: Path, error: OSError) -> None:
        try:
            free = f"{shutil.disk_usage(root).free / 2**20:,.0f} MB free"
        except OSError:
            free = "free space unknown"
        super().__init__(
            f"the disk holding the backups in {root} is full ({free}; {error.strerror}):"
            " no backup was made, the earlier ones are as they were; free space there, or"
            " keep fewer backups (MUSIC_TRACKER_BACKUP_KEEP) or back up elsewhere"
            " (MUSIC_TRACKER_BACKUP_DIR), then run `music-tracker backup` again"
        )


@dataclass
class BackupResult:
    path: Path
    files: int
    bytes: int
    landing_new: int
    seconds: float
    data_folder: dict[str, str] = field(default_factory=dict)  # its id and path
    removed: list[str] = field(default_factory=list)
    # this data folder's backups kept; the others', and those older than the ids, untouched
    kept: list[str] = field(default_factory=list)
    left_alone: dict[str, list[str]] = field(default_factory=dict)
    bucket: dict[str, Any] | None = None  # what the copy to the bucket did, when configured
    # damaged backups skipped (here and in the bucket): where -> what is wrong
    damaged: dict[str, str] = field(default_factory=dict)
    # landing files changed after they landed: the backup kept the copy made before
    landing_changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the data folder's id changed: why

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "files": self.files,
            "bytes": self.bytes,
            "landing_files_new": self.landing_new,
            "seconds": round(self.seconds, 2),
            "data_folder": self.data_folder,
            "removed": self.removed,
            "kept": self.kept,
            "left_alone": self.left_alone,
            "bucket": self.bucket,
            "damaged": [Path(where).name for where in self.damaged],
            "warnings": [damaged_warning(where, why) for where, why in self.damaged.items()]
            + [
                f"landing/{rel} changed after it landed (its content no longer matches the"
                " checksum in its name: appended to or damaged): the backup keeps the copy"
                f" made when it was whole; copy {self.path.parent / 'landing' / rel} back"
                " over it"
                for rel in self.landing_changed
            ]
            + self.notes,
        }


def _copy_tree(source: Path, target: Path) -> list[Path]:
    copied = []
    for path in sorted(source.rglob("*")):
        if path.is_file():
            destination = target / path.relative_to(source)
            destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied.append(destination)
    return copied


def _landed(path: Path, relative: str) -> bool:
    """Whether a file in landing/ is a landed file: an import's staging folder and a
    killed copy's ``.partial`` file are what runs that never committed left."""
    if relative.startswith(".staging-"):
        return False
    return not is_leftover(path, path.parent.name)


def _back_up_landing_file(
    path: Path, stored_root: Path, relative: str
) -> tuple[dict[str, Any], int]:
    """Store one landing file in the shared landing folder of the backups; its manifest
    entry (``bytes``, ``sha256``, ``changed``) and 1 when a copy was made.

    A landing file is named by its content (``<source>/<sha256>/<name>``) and never
    changes, so its stored copy is shared by every backup. A copy is made under another
    name, checked against the name's checksum and then renamed: a file appended to while
    it is copied never replaces a whole copy (which earlier backups name). A landing file
    that no longer matches its name keeps the stored copy that does, said as ``changed``;
    with no such copy there is nothing whole to back up, and the backup stops."""
    stored = stored_root / relative
    expected = path.parent.name if SHA256_HEX.fullmatch(path.parent.name) else None
    size = path.stat().st_size
    if expected is None:  # not named by its content: copied, and the copy checksummed
        if not stored.exists() or stored.stat().st_size != size:
            copy_file(path, stored)
            return {"bytes": stored.stat().st_size, "sha256": sha256(stored)}, 1
        return {"bytes": size, "sha256": sha256(path)}, 0
    if stored.exists() and stored.stat().st_size == size:
        # the source's checksum, not the stored copy's: a damaged copy then fails
        # restore's check instead of passing it
        digest = sha256(path)
        if digest == expected:
            return {"bytes": size, "sha256": digest}, 0
    else:
        partial = stored.with_name(stored.name + PARTIAL)
        try:
            copy_file(path, partial)
            if sha256(partial) == expected:
                partial.replace(stored)
                return {"bytes": stored.stat().st_size, "sha256": expected}, 1
        finally:
            partial.unlink(missing_ok=True)
    if stored.is_file() and sha256(stored) == expected:
        return {"bytes": stored.stat().st_size, "sha256": expected, "changed": True}, 0
    raise BackupError(
        f"landing/{relative} changed after it landed (its content no longer matches the"
        " checksum in its name: appended to or damaged) and no backup holds it whole: no"
        " backup was made; move it out of landing/ (its plays are in the warehouse), then"
        " run `music-tracker backup` again"
    )


def backup(settings: Settings, *, wait_s: float, now: datetime | None = None) -> BackupResult:
    """Write one backup (see the module's docstring); ``wait_s`` for the backup folder's
    lock and the writer lock (a command's ``lock_wait_s``, a flow's ``writer_wait_s``)."""
    started = time.perf_counter()
    if not settings.warehouse_path.exists():
        raise BackupError(f"no warehouse at {settings.warehouse_path}: nothing to back up yet")
    root = backup_root(settings)
    made_root = not root.exists()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # data folders side by side share the backup folder: one backup writes it at a time
        with backup_folder_lock(root, f"backup of {settings.data_dir}", wait_s=wait_s):
            return _backup(settings, root, wait_s=wait_s, now=now, started=started)
    except BaseException:
        if made_root:  # a first backup that could not be made leaves no folder behind
            with contextlib.suppress(OSError):
                (root / BACKUP_LOCK_FILE).unlink()
                root.rmdir()
        raise


def _free_name(root: Path, now: datetime | None) -> str:
    """A new backup's name, its UTC second: the next one when a backup (another data
    folder's, sharing the backup folder) took this one."""
    for _ in range(4):
        name = f"{(now or datetime.now(UTC)).astimezone(UTC):%Y%m%dT%H%M%SZ}"
        if now is not None or not (root / name).exists():
            break
        time.sleep(0.4)
    return name


def _backup(
    settings: Settings, root: Path, *, wait_s: float, now: datetime | None, started: float
) -> BackupResult:
    name = _free_name(root, now)
    target = root / name
    if target.exists():
        raise BackupError(f"{target} exists already: one backup per second at most")
    partial = root / f".{name}{PARTIAL}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o700)
    landing_new = 0
    changed: list[str] = []
    notes: list[str] = []
    try:
        with writer_lock(settings.data_dir, "backup", wait_s=wait_s):
            # what a backup killed midway left (serve's time limit, the kernel): only one
            # backup runs at a time, under this lock
            for left in root.glob(f".*{PARTIAL}"):
                if left != partial:
                    shutil.rmtree(left, ignore_errors=True)
            # a checkpoint folds the write-ahead log into the file: the copy is complete
            warehouse.checkpoint(
                settings.warehouse_path,
                memory_limit=settings.duckdb_memory_limit,
                file_wait_s=settings.lock_wait_s,
            )
            # whose backup: before state/ is copied, so that the copy holds the id
            folder_id, note = own_folder_id(settings.data_dir)
            notes += [note] if note else []
            files = [partial / "warehouse.duckdb"]
            shutil.copy2(settings.warehouse_path, files[0])
            if settings.state_dir.is_dir():
                files += _copy_tree(settings.state_dir, partial / "state")
            if settings.metabase_app_db_dir and settings.metabase_app_db_dir.is_dir():
                files += _copy_tree(settings.metabase_app_db_dir, partial / "metabase")
            landing: dict[str, dict[str, Any]] = {}
            if settings.landing_dir.is_dir():
                for path in sorted(settings.landing_dir.rglob("*")):
                    relative = str(path.relative_to(settings.landing_dir))
                    if path.is_file() and _landed(path, relative):
                        facts, new = _back_up_landing_file(path, root / "landing", relative)
                        landing[relative] = facts
                        landing_new += new
                        if facts.get("changed"):
                            changed.append(relative)
        manifest: dict[str, Any] = {
            "created_at": datetime.now(UTC).isoformat(),
            "data_folder": {"id": folder_id, "path": str(settings.data_dir)},
            "files": {
                str(f.relative_to(partial)): {"bytes": f.stat().st_size, "sha256": sha256(f)}
                for f in files
            },
            "landing": {
                rel: {"bytes": facts["bytes"], "sha256": facts["sha256"]}
                for rel, facts in landing.items()
            },
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        if disk_full(exc):
            raise BackupDiskFull(root, exc) from exc
        raise
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(target)
    removed, kept, left_alone, damaged = _prune(root, settings.backup_keep, folder_id)
    copied = None
    if settings.backup_bucket:
        try:
            copied, in_bucket = mirror(settings, root, folder_id)
        except BucketError as exc:
            raise BackupError(f"backed up to {target}, but not to the bucket: {exc}") from exc
        damaged |= in_bucket
    size = sum(v["bytes"] for v in manifest["files"].values())
    return BackupResult(
        path=target,
        files=len(manifest["files"]) + len(manifest["landing"]),
        bytes=size,
        landing_new=landing_new,
        seconds=time.perf_counter() - started,
        data_folder=manifest["data_folder"],
        removed=removed,
        kept=kept,
        left_alone=left_alone,
        bucket=copied,
        damaged=damaged,
        landing_changed=changed,
        notes=notes,
    )


def _prune(
    root: Path, keep: int, folder_id: str
) -> tuple[list[str], list[str], dict[str, list[str]], dict[str, str]]:
    """Delete the good backups of the data folder ``folder_id`` beyond its newest ``keep``,
    and landing files no backup names; return what was deleted, its backups kept, the
    others' (left alone) and the damaged backups (left as they are)."""
    good, damaged = read_backups(root)
    own = [folder for folder, manifest in good.items() if owner(manifest) == folder_id]
    others = {f.name: owner(m) for f, m in good.items() if owner(m) != folder_id}
    removed = []
    for old in own[: max(0, len(own) - keep)]:
        # no longer a backup before any of it goes: a half-deleted one stopped by Ctrl+C
        # or a crash is never listed as complete (and the next prune finishes it)
        going = root / f".{old.name}{_DELETING}"
        old.rename(going)
        shutil.rmtree(going)
        removed.append(old.name)
        del good[old]
    for left in root.glob(f".*{_DELETING}"):
        shutil.rmtree(left, ignore_errors=True)
    kept = [folder.name for folder in own if folder in good]
    if damaged:  # the landing files a damaged backup needs are unknown: all stay
        return removed, kept, left_alone(others), damaged
    named: set[str] = set()
    for manifest in good.values():
        named |= set(manifest["landing"])
    landing = root / "landing"
    if landing.is_dir():
        for path in sorted(landing.rglob("*"), reverse=True):
            if path.is_file() and str(path.relative_to(landing)) not in named:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    return removed, kept, left_alone(others), damaged


def refuse_to_overwrite(settings: Settings, *, replace: bool) -> None:
    """A restore goes into a data folder without a warehouse, unless told to replace it."""
    if settings.warehouse_path.exists() and not replace:
        raise BackupError(
            f"{settings.warehouse_path} exists: restore into an empty data folder "
            "(--data-dir), or pass --replace to overwrite it"
        )


def restore(
    settings: Settings, source: Path, *, wait_s: float, replace: bool = False
) -> dict[str, Any]:
    """Put a backup back into the data folder, after checking every file's checksum and
    that every path its manifest names stays inside its folder; ``wait_s`` for the writer
    lock (a command's ``lock_wait_s``), and ``lock_wait_s`` for another process to
    let go of the warehouse it replaces. ``source`` is a backup, or a backup folder
    holding them: then the newest of the data folder's own (``backup_layout.choose``).
    The data folder then has the backup's id: it continues that data folder's backups."""
    source = source.resolve()
    if not (source / MANIFEST).is_file() and backups(source):
        good, damaged = read_backups(source)
        manifests = {folder.name: manifest for folder, manifest in good.items()}
        where = str(source)
        source = source / choose(
            where, manifests, {Path(d).name for d in damaged}, settings.data_dir
        )
    manifest_path = source / MANIFEST
    if not manifest_path.is_file():
        raise BackupError(
            f"{source} is not a complete backup (no {MANIFEST}); backups are the dated "
            f"folders in {backup_root(settings)}"
        )
    nothing = f"nothing was restored: use another backup (the dated folders in {source.parent})"
    try:
        manifest = read_manifest(source)
    except DamagedBackup as exc:
        raise BackupError(f"{exc}; {nothing}") from None
    landing_root = source.parent / "landing"
    problems = [
        rel
        for rel, facts in manifest["files"].items()
        if not (source / rel).is_file() or sha256(source / rel) != facts["sha256"]
    ] + [
        f"landing/{rel}"
        for rel, facts in manifest["landing"].items()
        if not (landing_root / rel).is_file() or sha256(landing_root / rel) != facts["sha256"]
    ]
    if problems:
        raise BackupError(
            f"{source}: {len(problems)} files missing or damaged ({', '.join(problems[:3])}"
            f"{' ...' if len(problems) > 3 else ''}); nothing was restored: use an older backup"
        )
    refuse_to_overwrite(settings, replace=replace)
    try:  # where each file goes, checked before anything is written
        state = [
            (source / rel, inside(settings.state_dir, rel.removeprefix("state/")))
            for rel in manifest["files"]
            if rel.startswith("state/")
        ]
        landing = [
            (landing_root / rel, inside(settings.landing_dir, rel)) for rel in manifest["landing"]
        ]
    except OutsideFolder as exc:
        raise BackupError(f"{manifest_path}: its entry {exc}; {nothing}") from None
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (
        writer_lock(settings.data_dir, "restore", wait_s=wait_s),
        # no reader of ours has the file open while it is replaced
        warehouse.turn(settings.warehouse_path, read_only=False, wait_s=settings.lock_wait_s),
    ):
        refuse_to_overwrite(settings, replace=replace)  # again: an import may have run meanwhile
        # read before the backup's state/ (its id file among it) is copied over this one's
        folder_id, note = _restored_id(settings.data_dir, manifest)
        if settings.warehouse_path.exists():
            # a DuckDB shell writing into the file would go on writing into the one replaced
            warehouse.wait_until_free(settings.warehouse_path, file_wait_s=settings.lock_wait_s)
        partial = settings.data_dir / f".warehouse.duckdb{PARTIAL}"
        shutil.copy2(source / "warehouse.duckdb", partial)
        partial.chmod(0o600)
        Path(f"{settings.warehouse_path}.wal").unlink(missing_ok=True)
        partial.replace(settings.warehouse_path)
        # the files the manifest names (and were checked), not whatever else is there;
        # landing files are named by their content: one already there is the same
        for origin, target in state + [(o, t) for o, t in landing if not t.exists()]:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy2(origin, target)
        if folder_id is not None:
            write_folder_id(settings.data_dir, folder_id)
    return {
        "restored_from": str(source),
        "data_folder": folder_id,
        "note": note,
        "warehouse": str(settings.warehouse_path),
        "files": len(manifest["files"]) + len(manifest["landing"]),
        "metabase": str(source / "metabase") if (source / "metabase").is_dir() else None,
    }


def _restored_id(data_dir: Path, manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """The id a folder restored from this backup goes on with, and a note when it is not
    the backup's. The backup's data folder goes on here (a new machine, the folder moved),
    unless that folder is still there with the same id, beside this one: then this is a
    second folder (restored to try the backup, say), with an id of its own, or each would
    prune the other's backups and a restore of either could fetch the other's (helper-68).
    A backup from before the ids: the folder keeps whatever id it had."""
    folder_id = owner(manifest)
    if folder_id is None:
        return None, None
    origin = Path(manifest["data_folder"]["path"])
    if origin == data_dir or not origin.is_dir():
        return folder_id, None
    with contextlib.suppress(OSError):
        if origin.samefile(data_dir):
            return folder_id, None
    found = read_folder_id(origin)
    if found is None or found[0] != folder_id:
        return folder_id, None
    # a folder restored from it before keeps the id it was given then (helper-69: a new
    # id at every restore left its earlier backups to no one)
    had = read_folder_id(data_dir)
    new = had[0] if had is not None and had[0] != folder_id else uuid.uuid4().hex
    return new, (
        f"the data folder this backup came from, {origin}, is still there: this one has an id"
        f" of its own ({new[:8]}), so that their backups are kept and restored apart"
    )


def restore_from_bucket(
    settings: Settings,
    url: str,
    *,
    wait_s: float,
    say: Callable[[str], None],
    replace: bool = False,
) -> dict[str, Any]:
    """Fetch a backup from the bucket (``s3://bucket/prefix``: the newest of the data
    folder's own, as for a backup folder, or ``.../<UTC time>``) into the local backup
    folder, then restore it from there (checksums first, as for any backup)."""
    match = re.fullmatch(r"(s3://.+?)(?:/(\d{8}T\d{6}Z))?/?", url)
    if match is None:
        raise BackupError(f"{url}: not a bucket URL (s3://bucket/prefix[/<UTC time>])")
    refuse_to_overwrite(settings, replace=replace)  # before fetching anything
    root = backup_root(settings)
    try:
        where = settings.model_copy(update={"backup_bucket": match.group(1)})
        name = match.group(2) or choose_in_bucket(where, settings.data_dir)
        say(f"fetching {name} from {match.group(1)} into {root}")
        # not while a backup prunes there: landing files fetched before the manifest
        # would be taken for ones no backup names
        with backup_folder_lock(root, f"restore of {name}", wait_s=wait_s):
            folder = download(where, root, name)
    except BucketError as exc:
        raise BackupError(str(exc)) from exc
    return restore(settings, folder, replace=replace, wait_s=wait_s)


def interrupted_line(settings: Settings, before: set[Path]) -> str:
    """The state a Ctrl+C left backing up in: a backup is listed only once complete."""
    new = [path for path in backups(backup_root(settings)) if path not in before]
    if not new:
        return interrupts.LINES["backup"]
    bucket = "; the bucket may lag until the next backup" if settings.backup_bucket else ""
    return f"interrupted: the backup in {new[-1]} is complete{bucket}"
