"""Faults: a process killed (SIGKILL) in the middle of its work, a disk that fills up. The
warehouse opens, holds what it held before or everything, and a re-run ends with exactly
the plays a clean run gives.

(`publish` killed mid-copy: tests/test_publish.py; mutated input files:
tests/test_malformed_input.py; faults of the Spotify API: tests/test_spotify_ingest.py.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ACCOUNT_DIR, EXTENDED_DIR, SPOTIFY_DATA, Cli, cli_json, query
from music_tracker.backup_layout import MANIFEST
from music_tracker.fakes.spotify import FakeSpotify
from music_tracker.settings import Settings
from music_tracker.sources.spotify import auth

CLI = str(Path(sys.executable).with_name("music-tracker"))
FIRST = EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"


def _kill_when(data_dir: Path, args: list[str], ready: str, after_s: float) -> None:
    """Start ``music-tracker ARGS`` and SIGKILL it ``after_s`` after its ``ready`` path
    (a glob under the data folder) appears; fail if it finishes first."""
    env = {**os.environ, "MUSIC_TRACKER_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([CLI, *args], env=env, stdout=subprocess.DEVNULL)
    while proc.poll() is None and not list(data_dir.glob(ready)):
        time.sleep(0.01)
    time.sleep(after_s)
    if proc.poll() is not None:
        pytest.fail(f"`{' '.join(args)}` finished before it could be killed")
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _plays(cli: Cli, data_dir: Path) -> tuple[int, dict[str, int]]:
    status = cli_json(cli, "status", "--data-dir", str(data_dir))
    return status["plays"], status["plays_per_source"]


def test_a_killed_import_loses_and_doubles_nothing(cli: Cli, shared: Path, tmp_path: Path) -> None:
    everything = [str(EXTENDED_DIR), str(ACCOUNT_DIR)]
    clean = tmp_path / "clean"
    cli("import", str(FIRST), "--data-dir", str(clean))
    cli("import", *everything, "--data-dir", str(clean))
    expected = _plays(cli, clean)

    data = tmp_path / "killed"
    cli("import", str(FIRST), "--data-dir", str(data))
    before = _plays(cli, data)
    # killed while it reads and stages the files (as soon as it staged a first one)
    _kill_when(data, ["import", *everything], "landing/.staging-*/*/*.parquet", 0.05)
    assert _plays(cli, data) == before  # all or nothing: nothing of the killed run
    assert list((data / "landing").glob(".staging-*"))  # what it left ...
    # ... and what a copy killed mid-way left (an earlier version's copy, or one across
    # file systems), beside a landed file: a backup keeps neither
    (landed,) = (data / "landing" / "spotify_extended_history").glob("*/*")
    leftover = landed.with_name(f"{landed.name}.k2j3h4g5.partial")
    leftover.write_bytes(landed.read_bytes()[:100])
    manifest = Path(cli_json(cli, "backup", "--data-dir", str(data))["path"]) / MANIFEST
    kept = json.loads(manifest.read_text())["landing"]
    assert sorted(kept) == [str(landed.relative_to(data / "landing"))]
    leftover.unlink()
    cli("import", *everything, "--data-dir", str(data))
    assert not list((data / "landing").glob(".staging-*"))  # ... the next run clears
    assert _plays(cli, data) == expected
    ((rows,),) = query(data, "select count(*) from raw.spotify_extended_history")
    ((clean_rows,),) = query(clean, "select count(*) from raw.spotify_extended_history")
    assert rows == clean_rows


def test_killed_polls_lose_and_double_nothing(tmp_path: Path) -> None:
    """`music-tracker ingest` killed while Spotify has not answered yet, while it stores
    the poll, and while it fetches the tracks' metadata: the next poll catches up, and
    every play is stored once (a poll killed after its commit and before it saved the
    cursor fetches those plays again: rule 1 keeps them once)."""
    data = tmp_path / "data"
    with FakeSpotify(seed=3, plays_per_day=300, slow_s=4) as fake:
        settings = Settings(
            data_dir=data,
            spotify_api_base=fake.api_base,
            spotify_accounts_base=fake.accounts_base,
            spotify_client_id="test-client",
        )
        access, refresh = fake.grant_tokens()
        now = datetime.now(UTC)
        auth.TokenStore(settings.state_dir).save(
            auth.Token(access, refresh, now + timedelta(hours=1), now)
        )
        env = {
            **os.environ,
            "MUSIC_TRACKER_DATA_DIR": str(data),
            "MUSIC_TRACKER_SPOTIFY_API_BASE": fake.api_base,
            "MUSIC_TRACKER_SPOTIFY_ACCOUNTS_BASE": fake.accounts_base,
            "MUSIC_TRACKER_SPOTIFY_CLIENT_ID": "test-client",
        }

        def poll_killed_when(ready: Callable[[], bool]) -> bool:
            proc = subprocess.Popen(
                [CLI, "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            while proc.poll() is None and not ready():
                time.sleep(0.005)
            if proc.poll() is not None:
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True

        fake.advance(timedelta(hours=1))  # a first poll, to have a warehouse and a cursor
        ran = subprocess.run([CLI, "ingest"], env=env, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        first_poll = len(fake.plays)
        killed_storing = 0
        for _ in range(3):  # while it stores the poll (its import's staging folder)
            fake.advance(timedelta(minutes=20))
            killed_storing += poll_killed_when(lambda: any((data / "landing").glob(".staging-*")))
        assert killed_storing  # (3 of 3 here: the staging folder lives about 0.3 s)
        fake.advance(timedelta(minutes=20))
        fake.inject("slow")  # the poll's request hangs
        sent = fake.api_requests_received
        assert poll_killed_when(lambda: fake.api_requests_received > sent)
        fake.advance(timedelta(minutes=20))
        fake.inject("ok", "slow")  # the poll is answered; the metadata request hangs
        sent = fake.api_requests_received
        assert poll_killed_when(lambda: fake.api_requests_received > sent + 1)
        # the plays since the first poll are fewer than the 50 Spotify lists: the next poll
        # can catch up with every killed one
        assert len(fake.plays) - first_poll < 50

        ran = subprocess.run([CLI, "ingest"], env=env, capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        truth = {(p.played_at, p.track.track_id) for p in fake.plays}
    stored = query(data, "select played_at, track_id from raw.spotify_api_plays")
    assert len(stored) == len(set(stored)), "a play was stored twice"
    assert set(stored) == truth, "plays were lost or invented"
    assert not list((data / "landing").glob(".staging-*"))


def test_a_killed_transform_is_rebuilt_by_the_next(cli: Cli, built_copy: Path) -> None:
    data = built_copy
    cli("import", str(ACCOUNT_DIR), "--data-dir", str(data))  # nothing new: it is built
    ((facts,),) = query(data, "select count(*) from dw.fact_track_played")
    # a full rebuild, killed while dbt writes (the write-ahead log appears when it starts)
    _kill_when(data, ["transform", "--full-refresh"], "warehouse.duckdb.wal", 1.5)
    status = cli_json(cli, "status", "--data-dir", str(data))  # the warehouse opens
    assert status["plays"] > 0
    assert any("did not finish" in warning for warning in status["warnings"])
    # the kill may have left a seed or table half replaced: the next build makes everything
    # (a build of changed data only found a seed missing, once, before it did)
    result = cli_json(cli, "transform", "--data-dir", str(data))  # exit 0: dbt's tests pass
    assert result["scope"] == "everything" and result["succeeded"] > 0
    ((after,),) = query(data, "select count(*) from dw.fact_track_played")
    assert after == facts
    status = cli_json(cli, "status", "--data-dir", str(data))
    assert status["plays_imported_since_build"] == 0
    assert not any("did not finish" in warning for warning in status["warnings"])


@contextmanager
def _tmpfs(mount: Path, size: str) -> Iterator[Path]:
    """A size-limited tmpfs at ``mount``: a disk that can really fill up."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 96 MB disk of its own."""
    with _tmpfs(tmp_path / "disk", "96m") as mount:
        yield mount


def _fill(disk: Path, leave_bytes: int) -> Path:
    """Take all the free space of ``disk`` but ``leave_bytes``."""
    filler = disk / "filler"
    with filler.open("wb") as out:
        os.posix_fallocate(out.fileno(), 0, shutil.disk_usage(disk).free - leave_bytes)
    return filler


def test_a_full_landing_disk_of_its_own_is_the_disk_named(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """landing/ on a disk of its own (a larger volume for the exports): when the import's
    staged rows fill it, the message names that disk and its free space, not the data
    folder's, which has room."""
    data = tmp_path / "data"
    monkeypatch.setenv("MUSIC_TRACKER_MIN_FREE_MB", "0")  # past the import's own margin
    with _tmpfs(data / "landing", "8m") as landing:
        # room for the file's copy and 16 KiB: its staged rows (Parquet) do not fit
        filler = _fill(landing, FIRST.stat().st_size + 16 * 2**10)
        failed = cli("import", str(FIRST), "--data-dir", str(data), expect=74)
        output = " ".join(failed.output.split())
        assert "No space left on device" in output and "Traceback" not in output
        # its free space once the run's copies are gone: the 8 MB disk's, not the data's
        shown = re.search(
            rf"the disk holding {re.escape(str(landing))} is full \((\d+) MB free", output
        )
        assert shown is not None and int(shown[1]) < 8, output
        assert f"the disk holding {data} is" not in output
        assert not any(landing.glob(".staging-*"))  # the run's copies went with it
        filler.unlink()
        imported = cli_json(cli, "import", str(FIRST), "--data-dir", str(data))
        assert imported["new_plays"] > 0


def test_a_full_disk_fails_cleanly_and_loses_nothing(
    cli: Cli, built: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = small_disk / "data"
    shutil.copytree(built, data, ignore=shutil.ignore_patterns("serving", "report"))
    cli("publish", "--data-dir", str(data))
    served = sorted(p.name for p in (data / "serving").iterdir())
    plays, facts = _plays(cli, data), query(data, "select count(*) from dw.fact_track_played")
    poll = SPOTIFY_DATA / "api_samples" / "recently-played__spotify-web-api-java.json"
    monkeypatch.setenv("MUSIC_TRACKER_MIN_FREE_MB", "0")  # past the import's own margin

    filler = _fill(small_disk, 0)
    # the import stops at its own check, before its first write (its copy of the file)
    failed = cli("import", str(poll), "--data-dir", str(data), expect=74)
    output = " ".join(failed.output.split())
    assert f"{poll}: not enough free disk space for its copy in {data / 'landing'} (0 MB" in output
    assert "nothing was imported" in output and "Traceback" not in output
    for command in (["transform", "--full-refresh"], ["publish"]):
        failed = cli(*command, "--data-dir", str(data), expect=74)
        assert "No space left on device" in failed.output, failed.output
        assert f"the disk holding {data} is full" in " ".join(failed.output.split())
        assert "Traceback" not in failed.output
    assert sorted(p.name for p in (data / "serving").iterdir()) == served  # nothing half-made

    filler.unlink()  # space again: everything stored before is there, and the runs succeed
    assert _plays(cli, data) == plays
    imported = cli_json(cli, "import", str(poll), "--data-dir", str(data))
    assert imported["rows_read"] == 2
    # a file imported before is known by its checksum with no room for its copy (an
    # export imported again, a poll that brought nothing new): 4 MB free, under the margin
    monkeypatch.setenv("MUSIC_TRACKER_MIN_FREE_MB", "16")
    filler = _fill(small_disk, 4 * 2**20)
    again = cli_json(cli, "import", str(poll), "--data-dir", str(data))
    assert (again["files_already_imported"], again["new_plays"]) == (1, 0)
    other = SPOTIFY_DATA / "api_samples" / "recently-played__zmb3-spotify.json"
    failed = cli("import", str(other), "--data-dir", str(data), expect=74)
    assert "not enough free disk space for its copy in" in " ".join(failed.output.split())
    filler.unlink()
    monkeypatch.setenv("MUSIC_TRACKER_MIN_FREE_MB", "0")
    cli("transform", "--data-dir", str(data))  # dbt's tests pass; a full rebuild (marker)
    ((after,),) = query(data, "select count(*) from dw.fact_track_played")
    assert after == facts[0][0] + imported["new_plays"]
    assert _plays(cli, data)[0] == plays[0] + imported["new_plays"]
    cli("publish", "--data-dir", str(data))


def test_a_full_disk_under_a_report_copy_or_an_export_is_told_in_a_line(
    cli: Cli, built_copy: Path, tmp_path: Path
) -> None:
    """The folder named with --output on a disk that fills up: `report --output` printed
    shutil's list of every file it could not copy (kilobytes of paths) with exit 1, and
    `export` exited 1 (helper-63). Both now exit 74 with one message naming that disk, and
    leave nothing of theirs on it."""
    with _tmpfs(tmp_path / "small", "2m") as small:
        failed = cli(
            "report", "--output", str(small / "site"), "--data-dir", str(built_copy), expect=74
        )
        said = " ".join(failed.output.split())
        assert "cannot copy the report to" in said and "No space left on device" in said, said
        assert "more files)" in said and "[(" not in said and len(said) < 1_000, said
        assert f"the disk holding {small} is full: free some space there" in said, said
        assert f"the disk holding {built_copy}" not in said and "stored play" not in said
        assert failed.output.count("\n") == 1, failed.output  # one line
        assert not (small / "site").exists() and (built_copy / "report" / "index.html").exists()
        failed = cli(
            "export", "--format", "csv", "--output", str(small / "out" / "csv"),
            "--data-dir", str(built_copy), expect=74,
        )  # fmt: skip
        said = " ".join(failed.output.split())
        assert "No space left on device" in said and "free some space on its disk" in said, said
        assert "Traceback" not in said
        assert not (small / "out").exists()  # the folders it made go with its partials
