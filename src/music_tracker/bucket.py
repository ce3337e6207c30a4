"""The backups' second home: an S3-compatible bucket (a Lightsail bucket in production).

The bucket mirrors the local backup folder (``backup.py``) under its prefix::

    s3://bucket/prefix/landing/<source>/<sha256>/<file>    once each, shared by every backup
    s3://bucket/prefix/20261128T031500Z/...                 one backup, manifest.json last

After every local backup, ``mirror`` uploads what the bucket lacks (a backup's manifest
after its other files, so a backup without a manifest in the bucket is an incomplete one),
then keeps the bucket's newest ``MUSIC_TRACKER_BACKUP_KEEP`` backups and the landing files
they name, deleting the rest: its own retention, so a new machine with one local backup
does not empty it.
``download`` fetches one backup (the newest unless named) and its landing files into the
local backup folder, for ``restore`` to check and put back (a new VM starts with none).

Credentials come from boto3's usual chain: the environment (``AWS_ACCESS_KEY_ID`` ...) or,
on a Lightsail instance given access to the bucket, the instance's own credentials.
boto3 retries throttling and transient errors itself (standard mode, 5 attempts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from music_tracker.backup import MANIFEST, backups
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


def mirror(settings: Settings, root: Path) -> dict[str, int]:
    """Copy to the bucket what the local backup folder ``root`` has and the bucket lacks,
    then keep the newest ``backup_keep`` backups there; return counts."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket = open_bucket(settings)
    try:
        return _mirror(bucket, root, settings.backup_keep)
    except (BotoCoreError, ClientError, OSError) as exc:
        raise _fail(bucket, "copying the backups", exc) from exc


def _complete(remote: dict[str, int]) -> list[str]:
    """The backups in the bucket whose manifest is there (uploaded last), oldest first."""
    return sorted(
        rel.split("/", 1)[0]
        for rel in remote
        if rel.endswith(f"/{MANIFEST}") and rel.count("/") == 1
    )


def _manifest(bucket: Bucket, root: Path, name: str) -> dict[str, Any]:
    """A backup's manifest: the local copy if there is one, else the bucket's."""
    local = root / name / MANIFEST
    if local.is_file():
        return dict(json.loads(local.read_text(encoding="utf-8")))
    answer = bucket.client.get_object(Bucket=bucket.name, Key=bucket.key(f"{name}/{MANIFEST}"))
    return dict(json.loads(answer["Body"].read().decode("utf-8")))


def _mirror(bucket: Bucket, root: Path, keep: int) -> dict[str, int]:
    remote = _listing(bucket)
    local = [p.name for p in backups(root)]
    in_bucket = set(_complete(remote))
    # the bucket's own retention: its newest backups, whatever this machine holds (a new
    # VM restored from the bucket has one local backup and must not prune the rest)
    kept = sorted(in_bucket | set(local))[-keep:]
    uploads: list[tuple[Path, str]] = []
    named: set[str] = set()
    for name in kept:
        manifest = _manifest(bucket, root, name)
        named |= {f"landing/{rel}" for rel in manifest["landing"]}
        if name not in in_bucket:
            folder = root / name
            uploads += [(folder / rel, f"{name}/{rel}") for rel in manifest["files"]]
            uploads.append((folder / MANIFEST, f"{name}/{MANIFEST}"))  # last: complete
    # landing files first: a manifest in the bucket means everything it names is there
    uploads = [(root / rel, rel) for rel in sorted(named - set(remote))] + uploads
    sent = 0
    for path, relative in uploads:
        bucket.client.upload_file(str(path), bucket.name, bucket.key(relative))
        sent += path.stat().st_size
    stale = [
        rel
        for rel in remote
        if (rel.startswith("landing/") and rel not in named)
        or (not rel.startswith("landing/") and rel.split("/", 1)[0] not in kept)
    ]
    for start in range(0, len(stale), 1000):  # DeleteObjects takes 1,000 keys at a time
        chunk = stale[start : start + 1000]
        bucket.client.delete_objects(
            Bucket=bucket.name,
            Delete={"Objects": [{"Key": bucket.key(rel)} for rel in chunk], "Quiet": True},
        )
    return {"uploaded_files": len(uploads), "uploaded_bytes": sent, "deleted_files": len(stale)}


def download(settings: Settings, root: Path, name: str | None = None) -> Path:
    """Fetch a backup (the newest complete one unless ``name``) and its landing files into
    the local backup folder ``root``, laid out as ``backup`` writes it; return the
    backup's folder. Its manifest is written last: an interrupted fetch leaves no folder
    that looks complete."""
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
        answer = bucket.client.get_object(
            Bucket=bucket.name, Key=bucket.key(f"{chosen}/{MANIFEST}")
        )
        text = answer["Body"].read().decode("utf-8")
        manifest = json.loads(text)
        wanted = [f"{chosen}/{rel}" for rel in manifest["files"]]
        wanted += [
            f"landing/{rel}"
            for rel in manifest["landing"]
            if not (root / "landing" / rel).is_file()
        ]
        for relative in wanted:
            path = root / relative
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            bucket.client.download_file(bucket.name, bucket.key(relative), str(path))
        (root / chosen / MANIFEST).write_text(text, encoding="utf-8")
    except (BotoCoreError, ClientError, OSError) as exc:
        raise _fail(bucket, "fetching a backup", exc) from exc
    return root / chosen
