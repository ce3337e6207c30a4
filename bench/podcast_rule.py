"""The podcast rule for old account data (importers/podcasts.py), measured on labelled
histories: the real exports in ../shared/data written as old exports, and the simulated
legacy listener. Prints, for each, the podcast time found and the music time taken for
podcasts, and the artists decided wrongly.

    .venv/bin/python bench/podcast_rule.py [--shared ../shared/data] [--seeds 26,27,28]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from music_tracker.importers.podcasts import PodcastRules, decide_shows
from music_tracker.simulation import legacy


def _frame(rows: list[legacy.LegacyRow]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "artist_name": [row.artist for row in rows],
            "track_name": [row.title for row in rows],
            "ms_played": [row.ms_played for row in rows],
            "played_at": [row.ended_at for row in rows],
        },
        schema={
            "artist_name": pl.String,
            "track_name": pl.String,
            "ms_played": pl.Int64,
            "played_at": pl.Datetime("us", "UTC"),
        },
    )


def decided(rows: list[legacy.LegacyRow]) -> pl.DataFrame:
    """The rule's decisions on ``rows``, with no podcast file and no settings."""
    return decide_shows(_frame(rows), pl.Series("show_name", [], pl.String), PodcastRules())


def report(name: str, rows: list[legacy.LegacyRow]) -> legacy.RuleScore:
    shows = decided(rows)
    result = legacy.score(rows, set(shows["show_name"]))
    print(
        f"{name}: podcast time found {result.podcast_found:.1%}"
        f" ({result.podcast_found_ms / 3.6e6:,.1f} of {result.podcast_ms / 3.6e6:,.1f} h),"
        f" music time taken {result.music_taken:.2%}"
        f" ({result.music_taken_ms / 3.6e6:,.1f} of {result.music_ms / 3.6e6:,.1f} h)"
    )
    podcast_artists = {row.artist for row in rows if row.is_podcast}
    for show, reason in shows.select("show_name", "reason").iter_rows():
        if show not in podcast_artists:
            print(f"  music taken for a show: {show}: {reason}")
    missed: dict[str, int] = {}
    for row in rows:
        if row.is_podcast and row.artist not in set(shows["show_name"]):
            missed[row.artist] = missed.get(row.artist, 0) + row.ms_played
    for show, ms in sorted(missed.items(), key=lambda item: -item[1])[:5]:
        print(f"  show missed: {show} ({ms / 3.6e6:,.1f} h)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", default="26,27,28")
    args = parser.parse_args()
    spotify = args.shared / "spotify"
    if not spotify.is_dir():
        raise SystemExit(f"{spotify}: the real exports are not there; pass --shared")
    report("real account export 2024", legacy.from_account_export(spotify / "account_data_2024"))
    report(
        "real extended history 2026",
        legacy.from_extended_history(spotify / "extended_history_2026"),
    )
    for seed in args.seeds.split(","):
        report(f"simulated legacy history (seed {seed})", legacy.legacy_history(int(seed)))


if __name__ == "__main__":
    main()
