"""Generate a realistic 20-year extended streaming history (default 350,000 plays).

python bench/generate_history.py OUT_DIR [--plays N] [--years Y] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import date
from pathlib import Path

from music_tracker.simulation.listener import build_catalogue, listen, write_extended

# Above this many plays a day, one account playing one stream at a time cannot fit them in
# a day: the sessions of a larger history overlap (10 million plays in 20 years is a stress
# test, not a listener)
ONE_STREAM_MAX_PER_DAY = 300


def generate(out: Path, plays: int, years: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    catalogue = build_catalogue(rng)
    end = date(2026, 10, 31)
    start = date(end.year - years, end.month, 1)
    one_stream = plays / ((end - start).days + 1) <= ONE_STREAM_MAX_PER_DAY
    history = listen(rng, catalogue, start, end, plays, one_stream=one_stream)
    return write_extended(history, out, rng, new_generation=True)


# bumped when the generator changes what it writes (2: sessions never overlap; 3: files
# written one at a time, sessions overlap above 300 plays a day), so that a history cached
# by an older version is not measured as if it were current
GENERATOR_VERSION = 3


def ensure_history(out: Path, plays: int) -> Path:
    """The benchmark history for ``plays`` plays under ``out``, generated on first use."""
    history = out / f"history-{plays}-v{GENERATOR_VERSION}"
    if not history.is_dir():
        print(f"generating {plays:,} plays over 20 years into {history} ...")
        generate(history, plays, 20, seed=2026)
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--plays", type=int, default=350_000)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    started = time.perf_counter()
    files = generate(args.out, args.plays, args.years, args.seed)
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"wrote {len(files)} files, {size:.0f} MB, in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
