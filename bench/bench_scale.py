"""Scale benchmark: every step at 350,000 and at 10,000,000 plays, each beside a bare
baseline run in the same session, and how each step's cost grows with the history.

    python bench/bench_scale.py [--plays 350000 10000000] [--repeat 3] [--builds-only]
    (make bench-scale)

Per size, on one data folder (the other benchmarks' steps, composed: bench_import's bare
read, bench_transform's 100 new plays, bench_publish's bare copy, bench_report's cards):
- import the generated export, beside DuckDB's own ``read_json`` of the same files into a
  table on disk;
- the first dbt build of the freshly imported history (raw tables only: the build that ran
  out of memory at 10M with threads chosen from the file's size; a failure stops the run
  with dbt's message and a non-zero exit), beside a plain ``CREATE TABLE AS`` of the fact
  table's compiled SQL (the build's one big table, without dbt, tests or the other
  models), same memory cap;
- 100 new plays imported, and the incremental build after them (dbt, recorded); again a
  day later, and the incremental build after them (replayed: music_tracker/replay.py);
- the first publish after the first build (every table), beside a bare ``CREATE TABLE AS``
  copy of every ``dw`` table; after the two days, the publish that writes only what their
  builds changed into a copy of the first (music_tracker/publish.py);
- every dashboard card's query (median of ``--repeat`` runs each, summed; slowest named);
- the static report, every dashboard and page.

``--builds-only`` stops after the incremental build (import, first build, 100 new plays,
incremental build): the builds' figures at a fraction of the time.

Wall time and peak memory (the process and its children, ru_maxrss) of each. Targets (the
benchmarks issue): everything finishes (a step that fails, the first build of a freshly
imported history included, stops the run with its message), no step uses more than 2 GB,
and no step's cost grows faster than linearly from the first size to the last: the
"growth" column is (time at the larger size / time at the smaller) / (plays ratio), which
must stay at or under 1. And (issue 31) the incremental build after 100 new plays costs at
most 15% of the full build at each size.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_import import BARE_READ
from bench_publish import _bare_copy
from bench_report import card_timings
from bench_transform import _new_plays
from generate_history import ensure_history
from measure import Measurement, measure

OUT = Path(__file__).parent / "out"
LIMIT_MB = 2048
TARGET_DIR = OUT / "scale-dbt-target"  # the compiled SQL the bare build baseline runs

BARE_BUILD = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], config={"memory_limit": sys.argv[3], "threads": 2})
sql = open(sys.argv[2]).read()
con.execute("create or replace table dw.bare_fact as " + sql)
con.execute("drop table dw.bare_fact")
"""


@dataclass
class Step:
    name: str
    ours: Measurement
    bare: Measurement | None = None


def _dbt_memory_limit() -> str:
    from music_tracker.settings import get_settings

    return get_settings().dbt_memory_limit


def run_size(plays: int, repeat: int, builds_only: bool = False) -> list[Step]:
    history = ensure_history(OUT, plays)
    files = sorted(history.glob("*.json"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    print(f"\n== {plays:,} plays: {len(files)} files, {size_mb:,.0f} MB", flush=True)
    data_dir = OUT / f"scale-data-{plays}"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(TARGET_DIR, ignore_errors=True)
    cli = str(Path(sys.executable).with_name("music-tracker"))
    dd = ["--data-dir", str(data_dir)]
    warehouse = data_dir / "warehouse.duckdb"
    steps: list[Step] = []

    def record(name: str, ours: Measurement, bare: Measurement | None = None) -> None:
        steps.append(Step(name, ours, bare))
        floor = ""
        if bare:  # an in-process baseline (the bare copy) has no peak of its own
            memory = f", {bare.peak_mb:.0f} MB" if bare.peak_mb else ""
            floor = f"  (bare {bare.seconds:.1f} s{memory})"
        print(
            f"  {name:<36} {ours.seconds:8.1f} s {ours.cpu_seconds:8.1f} s CPU"
            f" {ours.peak_mb:7.0f} MB{floor}  load {_load()}",
            flush=True,
        )

    def step(name: str, command: list[str], bare: Measurement | None = None) -> None:
        record(name, measure(name, command), bare)

    bare_db = OUT / "scale-bare.duckdb"
    bare_db.unlink(missing_ok=True)
    bare_read = measure(
        "bare read_json", [sys.executable, "-c", BARE_READ, str(bare_db), str(history)]
    )
    bare_db.unlink()
    step("import", [cli, "import", str(history), *dd], bare_read)

    build_cmd = [cli, "transform", *dd]
    # the first build of a freshly imported history: measure() stops the run if it fails
    ours_build = measure(f"the first build at {plays:,} plays", build_cmd)
    fact_sql = TARGET_DIR / "compiled/music_tracker/models/dw/fact_track_played.sql"
    bare_build = measure(
        "bare CREATE TABLE AS of the fact",
        [sys.executable, "-c", BARE_BUILD, str(warehouse), str(fact_sql), _dbt_memory_limit()],
    )
    record("full build", ours_build, bare_build)  # the bare build needs ours' compiled SQL
    if not builds_only:  # the first copy: every table, beside a bare copy of every table
        bare_copy = OUT / "scale-bare-copy.duckdb"
        copy_s = _bare_copy(warehouse, bare_copy)
        bare_copy.unlink()
        step("publish, first copy", [cli, "publish", *dd], Measurement("bare copy", copy_s, 0))

    # two days of 100 plays: the first build after a whole one runs dbt, which is recorded;
    # the next replays it (music_tracker/replay.py), the scheduled runs' usual case
    daily = OUT / f"scale-daily-{plays}"
    for day, name in ((1, "incremental build, dbt (recorded)"), (2, "incremental build")):
        shutil.rmtree(daily, ignore_errors=True)
        _new_plays(history, daily, 100, start=datetime(2026, 11, day, 8, tzinfo=UTC))
        step(f"import 100 new plays (day {day})", [cli, "import", str(daily), *dd])
        shutil.rmtree(daily)
        step(name, build_cmd)
    if builds_only:
        return steps

    # the next copy starts from the first and writes what the two days' builds changed
    step("publish after the new plays", [cli, "publish", *dd])

    timings = card_timings(warehouse, repeat)
    total_s = sum(ms for ms, _ in timings) / 1000
    steps.append(Step(f"every card's query ({len(timings)})", Measurement("cards", total_s, 0)))
    slowest_ms, slowest = timings[0]
    print(f"  {len(timings)} card queries: {total_s:.2f} s in all, slowest {slowest_ms:.0f} ms"
          f" ({slowest})", flush=True)  # fmt: skip
    step("static report", [cli, "report", *dd])
    return steps


def _load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, nargs="+", default=[350_000, 10_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--builds-only", action="store_true")
    args = parser.parse_args()
    os.environ["MUSIC_TRACKER_DBT_TARGET_DIR"] = str(TARGET_DIR)
    print(f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}")
    sizes = sorted(args.plays)
    results = {plays: run_size(plays, args.repeat, args.builds_only) for plays in sizes}

    small, large = sizes[0], sizes[-1]
    print()
    columns = ["step"]
    for plays in sizes:
        columns += [f"{plays:,} plays: wall, peak", "bare (ours/bare)"]
    columns += ["growth"] if len(sizes) > 1 else []
    print("| " + " | ".join(columns) + " |")
    print("|---" * (1 + 2 * len(sizes) + (len(sizes) > 1)) + "|")
    failures = []
    for index, first in enumerate(results[small]):
        cells = []
        for plays in sizes:
            step = results[plays][index]
            memory = f", {step.ours.peak_mb:,.0f} MB" if step.ours.peak_mb else ""
            bare = step.bare
            ratio = f" ({step.ours.seconds / bare.seconds:.1f}x)" if bare and bare.seconds else ""
            cells.append(f" {step.ours.seconds:,.1f} s{memory} ")
            cells.append(f" {bare.seconds:,.1f} s{ratio} " if bare else " ")
            if step.ours.peak_mb > LIMIT_MB:
                failures.append(f"{step.name} at {plays:,} plays: {step.ours.peak_mb:,.0f} MB")
        growth = ""
        if len(sizes) > 1:
            per_play = (results[large][index].ours.seconds / first.ours.seconds) / (large / small)
            growth = f" {per_play:.2f} |"
            if per_play > 1:
                failures.append(f"{first.name} grows faster than linearly ({per_play:.2f})")
        print(f"| {first.name} |" + "|".join(cells) + "|" + growth)
    # issue 31: a day's plays cost a day's work at any size
    for plays in sizes:
        by_name = {step.name: step.ours.seconds for step in results[plays]}
        ratio = by_name["incremental build"] / by_name["full build"]
        print(f"incremental build / full build at {plays:,} plays: {ratio:.2f} (target <= 0.15)")
        if ratio > 0.15:
            failures.append(f"incremental build at {plays:,} plays: {ratio:.2f} of the full build")
    if failures:
        raise SystemExit("targets missed:\n  " + "\n  ".join(failures))
    print(f"\nevery step within {LIMIT_MB:,} MB and no faster than linear")


if __name__ == "__main__":
    main()
