"""Scheduled builds replayed from dbt's own statements (music_tracker/replay.py): the same
tables as dbt's build and a full refresh, the same failures, and dbt again where the
recorded statements no longer fit the warehouse."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest
from test_transform import _COMPARED, AUDIO_2023, _tables

from conftest import Cli, cli_json, load_rows, query
from music_tracker.replay import KEPT_PLANS, Plan, PlannedNode, load, plans_dir, portable, save
from music_tracker.transform import PROJECT_DIR
from music_tracker.warehouse import catalog_fingerprint


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dbt target folder of the test's own, with no plan in it: the worker's parse cache
    copied (dbt does not parse the whole project again), its plans left behind."""
    shared = Path(os.environ.get("MUSIC_TRACKER_DBT_TARGET_DIR") or PROJECT_DIR / "target")
    own = tmp_path / "target"
    if shared.is_dir():
        shutil.copytree(shared, own, ignore=shutil.ignore_patterns("plans"))
    monkeypatch.setenv("MUSIC_TRACKER_DBT_TARGET_DIR", str(own))
    return own


def _parts(folder: Path, count: int) -> list[Path]:
    """The 2023 export's plays of music cut into ``count`` runs of days, each a folder of
    its own, as successive days would bring them (without rows of 0 ms or podcasts, which
    a day seldom brings: a build after them selects the tables that count them too)."""
    rows = sorted(
        (r for r in load_rows(AUDIO_2023) if r["spotify_track_uri"] and r["ms_played"] > 0),
        key=lambda row: row["ts"],
    )
    size = -(-len(rows) // count)
    parts = []
    for number in range(count):
        part = folder / f"part-{number}"
        part.mkdir()
        name = f"Streaming_History_Audio_2023_{number}.json"
        (part / name).write_text(json.dumps(rows[number * size : (number + 1) * size]))
        parts.append(part)
    return parts


def test_a_scheduled_build_replays_the_last_one(
    cli: Cli, built_2018: Path, built_2018_copy: Path, data_dir: Path, tmp_path: Path, target: Path
) -> None:
    first, middle, last = _parts(tmp_path, 3)
    cli("import", str(first))
    built = cli_json(cli, "transform")
    assert (built["scope"], built["replayed"]) == ("changed data", False)
    (recorded,) = plans_dir(target).glob("*.json")  # dbt's build, recorded
    assert str(data_dir.resolve()) not in recorded.read_text()
    # another data folder built from this checkout, brought the same plays: the plan is
    # kept with dbt's parse cache, not in a data folder, and fits that warehouse too
    other = tmp_path / "other"
    shutil.copytree(built_2018, other, ignore=shutil.ignore_patterns("serving", "report"))
    cli("import", str(first), "--data-dir", str(other))
    elsewhere = cli_json(cli, "transform", "--data-dir", str(other))
    assert (elsewhere["scope"], elsewhere["replayed"]) == ("changed data", True)
    # the same star schema (the intermediate tables keep when each play was imported)
    ours, theirs = _tables(data_dir), _tables(other)
    assert {t: ours[t] for t in ours if t.startswith("dw.")} == {
        t: theirs[t] for t in theirs if t.startswith("dw.")
    }
    cli("import", str(last))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MUSIC_TRACKER_TRANSFORM_REPLAY", "false")
        assert cli_json(cli, "transform")["replayed"] is False
    # late data: plays of months before the newest built ones (days, sessions, first
    # listens and monthly rows already stored around them are recomputed)
    cli("import", str(middle))
    replayed = cli_json(cli, "transform")
    assert (replayed["scope"], replayed["replayed"]) == ("changed data", True)
    assert replayed["succeeded"] == built["succeeded"]  # the same models and tests
    incremental = _tables(data_dir)
    assert len(incremental["dw.fact_track_played"]) == cli_json(cli, "status")["plays"]
    cli("transform", "--full-refresh")
    refreshed = _tables(data_dir)
    for table in _COMPARED:
        assert refreshed[table] == incremental[table], table
    # the replay runs dbt's tests too: a play's row stored again (its key repeated) fails
    # it, named (a play's row: one of 0 ms would select another set of nodes, and dbt)
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute(
            "insert into raw.spotify_extended_history select * replace (now() as imported_at)"
            " from raw.spotify_extended_history where play_id is not null"
            " order by imported_at limit 1"
        )
    output = " ".join(cli("transform", expect=1).output.split())
    assert "dbt build failed" in output
    assert "source_unique_raw_spotify_extended_history_source_key" in output


def test_a_changed_warehouse_goes_to_dbt(
    cli: Cli, built_2018_copy: Path, data_dir: Path, tmp_path: Path, target: Path
) -> None:
    """A plan is replayed only on the tables and columns it was recorded on (dbt reads
    them to decide what SQL to write): a table dropped by hand, or a raw column's type
    changed by an upgrade, sends the build to dbt. A plan whose statement names a table
    that is not there (edited by hand) is dropped and dbt builds everything."""
    first, second, third = _parts(tmp_path, 3)
    cli("import", str(first))
    cli("transform")  # recorded, on the catalog as dbt's builds leave it
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        catalog = catalog_fingerprint(con)
        con.execute("drop table dw.agg_daily_listening")
    cli("import", str(second))
    summary = cli_json(cli, "transform")
    assert (summary["scope"], summary["replayed"]) == ("changed data", False)
    built = _tables(data_dir)
    cli("transform", "--full-refresh")
    refreshed = _tables(data_dir)
    for table in _COMPARED:
        assert refreshed[table] == built[table], table
    # the first plan fits again (the catalog is back); a statement of it, edited, does not
    (plan,) = [
        path
        for path in plans_dir(target).glob("*.json")
        if path.stat().st_mtime == min(p.stat().st_mtime for p in plans_dir(target).iterdir())
    ]
    stored = json.loads(plan.read_text())
    model = next(node for node in stored["nodes"] if node["resource_type"] == "model")
    model["statements"].insert(0, "select count(*) from dw.no_such_table")
    plan.write_text(json.dumps(stored))
    cli("import", str(third))
    result = cli("transform", "--json")
    assert "the recorded build no longer fits" in result.stderr
    assert model["name"] in result.stderr
    summary = json.loads(result.stdout)
    assert (summary["scope"], summary["replayed"]) == ("everything", False)
    assert not plan.exists()
    ((plays,),) = query(data_dir, "select count(*) from dw.fact_track_played")
    assert plays == cli_json(cli, "status")["plays"]
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert catalog_fingerprint(con) == catalog
        con.execute("alter table raw.spotify_extended_history alter ms_played type double")
        assert catalog_fingerprint(con) != catalog


def _plan(sql: str, key: str = "k") -> Plan:
    node = PlannedNode("model.music_tracker.m", "m", "model", "m.sql", [sql])
    return Plan(key=key, fingerprint="f", nodes=[node])


def test_a_plan_naming_its_data_folder_is_not_kept(tmp_path: Path) -> None:
    """Plans are shared by data folders: one whose statement reads a file of the folder it
    was recorded in would read that file on another folder's warehouse. The folder's name
    outside a string is no path read (a folder at /music, and dbt's comments naming
    src/music_tracker)."""
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    assert portable(_plan("select * from dw.fact_track_played"), data)
    assert not portable(_plan(f"select * from read_csv('{data.resolve()}/x.csv')"), data)
    assert not portable(_plan(f'select * from "{data}/x.parquet"'), tmp_path / "link")
    assert portable(_plan(f"/* {data}/warehouse.duckdb */ select 1"), data)
    music = Path("/music")
    assert portable(_plan("/* from src/music_tracker/transform.py */ select 1"), music)


def test_the_plans_least_recently_used_go(tmp_path: Path) -> None:
    """Folders of other settings share the plans (the demo's and the owner's): none is
    dropped for its fingerprint; beyond KEPT_PLANS the least recently used go."""
    for number in range(KEPT_PLANS):
        save(tmp_path, _plan("select 1", key=f"plan-{number:02}"))
        os.utime(plans_dir(tmp_path) / f"plan-{number:02}.json", (1_000 + number,) * 2)
    assert load(tmp_path, "plan-00") is not None  # replayed: the most recently used now
    save(tmp_path, _plan("select 1", key="new"))
    kept = {path.stem for path in plans_dir(tmp_path).glob("*.json")}
    assert len(kept) == KEPT_PLANS
    assert "plan-01" not in kept and {"plan-00", "plan-02", "new"} <= kept


def test_a_build_under_the_callers_dbt_variables_is_not_recorded(
    cli: Cli, built_2018: Path, built_2018_copy: Path, data_dir: Path, tmp_path: Path, target: Path
) -> None:
    """DBT_EMPTY in the caller's environment (dbt builds every model from no rows): the
    build is dbt's, as asked, with a warning, and recorded for no one: a data folder built
    without it afterwards builds every play."""
    (first,) = _parts(tmp_path, 1)
    (data_dir / "dbt" / "plans").mkdir(parents=True)  # where plans were kept before
    (data_dir / "dbt" / "plans" / "old.json").write_text("{}")
    cli("import", str(first))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_EMPTY", "true")
        result = cli("transform", "--json")
    said = " ".join(result.stderr.split())
    assert "DBT_EMPTY set: this build goes to dbt and is not recorded" in said
    assert json.loads(result.stdout)["replayed"] is False
    assert not list(plans_dir(target).glob("*.json"))
    assert not (data_dir / "dbt" / "plans").exists()
    other = tmp_path / "other"
    shutil.copytree(built_2018, other, ignore=shutil.ignore_patterns("serving", "report"))
    cli("import", str(first), "--data-dir", str(other))
    assert cli_json(cli, "transform", "--data-dir", str(other))["replayed"] is False
    ((plays,),) = query(other, "select count(*) from dw.fact_track_played")
    assert plays == cli_json(cli, "status", "--data-dir", str(other))["plays"] > 1_750


def test_a_build_that_cannot_be_recorded_still_passes(
    cli: Cli, built_2018_copy: Path, tmp_path: Path, target: Path
) -> None:
    """The plans' folder cannot be made (a file in its place): the build passed, so the
    command does too, with a warning, and the next build goes to dbt again."""
    (first,) = _parts(tmp_path, 1)
    (target / "plans").parent.mkdir(parents=True, exist_ok=True)
    (target / "plans").write_text("not a folder")
    cli("import", str(first))
    result = cli("transform", "--json")
    assert "could not be recorded for replay" in result.stderr
    assert json.loads(result.stdout)["replayed"] is False
    assert cli_json(cli, "transform")["replayed"] is False
