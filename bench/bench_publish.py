"""Publish benchmark: the serving copy after 100 new plays on a 350,000-play history.

    python bench/bench_publish.py [--plays N]

Target (issue 10, 2-core machine): `music-tracker publish` after 100 new plays takes under
5 s, and the copy is at most the size of the `dw` data in the warehouse (measured as the
warehouse blocks that hold `dw` tables). Beside it, in the same run, the bare floor: one
DuckDB statement per table copying `dw` into a new file, nothing else (no checks, no
rename, no fsync, no process start-up). Reuses bench/out from bench_import.py.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=350_000)
    args = parser.parse_args()
    history = ensure_history(OUT, args.plays)
    data_dir = OUT / "publish-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = str(Path(sys.executable).with_name("music-tracker"))
    dd = ["--data-dir", str(data_dir)]
    rows = [
        measure(f"import {args.plays:,} plays (setup)", [cli, "import", str(history), *dd]),
        measure("transform: full build (setup)", [cli, "transform", *dd]),
        measure("publish: first copy", [cli, "publish", *dd]),
    ]
    _new_plays(history, OUT / "daily", 100)
    rows.append(measure("import 100 new plays", [cli, "import", str(OUT / "daily"), *dd]))
    rows.append(measure("transform: incremental", [cli, "transform", *dd]))
    after = measure("publish after 100 new plays", [cli, "publish", *dd])
    rows.append(after)
    shutil.rmtree(OUT / "daily")
    warehouse = data_dir / "warehouse.duckdb"
    bare_s = _bare_copy(warehouse, OUT / "bare-copy.duckdb")
    rows.append(Measurement("bare floor: CREATE TABLE AS per dw table", bare_s, 0))
    report(rows)
    copy = sorted((data_dir / "serving").glob("dw-*.duckdb"))[-1]
    dw = _dw_bytes(warehouse)
    size = copy.stat().st_size
    print(
        f"copy {size / 1e6:.1f} MB; dw data in the warehouse {dw / 1e6:.1f} MB; "
        f"whole warehouse {warehouse.stat().st_size / 1e6:.1f} MB; bare copy "
        f"{(OUT / 'bare-copy.duckdb').stat().st_size / 1e6:.1f} MB"
    )
    print(
        f"publish after 100 new plays {after.seconds:.2f} s (target < 5; bare floor "
        f"{bare_s:.2f} s), peak {after.peak_mb:.0f} MB; copy/dw {size / dw:.2f} (target <= 1)"
    )
    (OUT / "bare-copy.duckdb").unlink()
    if after.seconds >= 5 or size > dw:
        raise SystemExit("target missed")


if __name__ == "__main__":
    main()
