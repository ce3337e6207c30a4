"""Plays whose rows are hard to match, imported through the command.

Last.fm against end-time sources when the start is uncertain (pauses, early stops): real
export rows from ../shared/data, edited the way a pause changes them (the end moves later
while the time heard stays the same), in both orders. A repeat right after a copy the
export wrote, and matchings that tie, decided alike in every process.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from conftest import EXTENDED_DIR, Cli, cli_json, query
from music_tracker import dedupe
from music_tracker.simulation import listener

START = datetime(2019, 3, 2, 12, 0, tzinfo=UTC)
CLI = str(Path(sys.executable).with_name("music-tracker"))


def _template() -> dict[str, Any]:
    path = sorted(EXTENDED_DIR.glob("Streaming_History_Audio_*.json"))[0]
    return next(r for r in json.loads(path.read_text()) if r["spotify_track_uri"])


def _real_track(ms: int) -> listener.Track:
    """The template's real track, lasting ``ms``."""
    template = _template()
    return listener.Track(
        template["spotify_track_uri"].rsplit(":", 1)[-1],
        template["master_metadata_track_name"],
        template["master_metadata_album_artist_name"],
        template["master_metadata_album_album_name"],
        ms,
    )


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


def _a_paused_play_stored_as_two(cli: Cli, tmp_path: Path) -> tuple[Path, tuple[str, str]]:
    """A warehouse as an earlier version left it: the paused play's extended row and its
    scrobble imported, the scrobble stored as a play of its own (before the pause rule,
    ids never merged). Returns the data folder and its --data-dir option."""
    import duckdb

    data = tmp_path / "data"
    dd = ("--data-dir", str(data))
    extended = _extended(tmp_path / "export", [(START + timedelta(minutes=8), 180_000)])
    lastfm = _scrobbles(tmp_path / "scrobbles.csv", [START])
    cli("import", str(extended), *dd)
    cli("import", str(lastfm), *dd)
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        con.execute("update raw.lastfm_scrobbles set play_id = md5('lastfm:' || source_key)")
    return data, dd


def test_plays_stored_twice_are_merged_by_rematch_and_the_star_schema_follows(
    cli: Cli, tmp_path: Path
) -> None:
    data, dd = _a_paused_play_stored_as_two(cli, tmp_path)
    assert cli_json(cli, "status", *dd)["plays"] == 2
    cli("transform", *dd)
    assert query(data, "select count(*) from dw.fact_track_played") == [(2,)]

    merged = cli_json(cli, "rematch", *dd)
    assert (merged["plays_merged"], merged["rows_moved"]) == (1, 1)
    assert cli_json(cli, "status", *dd)["plays"] == 1
    cli("transform", *dd)  # incremental: the absorbed play leaves every table
    assert query(data, "select count(*), any_value(seen_by_sources) from dw.fact_track_played") == [
        (1, "lastfm,spotify_extended_history")
    ]
    assert query(data, "select count(*) from intermediate.int_plays_deduplicated") == [(1,)]
    again = cli_json(cli, "rematch", *dd)
    assert (again["plays_merged"], again["rows_moved"]) == (0, 0)


def test_a_later_richer_row_merges_plays_stored_twice(cli: Cli, tmp_path: Path) -> None:
    """The import of one more row of the play (its account-data row) merges the two."""
    _, dd = _a_paused_play_stored_as_two(cli, tmp_path)
    template = _template()
    account = tmp_path / "account" / "StreamingHistory_music_0.json"
    account.parent.mkdir()
    account.write_text(
        json.dumps(
            [
                {
                    "endTime": (START + timedelta(minutes=8)).strftime("%Y-%m-%d %H:%M"),
                    "artistName": template["master_metadata_album_artist_name"],
                    "trackName": template["master_metadata_track_name"],
                    "msPlayed": 180_000,
                }
            ]
        )
    )
    summary = cli_json(cli, "import", str(account), *dd)
    assert summary["duplicates"]["stored_plays_merged"] == 1
    assert cli_json(cli, "status", *dd)["plays"] == 1


def _on_repeat(ms: int, ends: list[datetime], copy_after_s: int) -> list[listener.TruePlay]:
    """A real track on repeat, heard in full (``ms``) each time, ending at ``ends``; the
    export writes the first play twice, its copy ``copy_after_s`` seconds later."""
    track = _real_track(ms)
    return [
        listener.TruePlay(
            index, track, end - timedelta(milliseconds=ms), ms, 0, True, 0,
            copy_after_s if index == 0 else 0,
        )
        for index, end in enumerate(ends)
    ]  # fmt: skip


def test_a_repeat_right_after_a_copy_the_export_wrote_is_a_play_of_its_own(
    cli: Cli, tmp_path: Path
) -> None:
    """Rows ending 06:43:50, 06:43:53 (the export's copy) and 06:45:06, all 75,822 ms: the
    copy overlaps the first play, the repeat ends 76 s after it (longer than the track) and
    only 73 s after the copy. Two plays, alone and with every other source's rows of them
    (which must join them, not make plays of their own)."""
    day = datetime(2019, 3, 2, tzinfo=UTC)
    plays = _on_repeat(
        75_822, [day + timedelta(hours=6, minutes=43, seconds=s) for s in (50, 126)], 3
    )
    files = {
        source: listener.write_records(source, plays, tmp_path / source)[0]
        for source in (dedupe.EXTENDED, dedupe.API, dedupe.ACCOUNT, dedupe.LASTFM)
    }
    assert [r["ts"][11:] for r in json.loads(files[dedupe.EXTENDED].read_text())] == [
        "06:43:50Z", "06:43:53Z", "06:45:06Z",
    ]  # fmt: skip

    alone = tmp_path / "alone"
    summary = cli_json(cli, "import", str(files[dedupe.EXTENDED]), "--data-dir", str(alone))
    assert summary["duplicates"]["same_play_written_twice"] == 1
    assert cli_json(cli, "status", "--data-dir", str(alone))["plays"] == 2
    assert query(
        alone,
        "select sum(ms) from (select play_id, any_value(ms_played) as ms"
        " from raw.spotify_extended_history group by play_id)",
    ) == [(151_644,)]

    for name, order in {
        "at once": [list(files.values())],
        "extended history last": [[files[s]] for s in reversed(files)],
    }.items():
        data = tmp_path / name
        for paths in order:
            cli("import", *map(str, paths), "--data-dir", str(data))
        status = cli_json(cli, "status", "--data-dir", str(data))
        assert (status["plays"], status["plays_per_source"]) == (
            2,
            dict.fromkeys(files, 2) | {"listenbrainz": 0},
        ), name


def test_rematch_decides_ties_alike_in_every_process(cli: Cli, tmp_path: Path) -> None:
    """Twenty tracks each played twice within a minute (stopped after 25 s, started again
    and stopped after 40 s): both account-data rows of a minute are exactly as near to both
    plays, so the matching ties. Its choice must not follow set order (``PYTHONHASHSEED``):
    `rematch`, in two processes with other hash seeds, moves nothing (the import decided
    alike, and so does a run after a run)."""
    rng = random.Random(26)
    catalogue = listener.short_catalogue(rng, tracks=20)
    plays = []
    for index, track in enumerate(catalogue):
        minute = START + timedelta(minutes=5 * index)
        for heard, end_s in ((25_000, 10), (40_000, 50)):
            end = minute + timedelta(seconds=end_s)
            plays.append(
                listener.TruePlay(
                    len(plays), track, end - timedelta(milliseconds=heard), heard, 0, True, 0
                )
            )
    data = tmp_path / "data"
    for source in (dedupe.EXTENDED, dedupe.ACCOUNT):
        path, _ = listener.write_records(source, plays, tmp_path / source)
        cli("import", str(path), "--data-dir", str(data))
    assert cli_json(cli, "status", "--data-dir", str(data))["plays"] == 40

    moved = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [CLI, "rematch", "--json", "--data-dir", str(data)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        moved.append(json.loads(done.stdout)["rows_moved"])
    assert moved == [0, 0], moved


def test_plays_written_twice_are_matched_at_their_first_row(cli: Cli, tmp_path: Path) -> None:
    """Sixty plays the export wrote twice, each copy 30 s after its play: the API rows
    (10 s) and account data are compared with each play's first row, never with its copy,
    however the rows were sorted (a sort of a hundred rows or more is not stable unless
    asked to be). Sixty plays, each seen once by every source, in any order."""
    rng = random.Random(12)
    plays = [
        listener.TruePlay(
            index, track, START + timedelta(minutes=10 * index), track.duration_ms, 0, True, 0, 30
        )
        for index, track in enumerate(listener.short_catalogue(rng, tracks=60))
    ]
    files = [
        listener.write_records(source, plays, tmp_path / source)[0]
        for source in (dedupe.LASTFM, dedupe.ACCOUNT, dedupe.API, dedupe.EXTENDED)
    ]
    for name, order in {"at once": [files], "one by one": [[path] for path in files]}.items():
        data = tmp_path / name
        for paths in order:
            cli("import", *map(str, paths), "--data-dir", str(data))
        status = cli_json(cli, "status", "--data-dir", str(data))
        per_source = {k: v for k, v in status["plays_per_source"].items() if v}
        assert (status["plays"], set(per_source.values()), len(per_source)) == (60, {60}, 4), (
            name,
            status["plays_per_source"],
        )


def test_a_track_length_learned_later_moves_a_scrobble_to_its_play(
    cli: Cli, tmp_path: Path
) -> None:
    """A 39 s track stopped after 18 s, then started again, paused and heard for 21 s: only
    the second was scrobbled (half the track). While the track's length is unknown, either
    could have been; its scrobble is nearer the first. An API row days later tells the
    length: the scrobble moves to the second play, as if the API row had come first."""
    track = _real_track(39_000)
    first = listener.TruePlay(0, track, START, 18_000, 0, True, 0)
    second = listener.TruePlay(
        1, track, first.ended_at + timedelta(seconds=1), 21_000, 42_000, True, 0
    )
    later = listener.TruePlay(2, track, START + timedelta(days=3), 39_000, 0, True, 0)
    plays = [first, second, later]
    assert [p.scrobbled for p in plays] == [False, True, True]
    files = {
        source: listener.write_records(source, plays, tmp_path / source)[0]
        for source in (dedupe.EXTENDED, dedupe.LASTFM, dedupe.API)
    }
    scrobbled_play = (
        "select e.ms_played from raw.spotify_extended_history e"
        " join raw.lastfm_scrobbles l on coalesce(("
        "  select o.play_id from raw.play_id_overrides o"
        "  where o.source = 'lastfm' and o.source_key = l.source_key), l.play_id)"
        " = coalesce(("
        "  select o.play_id from raw.play_id_overrides o"
        "  where o.source = 'spotify_extended_history' and o.source_key = e.source_key),"
        "  e.play_id)"
        " where l.started_at < $day order by 1"
    )
    for name, order in {
        "length first": [dedupe.API, dedupe.EXTENDED, dedupe.LASTFM],
        "length last": [dedupe.EXTENDED, dedupe.LASTFM, dedupe.API],
    }.items():
        data = tmp_path / name
        for source in order:
            cli("import", str(files[source]), "--data-dir", str(data))
        held = query(data, scrobbled_play, {"day": START + timedelta(days=1)})
        assert held == [(21_000,)], name
        assert cli_json(cli, "rematch", "--data-dir", str(data))["rows_moved"] == 0, name


def test_a_new_plays_id_is_md5_of_its_source_and_key_as_every_version_made_it() -> None:
    # ids stay what earlier versions made (hashlib, one key at a time), whatever hashes them
    keys = ["a03b5d0c6e1f4a2b9c8d7e6f5a4b3c2d", "", "é日本語 ♫", "x'; drop table t; --"]
    frame = pl.DataFrame({"_row": pl.Series(range(len(keys)), dtype=pl.UInt32), "source_key": keys})
    for source in dedupe.SOURCE_RANK:
        made = dedupe._own_play_ids(source, frame).sort("_row")["_own_play_id"].to_list()
        assert made == [hashlib.md5(f"{source}:{key}".encode()).hexdigest() for key in keys]
    with pytest.raises(ValueError, match="not a music source"):
        dedupe._own_play_ids("spotify'; --", frame)
    with pytest.raises(ValueError, match="without a source_key"):
        dedupe._own_play_ids("lastfm", frame.with_columns(source_key=pl.lit(None, pl.String)))
