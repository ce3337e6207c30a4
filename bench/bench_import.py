"""Import benchmark: 350,000 generated plays, against a bare DuckDB read of the same files.

    python bench/bench_import.py [--plays N] [--one-file lastfm|listenbrainz [--onto-history]]

Targets (issue 31): within 2.5x of the bare read's wall time at 350,000 plays and within
4x at 10 million (``RATIO_TARGETS``: the nearest size at or above the one run), under 400
MiB peak memory at any size (issue 2's were 5x and 500 MB). ``--one-file``: the same
plays as one Last.fm CSV or one ListenBrainz ``listens.jsonl`` (as ``music-tracker
export`` writes a whole history), the files that are read a block at a time
(importers/blocks.py); its target is the peak's. ``--onto-history``: that file imported
into a data folder holding the same plays' extended history already (imported first, not
measured), so that every part is matched again with the rows stored of its days.
"""

from __future__ import annotations

import argparse
import os
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
# one file of the plays in another source's format, written by DuckDB from the history
_TRACKS = (
    "from read_json($f, format='array') where master_metadata_track_name is not null order by ts"
)
ONE_FILE = {
    "lastfm": (
        "scrobbles.csv",
        "select master_metadata_album_artist_name, master_metadata_album_album_name,"
        " master_metadata_track_name,"
        " strftime(cast(ts as timestamp) - to_milliseconds(ms_played), '%d %b %Y %H:%M')"
        f" {_TRACKS}",
        "(format csv, header false)",
        "read_csv($f, header=false, all_varchar=true)",
    ),
    "listenbrainz": (
        "listens.jsonl",
        "select epoch(cast(ts as timestamp) - to_milliseconds(ms_played))::bigint listened_at,"
        " {'artist_name': master_metadata_album_artist_name,"
        "  'track_name': master_metadata_track_name,"
        "  'release_name': master_metadata_album_album_name,"
        "  'additional_info': {'ms_played': ms_played, 'origin_url':"
        "   'https://open.spotify.com/track/' || split_part(spotify_track_uri, ':', 3)}}"
        f" track_metadata {_TRACKS}",
        "(format json)",
        "read_json($f, format='newline_delimited')",
    ),
}
BARE_READ_ONE = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])
con.execute(f"create table plays as select * from {sys.argv[3]}", {'f': sys.argv[2]})
"""


# the most plays a ratio target is set for, and the target (issue 31)
RATIO_TARGETS = ((350_000, 2.5), (10_000_000, 4.0))
PEAK_TARGET_MIB = 400


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plays", type=int, default=350_000)
    parser.add_argument("--one-file", choices=sorted(ONE_FILE))
    parser.add_argument("--onto-history", action="store_true")
    args = parser.parse_args()
    if args.onto_history and not args.one_file:
        parser.error("--onto-history needs --one-file")
    history = ensure_history(OUT, args.plays)
    files = sorted(history.glob("*.json"))
    bare_db = OUT / "bare.duckdb"
    data_dir = OUT / "import-data"
    bare_db.unlink(missing_ok=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    if args.one_file:
        one = _one_file(history, files, args.one_file)
        size_mb = one.stat().st_size / 1e6
        print(f"{one.name}, {size_mb:.0f} MB; {platform.machine()}, {_cores()} cores")
        bare = measure(
            f"bare DuckDB read of {one.name} into a table",
            [
                sys.executable,
                "-c",
                BARE_READ_ONE,
                str(bare_db),
                str(one),
                ONE_FILE[args.one_file][3],
            ],
        )
        history = one
        # 10 million listens are 2.4 GB in one file, over the import's cap on one file
        os.environ["MUSIC_TRACKER_IMPORT_MAX_FILE_MB"] = str(one.stat().st_size // 2**20 + 1)
    else:
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} files, {size_mb:.0f} MB; {platform.machine()}, {_cores()} cores")
        bare = measure(
            "bare DuckDB read_json into a table",
            [sys.executable, "-c", BARE_READ, str(bare_db), str(history)],
        )
    music_tracker = str(Path(sys.executable).with_name("music-tracker"))
    first = "music-tracker import (first run)"
    if args.onto_history:
        print("importing the extended history first (not measured) ...")
        measure("(the extended history)", [music_tracker, "import", *map(str, files),
                                           "--data-dir", str(data_dir)])  # fmt: skip
        first = "music-tracker import onto the extended history"
    ours = measure(
        first,
        [music_tracker, "import", str(history), "--data-dir", str(data_dir)],
    )
    again = measure(
        "music-tracker import (same files again)",
        [music_tracker, "import", str(history), "--data-dir", str(data_dir)],
    )
    report([bare, ours, again])
    ratio = ours.seconds / bare.seconds
    peak = f"peak {ours.peak_mb:.0f} MiB (target < {PEAK_TARGET_MIB} MiB)"
    if args.one_file:
        print(f"import / bare read: {ratio:.1f}x; {peak}")
        if ours.peak_mb >= PEAK_TARGET_MIB:
            raise SystemExit("target missed")
        return
    target = next((x for plays, x in RATIO_TARGETS if args.plays <= plays), RATIO_TARGETS[-1][1])
    print(f"import / bare read: {ratio:.1f}x (target <= {target}x); {peak}")
    if ratio > target or ours.peak_mb >= PEAK_TARGET_MIB:
        raise SystemExit("target missed")


def _one_file(history: Path, files: list[Path], kind: str) -> Path:
    """The history's music plays as one file of ``kind``, written on first use."""
    name, query, options, _ = ONE_FILE[kind]
    target = history.with_name(f"{history.name}-{kind}") / name
    if not target.exists():
        import duckdb

        print(f"writing the plays as {target} ...")
        target.parent.mkdir(exist_ok=True)
        partial = target.with_suffix(".partial")
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            con.execute(f"copy ({query}) to '{partial}' {options}", {"f": [str(f) for f in files]})
        partial.rename(target)
    return target


def _cores() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
