"""`music-tracker backup` when files misbehave: a full disk, a landing file appended to,
a prune killed midway. Each made to happen for real (a real small filesystem, a real
writer process, a real SIGKILL), on a warehouse of the real 2024 account export."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ACCOUNT_DIR, Cli, cli_json
from music_tracker.backup_layout import MANIFEST, backups

MUSIC_TRACKER = [sys.executable, "-m", "music_tracker"]


@pytest.fixture
def data(cli: Cli, shared: Path, data_dir: Path) -> Path:
    cli("import", str(ACCOUNT_DIR))
    return data_dir


def _landed(data: Path, name: str) -> Path:
    (path,) = (data / "landing").rglob(name)
    return path


def _restores(cli: Cli, backup: Path, into: Path) -> Path:
    cli("restore", str(backup), "--data-dir", str(into))
    return into


# A filesystem of a chosen size, mounted by an unprivileged user in a namespace of its own
# (no root needed, nothing changed outside the test): the copy fails with a real ENOSPC
# from the kernel, at the point the disk fills, as on the VM. RLIMIT_FSIZE would give
# EFBIG for any file, the warehouse's own writes included, which is not a full disk.
_ON_A_SMALL_DISK = """
set -u
mount -t tmpfs -o size="$SIZE" tmpfs "$BACKUPS" || exit 99
"$@" backup --json > "$OUT/first.json" 2> "$OUT/first.err"; echo $? > "$OUT/first.rc"
sleep 1.1  # backups are named by the UTC second
"$@" backup > "$OUT/second.out" 2> "$OUT/second.err"; echo $? > "$OUT/second.rc"
ls -A "$BACKUPS" > "$OUT/listing"
ls -A "$BACKUPS/landing" > "$OUT/landing"
for made in "$BACKUPS"/2*; do
    "$@" restore "$made" --data-dir "$OUT/restored" > "$OUT/restore.out" 2>&1
    echo $? > "$OUT/restore.rc"
done
"""


def test_backup_on_a_full_disk_says_so_and_leaves_earlier_backups_whole(
    data: Path, tmp_path: Path
) -> None:
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip(f"no user namespaces here to mount a small filesystem: {probe.stderr!r}")
    backups_dir, out = tmp_path / "backups", tmp_path / "out"
    backups_dir.mkdir()
    out.mkdir()
    landing = sum(p.stat().st_size for p in (data / "landing").rglob("*") if p.is_file())
    warehouse = (data / "warehouse.duckdb").stat().st_size
    # room for one backup (the warehouse, after a checkpoint no larger, and the landing
    # files), not for a second warehouse
    size = warehouse + landing + warehouse // 2
    env = {
        **os.environ,
        "SIZE": str(size),
        "BACKUPS": str(backups_dir),
        "OUT": str(out),
        "MUSIC_TRACKER_DATA_DIR": str(data),
        "MUSIC_TRACKER_BACKUP_DIR": str(backups_dir),
    }
    subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _ON_A_SMALL_DISK,
         "sh", *MUSIC_TRACKER],
        env=env, check=True, timeout=600,
    )  # fmt: skip
    assert (out / "first.rc").read_text().strip() == "0", (out / "first.err").read_text()
    assert (out / "second.rc").read_text().strip() == "74"
    said = (out / "second.err").read_text().strip()
    assert len(said.splitlines()) == 1, said
    assert f"the disk holding the backups in {backups_dir} is full" in said
    assert "no backup was made" in said and "Traceback" not in said
    # no partial backup, no partial landing copy; the earlier backup restores whole
    first = Path(json.loads((out / "first.json").read_text())["path"]).name
    listed = sorted((out / "listing").read_text().split())
    assert listed == sorted([first, "landing", ".backup.lock"])  # the folder's lock stays
    assert not [name for name in (out / "landing").read_text().split() if "partial" in name]
    assert (out / "restore.rc").read_text().strip() == "0", (out / "restore.out").read_text()


def test_a_landing_file_appended_after_it_landed_never_damages_earlier_backups(
    cli: Cli, data: Path, tmp_path: Path
) -> None:
    """Landing files are named by their content and their stored copies shared by every
    backup: one changed later must not replace the whole copy earlier backups name."""
    first = Path(cli_json(cli, "backup")["path"])
    landed = _landed(data, "StreamingHistory_music_0.json")
    whole = landed.read_bytes()
    with landed.open("ab") as handle:
        handle.write(b"\n[]\n")
    time.sleep(1.1)  # backups are named by the UTC second
    second = cli_json(cli, "backup")
    relative = landed.relative_to(data / "landing")
    assert [w for w in second["warnings"] if f"landing/{relative} changed" in w]
    for made in (first, Path(second["path"])):
        restored = _restores(cli, made, tmp_path / f"restored-{made.name}")
        assert (restored / "landing" / relative).read_bytes() == whole


_APPENDER = """
import sys, time
with open(sys.argv[1], "ab", buffering=0) as handle:
    while True:
        handle.write(b" ")
        time.sleep(0.001)
"""


def test_a_backup_while_a_landing_file_is_appended(cli: Cli, data: Path) -> None:
    """A landing file written to while the first backup copies it: no backup holds it
    whole, so none is made (one line naming it), and nothing half made is left."""
    landed = _landed(data, "StreamingHistory_music_1.json")
    size = landed.stat().st_size
    appender = subprocess.Popen([sys.executable, "-c", _APPENDER, str(landed)])
    try:
        while landed.stat().st_size == size:
            time.sleep(0.01)
        refused = cli("backup", expect=1)
    finally:
        appender.kill()
        appender.wait()
    relative = landed.relative_to(data / "landing")
    assert f"landing/{relative} changed after it landed" in refused.output
    assert "no backup was made" in refused.output and "Traceback" not in refused.output
    root = data.parent / "backups"
    assert backups(root) == []
    assert not [p for p in root.rglob("*") if "partial" in p.name]
    assert not (root / "landing" / relative).exists()


def test_a_prune_killed_midway_leaves_no_half_pruned_backup_counted_as_good(
    cli: Cli, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "1")
    oldest = Path(cli_json(cli, "backup")["path"])
    # many files, so that deleting it takes long enough to be killed in the middle
    many = oldest / "state" / "many"
    many.mkdir(parents=True)
    for number in range(30_000):
        (many / str(number)).touch()
    time.sleep(1.1)
    env = {**os.environ, "MUSIC_TRACKER_DATA_DIR": str(data), "MUSIC_TRACKER_BACKUP_KEEP": "1"}
    root = data.parent / "backups"
    deleting = root / f".{oldest.name}.deleting"
    pruning = subprocess.Popen([*MUSIC_TRACKER, "backup"], env=env)
    while not deleting.exists() and pruning.poll() is None:
        time.sleep(0.001)
    pruning.send_signal(signal.SIGKILL)
    pruning.wait()
    if not deleting.exists():
        pytest.fail("the prune finished before it could be killed: give it more files")
    assert any(deleting.iterdir())  # killed halfway through deleting it
    (newest,) = backups(root)  # the half-deleted one is no backup
    assert newest.name > oldest.name and (newest / MANIFEST).is_file()
    refused = cli("restore", str(oldest), "--data-dir", str(tmp_path / "r"), expect=1)
    assert "not a complete backup" in refused.output
    _restores(cli, newest, tmp_path / "restored")
    # the next backup finishes deleting it
    time.sleep(1.1)
    cli_json(cli, "backup")
    assert not deleting.exists() and len(backups(root)) == 1
    shutil.rmtree(tmp_path / "restored")
