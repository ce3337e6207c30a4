"""Import benchmark: 350,000 generated plays, against a bare DuckDB read_json of the same files.

    python bench/bench_import.py [--plays N]

Targets (issue 2): within 5x of the bare read's wall time, under 500 MB peak memory.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from pathlib import Path

from generate_history import ensure_history
from measure import measure, report

OUT = Path(__file__).parent / "out"

BARE_READ = """
import duckdb, glob, sys
con = duckdb.connect(sys.argv[1])
files = sorted(glob.glob(sys.argv[2] + '/*.json'))
con.execute("create table plays as select * from read_json($f, format='array')", {'f': files})
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=350_000)
    args = parser.parse_args()
    history = ensure_history(OUT, args.plays)
    files = sorted(history.glob("*.json"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"{len(files)} files, {size_mb:.0f} MB; {platform.machine()}, {_cores()} cores")
    bare_db = OUT / "bare.duckdb"
    data_dir = OUT / "import-data"
    bare_db.unlink(missing_ok=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    bare = measure(
        "bare DuckDB read_json into a table",
        [sys.executable, "-c", BARE_READ, str(bare_db), str(history)],
    )
    music_tracker = str(Path(sys.executable).with_name("music-tracker"))
    ours = measure(
        "music-tracker import (first run)",
        [music_tracker, "import", str(history), "--data-dir", str(data_dir)],
    )
    again = measure(
        "music-tracker import (same files again)",
        [music_tracker, "import", str(history), "--data-dir", str(data_dir)],
    )
    report([bare, ours, again])
    ratio = ours.seconds / bare.seconds
    print(
        f"import / bare read: {ratio:.1f}x (target <= 5x); "
        f"peak {ours.peak_mb:.0f} MB (target < 500 MB)"
    )
    if ratio > 5 or ours.peak_mb >= 500:
        raise SystemExit("target missed")


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
