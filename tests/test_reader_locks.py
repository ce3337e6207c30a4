"""Readers and writers of the warehouse taking turns (lock.warehouse_lock), and a damaged
warehouse file told in one line: real processes, real DuckDB and dbt."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pytest

from conftest import ACCOUNT_DIR
from music_tracker import warehouse
from music_tracker.lock import EXIT_DAMAGED, warehouse_lock
from music_tracker.transform import UNFINISHED_MARK

CLI = str(Path(sys.executable).with_name("music-tracker"))


def _env(**extra: str) -> dict[str, str]:
    keep = {"MUSIC_TRACKER_DBT_TARGET_DIR", "MUSIC_TRACKER_CALENDAR_LAST_DAY"}
    base = {k: v for k, v in os.environ.items() if not k.startswith("MUSIC_TRACKER_") or k in keep}
    return {**base, "COLUMNS": "200", **extra}


def _run(data_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args, "--data-dir", str(data_dir)],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


@contextmanager
def _transform_begun(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    """A ``transform --full-refresh`` started, yielded once it has begun its build: its
    first connection closed and dbt not yet started (the unfinished mark is written in
    between, by the old code and the new alike). The moment a reader used to slip in."""
    mark = data_dir / UNFINISHED_MARK
    build = subprocess.Popen(
        [CLI, "transform", "--full-refresh", "--data-dir", str(data_dir)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not mark.exists():
            assert build.poll() is None, build.communicate()
            assert time.monotonic() < deadline, "the transform never began its build"
            time.sleep(0.005)
        yield build
    finally:
        if build.poll() is None:
            build.wait(timeout=300)


def _transforms_recorded(data_dir: Path) -> int:
    with warehouse.connect(data_dir / "warehouse.duckdb", read_only=True) as con:
        (count,) = con.execute("select count(*) from raw.transform_runs").fetchone()  # type: ignore[misc]
    return int(count)


def test_a_reader_opening_the_warehouse_as_a_transform_begins_waits_for_it(
    built_2018_copy: Path,
) -> None:
    """The reviewer's race: a read-only open (what `report`, `status` and `export` do)
    between the transform's own connection and dbt's made dbt's open fail at once, the
    build with it (227 lines of tracebacks, exit 1). The reader now waits for the build,
    which passes; the reader then sees the build recorded."""
    data_dir = built_2018_copy
    path = data_dir / "warehouse.duckdb"
    before = _transforms_recorded(data_dir)
    with _transform_begun(data_dir) as build:
        with warehouse.connect(path, read_only=True, file_wait_s=120) as con:
            # held until the build ended, whichever way: dbt opened (or tried to) meanwhile
            while build.poll() is None:
                time.sleep(0.05)
            (seen,) = con.execute("select count(*) from raw.transform_runs").fetchone()  # type: ignore[misc]
        _out, err = build.communicate()
    assert build.returncode == 0, err
    assert "Could not set lock" not in err and "Traceback" not in err, err
    assert seen == before + 1  # the reader had its turn after the build, not inside it
    assert not (data_dir / UNFINISHED_MARK).exists()


def test_report_and_status_during_a_transform_wait_then_say_busy_in_one_line(
    built_2018_copy: Path,
) -> None:
    """`report` started as a transform begins waits MUSIC_TRACKER_LOCK_WAIT_S, then says
    in one line which command writes (exit 75); `status` shows what it last read, with a
    warning; the transform is not disturbed."""
    data_dir = built_2018_copy
    assert _run(data_dir, "status").returncode == 0  # what status shows while it waits
    with _transform_begun(data_dir) as build:
        report = _run(data_dir, "report", MUSIC_TRACKER_LOCK_WAIT_S="0.3")
        status = _run(data_dir, "status", "--json", MUSIC_TRACKER_LOCK_WAIT_S="0.3")
        _out, err = build.communicate()
    assert build.returncode == 0, err
    assert report.returncode == 75, (report.stdout, report.stderr)
    assert report.stderr.count("\n") == 1, report.stderr
    assert f"`transform` (process {build.pid}" in report.stderr
    assert "waited 0 s" in report.stderr and "music-tracker report` again" in report.stderr
    assert status.returncode == 0, status.stderr
    assert f"`transform` (process {build.pid}" in status.stdout
    # a build running now, not one that "did not finish (stopped or failed)" (helper-69)
    shown = json.loads(status.stdout)
    assert shown["star_schema_stale"] == "being built now", shown
    assert not [w for w in shown["warnings"] if "did not finish" in w], shown["warnings"]
    # once it has finished, both read
    assert _run(data_dir, "report").returncode == 0


def test_the_warehouse_lock_nests_within_a_process_and_excludes_across(tmp_path: Path) -> None:
    """A reader inside this process's writer's turn goes on at once; another process's
    reader waits for the writer, then says who writes."""
    path = tmp_path / "warehouse.duckdb"
    probe = (
        "import sys; from pathlib import Path; from music_tracker import warehouse\n"
        "try:\n"
        "    with warehouse.turn(Path(sys.argv[1]), read_only=True, wait_s=0.2): print('read')\n"
        "except warehouse.WarehouseBusy as exc: print(exc)\n"
    )

    def other_reader() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True
        )
        return done.stdout

    with (
        warehouse_lock(path, exclusive=True, wait_s=0, what="test writer"),
        warehouse_lock(path, exclusive=False, wait_s=0),
        warehouse_lock(path, exclusive=True, wait_s=0),
    ):
        assert f"`test writer` (process {os.getpid()}" in other_reader()
    assert other_reader() == "read\n"
    with warehouse_lock(path, exclusive=False, wait_s=0):
        assert other_reader() == "read\n"  # readers side by side


def test_a_program_holding_the_warehouse_is_named_as_such_by_report(built_2018_copy: Path) -> None:
    """A DuckDB shell holding the file: `report` says another program has it (not "another
    music-tracker command"), in one line, exit 75."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; con = duckdb.connect(sys.argv[1]);"
            " print('open', flush=True); sys.stdin.readline()",
            str(built_2018_copy / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        result = _run(built_2018_copy, "report", MUSIC_TRACKER_LOCK_WAIT_S="0.3")
    finally:
        holder.communicate("\n", timeout=30)
    assert result.returncode == 75, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "open in another program" in result.stderr and f"(PID {holder.pid})" in result.stderr
    assert "music-tracker command" not in result.stderr


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        os.truncate(path, 2**20)
    elif how == "a table dropped":  # by hand, outside music-tracker (helper-75)
        with duckdb.connect(str(path)) as con:
            con.execute("drop table raw.listenbrainz_listens")
    else:
        path.write_bytes(b"not a database, only words that fill a file " * 50_000)


def _listing(folder: Path) -> dict[str, str]:
    """Every file under the folder and its hash, our lock files left out."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.name.endswith(".lock")
    }


@pytest.mark.parametrize("how", ["truncated", "garbage", "a table dropped"])
def test_a_damaged_warehouse_is_one_line_exit_65_and_nothing_written(
    built_2018_copy: Path, tmp_path: Path, how: str
) -> None:
    """Every command that opens the warehouse says in one line that the file is damaged,
    names it and points to `restore`, exits 65 (EX_DATAERR), and writes nothing. A raw
    table missing gave DuckDB's catalog error and a traceback, and `backup` copied the
    file, pushing a good backup out of those kept."""
    data_dir = built_2018_copy
    path = data_dir / "warehouse.duckdb"
    _damage(path, how)
    before = _listing(tmp_path)
    commands = [
        ["status"],
        ["import", str(ACCOUNT_DIR)],
        ["transform"],
        ["rematch"],
        ["export", "--format", "csv", "--output", str(tmp_path / "exported")],
        ["report"],
        ["publish"],
        ["backup"],
    ]
    if how == "a table dropped":  # publish copies the built tables only, which are whole
        commands.remove(["publish"])
    for command in commands:
        result = _run(data_dir, *command)
        assert result.returncode == EXIT_DAMAGED, (command, result.stderr)
        assert result.stderr.count("\n") == 1, (command, result.stderr)
        assert result.stderr.startswith(
            f"error: {path} has no table raw.listenbrainz_listens: it was changed outside"
            if how == "a table dropped"
            else f"error: {path} is damaged or not a DuckDB database"
        )
        assert "music-tracker restore backups/<time> --replace" in result.stderr
    assert _listing(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no backups/, no export


def test_restore_mends_a_damaged_warehouse_as_the_message_says(
    built_2018_copy: Path,
) -> None:
    """The message's way out works: `restore <backup> --replace` over the damaged file."""
    data_dir = built_2018_copy
    made = _run(data_dir, "backup", "--json")
    assert made.returncode == 0, made.stderr
    _damage(data_dir / "warehouse.duckdb", "truncated")
    assert _run(data_dir, "status").returncode == EXIT_DAMAGED
    backup = data_dir.parent / "backups"
    (latest,) = [p for p in backup.iterdir() if p.name != "landing" and p.name[0] != "."]
    restored = _run(data_dir, "restore", str(latest), "--replace")
    assert restored.returncode == 0, restored.stderr
    assert _run(data_dir, "status").returncode == 0
