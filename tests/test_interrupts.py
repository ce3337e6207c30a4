"""Ctrl+C (SIGINT) at any moment: one line saying what state things are in, exit code 130,
and things in that state afterwards. Real commands in their own processes, interrupted at
moments their own files (or the fake service's log) mark.

(SIGKILL at such moments: tests/test_faults.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from conftest import EXTENDED_DIR, Cli, cli_json, query
from music_tracker.fakes.musicbrainz import FakeMusicBrainz
from music_tracker.lock import report_lock, writer_lock

CLI = str(Path(sys.executable).with_name("music-tracker"))
FIRST = EXTENDED_DIR / "Streaming_History_Audio_2018.json"


def _interrupted(
    args: list[str], data: Path, ready: Callable[[int], bool], *, after_s: float = 0.0, **env: str
) -> tuple[int, str, str]:
    """Start ``music-tracker ARGS``, send SIGINT ``after_s`` after ``ready(pid)`` holds,
    and return its exit code, stdout and stderr; fail if it finishes first."""
    keep = {"MUSIC_TRACKER_DBT_TARGET_DIR", "MUSIC_TRACKER_CALENDAR_LAST_DAY"}
    base = {k: v for k, v in os.environ.items() if not k.startswith("MUSIC_TRACKER_") or k in keep}
    proc = subprocess.Popen(
        [CLI, *args],
        env={**base, "MUSIC_TRACKER_DATA_DIR": str(data), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and not ready(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(after_s)
    if proc.poll() is not None:
        pytest.fail(f"`{' '.join(args)}` finished before it could be interrupted: {ready}")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def _loading(pid: int) -> bool:
    """The command is loading its libraries (pydantic's, the first of them)."""
    try:
        return "_pydantic_core" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _large_export(folder: Path, copies: int = 9) -> Path:
    """The real extended history, repeated ``copies`` times 400 days earlier (about 50,000
    rows in three files): an import long enough to interrupt at each of its steps."""
    rows = [
        row
        for path in sorted(EXTENDED_DIR.glob("Streaming_History_Audio_*.json"))
        for row in json.loads(path.read_text())
    ]
    folder.mkdir()
    for part in range(3):
        shifted = []
        for copy in range(part * copies // 3, (part + 1) * copies // 3):
            for row in rows:
                ts = datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%SZ")
                ts -= timedelta(days=400 * (copy + 1))  # no play in the future
                shifted.append({**row, "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ")})
        (folder / f"Streaming_History_Audio_{part}.json").write_text(json.dumps(shifted))
    return folder


IMPORT_LINE = "interrupted: nothing was imported; the warehouse is as it was\n"


def test_an_import_interrupted_at_any_step(cli: Cli, shared: Path, tmp_path: Path) -> None:
    export = _large_export(tmp_path / "export")
    data = tmp_path / "data"
    cli("import", str(FIRST), "--data-dir", str(data))
    before = cli_json(cli, "status", "--data-dir", str(data))
    args = ["import", str(export), "--json"]

    def glob(pattern: str, count: int = 1) -> Callable[[int], bool]:
        return lambda _pid: len(list(data.glob(pattern))) >= count

    staged = "landing/.staging-*/spotify_extended_history/*"  # a file's plays, read
    moments = {  # each marked by what the import writes as it goes (0.15-0.5 s apart here)
        "loading its libraries": _loading,
        "reading the second and third files": glob(staged, 1),
        "matching plays": glob(staged, 3),
        # the files are landed (their private copies moved) as the transaction begins
        "storing, in its transaction": glob("landing/spotify_extended_history/*/*", 4),
    }
    pristine = tmp_path / "pristine"
    shutil.copytree(data, pristine)
    for moment, ready in moments.items():
        for _attempt in range(3):
            code, out, err = _interrupted(args, data, ready)
            if code != 0 or moment != "storing, in its transaction":
                break
            # the signal came once the commit had begun (on a loaded machine: the window is
            # the storing of 47,000 plays, the landing before it takes no time): what it
            # says it stored is stored, as below; the warehouse as it was, and again
            assert json.loads(out)["files_imported"] == 3, moment
            shutil.rmtree(data)
            shutil.copytree(pristine, data)
        assert (code, out, err) == (130, "", IMPORT_LINE), moment
        after = cli_json(cli, "status", "--data-dir", str(data))
        assert (after["plays"], after["plays_per_source"]) == (
            before["plays"],
            before["plays_per_source"],
        ), moment
        assert after["last_import_at"] == before["last_import_at"], moment
    # once it commits (DuckDB writes its log then) it is stored: Ctrl+C lets it finish and
    # say what it stored, everything, once
    code, out, err = _interrupted(args, data, glob("warehouse.duckdb.wal"))
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["files_imported"] == 3 and summary["new_plays"] > 40_000
    assert cli_json(cli, "status", "--data-dir", str(data))["plays"] == (
        before["plays"] + summary["new_plays"]
    )
    assert not list((data / "landing").glob(".staging-*"))


def test_transform_interrupted(cli: Cli, built_copy: Path) -> None:
    data = built_copy
    plays = cli_json(cli, "status", "--data-dir", str(data))["plays"]
    # while dbt writes (the write-ahead log appears when it starts)
    code, out, err = _interrupted(
        ["transform", "--full-refresh"], data, lambda _: (data / "warehouse.duckdb.wal").exists(),
        after_s=1.0,
    )  # fmt: skip
    assert (code, out) == (130, "")
    assert err == (
        "interrupted: no play was changed; the star schema may be half built until"
        " `music-tracker transform` runs again\n"
    )
    status = cli_json(cli, "status", "--data-dir", str(data))
    assert status["plays"] == plays
    assert any("did not finish" in warning for warning in status["warnings"])


def test_publish_and_backup_interrupted(cli: Cli, built_copy: Path) -> None:
    data = built_copy
    serving = data / "serving"
    # while the copy is written (under its hidden name)
    code, out, err = _interrupted(["publish"], data, lambda _: any(serving.glob(".dw-*.partial")))
    assert (code, out) == (130, "")
    assert err == "interrupted: nothing was published; the serving copies are as they were\n"
    assert not list(serving.iterdir())  # no copy, and no half of one
    cli("publish", "--data-dir", str(data))
    # the copy and its side file
    assert [p.suffix for p in sorted(serving.iterdir())] == [".duckdb", ".json"]

    backups = data.parent / "backups"
    # while it waits for another writer (its folder is begun)
    with writer_lock(data, "a test", wait_s=0):
        code, out, err = _interrupted(
            ["backup"], data, lambda _: any(backups.glob(".*.partial")), after_s=0.3
        )
    assert (code, out) == (130, "")
    assert err == "interrupted: no backup was made; earlier backups are as they were\n"
    # a first backup interrupted leaves no folder; a later one, none in it
    assert not backups.is_dir() or not [
        p.name for p in backups.iterdir() if p.name not in {"landing", ".backup.lock"}
    ]
    made = cli_json(cli, "backup", "--data-dir", str(data))
    assert Path(made["path"]).parent == backups


def test_report_interrupted_keeps_the_last_one(real_report: Path, tmp_path: Path) -> None:
    """A report is written beside the last one and swapped in whole: Ctrl+C while it waits
    for another report or while it writes leaves the last one, and no half of the new."""
    data = tmp_path / "data"
    shutil.copytree(real_report, data)
    folder, partial = data / "report", data / ".report.partial"

    def files() -> dict[str, int]:
        return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}

    last = files()
    line = (
        "interrupted: the report (and its --output copy) is the last one written in full;"
        " `music-tracker report` writes a new one\n"
    )
    # while it waits for another report (started, then given time to reach the lock)
    with report_lock(data, "a test", wait_s=0):
        code, out, err = _interrupted(["report"], data, _loading, after_s=2.0)
    assert (code, out, err) == (130, "", line)
    assert not partial.exists() and files() == last
    # while it writes the new one. A busy machine can hold this test back for the second
    # or two the writing takes, and a report the signal reaches only after its swap has
    # done what it was asked, whole (exit 0, its line on stdout): it is run again
    for _ in range(3):
        last = files()
        code, out, err = _interrupted(["report"], data, lambda _: partial.is_dir())
        if code != 0 or not out.startswith("wrote "):
            break
    assert (code, out, err) == (130, "", line)
    assert not partial.exists() and files() == last


def test_enrich_interrupted_keeps_its_lookups(
    cli: Cli, built_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = built_copy
    with FakeMusicBrainz([], min_interval_s=0.01) as fake:  # every artist a miss
        env = {
            "MUSIC_TRACKER_CONTACT": "owner@example.org",
            "MUSIC_TRACKER_MUSICBRAINZ_BASE": fake.base_url,
            "MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S": "0.04",
        }
        # after a few artists were looked up and stored
        code, out, err = _interrupted(["enrich"], data, lambda _: len(fake.log) >= 15, **env)
        assert (code, out) == (130, "")
        assert err == (
            "interrupted: the lookups stored so far are kept; `music-tracker enrich` goes on"
            " with the rest\n"
        )
        ((stored, distinct),) = query(
            data, "select count(*), count(distinct lookup_key) from raw.musicbrainz_artists"
        )
        assert stored == distinct >= 1
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        again = cli_json(cli, "enrich", "--limit", "2", "--data-dir", str(data))
    assert again["looked_up"] == 2
    ((stored_after, distinct_after),) = query(
        data, "select count(*), count(distinct lookup_key) from raw.musicbrainz_artists"
    )
    assert stored_after == distinct_after == stored + 2


# the end of the scripts below: the large export imported in parts, Ctrl+C told as the
# command line tells it
_LARGE_IMPORT = """
interrupts.install("interrupted")
try:
    run_import(
        Settings(data_dir=Path(sys.argv[1])), [Path(sys.argv[2])], ImportOptions(part_rows=5_000)
    )
except KeyboardInterrupt:
    interrupts.report()
print("finished")
"""

_INTERRUPTED_BESIDE = (
    """
import os, signal, sys, threading
from pathlib import Path
from music_tracker import dedupe, interrupts
from music_tracker.importers import parts
from music_tracker.importers.run import ImportOptions, run_import
from music_tracker.settings import Settings

inserting, matched = threading.Event(), []
insert, regroup = parts._insert, dedupe.regroup

def noted_insert(*args):
    if threading.current_thread() is not threading.main_thread():
        inserting.set()
    insert(*args)

def regroup_then_ctrl_c(*args, **kwargs):
    matched.append(1)
    if len(matched) == 3:  # part 3's matching, with part 2's insert beside it
        assert inserting.wait(30)
        os.kill(os.getpid(), signal.SIGINT)
    return regroup(*args, **kwargs)

parts._insert, dedupe.regroup = noted_insert, regroup_then_ctrl_c
"""
    + _LARGE_IMPORT
)


def test_an_import_interrupted_while_a_part_is_stored_beside_the_next(
    cli: Cli, shared: Path, tmp_path: Path
) -> None:
    """A large import stores each part on a thread of its own while the next part is
    matched (importers/parts.py). Ctrl+C during that matching interrupts the insert and
    waits for it before the transaction is rolled back: the command ends with its line,
    and the warehouse is as it was."""
    done = _import_interrupted(cli, tmp_path, _INTERRUPTED_BESIDE)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


_INTERRUPTED_WAITING = (
    """
import os, signal, sys, time
from contextlib import contextmanager
from pathlib import Path
from music_tracker import interrupts, warehouse
from music_tracker.importers import parts
from music_tracker.importers.run import ImportOptions, run_import
from music_tracker.settings import Settings

insert, transaction = parts._insert, warehouse.transaction

def slow_last_insert(staging, rows, now, part, *args):
    if part == staging.parts - 1:
        # the import has nothing left but to wait for it
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)
    try:
        insert(staging, rows, now, part, *args)
    finally:
        if part == staging.parts - 1:
            print("insert ended", file=sys.stderr, flush=True)

@contextmanager
def noted_transaction(con):
    try:
        with transaction(con):
            yield
    except BaseException:
        print("rolled back", file=sys.stderr, flush=True)
        raise

parts._insert = slow_last_insert
warehouse.transaction = noted_transaction
"""
    + _LARGE_IMPORT
)


def test_an_import_interrupted_twice_while_it_waits_for_an_insert(
    cli: Cli, shared: Path, tmp_path: Path
) -> None:
    """Ctrl+C while the import waits for its last part's insert, and again while that
    insert still runs: the insert is waited for before the transaction is rolled back (the
    second Ctrl+C holds until it returns), so nothing of it lands after the rollback (a
    statement of it run after would be a transaction of its own). helper-74 found the
    insert waited for taken off the queue first, so that it was not waited for: a second
    Ctrl+C rolled back beside it, and its moves of stored rows were committed."""
    done = _import_interrupted(cli, tmp_path, _INTERRUPTED_WAITING)
    assert (done.returncode, done.stdout) == (130, "")
    assert done.stderr == "insert ended\nrolled back\ninterrupted\n"


def _import_interrupted(cli: Cli, tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """``script`` (which ends in ``_LARGE_IMPORT``) run on the large export, imported onto
    a warehouse holding the 2018 export; what it did, once checked that the warehouse is
    as it was and no staging folder is left."""
    export = _large_export(tmp_path / "export")
    data = tmp_path / "data"
    cli("import", str(FIRST), "--data-dir", str(data))
    before = cli_json(cli, "status", "--data-dir", str(data))
    done = subprocess.run(
        [sys.executable, "-c", script, str(data), str(export)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    after = cli_json(cli, "status", "--data-dir", str(data))
    assert (after["plays"], after["last_import_at"]) == (before["plays"], before["last_import_at"])
    assert not list((data / "landing").glob(".staging-*"))
    return done
