"""`music-tracker backup` and `restore` on the real exports' warehouse."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from conftest import Cli, cli_json
from music_tracker.backup import MANIFEST, backups


@pytest.fixture
def data_dir(built_copy: Path) -> Path:
    target = built_copy
    (target / "state").mkdir(exist_ok=True)
    (target / "state" / "cursor.json").write_text('{"after_ms": 1}')
    return target


def _contents(warehouse: Path) -> dict[str, tuple[int, str]]:
    """Every table: (rows, a checksum of its rows in a fixed order)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() order by all"
        ).fetchall()
        found = {}
        for schema, table in tables:
            rows, digest = con.execute(
                f"select count(*), md5(string_agg(md5(t::varchar), '' order by md5(t::varchar)))"
                f' from {schema}."{table}" as t'
            ).fetchone()  # type: ignore[misc]
            found[f"{schema}.{table}"] = (rows, digest)
        return found


def test_a_restored_warehouse_equals_the_original(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    result = cli_json(cli, "backup")
    copy = Path(result["path"])
    assert copy.parent == data_dir.parent / "backups" and (copy / MANIFEST).is_file()
    assert result["landing_files_new"] > 0
    restored = tmp_path / "restored"
    cli("restore", str(copy), "--data-dir", str(restored))
    original = _contents(data_dir / "warehouse.duckdb")
    assert _contents(restored / "warehouse.duckdb") == original
    assert len(original) > 20 and original["raw.spotify_extended_history"][0] > 1000
    assert (restored / "state" / "cursor.json").read_text() == '{"after_ms": 1}'
    landed = sorted(p.relative_to(data_dir) for p in (data_dir / "landing").rglob("*"))
    assert sorted(p.relative_to(restored) for p in (restored / "landing").rglob("*")) == landed
    # the restored folder works: the star schema builds from it
    cli("transform", "--data-dir", str(restored))


def test_restore_checks_before_it_touches_anything(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    copy = Path(cli_json(cli, "backup")["path"])
    # into a folder that holds a warehouse: refused without --replace
    refused = cli("restore", str(copy), expect=1)
    assert "--replace" in refused.output
    # a damaged backup: refused, and the target is untouched
    damaged = copy / "warehouse.duckdb"
    data = bytearray(damaged.read_bytes())
    data[5000] ^= 0xFF
    damaged.write_bytes(bytes(data))
    target = tmp_path / "elsewhere"
    result = cli("restore", str(copy), "--data-dir", str(target), expect=1)
    assert "missing or damaged (warehouse.duckdb)" in result.output
    assert "use an older backup" in result.output and not target.exists()
    assert "not a complete backup" in cli("restore", str(tmp_path), expect=1).output


def test_old_backups_are_pruned_and_landing_files_stored_once(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MUSIC_TRACKER_BACKUP_KEEP", "2")
    made = []
    for _ in range(3):
        made.append(cli_json(cli, "backup"))
        time.sleep(1.05)  # one backup per second at most: the names are the UTC second
    root = data_dir.parent / "backups"
    assert [p.name for p in backups(root)] == [Path(m["path"]).name for m in made[1:]]
    assert made[1]["landing_files_new"] == 0  # landing files are stored once
    assert made[2]["removed"] == [Path(made[0]["path"]).name]
