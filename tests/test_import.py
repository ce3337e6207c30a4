"""The importer on the real exports in ../shared/data: figures computed independently."""

from __future__ import annotations

import csv
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from conftest import (
    ACCOUNT_DIR,
    EXTENDED_DIR,
    SPOTIFY_DATA,
    Cli,
    cli_json,
    extended_plays,
    load_rows,
    query,
)
from music_tracker.warehouse import RAW_SCHEMA_VERSION

AUDIO_FILES = sorted(EXTENDED_DIR.glob("Streaming_History_Audio_*.json"))
VIDEO_FILES = sorted(EXTENDED_DIR.glob("Streaming_History_Video_*.json"))
MUSIC_FILES = sorted(ACCOUNT_DIR.glob("StreamingHistory_music_*.json"))


def _extended_music_rows() -> dict[tuple[str, str, int], dict]:
    """Distinct natural keys of music rows with ms_played > 0, first occurrence kept."""
    rows: dict[tuple[str, str, int], dict] = {}
    for row in load_rows(*AUDIO_FILES):
        if row["spotify_track_uri"] and row["ms_played"] > 0:
            rows.setdefault((row["ts"], row["spotify_track_uri"], row["ms_played"]), row)
    return rows


def _expected_extended_music() -> dict[tuple[str, str, int], dict]:
    """The plays, less the copies of a play the export wrote twice (conftest)."""
    return extended_plays(*AUDIO_FILES)


def _expected_account_music() -> dict[tuple[str, str, str, int], dict]:
    plays: dict[tuple[str, str, str, int], dict] = {}
    for row in load_rows(*MUSIC_FILES):
        if row["msPlayed"] > 0:
            key = (row["endTime"], row["artistName"], row["trackName"], row["msPlayed"])
            plays.setdefault(key, row)
    return plays


def test_extended_history_counts_and_totals(cli: Cli, shared: Path, data_dir: Path) -> None:
    expected = _expected_extended_music()
    rows = _extended_music_rows()
    summary = cli_json(cli, "import", str(EXTENDED_DIR))
    assert len(rows) - len(expected) == 12  # plays the export wrote twice
    assert summary["new_plays"] == len(expected)
    assert summary["duplicates"]["same_play_written_twice"] == len(rows) - len(expected)
    # every row is kept; a copy belongs to its play
    ((count, plays, total_ms),) = query(
        data_dir,
        "select count(*), count(distinct play_id), sum(ms_played)"
        " from raw.spotify_extended_history where play_id is not null",
    )
    assert (count, plays) == (len(rows), len(expected))
    assert total_ms == sum(row["ms_played"] for row in rows.values())
    # one specific play, end time in UTC as exported
    (row,) = query(
        data_dir,
        "select track_name, artist_name, album_name, ms_played, track_id, conn_country"
        " from raw.spotify_extended_history where played_at = '2018-10-03 22:33:04+00'",
    )
    assert row == ("Back Around", "90 Miles", "Back Around", 185000, "1caTqvWIUlkpY122g17GIm", "CA")
    # offline_timestamp: ms in the 2018 file, s in the 2023 file; both become real times
    offline = query(
        data_dir,
        "select min(offline_at), max(offline_at) from raw.spotify_extended_history",
    )[0]
    assert offline[0].year == 2018 and offline[1].year == 2023


def test_episodes_and_video_are_kept_apart(cli: Cli, shared: Path, data_dir: Path) -> None:
    cli("import", str(EXTENDED_DIR))
    audio = load_rows(*AUDIO_FILES)
    episodes = {
        (r["ts"], r["spotify_track_uri"], r["ms_played"]) for r in audio if r["spotify_episode_uri"]
    }
    videos = {(r["ts"], r["spotify_track_uri"], r["ms_played"]) for r in load_rows(*VIDEO_FILES)}
    counts = dict(
        query(data_dir, "select content_type, count(*) from raw.other_plays group by all")
    )
    assert counts == {"podcast": len(episodes), "video": len(videos)}
    (music_with_episode,) = query(
        data_dir,
        "select count(*) from raw.spotify_extended_history"
        " where track_uri like 'spotify:episode:%'",
    )[0]
    assert music_with_episode == 0


def test_account_data_music_podcasts_audiobooks(cli: Cli, shared: Path, data_dir: Path) -> None:
    summary = cli_json(cli, "import", str(ACCOUNT_DIR))
    expected = _expected_account_music()
    assert summary["new_plays"] == len(expected)
    podcasts = load_rows(ACCOUNT_DIR / "StreamingHistory_podcast_0.json")
    audiobooks = load_rows(ACCOUNT_DIR / "StreamingHistory_audiobook_0.json")
    # plays: a row with no time heard is kept in raw but is not one
    assert summary["new_other_content"] == {
        "podcast": sum(1 for row in podcasts if row["msPlayed"] > 0),
        "audiobook": sum(1 for row in audiobooks if row["msPlayed"] > 0),
    }
    ((total_ms,),) = query(
        data_dir, "select sum(ms_played) from raw.spotify_account_data where play_id is not null"
    )
    assert total_ms == sum(row["msPlayed"] for row in expected.values())
    skipped = {Path(s["file"]).name for s in summary["files_skipped"]}
    assert skipped == {"Read_Me_First.txt"}


def test_reimport_changes_nothing(cli: Cli, shared: Path, data_dir: Path, tmp_path: Path) -> None:
    first = cli_json(cli, "import", str(ACCOUNT_DIR), str(EXTENDED_DIR))
    # new plays per source in the documented order, richest first, whatever the order of
    # the files or of their parts
    assert list(first["new_plays_per_source"]) == [
        "spotify_extended_history", "spotify_account_data"
    ]  # fmt: skip
    before = cli_json(cli, "status")
    again = cli_json(cli, "import", str(EXTENDED_DIR), str(ACCOUNT_DIR))
    assert again["new_plays"] == 0 and again["files_imported"] == 0
    # the same rows in a new file (different bytes): caught by the natural keys
    rows = load_rows(AUDIO_FILES[0])
    rewritten = tmp_path / "endsong_0.json"
    rewritten.write_text(json.dumps(list(reversed(rows)), indent=1))
    third = cli_json(cli, "import", str(rewritten))
    assert third["files_imported"] == 1 and third["new_plays"] == 0
    assert third["duplicates"]["already_stored"] > 0
    after = cli_json(cli, "status")
    assert after["plays_per_source"] == before["plays_per_source"]
    assert after["other_content"] == before["other_content"]
    landed = list((data_dir / "landing").rglob("*.json"))
    assert len(landed) == len({p.read_bytes() for p in landed})  # nothing stored twice


def test_zip_as_downloaded(cli: Cli, shared: Path, data_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "my_spotify_data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(EXTENDED_DIR.iterdir()):
            zf.write(path, f"Spotify Extended Streaming History/{path.name}")
        zf.writestr("Spotify Extended Streaming History/Userdata.json", '{"username": "x"}')
    summary = cli_json(cli, "import", str(archive))
    assert summary["new_plays"] == len(_expected_extended_music())
    skipped = {Path(s["file"].split(":")[-1]).name for s in summary["files_skipped"]}
    assert skipped == {"ReadMeFirst_ExtendedStreamingHistory.txt", "Userdata.json"}
    assert list(
        (data_dir / "landing" / "spotify_extended_history").glob(
            "*/Streaming_History_Audio_2018.json"
        )
    )


def test_same_play_from_account_data_is_one_play(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Account data written from the real extended rows (minute precision) adds no play."""
    expected = _expected_extended_music()
    account = [
        {
            "endTime": row["ts"][:16].replace("T", " "),
            "artistName": row["master_metadata_album_artist_name"],
            "trackName": row["master_metadata_track_name"],
            "msPlayed": row["ms_played"],
        }
        for row in expected.values()
    ]
    folder = tmp_path / "account"
    folder.mkdir()
    (folder / "StreamingHistory_music_0.json").write_text(json.dumps(account))
    cli("import", str(EXTENDED_DIR))
    summary = cli_json(cli, "import", str(folder))
    # account data's natural key (minute, artist, track, ms) merges a few real plays
    distinct = len({tuple(row.values()) for row in account})
    assert summary["new_plays"] == 0
    assert summary["duplicates"]["same_play_from_other_source"] == distinct
    assert summary["duplicates"]["repeated_in_input"] == len(account) - distinct
    # and the other way round: account data first, then the richer export
    cli("import", str(folder), "--data-dir", str(tmp_path / "second"))
    status = cli_json(cli, "status", "--data-dir", str(tmp_path / "second"))
    assert status["plays"] == distinct
    cli("import", str(EXTENDED_DIR), "--data-dir", str(tmp_path / "second"))
    status = cli_json(cli, "status", "--data-dir", str(tmp_path / "second"))
    assert status["plays"] == len(expected)
    assert status["plays_per_source"]["spotify_extended_history"] == len(expected)
    assert status["plays_per_source"]["spotify_account_data"] == distinct


def test_lastfm_scrobbles(cli: Cli, shared: Path, data_dir: Path, tmp_path: Path) -> None:
    """Scrobbles written from the real extended rows (start of play, minute precision)."""
    expected = [r for r in _expected_extended_music().values() if r["ms_played"] >= 30_000]
    scrobbles = tmp_path / "scrobbles.csv"
    with scrobbles.open("w", newline="") as handle:
        writer = csv.writer(handle)
        for row in expected:
            end = datetime.strptime(row["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            start = end - timedelta(milliseconds=row["ms_played"])
            writer.writerow(
                [
                    row["master_metadata_album_artist_name"],
                    row["master_metadata_album_album_name"],
                    row["master_metadata_track_name"],
                    start.strftime("%d %b %Y %H:%M"),
                ]
            )
    alone = cli_json(cli, "import", str(scrobbles), "--data-dir", str(tmp_path / "alone"))
    with scrobbles.open(newline="") as handle:
        # Last.fm's natural key: artist, track and the minute (the album is not part of it)
        keys = {(artist, track, date) for artist, _, track, date in csv.reader(handle)}
    assert alone["new_plays"] == len(keys)
    assert alone["duplicates"]["repeated_in_input"] == len(expected) - len(keys)
    cli("import", str(EXTENDED_DIR))
    summary = cli_json(cli, "import", str(scrobbles))
    assert summary["new_plays"] == 0
    assert summary["duplicates"]["same_play_from_other_source"] == alone["new_plays"]


def test_lastfm_quoted_fields_and_header(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    scrobbles = tmp_path / "lastfm.csv"
    scrobbles.write_text(
        "artist,album,track,date\n"
        '"Crosby, Stills & Nash",Crosby Stills & Nash,"Suite: Judy Blue Eyes",22 Mar 2021 16:55\n'
        "Radiohead,OK Computer,Airbag,01 Jan 2009 00:01\n"
    )
    summary = cli_json(cli, "import", str(scrobbles))
    assert summary["new_plays"] == 2
    rows = query(data_dir, "select artist_name, started_at from raw.lastfm_scrobbles order by 2")
    assert rows[1][0] == "Crosby, Stills & Nash"
    assert rows[1][1] == datetime(2021, 3, 22, 16, 55, tzinfo=UTC)


def _old_account_export(
    folder: Path, music_rows: int | None = None
) -> tuple[list[dict], list[dict]]:
    """The real 2024 account export as an old one writes it: its podcast plays mixed into
    StreamingHistory0.json as artist = show, track = episode, and no podcast file."""
    music = load_rows(*sorted(ACCOUNT_DIR.glob("StreamingHistory_music_*.json")))[:music_rows]
    podcasts = load_rows(ACCOUNT_DIR / "StreamingHistory_podcast_0.json")
    mixed = music + [
        {
            "endTime": p["endTime"],
            "artistName": p["podcastName"],
            "trackName": p["episodeName"],
            "msPlayed": p["msPlayed"],
        }
        for p in podcasts
    ]
    folder.mkdir()
    (folder / "StreamingHistory0.json").write_text(json.dumps(mixed))
    return music, podcasts


def test_old_account_data_mixes_podcasts(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    """StreamingHistory0.json (before 2023) lists episodes as artist=show, track=episode."""
    folder = tmp_path / "old"
    music, podcasts = _old_account_export(folder, music_rows=500)
    (folder / "StreamingHistory_podcast_0.json").write_text(json.dumps(podcasts))
    summary = cli_json(cli, "import", str(folder))
    assert summary["new_plays"] == len(
        {
            (m["endTime"], m["artistName"], m["trackName"], m["msPlayed"])
            for m in music
            if m["msPlayed"] > 0
        }
    )
    shows = {p["podcastName"] for p in podcasts}
    (leaked,) = query(
        data_dir,
        "select count(*) from raw.spotify_account_data where list_contains($shows, artist_name)",
        {"shows": sorted(shows)},
    )[0]
    assert leaked == 0


def test_status_json(cli: Cli, shared: Path) -> None:
    cli("import", str(EXTENDED_DIR), str(ACCOUNT_DIR))
    status = cli_json(cli, "status")
    # starts of play: the first ended 20:37:24 after 239,690 ms heard; the last to start
    # (account data, minute precision) ended 20:14 after 975 ms
    assert status["first_play_at"] == "2018-09-12T20:33:24.310000+00:00"
    assert status["last_play_at"] == "2024-10-03T20:13:59.025000+00:00"
    assert status["plays"] == len(_expected_extended_music()) + len(_expected_account_music())
    assert set(status["plays_per_source"]) == {
        "spotify_extended_history",
        "spotify_api",
        "spotify_account_data",
        "lastfm",
        "listenbrainz",
    }


def test_forced_source(cli: Cli, tmp_path: Path) -> None:
    odd = tmp_path / "export.txt"
    odd.write_text("Radiohead,OK Computer,Airbag,2009-01-01 00:01\n")
    result = cli("import", str(odd), expect=1)
    assert "unknown format" in result.output
    result = cli("import", str(odd), "--source", "lastfm", expect=1)
    assert "row 1" in result.output and "impossible timestamp" in result.output
    result = cli("import", str(AUDIO_FILES[0]), "--source", "lastfm", expect=1)
    assert "content is spotify_extended_history" in result.output


def test_a_forced_source_on_the_export_as_downloaded(cli: Cli, tmp_path: Path) -> None:
    """`--source` on the export folder or zip as downloaded reads its history files as that
    format and skips the read-me with a note, as the same import without it does."""
    archive = tmp_path / "my_spotify_data.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(EXTENDED_DIR.iterdir()):
            zipped.write(path, f"Spotify Extended Streaming History/{path.name}")
    for export, source, read_me in (
        (ACCOUNT_DIR, "spotify_account_data", "Read_Me_First.txt"),
        (archive, "spotify_extended_history", "ReadMeFirst_ExtendedStreamingHistory.txt"),
    ):
        plain = cli_json(cli, "import", str(export), "--data-dir", str(tmp_path / "plain"))
        forced = cli_json(
            cli, "import", str(export), "--source", source, "--data-dir", str(tmp_path / "forced")
        )  # fmt: skip
        assert forced["new_plays"] == plain["new_plays"] > 0
        assert forced["files_imported"] == plain["files_imported"]
        assert [s["file"] for s in forced["files_skipped"]] == [
            s["file"] for s in plain["files_skipped"]
        ]
        assert any(s["file"].endswith(read_me) for s in forced["files_skipped"])
    # a file of the format's shape in the folder is still read as that format
    folder = tmp_path / "lastfm"
    folder.mkdir()
    (folder / "Read_Me.txt").write_text("Your scrobbles, one a line.\n")
    (folder / "scrobbles.txt").write_text("Radiohead,OK Computer,Airbag,2009-01-01 00:01\n")
    result = cli("import", str(folder), "--source", "lastfm", expect=1)
    assert "scrobbles.txt" in result.output and "impossible timestamp" in result.output


def test_older_warehouse_is_brought_up_to_date(cli: Cli, shared: Path, data_dir: Path) -> None:
    """A warehouse of raw schema version 1 (before transform_runs, play_id_overrides and
    the ListenBrainz and exclusions tables) keeps its plays, answers `status` read-only as
    it is, and gains what later versions added the next time a command that writes opens
    it."""
    import duckdb

    cli("import", str(AUDIO_FILES[0]))
    plays = cli_json(cli, "status")["plays"]
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute("drop table raw.transform_runs")
        con.execute("drop table raw.play_id_overrides")
        con.execute("drop table raw.listenbrainz_listens")  # schema 7 added these two
        con.execute("drop table raw.exclusions")
        # import_runs as versions before 6 had it: with a primary key
        con.execute("create table raw.keyed as select * from raw.import_runs")
        con.execute("drop table raw.import_runs")
        con.execute(
            "create table raw.import_runs (run_id varchar primary key, command varchar,"
            " started_at timestamptz, finished_at timestamptz, summary json)"
        )
        con.execute("insert into raw.import_runs select * from raw.keyed")
        con.execute("drop table raw.keyed")
        con.execute("update raw.schema_version set version = 1")
    assert cli_json(cli, "status")["plays"] == plays  # read-only: readable as it is
    cli("import", str(AUDIO_FILES[0]))  # a writer: nothing new to import, schema brought up
    assert cli_json(cli, "status")["plays"] == plays
    ((version, runs, moved, keys, imports),) = query(
        data_dir,
        "select max(version), (select count(*) from raw.transform_runs),"
        " (select count(*) from raw.play_id_overrides),"
        " (select count(*) from duckdb_constraints() where schema_name = 'raw'"
        "  and constraint_type = 'PRIMARY KEY'),"
        " (select count(*) from raw.import_runs) from raw.schema_version",
    )
    # schema 6 dropped the primary keys (each cost the checkpoint of every poll); the run
    # recorded before is still there, beside the one that brought the schema up
    assert (version, runs, moved, keys, imports) == (RAW_SCHEMA_VERSION, 0, 0, 0, 2)
    assert query(data_dir, "select count(*) from raw.listenbrainz_listens, raw.exclusions") == [
        (0,)
    ]


API_PAGE = SPOTIFY_DATA / "api_samples" / "recently-played__zmb3-spotify.json"


def test_api_plays_are_keyed_on_the_instant_not_its_spelling(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    page = json.loads(API_PAGE.read_text())
    first = cli_json(cli, "import", str(API_PAGE), "--source", "spotify_api")
    assert first["new_plays"] == len(page["items"]) > 0
    # the same plays with their times spelled another way ("…:54.721Z" -> "…:54.721000Z")
    for item in page["items"]:
        item["played_at"] = item["played_at"].replace("Z", "000Z")
    respelled = tmp_path / "recently_played.json"
    respelled.write_text(json.dumps(page))
    again = cli_json(cli, "import", str(respelled), "--source", "spotify_api")
    assert again["new_plays"] == 0 and again["duplicates"]["already_stored"] == len(page["items"])


def test_api_rows_stored_under_the_old_key_are_rekeyed(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    """A warehouse of raw schema 3 keyed API rows on the text of played_at; opening it for
    writing re-keys them, so the same plays polled again under another spelling add
    nothing."""
    import duckdb

    page = json.loads(API_PAGE.read_text())
    cli("import", str(API_PAGE), "--source", "spotify_api")
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        # the old key: md5 of the text exactly as Spotify sent it
        con.execute("create temp table texts (played_at_text varchar, track_id varchar)")
        con.executemany(
            "insert into texts values (?, ?)",
            [(item["played_at"], item["track"]["id"]) for item in page["items"]],
        )
        con.execute(
            "update raw.spotify_api_plays as t"
            " set source_key = md5(concat_ws(chr(31), x.played_at_text, x.track_id))"
            " from texts as x where x.track_id = t.track_id"
            " and cast(x.played_at_text as timestamptz) = t.played_at"
        )
        con.execute("update raw.schema_version set version = 3")
        old = [
            key for (key,) in con.execute("select source_key from raw.spotify_api_plays").fetchall()
        ]
    for item in page["items"]:
        item["played_at"] = item["played_at"].replace("Z", "000Z")
    respelled = tmp_path / "recently_played.json"
    respelled.write_text(json.dumps(page))
    again = cli_json(cli, "import", str(respelled), "--source", "spotify_api")
    assert again["new_plays"] == 0
    ((version, plays, rekeyed),) = query(
        data_dir,
        "select (select max(version) from raw.schema_version), count(*),"
        " count(*) filter (where not list_contains(?, source_key)) from raw.spotify_api_plays",
        [old],
    )
    assert (version, plays, rekeyed) == (RAW_SCHEMA_VERSION, len(page["items"]), len(page["items"]))


def test_schema_8_keeps_the_moves_an_older_warehouse_made(cli: Cli, tmp_path: Path) -> None:
    """raw.play_id_moves (every move, where builds look for plays merged away) starts from
    the overrides an older warehouse holds, the latest move of each row."""
    from test_dedupe_windows import _a_paused_play_stored_as_two

    data, dd = _a_paused_play_stored_as_two(cli, tmp_path)
    assert cli_json(cli, "rematch", *dd)["plays_merged"] == 1
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        con.execute("drop table raw.play_id_moves")
        con.execute("update raw.schema_version set version = 7")
    cli("rematch", *dd)  # a writer: nothing moves, the schema is brought up
    moves = query(data, "select * exclude (changed_at) from raw.play_id_moves")
    assert len(moves) == 1
    assert moves == query(data, "select * exclude (changed_at) from raw.play_id_overrides")
    assert query(data, "select max(version) from raw.schema_version") == [(RAW_SCHEMA_VERSION,)]


def test_a_data_folder_with_glob_characters_in_its_path(
    cli: Cli, shared: Path, tmp_path: Path
) -> None:
    """Staged files are listed, never globbed: "[2024] *music*" is a folder name like any."""
    data = tmp_path / "[2024] *music*" / "data"
    first = cli_json(cli, "import", str(EXTENDED_DIR), str(ACCOUNT_DIR), "--data-dir", str(data))
    assert first["new_plays"] == len(_expected_extended_music()) + len(_expected_account_music())
    assert first["set_aside"]  # the set-aside rows were stored through the listed files too
    again = cli_json(cli, "import", str(EXTENDED_DIR), "--data-dir", str(data))
    assert again["new_plays"] == 0
    status = cli_json(cli, "status", "--data-dir", str(data))
    assert status["plays"] == first["new_plays"]


def test_a_question_mark_in_the_data_folder_is_refused(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "what?" / "data"
    result = cli("import", str(EXTENDED_DIR), "--data-dir", str(data), expect=2)
    assert f"MUSIC_TRACKER_DATA_DIR='{data}': contains '?'" in result.output
    assert "Traceback" not in result.output
    assert not data.exists()


def test_podcasts_in_old_account_data_without_a_podcast_file(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by how they were heard (importers/podcasts.py), listed in `status` with the
    reason, and correctable both ways by the owner's settings."""
    music, podcasts = _old_account_export(tmp_path / "old")
    summary = cli_json(cli, "import", str(tmp_path / "old"))
    decided = {s["show"]: s for s in cli_json(cli, "status")["podcast_shows_in_old_account_data"]}
    episode_ms = sum(p["msPlayed"] for p in podcasts)
    caught_ms = sum(p["msPlayed"] for p in podcasts if p["podcastName"] in decided)
    assert caught_ms / episode_ms > 0.9  # of the listening time that was episodes
    assert summary["new_other_content"]["podcast"] == sum(
        1 for p in podcasts if p["podcastName"] in decided and p["msPlayed"] > 0
    ) + sum(1 for m in music if m["artistName"] in decided and m["msPlayed"] > 0)
    wrong = sorted(set(decided) - {p["podcastName"] for p in podcasts})
    assert wrong == []  # a 3.5-hour sound bath heard once stays music
    assert decided["The Psychology of your 20s"]["reason"].startswith("episodes: ")
    assert "Science Vs" not in decided
    text = cli("status").output
    assert "podcast, not music (old account data): The Psychology of your 20s" in text

    # the owner corrects it: that artist is music, and a show the evidence missed is one
    monkeypatch.setenv("MUSIC_TRACKER_NOT_PODCASTS", '["The Psychology of your 20s"]')
    monkeypatch.setenv("MUSIC_TRACKER_PODCAST_SHOWS", '["Science Vs"]')
    fresh = tmp_path / "fresh"
    cli_json(cli, "import", str(tmp_path / "old"), "--data-dir", str(fresh))
    again = {
        s["show"]: s["reason"]
        for s in cli_json(cli, "status", "--data-dir", str(fresh))[
            "podcast_shows_in_old_account_data"
        ]
    }
    assert "The Psychology of your 20s" not in again
    assert again["Science Vs"] == "MUSIC_TRACKER_PODCAST_SHOWS"
    (music_rows,) = query(
        fresh,
        "select count(*) from raw.spotify_account_data"
        " where artist_name = 'The Psychology of your 20s'",
    )[0]
    assert music_rows == sum(
        1 for p in podcasts if p["podcastName"] == "The Psychology of your 20s"
    )


_FREED_MEMORY_SCRIPT = """
import duckdb
from music_tracker import warehouse

def resident_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) // 1024 for l in status if l.startswith("VmRSS"))

con = duckdb.connect(config={"memory_limit": "400MB"})
# no progress bar: DuckDB draws one on stdout for a query past 2 s (on a busy machine)
con.execute("set enable_progress_bar = false")
con.execute("create table t as select repeat(i::varchar, 20) s from range(2000000) r(i)")
con.execute("drop table t")
held = resident_mb()
warehouse.release_freed_memory()
print(held, resident_mb())
"""


_PROGRESS_BAR_SCRIPT = """
import sys
from pathlib import Path
from music_tracker import warehouse

for read_only in (False, True):
    with warehouse.connect(Path(sys.argv[1]), read_only=read_only) as con:
        print(con.execute("select current_setting('enable_progress_bar')").fetchone()[0])
"""


def test_the_warehouse_never_draws_on_stdout(tmp_path: Path) -> None:
    """A query past 2 s (a large import, a busy machine) would have DuckDB draw a progress
    bar on stdout, inside the JSON that `--json` prints. In a process of its own, as the
    command runs (under pytest DuckDB starts without it)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PROGRESS_BAR_SCRIPT, str(tmp_path / "warehouse.duckdb")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["False", "False"], done.stdout


def test_memory_duckdb_freed_is_handed_back_to_the_system() -> None:
    """What an import purges between its steps (warehouse.release_freed_memory): DuckDB
    keeps freed memory for reuse; the purge returns it, so the next step starts lower."""
    import subprocess
    import sys

    if not Path("/proc/self/status").exists():
        pytest.skip("reads resident memory from /proc (Linux)")
    result = subprocess.run(
        [sys.executable, "-c", _FREED_MEMORY_SCRIPT], capture_output=True, text=True, check=True
    )
    held, after = map(int, result.stdout.split())
    assert held - after > 50, (held, after)


def _wide_extended_history(
    folder: Path, files: int, rows_per_file: int, late: timedelta = timedelta()
) -> int:
    """Extended-history files of distinct plays, one every 5 minutes from 2020 on (plus
    ``late``), with every text field an export fills; returns how many plays they hold."""
    folder.mkdir(parents=True)
    at = datetime(2020, 1, 1, tzinfo=UTC) + late
    for number in range(files):
        rows = []
        for _ in range(rows_per_file):
            at += timedelta(minutes=5)
            track = f"{len(rows) % 997:022d}"
            rows.append(
                {
                    "ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "username": "owner",
                    "platform": "Android OS 14 API 34 (Google, Pixel 8)",
                    "ms_played": 180_000 + len(rows) % 1000,
                    "conn_country": "DE",
                    "ip_addr": f"192.0.2.{len(rows) % 250}",
                    "master_metadata_track_name": f"Track {track} (Remastered 2011)",
                    "master_metadata_album_artist_name": f"Artist {len(rows) % 311}",
                    "master_metadata_album_album_name": f"Album {len(rows) % 523}",
                    "spotify_track_uri": f"spotify:track:{track}",
                    "reason_start": "trackdone",
                    "reason_end": "trackdone",
                    "shuffle": False,
                    "skipped": False,
                    "offline": False,
                    "offline_timestamp": int(at.timestamp()),
                    "incognito_mode": False,
                }
            )
        (folder / f"Streaming_History_Audio_2020_{number}.json").write_text(json.dumps(rows))
    return files * rows_per_file


def test_an_import_in_many_parts_stays_within_a_small_memory_cap(tmp_path: Path) -> None:
    """PARTS_ON_ONE_THREAD (importers/run.py): the parts of a large import go into one
    transaction. Inserted on two threads, each part left partly filled row groups in
    DuckDB's memory until the cap ran out (10 million plays in parts of 150,000 rows under
    128 MB; here 180,000 plays in parts of 9,000 under 64 MB, where two threads ran out at
    12 files and passed at 10).

    The cap stays clear of what reading one file needs: DuckDB's JSON reader holds about
    46 MiB for a file of 15,000 plays whatever its thread count, which failed under 48 MB
    (45.7 MiB) about once in 60 runs."""
    from music_tracker.importers.run import ImportOptions, run_import
    from music_tracker.settings import Settings

    plays = _wide_extended_history(tmp_path / "export", files=12, rows_per_file=15_000)
    settings = Settings(data_dir=tmp_path / "data", duckdb_memory_limit="64MB")
    summary = run_import(settings, [tmp_path / "export"], ImportOptions(part_rows=9_000))
    assert summary.new_plays == plays
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        stored = con.execute("select count(*) from raw.spotify_extended_history").fetchone()
    assert stored == (plays,)


_OTHER_ROWS_SCRIPT = """
import sys, threading, time
from pathlib import Path
from music_tracker.importers import staging
from music_tracker.importers.run import run_import
from music_tracker.settings import Settings

def resident_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

peak, rises = [0], []
original = staging.Staging.store_other

def store_other(self, now):
    start = peak[0] = resident_mb()
    done = threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], resident_mb())
            time.sleep(0.002)
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return original(self, now)
    finally:
        done.set()
        sampler.join()
        rises.append(peak[0] - start)

staging.Staging.store_other = store_other
settings = Settings(data_dir=Path(sys.argv[2]), duckdb_memory_limit="64MB")
summary = run_import(settings, [Path(sys.argv[1])])
print(summary.other_content["podcast"], rises[0])
"""


def test_other_plays_are_stored_without_holding_them_whole(tmp_path: Path) -> None:
    """Rule 1 for podcast, audiobook and video rows is decided on their keys; the rows it
    keeps go from the staged files into the warehouse. Holding every staged row whole
    took the import at 10 million plays from about 270 MB to 547 MB at its end. Here
    40,000 episodes with long names (160 MB of text), in a process of its own."""
    import subprocess
    import sys

    if not Path("/proc/self/status").exists():
        pytest.skip("reads resident memory from /proc (Linux)")
    export = tmp_path / "export"
    export.mkdir()
    at = datetime(2020, 1, 1, tzinfo=UTC)
    for number in range(16):
        rows = []
        for _ in range(2_500):
            at += timedelta(minutes=30)
            rows.append(
                {
                    "ts": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "ms_played": 1_200_000,
                    "episode_name": f"Episode at {at:%Y-%m-%d %H:%M} " + "notes " * 680,
                    "episode_show_name": f"Show {at.month}",
                    "spotify_episode_uri": f"spotify:episode:{at:%Y%m%d%H%M}",
                }
            )
        (export / f"Streaming_History_Audio_2020_{number}.json").write_text(json.dumps(rows))
    result = subprocess.run(
        [sys.executable, "-c", _OTHER_ROWS_SCRIPT, str(export), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        check=True,
    )
    stored, rise_mb = map(int, result.stdout.split())
    assert stored == 40_000
    assert rise_mb < 160, rise_mb  # 272 MB when they were held whole (106-108 now)


def test_an_import_keeps_no_copy_of_the_files_it_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB caches the contents of the files it reads, local ones too, inside the
    import's memory cap: 83 MB of staged files after storing the other plays of 10
    million (625 files), room the inserts needed. The import turns that cache off."""
    from music_tracker.importers import staging
    from music_tracker.importers.run import ImportOptions, run_import
    from music_tracker.settings import Settings

    cached: list[int] = []
    store_other = staging.Staging.store_other

    def store_other_then_look(self: staging.Staging, now: datetime) -> object:
        stored = store_other(self, now)
        (held,) = self.con.execute(
            "select coalesce(sum(memory_usage_bytes), 0) from duckdb_memory()"
            " where tag = 'EXTERNAL_FILE_CACHE'"
        ).fetchone()  # type: ignore[misc]
        cached.append(held)
        return stored

    monkeypatch.setattr(staging.Staging, "store_other", store_other_then_look)
    plays = _wide_extended_history(tmp_path / "export", files=3, rows_per_file=5_000)
    summary = run_import(
        Settings(data_dir=tmp_path / "data"), [EXTENDED_DIR, tmp_path / "export"],
        ImportOptions(part_rows=4_000),
    )  # fmt: skip
    assert summary.new_plays > plays
    assert cached == [0]


@pytest.mark.parametrize("limit", ["1.5GB", "2000TB"])
def test_cached_table_blocks_go_and_the_memory_cap_stays(tmp_path: Path, limit: str) -> None:
    """After each part's insert an import lets go of the table blocks DuckDB keeps cached
    (``warehouse.drop_cached_blocks``), by lowering its cap for a moment. The cap set back
    is the one configured, not DuckDB's rounded display of it: setting that back lost up
    to a tenth of a GiB each time (1.5GB went to 1.0 GiB within a few parts), and DuckDB
    cannot read back the PiB it shows for 2000TB (helper-52)."""
    from music_tracker import warehouse

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("set memory_limit = $limit", {"limit": limit})
        (configured,) = con.execute("select current_setting('memory_limit')").fetchone()  # type: ignore[misc]
        con.execute(
            "create table t as select range as n, md5(range::varchar) as s from range(1500000)"
        )
        con.execute("checkpoint")

        def cached_mb() -> float:
            (held,) = con.execute(
                "select coalesce(sum(memory_usage_bytes), 0) / 2^20 from duckdb_memory()"
                " where tag = 'BASE_TABLE'"
            ).fetchone()  # type: ignore[misc]
            return float(held)

        for _ in range(4):
            con.execute("select count(distinct s) from t").fetchone()  # the blocks, read
            assert cached_mb() > 20
            warehouse.drop_cached_blocks(con, limit)
            assert cached_mb() <= 16  # what DuckDB's other memory and 16 MiB leave room for
            assert con.execute("select current_setting('memory_limit')").fetchone() == (configured,)


def test_rows_are_stored_under_a_share_of_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The matching of the next part runs beside each part's insert, in the same process:
    DuckDB stores the rows under three quarters of its cap (``STORING_SHARE``). Every
    insert sees that cap, and the cached blocks let go of after each part's insert
    (``drop_cached_blocks``, which lowers the cap for a moment) leave that cap, not the
    configured one. At 10 million plays: 342-347 MiB against 361-399."""
    from music_tracker import warehouse
    from music_tracker.importers import staging
    from music_tracker.importers.run import STORING_SHARE, ImportOptions, run_import
    from music_tracker.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", duckdb_memory_limit="200MB")
    _wide_extended_history(tmp_path / "first", files=3, rows_per_file=5_000)
    run_import(settings, [tmp_path / "first"])
    seen: list[str] = []
    dropped: list[tuple[int, str]] = []  # (cached bytes before, the cap after)

    def cap_of(con: duckdb.DuckDBPyConnection) -> str:
        (cap,) = con.execute("select current_setting('memory_limit')").fetchone()  # type: ignore[misc]
        return str(cap)

    store_music, drop_cached_blocks = staging.Staging.store_music, warehouse.drop_cached_blocks

    def store_music_and_look(self: staging.Staging, *args: object, **kwargs: object) -> None:
        seen.append(cap_of(self.con))
        store_music(self, *args, **kwargs)  # type: ignore[arg-type]

    def drop_and_look(con: duckdb.DuckDBPyConnection, memory_limit: str) -> None:
        (cached,) = con.execute(
            "select coalesce(sum(memory_usage_bytes), 0) from duckdb_memory()"
            " where tag = 'BASE_TABLE'"
        ).fetchone()  # type: ignore[misc]
        drop_cached_blocks(con, memory_limit)
        dropped.append((int(cached), cap_of(con)))

    monkeypatch.setattr(staging.Staging, "store_music", store_music_and_look)
    monkeypatch.setattr(warehouse, "drop_cached_blocks", drop_and_look)
    # the same days two minutes later: each part's matching reads the stored rows of its
    # days, whose blocks DuckDB then keeps
    _wide_extended_history(
        tmp_path / "second", files=3, rows_per_file=5_000, late=timedelta(minutes=2)
    )
    run_import(settings, [tmp_path / "second"], ImportOptions(part_rows=4_000))
    lower = f"{int(200 * 10**6 * STORING_SHARE) // 2**20}.0 MiB"  # three quarters: 143.0
    assert len(seen) > 3 and set(seen) == {lower}, seen
    assert max(cached for cached, _ in dropped) >= 2**20, dropped  # some were let go of
    assert {cap for _, cap in dropped} == {lower}, dropped


@pytest.mark.parametrize("limit", ["200MB", "2000TB"])
def test_the_lower_cap_is_lifted_after_its_block_and_after_an_error(
    tmp_path: Path, limit: str
) -> None:
    """``warehouse.capped`` sets back the cap as configured (not DuckDB's rounded display
    of it), after the block and after an error in it, which goes on as it was."""
    from music_tracker import warehouse

    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("set memory_limit = $limit", {"limit": limit})
        (configured,) = con.execute("select current_setting('memory_limit')").fetchone()  # type: ignore[misc]
        with warehouse.capped(con, 0.5, limit) as lower:
            assert con.execute("select current_setting('memory_limit')").fetchone() != (configured,)
            assert lower.endswith(" MiB")
        assert con.execute("select current_setting('memory_limit')").fetchone() == (configured,)
        with pytest.raises(duckdb.CatalogException), warehouse.capped(con, 0.5, limit):
            con.execute("select * from no_such_table")
        assert con.execute("select current_setting('memory_limit')").fetchone() == (configured,)
