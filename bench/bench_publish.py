"""Publish benchmark: the serving copy after 100 new plays on a 350,000-play history.

    python bench/bench_publish.py [--plays N] [--rounds N]

Target (issue 10, 2-core machine): `music-tracker publish` after 100 new plays takes under
5 s, and the copy is at most the size of the `dw` data in the warehouse (measured as the
warehouse blocks that hold `dw` tables). A publish after a build starts from the last copy
and writes what the builds since changed (src/music_tracker/publish.py): ``--rounds``
times 100 new plays, a build and a publish show what that costs and whether the copy's
file grows from round to round; then `publish --full` copies every table of the same
warehouse (the cost it replaces), and the two copies must hold the same rows, table by
table. Beside it, in the same run, the bare floor: one DuckDB statement per table copying
`dw` into a new file, nothing else (no checks, no rename, no fsync, no process start-up).
Reuses bench/out from bench_import.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from bench_transform import _new_plays
from generate_history import ensure_history
from measure import Measurement, measure, report

OUT = Path(__file__).parent / "out"


def _dw_bytes(warehouse: Path) -> int:
    """Bytes of the warehouse's blocks that hold `dw` tables."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (block_size,) = con.execute("select block_size from pragma_database_size()").fetchone()  # type: ignore[misc]
        tables = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'dw'"
        ).fetchall()
        blocks: set[int] = set()
        for (table,) in tables:
            blocks |= {
                b
                for (b,) in con.execute(
                    f"select distinct block_id from pragma_storage_info('dw.\"{table}\"')"
                    " where block_id >= 0"
                ).fetchall()
            }
        return len(blocks) * int(block_size)


def _bare_copy(warehouse: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"attach '{warehouse}' as wh (read_only)")
    con.execute(f"attach '{target}' as copy")
    con.execute("create schema copy.dw")
    for (table,) in con.execute(
        "select table_name from duckdb_tables() where database_name = 'wh' and schema_name = 'dw'"
    ).fetchall():
        con.execute(f'create table copy.dw."{table}" as select * from wh.dw."{table}"')
    con.close()
    return time.perf_counter() - started


def _same_rows(a: Path, b: Path) -> list[str]:
    """The `dw` tables whose rows differ between two serving copies (as multisets)."""
    con = duckdb.connect()
    con.execute(f"attach '{a}' as a (read_only)")
    con.execute(f"attach '{b}' as b (read_only)")
    names = [
        {t for (t,) in con.execute(
            "select table_name from duckdb_tables() where database_name = ?", [db]
        ).fetchall()}
        for db in ("a", "b")
    ]  # fmt: skip
    differ = sorted(names[0] ^ names[1])
    for table in sorted(names[0] & names[1]):
        (n,) = con.execute(  # type: ignore[misc]
            f'select count(*) from ((select * from a.dw."{table}" except all'
            f' select * from b.dw."{table}") union all (select * from b.dw."{table}"'
            f' except all select * from a.dw."{table}"))'
        ).fetchone()
        if n:
            differ.append(table)
    con.close()
    return differ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=350_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    history = ensure_history(OUT, args.plays)
    data_dir = OUT / "publish-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = str(Path(sys.executable).with_name("music-tracker"))
    dd = ["--data-dir", str(data_dir)]
    serving = data_dir / "serving"
    rows = [
        measure(f"import {args.plays:,} plays (setup)", [cli, "import", str(history), *dd]),
        measure("transform: full build (setup)", [cli, "transform", *dd]),
        measure("publish: first copy (every table)", [cli, "publish", *dd]),
    ]
    first_size = sorted(serving.glob("dw-*.duckdb"))[-1].stat().st_size
    publishes: list[Measurement] = []
    sizes: list[int] = []
    for n in range(args.rounds):
        _new_plays(history, OUT / "daily", 100, start=datetime(2026, 11, 1 + n, 8, tzinfo=UTC))
        setup = [
            measure("import 100 new plays", [cli, "import", str(OUT / "daily"), *dd]),
            measure("transform: incremental", [cli, "transform", *dd]),
        ]
        shutil.rmtree(OUT / "daily")
        label = f"publish after 100 new plays, round {n + 1}"
        publishes.append(measure(label, [cli, "publish", *dd]))
        sizes.append(sorted(serving.glob("dw-*.duckdb"))[-1].stat().st_size)
        if n == 0:
            rows += setup
    rows += publishes
    incremental = sorted(serving.glob("dw-*.duckdb"))[-1]
    whole = measure("publish --full (every table, same data)", [cli, "publish", "--full", *dd])
    rows.append(whole)
    full_copy = sorted(serving.glob("dw-*.duckdb"))[-1]
    warehouse = data_dir / "warehouse.duckdb"
    bare_s = _bare_copy(warehouse, OUT / "bare-copy.duckdb")
    rows.append(Measurement("bare floor: CREATE TABLE AS per dw table", bare_s, 0))
    report(rows)
    dw = _dw_bytes(warehouse)
    size = incremental.stat().st_size
    print(
        f"copy after {args.rounds} rounds {size / 1e6:.1f} MB (first {first_size / 1e6:.1f}, "
        f"per round {', '.join(f'{s / 1e6:.1f}' for s in sizes)}); --full copy "
        f"{full_copy.stat().st_size / 1e6:.1f} MB; dw data in the warehouse {dw / 1e6:.1f} MB;"
        f" whole warehouse {warehouse.stat().st_size / 1e6:.1f} MB; bare copy "
        f"{(OUT / 'bare-copy.duckdb').stat().st_size / 1e6:.1f} MB"
    )
    after = max(publishes, key=lambda m: m.seconds)
    cpu = sorted(m.cpu_seconds for m in publishes)
    print(
        f"publish after 100 new plays: slowest {after.seconds:.2f} s (target < 5; bare floor "
        f"{bare_s:.2f} s), CPU median {cpu[len(cpu) // 2]:.2f} s against "
        f"{whole.cpu_seconds:.2f} s for every table ({cpu[len(cpu) // 2] / whole.cpu_seconds:.2f}),"
        f" peak {max(m.peak_mb for m in publishes):.0f} MB; copy/dw {size / dw:.2f} (target <= 1)"
    )
    (OUT / "bare-copy.duckdb").unlink()
    differ = _same_rows(incremental, full_copy)
    if differ:
        raise SystemExit(f"the copy written from the last one differs from --full in: {differ}")
    print("the copy written from the last one holds the same rows as --full, table by table")
    if after.seconds >= 5 or size > dw:
        raise SystemExit("target missed")


if __name__ == "__main__":
    main()
