"""ListenBrainz in both directions, through the CLI on the real exports: export to listens,
import them into an empty warehouse (the same plays, milliseconds and local times) and into
the first one (nothing added); a ListenBrainz export as ListenBrainz ships it."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import polars.testing
import pytest

from conftest import EXTENDED_DIR, SPOTIFY_DATA, Cli, cli_json, query
from music_tracker.importers import blocks, listenbrainz, readers
from music_tracker.importers.listenbrainz import read_listens
from music_tracker.importers.readers import Parsed

# what a play is, as the dashboards see it: its end (UTC and local), time heard, context
_PLAYS = (
    "select played_at, played_at_local, date_sid, time_sid, ms_played, is_stream, skipped,"
    " shuffle, platform, conn_country, reason_start, reason_end"
    " from dw.fact_track_played order by all"
)
_OTHER = (
    "select played_at, played_at_local, ms_played, content_type, show_name, item_name,"
    " item_uri, author_name, platform, reason_end, source from dw.fact_other_played order by all"
)


def _export(cli: Cli, data_dir: Path, folder: Path) -> dict[str, int]:
    summary = cli_json(
        cli, "export", "--format", "listenbrainz", "--output", str(folder),
        "--data-dir", str(data_dir),
    )  # fmt: skip
    return {"plays": summary["plays"], "other_plays": summary["other_plays"]}


def test_round_trip_into_an_empty_warehouse(
    built: Path, cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    exported = _export(cli, built, tmp_path / "lb")
    summary = cli_json(cli, "import", str(tmp_path / "lb"))
    assert summary["new_plays_per_source"] == {"listenbrainz": exported["plays"]}
    assert summary["duplicates"]["repeated_in_input"] == 0
    cli("transform")
    before, after = query(built, _PLAYS), query(data_dir, _PLAYS)
    assert len(after) == exported["plays"] > 20_000
    assert after == before
    # podcasts, audiobooks and videos come back as such, from the new source
    # (a video Spotify could not name stays unnamed: its listen's names are placeholders)
    other_before = [row[:-1] for row in query(built, _OTHER)]
    other_after = query(data_dir, _OTHER)
    assert [row[:-1] for row in other_after] == other_before
    assert {row[-1] for row in other_after} == {"listenbrainz"}
    assert query(data_dir, "select distinct source from dw.fact_track_played") == [
        ("listenbrainz",)
    ]


def test_reimport_into_the_first_warehouse_adds_nothing(
    built_copy: Path, cli: Cli, tmp_path: Path
) -> None:
    _export(cli, built_copy, tmp_path / "lb")
    sids = "select play_sid, ms_played, played_at_local from dw.fact_track_played order by all"
    plays_before, other_before = query(built_copy, sids), query(built_copy, _OTHER)
    status_before = cli_json(cli, "status", "--data-dir", str(built_copy))["other_content"]
    summary = cli_json(cli, "import", str(tmp_path / "lb"), "--data-dir", str(built_copy))
    assert summary["new_plays"] == 0
    # podcasts, audiobooks and videos too: not new, the same plays as stored ones
    assert summary["new_other_content"] == {}
    assert summary["duplicates"]["same_play_from_other_source"] == len(plays_before) + len(
        other_before
    )
    assert summary["duplicates"]["stored_plays_merged"] == 0
    cli("transform", "--data-dir", str(built_copy))
    assert query(built_copy, sids) == plays_before
    assert query(built_copy, _OTHER) == other_before
    # status counts the podcasts, audiobooks and videos once too, as the star schema does
    # (one rule in SQL for each: warehouse/contents.py and fact_other_played.sql)
    assert cli_json(cli, "status", "--data-dir", str(built_copy))["other_content"] == status_before
    counted = "select content_type, count(*) from dw.fact_other_played group by all"
    assert status_before == dict(query(built_copy, counted))
    # every play now says ListenBrainz saw it too
    assert query(
        built_copy,
        "select count(*) from dw.fact_track_played where seen_by_sources like '%listenbrainz%'",
    ) == [(len(plays_before),)]
    again = cli_json(cli, "import", str(tmp_path / "lb"), "--data-dir", str(built_copy))
    assert again["files_already_imported"] == 2
    assert again["new_plays"] == 0


def test_round_trip_of_api_plays_and_a_scrobble(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Plays polled from the API (every play between two exports is one) know their end to
    the millisecond and count with the track's length; a scrobble knows its start. Through
    ListenBrainz into an empty warehouse they are the same plays: the same end and local
    time, the same milliseconds (still estimated); and into the first, nothing new."""
    first = tmp_path / "first"
    api = SPOTIFY_DATA / "api_samples" / "recently-played__zmb3-spotify.json"
    scrobbles = tmp_path / "scrobbles.csv"
    scrobbles.write_text("Nobody Else,An Album,A Song,14 Nov 2023 22:13\n")
    cli("import", str(api), str(scrobbles), "--data-dir", str(first))
    cli("transform", "--data-dir", str(first))
    exported = _export(cli, first, tmp_path / "lb")
    cli("import", str(tmp_path / "lb"))
    cli("transform")
    plays = (
        "select played_at, played_at_local, started_at, date_sid, time_sid, ms_played,"
        " is_ms_played_estimated, duration_ms, track_id from dw.fact_track_played order by all"
    )
    before = query(first, plays)
    assert len(before) == exported["plays"] == 21
    assert query(data_dir, plays) == before
    summary = cli_json(cli, "import", str(tmp_path / "lb"), "--data-dir", str(first))
    assert summary["new_plays"] == 0
    assert summary["duplicates"]["same_play_from_other_source"] == 21


def _listen(at: int, artist: str, track: str, **info: object) -> str:
    meta = {"artist_name": artist, "track_name": track, "release_name": "An Album"}
    if info:
        meta["additional_info"] = info  # type: ignore[assignment]
    return json.dumps({"listened_at": at, "track_metadata": meta, "recording_msid": "x"})


def test_a_listenbrainz_user_export_zip(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Listens from other scrobblers say only their start; the zip also holds files that
    are not listens (the profile, feedback)."""
    archive = tmp_path / "listenbrainz_someone.zip"
    start = 1_700_000_000
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("user.json", json.dumps({"user_id": 1, "username": "someone"}))
        out.writestr("feedback.jsonl", json.dumps({"recording_msid": "x", "score": 1}) + "\n")
        out.writestr(
            "listens/2023/11.jsonl",
            "\n".join(
                [
                    _listen(start, "Radiohead", "Airbag", duration_ms=284_000),
                    _listen(start + 300, "Radiohead", "Paranoid Android"),
                    _listen(
                        start + 900, "Björk", "Jóga",
                        spotify_id="https://open.spotify.com/track/0AVFVsY6a6tVZK2ZgCPGpm",
                    ),
                ]
            ) + "\n",
        )  # fmt: skip
    summary = cli_json(cli, "import", str(archive))
    assert summary["new_plays_per_source"] == {"listenbrainz": 3}
    skipped = {Path(item["file"].split(":")[-1]).name for item in summary["files_skipped"]}
    assert skipped == {"user.json", "feedback.jsonl"}
    cli("transform")
    rows = query(
        data_dir,
        "select track_id, ms_played, is_ms_played_estimated, is_stream, started_at, played_at"
        " from dw.fact_track_played order by started_at",
    )
    airbag, paranoid, joga = rows
    # no time heard: each counts with its track's length once Spotify's metadata says it
    # (enrich), like a scrobble; until then its length is unknown and it still counts
    for play in rows:
        assert play[1] is None and play[2] and play[3]
        assert play[4] == play[5]
    assert joga[0] == "0AVFVsY6a6tVZK2ZgCPGpm"
    assert airbag[0] is None and paranoid[0] is None
    status = cli_json(cli, "status")
    assert status["sources"]["listenbrainz"]["plays"] == 3


def test_listens_matched_to_a_scrobble(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """A Last.fm scrobble (start to the minute) and the same listen on ListenBrainz (to the
    second) are one play, kept as the listen."""
    (tmp_path / "scrobbles.csv").write_text("Radiohead,OK Computer,Airbag,14 Nov 2023 22:13\n")
    (tmp_path / "listens.jsonl").write_text(_listen(1_700_000_020, "radiohead", "Airbag") + "\n")
    cli("import", str(tmp_path / "scrobbles.csv"))
    summary = cli_json(cli, "import", str(tmp_path / "listens.jsonl"))
    assert summary["new_plays"] == 0
    assert summary["duplicates"]["same_play_from_other_source"] == 1
    cli("transform")
    assert query(data_dir, "select source, seen_by_sources from dw.fact_track_played") == [
        ("listenbrainz", "lastfm,listenbrainz")
    ]


def test_a_broken_listen_names_file_and_line(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(_listen(1_700_000_000, "Radiohead", "Airbag") + "\n")
    cli("import", str(good))
    bad = tmp_path / "listens.jsonl"
    bad.write_text(
        _listen(1_700_000_100, "Radiohead", "Creep") + "\n"
        + _listen(99, "Radiohead", "Creep") + "\n"
    )  # fmt: skip
    result = cli("import", str(bad), expect=1)
    assert "listens.jsonl" in result.output and "row 2" in result.output
    assert "nothing was imported" in result.output
    assert query(data_dir, "select count(*) from raw.listenbrainz_listens") == [(1,)]


def test_a_user_export_with_empty_feedback(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """A user who never gave feedback or pinned a recording gets those files empty in the
    export: skipped, the listens imported (an empty file named alone is still an error)."""
    archive = tmp_path / "listenbrainz_someone.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("user.json", json.dumps({"user_id": 1, "username": "someone"}))
        out.writestr("feedback.jsonl", "")
        out.writestr("pinned_recording.jsonl", "")
        out.writestr("listens/2023/11.jsonl", _listen(1_700_000_000, "Radiohead", "Airbag") + "\n")
    summary = cli_json(cli, "import", str(archive))
    assert summary["new_plays_per_source"] == {"listenbrainz": 1}
    skipped = {Path(item["file"].split(":")[-1]).name for item in summary["files_skipped"]}
    assert skipped == {"user.json", "feedback.jsonl", "pinned_recording.jsonl"}
    empty = tmp_path / "feedback.jsonl"
    empty.write_text("")
    result = cli("import", str(empty), expect=1)
    assert "feedback.jsonl" in result.output and "empty" in result.output


def test_a_line_that_is_not_json_is_named(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    """Garbage or a cut-off line in JSON lines: the message names that line (DuckDB's own
    number is one past it), and nothing is stored."""
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(4)]
    bad = tmp_path / "listens.jsonl"
    bad.write_text("\n".join([*lines[:2], "not a listen", *lines[2:]]) + "\n")
    result = cli("import", str(bad), expect=1)
    assert "listens.jsonl, row 3:" in result.output
    assert "nothing was imported" in result.output
    bad.write_text("\n".join([*lines, lines[0][:25]]) + "\n")
    result = cli("import", str(bad), expect=1)
    assert "listens.jsonl, row 5:" in result.output
    assert not (data_dir / "warehouse.duckdb").exists()


def test_a_listen_with_an_empty_artist_is_set_aside(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    listens = tmp_path / "listens.jsonl"
    listens.write_text(
        _listen(1_700_000_000, "", "Airbag") + "\n"
        + _listen(1_700_000_300, "Radiohead", "  ") + "\n"
        + _listen(1_700_000_600, "Radiohead", "Creep") + "\n"
    )  # fmt: skip
    summary = cli_json(cli, "import", str(listens))
    assert summary["new_plays"] == 1
    assert summary["set_aside"] == {"no artist_name or track_name in the listen": 2}


def test_status_first_and_last_play_are_starts_in_every_source(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """A real extended-history play (its end and time heard) and a listen of it from
    another scrobbler (its start): `status` gives both sources the same first play."""
    audio = json.loads((EXTENDED_DIR / "Streaming_History_Audio_2023_3.json").read_text())
    row = next(r for r in audio if r["master_metadata_track_name"] and r["ms_played"] > 60_000)
    row = {**row, "ms_played": row["ms_played"] // 1000 * 1000}  # a listen says seconds
    end = datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    start = end - timedelta(milliseconds=row["ms_played"])
    (tmp_path / "Streaming_History_Audio_2023.json").write_text(json.dumps([row]))
    (tmp_path / "listens.jsonl").write_text(
        _listen(
            int(start.timestamp()),
            row["master_metadata_album_artist_name"],
            row["master_metadata_track_name"],
        )
        + "\n"
    )
    cli(
        "import",
        str(tmp_path / "Streaming_History_Audio_2023.json"),
        str(tmp_path / "listens.jsonl"),
    )
    status = cli_json(cli, "status")
    sources = status["sources"]
    assert status["play_times"] == "start of play"
    assert (
        sources["spotify_extended_history"]["first_play_at"]
        == sources["listenbrainz"]["first_play_at"]
        == status["first_play_at"]
        == status["last_play_at"]
        == start.isoformat()
    )
    assert "start of play" in cli("status").output


def test_a_bad_listen_after_blank_lines_is_named_by_its_line(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """Blank lines between listens (an edited file): the message names the line as an
    editor shows it."""
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(3)]
    impossible = _listen(100, "Radiohead", "Before Spotify")  # 1970
    listens = tmp_path / "listens.jsonl"
    listens.write_text("\n".join([lines[0], "", lines[1], "   ", "", impossible, lines[2]]) + "\n")
    result = cli("import", str(listens), expect=1)
    assert "listens.jsonl, row 6:" in result.output, result.output
    assert not (data_dir / "warehouse.duckdb").exists()


def test_a_podcast_listen_without_its_time_heard_is_set_aside(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """A listen marked as a podcast (audiobook, video) but without ms_played (an edited
    file): not music, and no time heard to count as other content; set aside with the
    reason, never dropped without a word."""
    listens = tmp_path / "listens.jsonl"
    listens.write_text(
        _listen(1_700_000_000, "A Show", "Episode 1", music_tracker_content_type="podcast")
        + "\n" + _listen(1_700_000_600, "Radiohead", "Creep") + "\n"
    )  # fmt: skip
    summary = cli_json(cli, "import", str(listens))
    assert summary["rows_read"] == 2
    assert summary["new_plays"] == 1 and summary["new_other_content"] == {}
    assert sum(summary["set_aside"].values()) == 1, summary["set_aside"]
    assert "podcast" in next(iter(summary["set_aside"]))


def test_listens_listenbrainz_read_from_spotify_join_the_spotify_plays(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    """ListenBrainz's own Spotify importer gives a listen Spotify's played_at, the end of
    play, as listened_at (its importer: listened_at = played_at; submission_client
    "listenbrainz", music_service "spotify.com"). Someone who linked Spotify to ListenBrainz
    and imports both exports has each play once: those listens are matched on their end,
    like API plays, not taken for a start minutes before."""
    history = EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"
    heard = [
        row for row in json.loads(history.read_text())
        if row["spotify_track_uri"] and row["master_metadata_track_name"]
        and row["ms_played"] >= 30_000  # what recently-played lists
    ]  # fmt: skip
    lines = []
    for row in heard:
        end = datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        url = "https://open.spotify.com/track/" + row["spotify_track_uri"].split(":")[-1]
        info = {"submission_client": "listenbrainz", "music_service": "spotify.com",
                "spotify_id": url, "origin_url": url, "duration_ms": row["ms_played"]}  # fmt: skip
        lines.append(
            _listen(
                int(end.timestamp()),
                row["master_metadata_album_artist_name"],
                row["master_metadata_track_name"],
                **info,
            )
        )
    (tmp_path / "listens.jsonl").write_text("\n".join(lines) + "\n")
    cli("import", str(history))
    summary = cli_json(cli, "import", str(tmp_path / "listens.jsonl"))
    assert summary["duplicates"]["same_play_from_other_source"] == len(heard) > 3000
    assert summary["new_plays"] == 0


def _frames(parsed: list[Parsed]) -> tuple[pl.DataFrame, ...]:
    return tuple(
        pl.concat(getattr(p, kind) for p in parsed) for kind in ("music", "other", "set_aside")
    )


def test_a_large_listens_file_read_in_blocks_is_read_as_one(
    built: Path, cli: Cli, tmp_path: Path
) -> None:
    """Our own export of the real history, as JSON lines (blank lines added) and as
    ListenBrainz's older single array (a listen over several lines), read in blocks of
    whole listens (importers/blocks.py): the rows, keys and rows' numbers of one block."""
    _export(cli, built, tmp_path / "lb")
    lines = (tmp_path / "lb" / "listens.jsonl").read_text().splitlines()
    lines[:0] = (tmp_path / "lb" / "other_listens.jsonl").read_text().splitlines()
    lines.insert(1, json.dumps({"listened_at": 1_700_000_000, "track_metadata": {}}))
    jsonl = tmp_path / "listens.jsonl"
    jsonl.write_text("\n".join([*lines[:5000], "", "  ", *lines[5000:]]) + "\n")
    array = tmp_path / "listens.json"
    array.write_text("[\n" + ",\n".join(json.dumps(json.loads(x), indent=1) for x in lines) + "\n]")
    with duckdb.connect() as con:
        for path, block_bytes in ((jsonl, 2**20), (array, array.stat().st_size // 3)):
            size = path.stat().st_size
            whole = list(read_listens(con, path, path.name, block_bytes=size))
            assert len(whole) == 1
            music, other, set_aside = _frames(whole)
            assert music.height > 20_000 and other.height > 100 and set_aside.height == 1
            parts = list(read_listens(con, path, path.name, block_bytes=block_bytes))
            assert len(parts) > 2
            for got, expected in zip(_frames(parts), (music, other, set_aside), strict=True):
                polars.testing.assert_frame_equal(got, expected)


def test_a_bad_listen_in_a_late_block_is_named_by_its_line(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(400)]
    listens = tmp_path / "listens.jsonl"
    listens.write_text("\n".join(lines) + "\n")
    summary = cli_json(cli, "import", str(listens), "--data-dir", str(tmp_path / "ok"))
    assert summary["new_plays"] == 400
    lines[350] = '{"listened_at": 1700000000, "track_metadata": {'
    listens.write_text("\n".join(lines) + "\n")
    result = cli("import", str(listens), expect=1)
    assert "listens.jsonl, row 351:" in result.output and "not JSON" in result.output
    assert not (data_dir / "warehouse.duckdb").exists()


def test_a_broken_array_in_a_late_block_is_refused(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ListenBrainz's older single array, broken far into the file: refused naming the
    record, nothing stored; nothing after a record the splitter cannot read is passed
    over (two arrays in one file lost the second one's listens in review)."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(blocks, "_READ_CHARS", 1000)
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(400)]
    array = "[\n" + ",\n".join(lines) + "\n]\n"
    later = lines[301]
    broken = {
        "truncated": (array[: array.index(later) + 50], "row 302", "not JSON"),
        "ends early": (array[: array.index(later) - 2], "row 302", "does not end"),
        "two arrays": (array + array, "row 400", "more after the array's end"),
        "not a listen": (array.replace(later, "12, " + later), "row 302", "not a JSON object"),
        "no comma": (array.replace(",\n" + later, "\n" + later), "row 302", "no comma"),
        "a comma too many": (array.replace("\n]", ",\n]"), "row 401", "no record after"),
        "not JSON": (array.replace(later, later[:-1] + ",}"), "row 302", "not JSON"),
        "a wrong type": (
            array.replace(later, later.replace('"listened_at": 17', '"listened_at": "x", "n": 17')),
            "record/value 302",
            "Failed to cast",
        ),
    }
    listens = tmp_path / "listens.json"
    for case, (text, where, why) in broken.items():
        listens.write_text(text)
        result = cli("import", str(listens), expect=1)
        output = " ".join(result.output.split())
        assert where in output and why in output, (case, output)
        assert not (data_dir / "warehouse.duckdb").exists(), case
    # valid, and beyond what Python's decoder reads by default: a 5,000-digit number
    huge = array.replace(later, later.replace('"x"}', '"x", "n": ' + "9" * 5000 + "}"))
    assert huge != array
    listens.write_text(huge)
    assert cli_json(cli, "import", str(listens))["new_plays"] == 400


def test_a_file_read_in_blocks_is_read_alone(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ListenBrainz folder before the Spotify one (the natural order in a folder): its
    blocks are read while no history file is parsed beside them (beside two, an 8 MiB
    block ran out of the 128 MB cap about half the time)."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 2**16)
    exports = tmp_path / "exports"
    (exports / "listenbrainz").mkdir(parents=True)
    (exports / "spotify").mkdir()
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(2000)]
    (exports / "listenbrainz" / "listens.jsonl").write_text("\n".join(lines) + "\n")
    for path in EXTENDED_DIR.glob("Streaming_History_*.json"):
        (exports / "spotify" / path.name).write_bytes(path.read_bytes())
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    lock = threading.Lock()

    def watched(module: Any, kind: str) -> None:
        real = module.read_json_rows

        def read_json_rows(*args: Any, **kwargs: Any) -> Any:
            with lock:
                running.append(kind)
                overlaps.append(tuple(running))
            time.sleep(0.05)  # long enough for the readers' files to start beside it
            try:
                return real(*args, **kwargs)
            finally:
                with lock:
                    running.remove(kind)

        monkeypatch.setattr(module, "read_json_rows", read_json_rows)

    watched(listenbrainz, "block")
    watched(readers, "history")
    summary = cli_json(cli, "import", str(exports))
    assert summary["new_plays_per_source"]["listenbrainz"] == 2000
    assert overlaps.count(("block",)) > 3  # read in blocks
    assert all(len(at_once) == 1 for at_once in overlaps if "block" in at_once), overlaps
    assert any(len(at_once) == 2 for at_once in overlaps)  # the history files, two at once


def test_listens_over_several_lines_each_are_read_whole(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listens one after another, each over several lines (as ``jq`` prints them): not
    JSON lines, so not cut at line breaks but read whole, as before."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(400)]
    listens = tmp_path / "listens.json"
    listens.write_text("\n".join(json.dumps(json.loads(x), indent=2) for x in lines) + "\n")
    summary = cli_json(cli, "import", str(listens), "--source", "listenbrainz")
    assert summary["new_plays"] == 400


def test_a_byte_order_mark_alone_on_the_first_line_is_a_blank_line(
    cli: Cli, data_dir: Path, tmp_path: Path
) -> None:
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(3)]
    impossible = _listen(100, "Radiohead", "Before Spotify")
    listens = tmp_path / "listens.jsonl"
    listens.write_bytes(
        b"\xef\xbb\xbf\r\n" + "\r\n".join([lines[0], "", lines[1], impossible]).encode() + b"\r\n"
    )
    result = cli("import", str(listens), expect=1)
    assert "listens.jsonl, row 5:" in result.output, result.output


def test_a_wrong_type_after_blank_lines_in_a_late_block_is_named_by_its_line(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB's own message counts records, blank lines skipped, from the block's start:
    told as the line in the file, whole or in blocks."""
    lines = [_listen(1_700_000_000 + 300 * i, "Radiohead", f"Song {i}") for i in range(300)]
    lines[250] = lines[250].replace('"listened_at": 17', '"listened_at": "x", "n": 17')
    listens = tmp_path / "listens.jsonl"
    listens.write_text("\n\n".join(lines) + "\n")  # a blank line after every listen
    for block_bytes in (2**20, 4096):
        monkeypatch.setattr(blocks, "BLOCK_BYTES", block_bytes)
        result = cli("import", str(listens), expect=1)
        assert "in line 501:" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize(
    "corrupt", [30 * 3_600_000, 13 * 3_600_000, -5 * 3_600_000, -1_800_000, 18446744071909551]
)
def test_a_listen_told_again_with_a_corrupt_length_is_stored_once(
    cli: Cli, data_dir: Path, tmp_path: Path, corrupt: int
) -> None:
    """A listen's key is its ``listened_at``, and a stored copy is looked for within a day
    of its start. A length over a day or below zero (corrupt data) made the start days away
    from ``listened_at``: the same listen told again with its real length, in another
    import, was stored twice, and the star schema's uniqueness test failed every build
    (helper-75). A length below zero or over 12 hours (13; one that wraps round to -30
    minutes in microseconds, helper-76) tells no start: the listen starts at
    ``listened_at``."""
    at = 1_700_000_000
    spotify = {"submission_client": "listenbrainz", "music_service": "spotify.com"}
    for name, length in (("corrupt", corrupt), ("real", 200_000)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "listens.jsonl").write_text(
            _listen(at, "Band", "Song", duration_ms=length, **spotify) + "\n"
        )
        cli("import", str(tmp_path / name / "listens.jsonl"))
    rows = query(data_dir, "select started_at, played_at from raw.listenbrainz_listens")
    assert len(rows) == 1, rows
    assert rows[0][0] == rows[0][1] == datetime.fromtimestamp(at, UTC)
    # a length one ListenBrainz could tell still gives the start, as before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "listens.jsonl").write_text(
        _listen(at + 3_600, "Band", "Song", duration_ms=200_000, **spotify) + "\n"
    )
    cli("import", str(tmp_path / "other" / "listens.jsonl"))
    ((start,),) = query(
        data_dir, "select started_at from raw.listenbrainz_listens where played_at > $at",
        {"at": datetime.fromtimestamp(at, UTC)},
    )  # fmt: skip
    assert start == datetime.fromtimestamp(at + 3_600, UTC) - timedelta(milliseconds=200_000)
