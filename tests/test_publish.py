"""`music-tracker publish`: the serving copy Metabase reads, on the real exports' build."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from conftest import SHARED, Cli, cli_json
from music_tracker.metabase import (
    DRIVER_DUCKDB_VERSION,
    DUCKDB_DRIVER_VERSION,
    SERVING_STORAGE_VERSION,
)
from music_tracker.metabase.handoff import current_copy, serving_copies
from music_tracker.publish import HOLDS, PARTIAL, remove_old_copies
from music_tracker.reporting.definitions import bind, load_dashboards
from music_tracker.warehouse import start_serving_build

CLI = str(Path(sys.executable).with_name("music-tracker"))


@pytest.fixture
def data_dir(built_copy: Path) -> Path:
    return built_copy


def _tables(path: Path, schema: str | None = None) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute(
            "select schema_name, table_name from duckdb_tables()"
            + (f" where schema_name = '{schema}'" if schema else "")
        ).fetchall()
        return {
            f"{s}.{t}": con.execute(f'select count(*) from {s}."{t}"').fetchone()[0]  # type: ignore[index]
            for s, t in names
        }


def test_publish_copies_the_star_schema_and_nothing_else(cli: Cli, data_dir: Path) -> None:
    previous = os.umask(0o077)  # the strictest: Metabase's user still reads the copy
    try:
        result = cli_json(cli, "publish")
    finally:
        os.umask(previous)
    copy = Path(result["path"])
    assert copy.parent == data_dir / "serving" and copy.name.startswith("dw-")
    assert oct(copy.parent.stat().st_mode & 0o777) == "0o755"  # its folder, mounted alone
    assert result["metabase"].startswith("not configured")
    published = _tables(copy)
    assert published == _tables(data_dir / "warehouse.duckdb", "dw")  # every dw table, equal
    assert all(name.startswith("dw.") for name in published)  # no raw plays, no IPs
    assert result["tables"] == len(published) and result["rows"] == sum(published.values())
    assert oct(copy.stat().st_mode & 0o777) == "0o644"  # Metabase's user reads it
    assert not list((data_dir / "serving").glob(f".*{PARTIAL}"))
    with duckdb.connect(str(copy), read_only=True) as con:
        (tags,) = con.execute(
            "select tags from duckdb_databases() where database_name = current_database()"
        ).fetchone()  # type: ignore[misc]
        assert tags["storage_version"].startswith(SERVING_STORAGE_VERSION)
        # a masked artist's name is hidden and its ids are gone (the model's rule, checked)
        leaks = con.execute(
            "select count(*) from dw.dim_artist where is_masked and artist_id is not null"
        ).fetchone()
        assert leaks == (0,)
    # a second publish is a new version; the first stays until its grace period is over
    second = cli_json(cli, "publish")
    assert Path(second["path"]) > copy and copy.exists()
    assert current_copy(data_dir / "serving") == Path(second["path"])


def test_a_copy_starts_from_the_last_one_unless_it_cannot(cli: Cli, data_dir: Path) -> None:
    """A copy is the last one with what the builds since changed written into it; it is
    written whole when it cannot know what changed or cannot trust the last copy: the
    first copy, a restored warehouse whose builds the last copy's side file does not
    match, a lost side file, a damaged copy, --full."""
    dw = _tables(data_dir / "warehouse.duckdb", "dw")
    first = cli_json(cli, "publish")
    assert (first["since"], first["why_whole"]) == (None, "the first copy")
    assert Path(f"{first['path']}.json").is_file()
    second = cli_json(cli, "publish")  # no build since: nothing to write
    assert (second["since"], second["written"]) == (Path(first["path"]).name, [])
    assert _tables(Path(second["path"])) == dw
    backup = cli_json(cli, "backup")["path"]
    cli("transform")  # a build that changes nothing: journalled, nothing to write
    third = cli_json(cli, "publish")
    assert third["since"] == Path(second["path"]).name and _tables(Path(third["path"])) == dw
    # the backup comes back; its next build has the id the last copy holds, not its token
    cli("restore", backup, "--replace")
    cli("transform")
    fourth = cli_json(cli, "publish")
    assert fourth["since"] is None and "does not know" in fourth["why_whole"]
    assert _tables(Path(fourth["path"])) == dw
    Path(f"{fourth['path']}.json").unlink()
    fifth = cli_json(cli, "publish")
    assert fifth["since"] is None and "side file" in fifth["why_whole"]
    # a copy damaged since: cut short, or its blocks past the header overwritten
    last = Path(fifth["path"])
    with last.open("r+b") as file:
        file.truncate(last.stat().st_size // 2)
    cut = cli_json(cli, "publish")
    assert cut["since"] is None and "changed since it was written" in cut["why_whole"]
    assert _tables(Path(cut["path"])) == dw
    last = Path(cut["path"])
    with last.open("r+b") as file:
        file.seek(3 * 4096)
        file.write(bytes(last.stat().st_size - 3 * 4096))
    cli("transform")
    damaged = cli_json(cli, "publish")
    assert damaged["since"] is None and "could not be read" in damaged["why_whole"]
    assert _tables(Path(damaged["path"])) == dw
    sixth = cli_json(cli, "publish", "--full")
    assert (sixth["since"], sixth["why_whole"]) == (None, "asked for (--full)")
    assert _tables(Path(sixth["path"])) == dw


def _driver_python(tmp_path: Path) -> str:
    """A Python whose DuckDB is the one the pinned Metabase driver embeds: this one while
    the project pins the same version, else a virtual environment made for the test."""
    if duckdb.__version__ == DRIVER_DUCKDB_VERSION:
        return sys.executable
    venv = tmp_path / "driver-duckdb"
    subprocess.run(["uv", "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        ["uv", "pip", "install", "-q", "-p", python, f"duckdb=={DRIVER_DUCKDB_VERSION}"],
        check=True,
    )
    return python


def test_the_metabase_drivers_duckdb_reads_the_copy_and_runs_every_card(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    # the pin is the driver release's own DuckDB, as the driver's release history records
    with (SHARED / "specs" / "metabase" / "driver-versions.csv").open() as f:
        embedded = {row["driver_tag"]: row["duckdb_jdbc_version"] for row in csv.DictReader(f)}
    assert embedded[DUCKDB_DRIVER_VERSION].startswith(DRIVER_DUCKDB_VERSION)
    copy = Path(cli_json(cli, "publish")["path"])
    queries = []
    for dashboard in load_dashboards():
        for card in dashboard.cards:
            # all time, and the optional clauses kept (a ranked card's by time listened)
            for values in ({}, {"year": 2024, "rank_by": "time listened"}):
                sql, params = bind(card.sql, values)
                queries.append({"card": f"{dashboard.slug}/{card.name}", "sql": sql, "p": params})
    script = """
import json, sys, duckdb
copy, queries = sys.argv[1], json.load(sys.stdin)
con = duckdb.connect(copy, read_only=True)
(tags,) = con.execute(
    "select tags from duckdb_databases() where database_name = current_database()"
).fetchone()
ran = {}
for q in queries:
    ran[q["card"]] = len(con.execute(q["sql"], q["p"]).fetchall())
print(json.dumps({"version": duckdb.__version__, "storage": tags["storage_version"], "ran": ran}))
"""
    done = subprocess.run(
        [_driver_python(tmp_path), "-c", script, str(copy)],
        input=json.dumps(queries),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["version"].lstrip("v") == DRIVER_DUCKDB_VERSION
    assert answer["storage"].startswith(SERVING_STORAGE_VERSION)
    assert len(answer["ran"]) == sum(len(d.cards) for d in load_dashboards())
    assert answer["ran"]["overview/plays"] == 1


def test_a_refused_copy_leaves_the_previous_one_serving(cli: Cli, data_dir: Path) -> None:
    first = Path(cli_json(cli, "publish")["path"])
    # a masked artist whose id reached dw (what the model forbids) must never go public:
    # written as a build writes it, journalled for the next copy
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        (artist_sid,) = con.execute("select min(artist_sid) from dw.dim_artist").fetchone()  # type: ignore[misc]
        con.execute(
            "update dw.dim_artist set is_masked = true, artist_id = 'leak' where artist_sid = ?",
            [artist_sid],
        )
        build_id = start_serving_build(con)
        con.execute(
            "insert into raw.serving_journal values (?, 'dim_artist', 'artist_sid', ?)",
            [build_id, artist_sid],
        )
    for full in ([], ["--full"]):
        result = cli("publish", *full, expect=1)
        assert "masked artists still carry" in result.output
        assert "nothing was published" in result.output
    assert serving_copies(data_dir / "serving") == [first]
    assert not list((data_dir / "serving").glob(f".*{PARTIAL}"))


def test_a_killed_publish_leaves_the_previous_copy_serving(cli: Cli, data_dir: Path) -> None:
    first = Path(cli_json(cli, "publish")["path"])
    serving = data_dir / "serving"
    env = {**os.environ, "MUSIC_TRACKER_DATA_DIR": str(data_dir)}
    for _ in range(5):  # the copy takes about half a second: kill it while it is written
        proc = subprocess.Popen([CLI, "publish"], env=env, stdout=subprocess.DEVNULL)
        while proc.poll() is None and not list(serving.glob(f".*{PARTIAL}")):
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            break
        for extra in serving_copies(serving)[1:]:  # it finished first: try again
            extra.unlink()
    else:
        pytest.fail("publish never ran long enough to be killed")
    assert serving_copies(serving) == [first]  # nothing half-written became visible
    assert list(serving.glob(f".*{PARTIAL}"))  # the leftover ...
    assert remove_old_copies(serving, in_use=set(), grace_s=0)  # ... is cleaned up later
    assert serving_copies(serving) == [first]


def test_old_copies_go_after_the_grace_period_unless_metabase_reads_them(tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    serving.mkdir()
    names = [f"dw-20260101T00000{n}000000Z.duckdb" for n in range(4)]
    now = time.time()
    for n, name in enumerate(names):  # written an hour apart, the newest just now
        (serving / name).write_bytes(b"x")
        os.utime(serving / name, (now - 3600 * (3 - n), now - 3600 * (3 - n)))
    (serving / f"{names[0]}.tmp").mkdir()  # the driver's temp folder for that file
    (serving / f"{names[0]}.tmp" / "spill.bin").write_bytes(b"x")
    for n in (0, 1):  # side files: what each copy holds (publish.HOLDS)
        (serving / f"{names[n]}{HOLDS}").write_text("{}")
    # the side file of a copy a killed publish never renamed, from an hour ago
    orphan = serving / f"dw-20251231T000000000000Z.duckdb{HOLDS}"
    orphan.write_text("{}")
    os.utime(orphan, (now - 3600, now - 3600))
    # Metabase unreachable: nobody knows what it reads, nothing is deleted
    assert remove_old_copies(serving, in_use=None, grace_s=0, now=now) == []
    # names[0] and [1] were replaced more than 30 min ago; Metabase still reads [1];
    # [2] was replaced just now (grace); [3] is the newest
    removed = remove_old_copies(serving, in_use={names[1]}, grace_s=1800, now=now)
    assert removed == [names[0], orphan.name]
    assert sorted(p.name for p in serving.iterdir()) == sorted([*names[1:], f"{names[1]}{HOLDS}"])


def test_publish_while_another_process_writes_says_so(cli: Cli, data_dir: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True);"
            " time.sleep(60)",
            str(data_dir / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ok"
        result = cli("publish", expect=1)
    finally:
        holder.kill()
        holder.wait()
    assert "another program has it open, not a music-tracker command" in result.output
    assert serving_copies(data_dir / "serving") == []
