"""The backups' second home: an S3-compatible bucket (a Lightsail bucket in production).

The bucket mirrors the local backup folder (``backup.py``, laid out as ``backup_layout.py``
says) under its prefix::

    s3://bucket/prefix/landing/<source>/<sha256>/<file>    once each, shared by every backup
    s3://bucket/prefix/20261128T031500Z/...                 one backup, manifest.json last

After every local backup, ``mirror`` uploads what the bucket lacks of the data folder's own
backups (a backup's manifest after its other files, so a backup without a manifest in the
bucket is an incomplete one), then keeps the bucket's newest ``MUSIC_TRACKER_BACKUP_KEEP``
backups of that data folder and the landing files any backup there names, deleting its
older ones: its own retention, so a new machine with one local backup does not empty it.
Backups of other data folders (``backup_layout``: whose backup), and those made before
backups named their data folder, are never deleted by it.
``choose_in_bucket`` picks the backup ``restore s3://...`` takes when none is named (as
for a backup folder, ``backup_layout.choose``); ``download`` fetches it and its landing
files into the local backup folder, for ``restore`` to check and put back (a new VM
starts with none).

Only keys under ``landing/`` and under folders named like a backup (``BACKUP_NAME``) are
taken for backups, uploaded to or pruned; a damaged manifest (``backup.parse_manifest``)
is skipped with a warning by ``mirror``, and refused, before anything is fetched, by
``download``: every path in it must stay inside the local backup folder.

Credentials come from boto3's usual chain: the environment (``AWS_ACCESS_KEY_ID`` ...) or,
on a Lightsail instance given access to the bucket, the instance's own credentials.
boto3 retries throttling and transient errors itself (standard mode, 5 attempts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from music_tracker.backup_layout import (
    BACKUP_NAME,
    MANIFEST,
    BackupError,
    DamagedBackup,
    choose,
    left_alone,
    owner,
    parse_manifest,
    read_backups,
)
from music_tracker.files import OutsideFolder, inside
from music_tracker.settings import Settings


class BucketError(Exception):
    """The bucket could not be read or written; the message says what to check."""


@dataclass(frozen=True)
class Bucket:
    name: str
    prefix: str  # "" or "some/prefix/"
    client: Any  # boto3's S3 client

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def url(self, relative: str = "") -> str:
        return f"s3://{self.name}/{self.prefix}{relative}"


def open_bucket(settings: Settings) -> Bucket:
    import logging

    import boto3
    from botocore.config import Config

    logging.getLogger("botocore").setLevel(logging.WARNING)  # not "Found credentials in ..."
    _, _, rest = settings.backup_bucket.partition("s3://")
    name, _, prefix = rest.partition("/")
    client = boto3.client(
        "s3",
        endpoint_url=settings.backup_bucket_endpoint or None,
        region_name=settings.backup_bucket_region or None,
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=settings.http_timeout_s,
            read_timeout=max(60.0, settings.http_timeout_s),
        ),
    )
    return Bucket(name, f"{prefix.strip('/')}/" if prefix.strip("/") else "", client)


def _fail(bucket: Bucket, action: str, exc: Exception) -> BucketError:
    return BucketError(
        f"s3://{bucket.name}/{bucket.prefix}: {action} failed ({exc}); check"
        " MUSIC_TRACKER_BACKUP_BUCKET, the endpoint and region settings, and the credentials"
        " (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or the instance's access to the bucket)"
    )


def _listing(bucket: Bucket) -> dict[str, int]:
    """Every key under the prefix, relative to it, with its size."""
    found: dict[str, int] = {}
    pages = bucket.client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket.name, Prefix=bucket.prefix
    )
    for page in pages:
        for item in page.get("Contents", []):
            found[item["Key"][len(bucket.prefix) :]] = item["Size"]
    return found


def mirror(settings: Settings, root: Path, folder_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Copy to the bucket what the local backup folder ``root`` has of the data folder
    ``folder_id`` and the bucket lacks, then keep its newest ``backup_keep`` backups there;
    return what was done, and the damaged backups in the bucket that were skipped (where
    -> what is wrong)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = open_bucket(settings)
    try:
        return _mirror(bucket, root, settings.backup_keep, folder_id)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise _fail(bucket, "copying the backups", exc) from exc


def _complete(remote: dict[str, int]) -> list[str]:
    """The backups in the bucket whose manifest is there (uploaded last), oldest first."""
    return sorted(
        name
        for name, _, rest in (rel.partition("/") for rel in remote)
        if rest == MANIFEST and BACKUP_NAME.fullmatch(name)
    )


def _bucket_manifest(bucket: Bucket, name: str) -> tuple[str, dict[str, Any]]:
    """A backup's manifest in the bucket: its text, and its content checked."""
    answer = bucket.client.get_object(Bucket=bucket.name, Key=bucket.key(f"{name}/{MANIFEST}"))
    try:
        text = answer["Body"].read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DamagedBackup(bucket.url(f"{name}/{MANIFEST}"), f"not text: {exc}") from None
    return text, parse_manifest(text, bucket.url(f"{name}/{MANIFEST}"))


def _mirror(
    bucket: Bucket, root: Path, keep: int, folder_id: str
) -> tuple[dict[str, Any], dict[str, str]]:
    remote = _listing(bucket)
    local = {folder.name: manifest for folder, manifest in read_backups(root)[0].items()}
    in_bucket = set(_complete(remote))
    # each backup's manifest: the local copy when it is whole, else the bucket's; a backup
    # damaged here and absent there is not uploaded (the local prune warned about it)
    manifests: dict[str, dict[str, Any]] = {}
    damaged: dict[str, str] = {}
    for name in sorted(in_bucket | set(local)):
        if name in local:
            manifests[name] = local[name]
            continue
        try:
            manifests[name] = _bucket_manifest(bucket, name)[1]
        except DamagedBackup as exc:
            damaged[bucket.url(name)] = exc.why
    # the bucket's own retention: the data folder's newest backups, whatever this machine
    # holds (a new VM restored from the bucket has one local backup and must not prune the
    # rest); other data folders' are left alone, damaged ones neither counted nor pruned
    own = [name for name in sorted(manifests) if owner(manifests[name]) == folder_id]
    kept = own[-keep:]
    gone = set(own) - set(kept)
    others = {  # in the bucket: another data folder's only here is not the bucket's
        name: owner(m)
        for name, m in manifests.items()
        if owner(m) != folder_id and name in in_bucket
    }
    uploads: list[tuple[Path, str]] = []
    named: set[str] = set()
    # the landing files of every backup the bucket holds after this (not of another data
    # folder's that is only here: that folder's own backup uploads it)
    for name in sorted((in_bucket | set(kept)) - gone):
        named |= set(manifests[name]["landing"]) if name in manifests else set()
        if name in kept and name not in in_bucket:
            folder = root / name
            uploads += [(inside(folder, rel), f"{name}/{rel}") for rel in manifests[name]["files"]]
            uploads.append((folder / MANIFEST, f"{name}/{MANIFEST}"))  # last: complete
    # landing files first: a manifest in the bucket means everything it names is there
    missing = sorted(rel for rel in named if f"landing/{rel}" not in remote)
    uploads = [(inside(root / "landing", rel), f"landing/{rel}") for rel in missing] + uploads
    sent = 0
    for path, relative in uploads:
        bucket.client.upload_file(str(path), bucket.name, bucket.key(relative))
        sent += path.stat().st_size
    spared = {Path(where).name for where in damaged}

    def is_stale(rel: str) -> bool:
        folder, _, rest = rel.partition("/")
        if folder == "landing":
            # the landing files a damaged backup needs are unknown: all stay while one is
            return not damaged and rest not in named
        return folder in gone and folder not in spared

    stale = [rel for rel in remote if is_stale(rel)]
    for start in range(0, len(stale), 1000):  # DeleteObjects takes 1,000 keys at a time
        chunk = stale[start : start + 1000]
        bucket.client.delete_objects(
            Bucket=bucket.name,
            Delete={"Objects": [{"Key": bucket.key(rel)} for rel in chunk], "Quiet": True},
        )
    counts = {
        "uploaded_files": len(uploads),
        "uploaded_bytes": sent,
        "deleted_files": len(stale),
        "removed": sorted(gone & in_bucket),
        "kept": kept,
        "left_alone": left_alone({name: others[name] for name in sorted(others)}),
    }
    return counts, damaged


def choose_in_bucket(settings: Settings, into: Path) -> str:
    """The backup of the bucket ``restore s3://bucket/prefix`` restores into the data folder
    ``into``: the newest of its own (``backup_layout.choose``, which refuses when that
    cannot be told, naming the candidates)."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = open_bucket(settings)
    try:
        complete = _complete(_listing(bucket))
        manifests: dict[str, dict[str, Any]] = {}
        damaged: set[str] = set()
        for name in complete:
            try:
                manifests[name] = _bucket_manifest(bucket, name)[1]
            except DamagedBackup:
                damaged.add(name)  # restoring it says what is wrong
    except (BotoCoreError, ClientError, OSError) as exc:
        raise _fail(bucket, "listing the backups", exc) from exc
    if not complete:
        raise BucketError(f"s3://{bucket.name}/{bucket.prefix}: no complete backup there")
    return choose(bucket.url(), manifests, damaged, into)


def download(settings: Settings, root: Path, name: str | None = None) -> Path:
    """Fetch a backup (the newest complete one unless ``name``: ``choose_in_bucket`` picks
    it for a data folder) and its landing files into the local backup folder ``root``,
    laid out as ``backup`` writes it; return the backup's folder. Its manifest is written
    last: an interrupted fetch leaves no folder that looks complete."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = open_bucket(settings)
    try:
        remote = _listing(bucket)
        complete = _complete(remote)
        if not complete:
            raise BucketError(f"s3://{bucket.name}/{bucket.prefix}: no complete backup there")
        chosen = name or complete[-1]
        if chosen not in complete:
            raise BucketError(
                f"s3://{bucket.name}/{bucket.prefix}{chosen}: no complete backup of that name;"
                f" the bucket has {', '.join(complete)}"
            )
        nothing = "nothing was fetched or restored: name another backup (s3://.../<UTC time>)"
        try:
            text, manifest = _bucket_manifest(bucket, chosen)
            # where each object goes, checked before the first is fetched
            wanted = [(f"{chosen}/{rel}", inside(root / chosen, rel)) for rel in manifest["files"]]
            wanted += [
                (f"landing/{rel}", inside(root / "landing", rel)) for rel in manifest["landing"]
            ]
        except OutsideFolder as exc:
            where = bucket.url(f"{chosen}/{MANIFEST}")
            raise BackupError(f"{where} is damaged: its entry {exc}; {nothing}") from None
        except DamagedBackup as exc:
            raise BackupError(f"{exc}; {nothing}") from None
        for relative, path in wanted:
            if relative.startswith("landing/") and path.is_file():
                continue  # named by its content: the same file
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            bucket.client.download_file(bucket.name, bucket.key(relative), str(path))
        (root / chosen / MANIFEST).write_text(text, encoding="utf-8")
    except (BotoCoreError, ClientError, OSError) as exc:
        raise _fail(bucket, "fetching a backup", exc) from exc
    return root / chosen
