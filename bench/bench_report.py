"""Report benchmark: every dashboard card's query, then the whole static report.

    python bench/bench_report.py [--plays N] [--repeat R]

Targets (the reporting issue, 2-core machine): on the 350,000-play generated history every
card answers in under 100 ms (median of R runs, for each page variant a card appears on:
all time and the newest year, or the most played artist), and the whole report renders in
under 30 s. Prints the slowest five cards. Reuses bench/out from the other benchmarks.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

import duckdb
from generate_history import ensure_history
from measure import measure, report

from music_tracker.reporting import ranking
from music_tracker.reporting.definitions import load_dashboards
from music_tracker.reporting.static_site import run_card, variants
from music_tracker.settings import Settings

OUT = Path(__file__).parent / "out"
TARGET_MS = 100.0


def card_timings(warehouse: Path, repeat: int) -> list[tuple[float, str]]:
    """Every dashboard card's query on the default page and, where a year filter exists,
    all time: (median ms of ``repeat`` runs, name), slowest first. Under the memory cap
    Metabase's DuckDB driver is given (MUSIC_TRACKER_METABASE_DUCKDB_MEMORY_LIMIT)."""
    timings: list[tuple[float, str]] = []
    cap = Settings.model_fields["metabase_duckdb_memory_limit"].default
    with duckdb.connect(str(warehouse), read_only=True, config={"memory_limit": cap}) as con:
        years = [
            int(y)
            for (y,) in con.execute(
                "select distinct year(date_sid) from dw.agg_daily_listening order by 1 desc"
            ).fetchall()
        ]
        # as the report runs them: a ranked card both ways at once (Metabase asks for one)
        for dashboard in map(ranking.for_report, load_dashboards()):
            pages = variants(con, dashboard, years)
            chosen = {stem: values for stem, _, values in pages[:2]}
            for stem, values in chosen.items():
                for card in dashboard.every_card():
                    runs = []
                    for _ in range(repeat):
                        begun = time.perf_counter()
                        run_card(con, card, values)
                        runs.append((time.perf_counter() - begun) * 1000)
                    timings.append(
                        (statistics.median(runs), f"{dashboard.slug}/{stem} {card.name}")
                    )
    return sorted(timings, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=350_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    history = ensure_history(OUT, args.plays)
    data_dir = OUT / "report-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    cli = str(Path(sys.executable).with_name("music-tracker"))
    dd = ["--data-dir", str(data_dir)]
    steps = [
        measure(f"import {args.plays:,} plays (setup)", [cli, "import", str(history), *dd]),
        measure("transform (setup)", [cli, "transform", *dd]),
    ]
    timings = card_timings(data_dir / "warehouse.duckdb", args.repeat)
    steps.append(measure("report: every dashboard, every page", [cli, "report", *dd]))
    over = [t for t in timings if t[0] >= TARGET_MS]
    print(f"\n{len(timings)} card queries (median of {args.repeat} runs each)")
    print(f"median of medians {statistics.median(t[0] for t in timings):.1f} ms;"
          f" over {TARGET_MS:.0f} ms: {len(over)}")  # fmt: skip
    print("slowest five:")
    for ms, name in timings[:5]:
        print(f"  {ms:8.1f} ms  {name}")
    print()
    report(steps)


if __name__ == "__main__":
    main()
