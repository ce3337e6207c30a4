"""Last.fm against end-time sources when the start is uncertain (pauses, early stops).

Real export rows from ../shared/data, edited the way a pause changes them: the end moves
later while the time heard stays the same. Imported through the command, in both orders.
"""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import EXTENDED_DIR, Cli, cli_json

START = datetime(2019, 3, 2, 12, 0, tzinfo=UTC)


def _template() -> dict[str, Any]:
    path = sorted(EXTENDED_DIR.glob("Streaming_History_Audio_*.json"))[0]
    return next(r for r in json.loads(path.read_text()) if r["spotify_track_uri"])


def _extended(folder: Path, rows: list[tuple[datetime, int]]) -> Path:
    """Extended-history rows of one real track: (end of play, ms heard)."""
    template = _template()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "Streaming_History_Audio_2019.json"
    path.write_text(
        json.dumps(
            [
                template | {"ts": end.strftime("%Y-%m-%dT%H:%M:%SZ"), "ms_played": ms}
                for end, ms in rows
            ]
        )
    )
    return path


def _scrobbles(path: Path, starts: list[datetime]) -> Path:
    template = _template()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for start in starts:
            writer.writerow(
                [
                    template["master_metadata_album_artist_name"],
                    template["master_metadata_album_album_name"],
                    template["master_metadata_track_name"],
                    start.strftime("%d %b %Y %H:%M"),
                ]
            )
    return path


def _plays(cli: Cli, tmp_path: Path, name: str, first: Path, second: Path) -> int:
    data = tmp_path / name
    cli("import", str(first), "--data-dir", str(data))
    cli("import", str(second), "--data-dir", str(data))
    return int(cli_json(cli, "status", "--data-dir", str(data))["plays"])


@pytest.mark.parametrize("order", ["extended first", "lastfm first"])
def test_a_paused_play_scrobbled_by_lastfm_is_one_play(
    cli: Cli, tmp_path: Path, order: str
) -> None:
    # started 12:00, paused 5 minutes, 3 minutes heard: it ends at 12:08
    extended = _extended(tmp_path / "export", [(START + timedelta(minutes=8), 180_000)])
    lastfm = _scrobbles(tmp_path / "scrobbles.csv", [START])
    files = (extended, lastfm) if order == "extended first" else (lastfm, extended)
    assert _plays(cli, tmp_path, "data", *files) == 1


def test_repeats_and_other_players_stay_separate_plays(cli: Cli, tmp_path: Path) -> None:
    # the same track twice in a row on Spotify (no pause), both scrobbled; and once on
    # another player 40 minutes earlier (scrobbled only): three plays, in either order
    extended = _extended(
        tmp_path / "export",
        [(START + timedelta(minutes=4), 240_000), (START + timedelta(minutes=8), 240_000)],
    )
    lastfm = _scrobbles(
        tmp_path / "scrobbles.csv",
        [START - timedelta(minutes=40), START, START + timedelta(minutes=4)],
    )
    assert _plays(cli, tmp_path, "one", extended, lastfm) == 3
    assert _plays(cli, tmp_path, "two", lastfm, extended) == 3


def test_two_pauses_each_find_their_own_scrobble(cli: Cli, tmp_path: Path) -> None:
    # two paused plays of one track: 12:00-12:09 (3 min heard) and 12:10-12:20 (3 min)
    extended = _extended(
        tmp_path / "export",
        [(START + timedelta(minutes=9), 180_000), (START + timedelta(minutes=20), 180_000)],
    )
    lastfm = _scrobbles(tmp_path / "scrobbles.csv", [START, START + timedelta(minutes=10)])
    assert _plays(cli, tmp_path, "one", extended, lastfm) == 2
    assert _plays(cli, tmp_path, "two", lastfm, extended) == 2
