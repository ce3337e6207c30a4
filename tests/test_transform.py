"""dbt builds on the real exports: the star schema's figures, incremental = full refresh."""

from __future__ import annotations

import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
import yaml

from conftest import ACCOUNT_DIR, EXTENDED_DIR, Cli, cli_json, extended_plays, load_rows, query
from music_tracker import replay, transform
from music_tracker.settings import Settings
from music_tracker.transform import (
    BYTES_OF_CAP_PER_PLAY,
    PROJECT_DIR,
    UNFINISHED_MARK,
    changed_data_selection,
    dbt_threads,
    side_table_stamps,
)
from music_tracker.warehouse import (
    PLAY_TABLES,
    stamped_since_last_transform,
    store_play_id_overrides,
    stored_play_rows,
)

AUDIO_2018 = EXTENDED_DIR / "Streaming_History_Audio_2018.json"
AUDIO_2023 = EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"


def test_fact_counts_every_play_once(built: Path) -> None:
    extended = extended_plays(AUDIO_2018, AUDIO_2023)
    account = {
        tuple(r.values()): r
        for path in sorted(ACCOUNT_DIR.glob("StreamingHistory_music_*.json"))
        for r in load_rows(path)
        if r["msPlayed"] > 0
    }
    ((rows, total_ms, streams),) = query(
        built,
        "select count(*), sum(ms_played), count(*) filter (where is_stream)"
        " from dw.fact_track_played",
    )
    assert rows == len(extended) + len(account)
    assert total_ms == sum(r["ms_played"] for r in extended.values()) + sum(
        r["msPlayed"] for r in account.values()
    )
    expected_streams = sum(r["ms_played"] >= 30_000 for r in extended.values()) + sum(
        r["msPlayed"] >= 30_000 for r in account.values()
    )
    assert streams == expected_streams


def test_local_time_and_keys_of_a_known_play(built: Path) -> None:
    (row,) = query(
        built,
        """
        select fact.date_sid, fact.time_sid, dim_time.time_of_day, dim_date.day_of_week_name,
               dim_track.artist_track, fact.duration_mins, fact.source
        from dw.fact_track_played as fact
        join dw.dim_time using (time_sid)
        join dw.dim_date using (date_sid)
        join dw.dim_track using (track_sid)
        where fact.played_at = '2018-10-03 22:33:04+00'
        """,
    )
    # 22:33:04 UTC is 16:33:04 in Denver (MDT, UTC-6), a Wednesday afternoon
    assert str(row[0]) == "2018-10-03" and str(row[1]) == "16:33:04"
    assert row[2:] == (
        "Afternoon",
        "Wednesday",
        "90 Miles - Back Around",
        3,
        "spotify_extended_history",
    )


def test_other_content_is_not_music(built: Path) -> None:
    counts = dict(
        query(built, "select content_type, count(*) from dw.fact_other_played group by 1")
    )
    assert set(counts) == {"podcast", "audiobook", "video"}
    ((overlap,),) = query(
        built,
        "select count(*) from dw.fact_track_played"
        " where play_sid in (select play_sid from dw.fact_other_played)",
    )
    assert overlap == 0


# every table an incremental run changes in place, and what the star schema shows
_COMPARED = [
    "intermediate.int_plays_deduplicated",
    "intermediate.int_plays_conformed",
    "intermediate.int_tracks_heard",  # incremental: the tracks of the plays logged
    "intermediate.int_tracks_identified",
    "intermediate.int_plays_conformed_lookups",  # the snapshot the next build compares with
    "intermediate.int_tracks",
    "intermediate.int_artists",
    "intermediate.int_plays_excluded",  # incremental when exclusions.yaml lists entries
    "dw.fact_track_played",
    "dw.fact_artist_genre",
    "dw.fact_other_played",
    "dw.dim_track",
    "dw.dim_artist",
    "dw.dim_album",
    "dw.dim_date",
    "dw.dim_artist_genre",
    "dw.agg_daily_listening",
    "dw.agg_monthly_track",
    "dw.agg_monthly_artist",
    "dw.agg_monthly_album",
    "dw.agg_first_listens",
    "dw.agg_listening_sessions",
    "dw.agg_listening_streaks",
    "dw.agg_excluded_plays",
]


def _tables(data_dir: Path, copy: Path | None = None) -> dict[str, list[tuple]]:
    """Every compared table, sorted, without the hashes that only steer incremental runs;
    with ``copy`` (a serving copy), its tables of the compared ones."""
    tables = {}
    with duckdb.connect(str(copy or data_dir / "warehouse.duckdb"), read_only=True) as con:
        for table in _COMPARED:
            columns = [
                name
                for (name,) in con.execute(
                    "select column_name from information_schema.columns"
                    " where table_schema || '.' || table_name = ?"
                    " and column_name not in ('row_hash', 'inputs_hash') order by ordinal_position",
                    [table],
                ).fetchall()
            ]
            if columns:
                listed = ", ".join(columns)
                tables[table] = con.execute(f"select {listed} from {table} order by all").fetchall()
    return tables


def _published(cli: Cli) -> dict[str, Any]:
    """A serving copy of the warehouse as built (the next one starts from it)."""
    return cli_json(cli, "publish")


def _publishes_what_changed(cli: Cli, data_dir: Path, incremental: dict[str, list[tuple]]) -> None:
    """The next serving copy starts from the last one, writes what the builds since changed,
    and holds the warehouse's star schema, table by table."""
    published = _published(cli)
    assert published["since"] is not None, published["why_whole"]
    copy = _tables(data_dir, Path(published["path"]))
    assert set(copy) == {table for table in _COMPARED if table.startswith("dw.")}
    for table, rows in copy.items():
        assert rows == incremental[table], table


def test_incremental_equals_full_refresh(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Real data in steps (an export, its richer twin, enrichment), then a full refresh."""
    account_from_extended = tmp_path / "account"
    account_from_extended.mkdir()
    rows = [r for r in load_rows(AUDIO_2023) if r["spotify_track_uri"] and r["ms_played"] > 0]
    (account_from_extended / "StreamingHistory_music_0.json").write_text(
        json.dumps(
            [
                {
                    "endTime": r["ts"][:16].replace("T", " "),
                    "artistName": r["master_metadata_album_artist_name"],
                    "trackName": r["master_metadata_track_name"],
                    "msPlayed": r["ms_played"],
                }
                for r in rows[:800]
            ]
        )
    )
    cli("import", str(AUDIO_2018), str(account_from_extended))
    assert cli_json(cli, "transform")["scope"] == "everything"
    _published(cli)
    before = dict(query(data_dir, "select source, count(*) from dw.fact_track_played group by 1"))
    assert before["spotify_account_data"] > 700
    cli("import", str(AUDIO_2023))  # the richer export of the same plays arrives
    assert cli_json(cli, "transform")["scope"] == "changed data"
    after = dict(query(data_dir, "select source, count(*) from dw.fact_track_played group by 1"))
    assert "spotify_account_data" not in after  # every account play got its richer row
    # enrichment arrives for the most played track: every play of it changes length
    ((track_id, plays),) = query(
        data_dir,
        "select track_id, count(*) from dw.fact_track_played group by 1 order by 2 desc limit 1",
    )
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute(
            "insert into raw.spotify_tracks (track_id, track_name, duration_ms, isrc, album_id,"
            " fetched_at) values (?, 'Enriched', 123456, 'USXX00000001', 'ALBUM1', now())",
            [track_id],
        )
    assert cli_json(cli, "transform")["scope"] == "changed data"
    ((enriched,),) = query(
        data_dir,
        f"select count(*) from dw.fact_track_played where track_id = '{track_id}'"
        " and duration_ms = 123456",
    )
    assert enriched == plays
    incremental = _tables(data_dir)
    _publishes_what_changed(cli, data_dir, incremental)
    cli("transform", "--full-refresh")
    refreshed = _tables(data_dir)
    for table in _COMPARED:
        assert refreshed[table] == incremental[table], table
    status = cli_json(cli, "status")
    assert len(incremental["dw.fact_track_played"]) == status["plays"]


def test_failure_names_the_failing_test(cli: Cli, shared: Path, data_dir: Path) -> None:
    cli("import", str(AUDIO_2018))
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        # a corrupt raw table: the same natural key twice
        con.execute(
            "insert into raw.spotify_extended_history"
            " select * from raw.spotify_extended_history limit 1"
        )
    result = cli("transform", expect=1)
    output = " ".join(result.output.split())
    assert "dbt build failed" in output
    assert "source_unique_raw_spotify_extended_history_source_key" in output


def _this_run(log: Path) -> str:
    """The last run's part of dbt's log (each run starts under a line of ``=``)."""
    return log.read_text().rsplit("=" * 30 + " ", 1)[-1]


def test_dbt_log_keeps_each_node_and_the_errors_are_printed(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """dbt runs without its own loggers (formatting every event cost about a tenth of a
    build); transform.py's callback keeps what they kept: each node's start and result in
    dbt/logs/dbt.log, no debug lines, and dbt's error lines printed (stderr)."""
    log = data_dir / "dbt" / "logs" / "dbt.log"
    nodes = cli_json(cli, "transform", "--full-refresh")["succeeded"]
    run = _this_run(log)
    assert "[info ] [MainThread]: Running with dbt=" in run
    assert len(re.findall(r"^[\d:.]+ \[info \] \[[^]]+\]: \d+ of \d+ START ", run, re.M)) == nodes
    assert f"Done. PASS={nodes} WARN=0 ERROR=0" in run
    assert "[debug]" not in run
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:  # a key stored twice
        con.execute(
            "insert into raw.spotify_extended_history"
            " select * from raw.spotify_extended_history limit 1"
        )
    with pytest.MonkeyPatch.context() as patch:  # dbt's own lines: not a replayed build
        patch.setenv("MUSIC_TRACKER_TRANSFORM_REPLAY", "false")
        output = cli("transform", expect=1).output
    printed = re.findall(r"^\d\d:\d\d:\d\d  (\d+ of \d+ FAIL 1 .+)$", output, re.M)
    assert printed, output  # as --quiet printed it: the time, then dbt's line
    logged = re.findall(r"^[\d:.]+ \[error\] \[[^]]+\]: (.+)$", _this_run(log), re.M)
    assert printed[0] in logged
    # a log that cannot be opened: dbt does not start, and the one line says why
    shutil.rmtree(log.parent)
    log.mkdir(parents=True)
    output = " ".join(cli("transform", expect=1).output.split())
    assert f"dbt could not run: its log {log} cannot be written (Is a directory)" in output


def test_a_new_row_repeating_an_old_key_fails_the_next_build(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """A scheduled run checks the keys imported since the last build, against every row."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute(
            "insert into raw.spotify_extended_history select * replace (now() as imported_at)"
            " from raw.spotify_extended_history order by imported_at limit 1"
        )
    output = " ".join(cli("transform", expect=1).output.split())
    assert "source_unique_raw_spotify_extended_history_source_key" in output


def test_a_large_import_tests_every_key_and_is_neither_replayed_nor_recorded(
    cli: Cli, built_2018_copy: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows imported since the last build than ``most_new_keys`` (a first build, a
    large export): a raw key's uniqueness test groups every key (looking 8 million new keys
    up ran out of the 256 MB cap at 10 million plays), and the build goes to dbt without
    recording its plan, whose tests would group every key on every later day."""
    settings = Settings(data_dir=data_dir)
    compiled = (
        transform.target_dir(settings)
        / "compiled/music_tracker/models/staging/_sources.yml"
        / "source_unique_raw_spotify_extended_history_source_key.sql"
    )
    plans = replay.plans_dir(transform.target_dir(settings))

    def import_a_row(key: str) -> None:  # a new row, imported now, with the key given
        with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
            con.execute(
                "insert into raw.spotify_extended_history select * replace"
                f" ({key} as source_key, now() as imported_at)"
                " from raw.spotify_extended_history order by imported_at limit 1"
            )

    # one new row, and a day's build as usual: the new keys looked up, the plan recorded
    import_a_row("md5('a day')")
    cli("transform")  # replayed, if a plan for it was recorded before
    assert "transform_runs" in compiled.read_text()
    recorded = {path: path.stat().st_mtime_ns for path in plans.iterdir()}
    assert recorded
    monkeypatch.setattr(transform, "most_new_keys", lambda settings: 0)
    import_a_row("md5('a large export')")
    result = cli_json(cli, "transform")
    assert result["scope"] == "changed data" and not result["replayed"]
    assert "transform_runs" not in compiled.read_text()  # every key grouped
    assert {path: path.stat().st_mtime_ns for path in plans.iterdir()} == recorded
    # and a new row that repeats an old key is still found that way
    import_a_row("source_key")
    output = " ".join(cli("transform", expect=1).output.split())
    assert "source_unique_raw_spotify_extended_history_source_key" in output
    assert "transform_runs" not in compiled.read_text()


def test_the_tables_whose_new_keys_are_tested_are_the_ones_counted() -> None:
    """Whether a build is replayed is decided on the new rows of the raw play tables
    (``rows_imported_since_last_transform``); each test with ``__new_keys__`` decides its
    form on its own table's. A test on a table outside them could be replayed in the form
    that looks millions of new keys up (helper-56)."""
    sources = yaml.safe_load((PROJECT_DIR / "models/staging/_sources.yml").read_text())
    tested = {
        table["name"]
        for source in sources["sources"]
        for table in source["tables"]
        for column in table.get("columns", [])
        for test in column.get("data_tests", [])
        if "__new_keys__" in json.dumps(test)
    }
    assert tested == set(PLAY_TABLES)


def test_dbt_compiles_by_hand_on_a_warehouse_music_tracker_has_not_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dbt compile` (and `docs generate`) run by hand, as docs/model.md shows, on a
    warehouse without the raw tables: the tests' count of new keys is left to the build,
    whose connection makes them (it stopped the compile with "Table ... does not exist").
    The project's flags keep dbt's usage events off without a variable."""
    from dbt.cli.main import dbtRunner

    monkeypatch.setenv("MUSIC_TRACKER_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    target = tmp_path / "target"
    result = dbtRunner().invoke(
        [
            "compile", "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR),
            "--target-path", str(target), "--log-path", str(tmp_path), "--quiet",
            "--select", "source_unique_raw_spotify_extended_history_source_key",
        ]
    )  # fmt: skip
    assert result.success, result.exception
    compiled = next(target.rglob("source_unique_raw_spotify_extended_history_source_key.sql"))
    assert "raw.transform_runs" in compiled.read_text()  # the look-up of the new keys
    # dbt by hand sends dbt Labs no usage events either (it logs each one it would send)
    assert "Sending event" not in (tmp_path / "dbt.log").read_text()


def test_two_equal_rows_in_a_table_written_as_a_difference_fail_the_build(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """A difference (macros/difference.sql) compares rows as sets: a row computed twice
    would be stored once, and the stored table's unique test would pass, where a rebuild
    stores both and fails it. The build says so and what to run. (A track held twice
    upstream, as a fault in the models would make it, computes its dimension row twice.)"""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute(
            "insert into intermediate.int_tracks select * from intermediate.int_tracks limit 1"
        )
    output = " ".join(cli("transform", expect=1).output.split())
    assert "dim_track holds two equal rows" in output, output
    assert "music-tracker transform --full-refresh" in output
    assert cli_json(cli, "transform", "--full-refresh")["scope"] == "everything"
    assert query(data_dir, "select count(*) - count(distinct track_sid) from dw.dim_track") == [
        (0,)
    ]


def test_a_play_missed_by_an_incremental_run_fails_the_build(
    cli: Cli, built_2018: Path, built_2018_copy: Path, data_dir: Path
) -> None:
    """A row stamped before the newest import already built (a clock set back) is caught:
    a play of its own the build never made; a row joining a stored play that the build
    left as it was (the plays' rows no longer add up to the source rows); a row of a
    two-row play moved to a new play, neither built again (the counts cancel out, the
    plays' ids do not: helper-40); the rows of two plays swapped (the counts stay, which
    rows each holds does not: helper-41)."""
    stamp = "timestamptz '2000-01-01 00:00:00+00'"
    row = "from raw.spotify_extended_history where play_id is not null"
    moved = (
        f"select 'spotify_extended_history' as source, source_key, 'split-0001' as play_id,"
        f" play_id as previous_play_id, {stamp} as changed_at {row} and play_id in"
        " (select play_id from raw.spotify_extended_history group by 1 having count(*) = 2)"
        " limit 1"
    )
    for change in (
        # a new play; a stored play's second row
        f"insert into raw.spotify_extended_history select * replace (md5(source_key) as"
        f" source_key, md5(play_id) as play_id, {stamp} as imported_at) {row} limit 1",
        f"insert into raw.spotify_extended_history select * replace (md5(source_key) as"
        f" source_key, {stamp} as imported_at) {row} limit 1",
        # a row moved out of its play to a new one, as store_play_id_overrides moves it
        f"insert into raw.play_id_overrides {moved}; insert into raw.play_id_moves {moved}",
        # two one-row plays that trade their rows (a rematch pairing them the other way)
        "create temp table pair as select source_key, play_id, row_number() over () as n"
        f" {row} and play_id in (select play_id from raw.spotify_extended_history"
        " group by 1 having count(*) = 1) and source_key not in"
        " (select source_key from raw.play_id_overrides) order by played_at limit 2;"
        + "".join(
            f"insert into raw.{table} select 'spotify_extended_history', a.source_key,"
            f" b.play_id, a.play_id, {stamp} from pair as a join pair as b on a.n <> b.n;"
            for table in ("play_id_overrides", "play_id_moves")
        ),
    ):
        # each change on the built warehouse as it was (a copy of its file, and no mark of
        # the failed build before: a full refresh after each would cost a whole build)
        shutil.copyfile(built_2018 / "warehouse.duckdb", data_dir / "warehouse.duckdb")
        (data_dir / UNFINISHED_MARK).unlink(missing_ok=True)
        with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
            con.execute(change)
        output = " ".join(cli("transform", expect=1).output.split())
        assert "equal_row_count_to_int_plays_deduplicated" in output, change
    cli("transform", "--full-refresh")  # mends the last
    ((plays,),) = query(data_dir, "select count(*) from dw.fact_track_played")
    assert plays == cli_json(cli, "status")["plays"]


def test_time_zone_setting(
    cli: Cli, built_2018_copy: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing the zone rebuilds everything, incremental tables from scratch."""
    # built in the default zone, America/Denver
    monkeypatch.setenv("MUSIC_TRACKER_TIMEZONE", "Asia/Tokyo")
    # another zone is another dbt parse: in a target folder of its own, so that the worker's
    # parse cache stays warm for the tests after this one
    monkeypatch.setenv("MUSIC_TRACKER_DBT_TARGET_DIR", str(data_dir.parent / "dbt-target"))
    from music_tracker.settings import _cached_settings

    _cached_settings.cache_clear()
    result = cli_json(cli, "transform")
    assert result["scope"] == "everything" and result["full_refresh"]
    ((local, date_sid),) = query(
        data_dir,
        "select played_at_local, date_sid from dw.fact_track_played"
        " where played_at = '2018-10-03 22:33:04+00'",
    )
    assert (str(local), str(date_sid)) == ("2018-10-04 07:33:04", "2018-10-04")
    ((denver_days,),) = query(
        data_dir,
        "select count(*) from intermediate.int_plays_conformed"
        " where played_at_local <> timezone('Asia/Tokyo', played_at)",
    )
    assert denver_days == 0


def test_one_track_per_artist_and_name_keyed_by_the_largest_id(built: Path) -> None:
    """The original's dim_track grain: two Spotify ids of one song by one artist (a single
    and its album version) are one track, keyed as the original keyed it, from the largest
    id: md5 of "<id>-<track name>-<artist>" (dbt_utils' surrogate key), computed here from
    the export files."""
    import hashlib
    from collections import defaultdict

    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in load_rows(AUDIO_2018, AUDIO_2023):
        if row["spotify_track_uri"] and row["ms_played"] > 0:
            key = (row["master_metadata_album_artist_name"], row["master_metadata_track_name"])
            ids[key].add(row["spotify_track_uri"].removeprefix("spotify:track:"))
    pairs = {key: max(found) for key, found in ids.items() if len(found) > 1}
    assert len(pairs) == 65  # the real exports' songs heard under two ids
    for (artist, name), largest in pairs.items():
        expected = hashlib.md5(f"{largest}-{name}-{artist}".encode()).hexdigest()
        keys = query(
            built,
            "select distinct fact.track_sid, track.track_id from dw.fact_track_played as fact"
            " join dw.dim_track as track using (track_sid)"
            " where fact.artist_name = ? and track.track_name = ?",
            [artist, name],
        )
        assert keys == [(expected, largest)], (artist, name, keys)
    ((tracks, names),) = query(
        built, "select count(*), count(distinct artist_track) from dw.dim_track"
    )
    assert tracks == names


def test_an_upgrade_recomputes_every_stored_row(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """Rows an older version of the models computed do not survive an upgrade: when the
    project's fingerprint differs from the last build's, incremental tables are rebuilt
    from scratch (an incremental run would keep every row whose inputs did not change)."""
    # what an older macro would have left behind: a wrong local time, under a hash that
    # still matches the play's inputs, and a build recorded under another fingerprint
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute(
            "update intermediate.int_plays_conformed"
            " set played_at_local = played_at_local + interval 1 hour"
        )
        con.execute("update dw.fact_track_played set time_sid = time '00:00:00'")
        con.execute("update raw.transform_runs set fingerprint = 'an older version'")
    _published(cli)
    unchanged = cli_json(cli, "transform", "--select", "int_plays_conformed")
    assert unchanged["full_refresh"] is False  # a selection never rebuilds on its own
    result = cli_json(cli, "transform")
    assert result["scope"] == "everything" and result["full_refresh"] is True
    ((stale,),) = query(
        data_dir,
        "select count(*) from intermediate.int_plays_conformed"
        " where played_at_local <> timezone('America/Denver', played_at)",
    )
    ((midnight,),) = query(
        data_dir,
        "select count(*) from dw.fact_track_played"
        " where time_sid <> cast(date_trunc('second', played_at_local) as time)",
    )
    assert (stale, midnight) == (0, 0)
    # every dw table was made anew, so the next serving copy writes each of them again
    published = _published(cli)
    dw = [table.removeprefix("dw.") for table in _COMPARED if table.startswith("dw.")]
    assert published["since"] is not None and set(dw) <= set(published["written"])
    _publishes_what_changed(cli, data_dir, _tables(data_dir))
    # and the next run, with nothing changed, is incremental again
    assert cli_json(cli, "transform")["scope"] == "changed data"


def test_threads_follow_the_stored_plays_not_the_file_size(
    cli: Cli, shared: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10 million plays the first build of a freshly imported warehouse (raw tables
    only, under the old 1.5 GB file threshold) got four threads, and models over every play
    ran out of their shared cap together. The threads follow the plays the build will hold,
    per byte of the cap: here the real export against a cap scaled down to hold it."""
    monkeypatch.delenv("MUSIC_TRACKER_DBT_THREADS")  # conftest.py's one thread: automatic
    cli("import", str(AUDIO_2018))
    ((rows,),) = query(data_dir, "select count(*) from raw.spotify_extended_history")
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        assert stored_play_rows(con) == rows
    scaled = rows * BYTES_OF_CAP_PER_PLAY // 1000  # a cap of fewer bytes than it needs
    assert dbt_threads(Settings(data_dir=data_dir, dbt_memory_limit=f"{scaled}KB"), rows) == 1
    assert dbt_threads(Settings(data_dir=data_dir), rows) == 4  # 256MB
    assert dbt_threads(Settings(data_dir=data_dir, dbt_threads=2), 10**9) == 2
    assert cli_json(cli, "transform")["threads"] == 4


# Late data: each case builds, lets something old change, and checks what the next build's
# fact logs (what the aggregates then recompute) and that the result equals a full refresh.


def _logged_changes(cli: Cli, data_dir: Path) -> set[str]:
    """The plays the next build changes in the fact: a selection run of the fact and its
    parents (no tests: the build after it runs them) logs them and leaves the log as it is
    (only a whole build empties it)."""
    os.environ["DBT_INDIRECT_SELECTION"] = "empty"
    try:
        cli("transform", "--select", "+fact_track_played")
    finally:
        del os.environ["DBT_INDIRECT_SELECTION"]
    rows = query(data_dir, "select play_sid from intermediate.fact_track_played_changes")
    return {play_sid for (play_sid,) in rows}


def _import_late(cli: Cli, data_dir: Path, folder: Path, name: str, rows: list[Any]) -> set[str]:
    """Import ``rows`` as the export file ``name``; the plays the next build logs."""
    folder.mkdir()
    (folder / name).write_text(json.dumps(rows))
    cli("import", str(folder))
    return _logged_changes(cli, data_dir)


def _ids(data_dir: Path, sql: str, parameters: list[Any] | None = None) -> set[str]:
    return {value for (value,) in query(data_dir, sql, parameters)}


# The copies the fact keeps of what it took from each track, artist and genre, written as
# a difference (macros/difference.sql) and never made anew: each equals its source after a
# build (a full refresh would not show a row left behind)
_LENT = {
    "intermediate.fact_track_played_lent_tracks": (
        "track_sid, duration_ms from intermediate.int_tracks"
    ),
    "intermediate.fact_track_played_lent_artists": (
        "artist_sid, artist_name, artist_popularity from intermediate.int_artists"
    ),
    "intermediate.fact_artist_genre_lent_genres": (
        "artist_sid, genre_sid from intermediate.int_artist_genres"
    ),
}


def _equals_full_refresh(cli: Cli, data_dir: Path) -> dict[str, list[tuple]]:
    assert cli_json(cli, "transform")["scope"] == "changed data"
    assert query(data_dir, "select count(*) from intermediate.fact_track_played_changes") == [(0,)]
    for copy, source in _LENT.items():
        stored = query(data_dir, f"select * from {copy} order by all")
        assert stored == query(data_dir, f"select distinct {source} order by all"), copy
    incremental = _tables(data_dir)
    _publishes_what_changed(cli, data_dir, incremental)
    cli("transform", "--full-refresh")
    refreshed = _tables(data_dir)
    for table in _COMPARED:
        assert refreshed[table] == incremental[table], table
    return refreshed


def test_late_plays_for_an_old_month(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    """A new export covering years brings plays of an old month after newer ones were built."""
    rows = load_rows(AUDIO_2018)
    late = [r for r in rows if r["ts"].startswith("2018-10")]
    early = tmp_path / "early"
    early.mkdir()
    (early / "Streaming_History_Audio_2018.json").write_text(
        json.dumps([r for r in rows if not r["ts"].startswith("2018-10")])
    )
    cli("import", str(early), str(AUDIO_2023))
    cli("transform")
    _published(cli)
    later = tmp_path / "later"
    logged = _import_late(cli, data_dir, later, "Streaming_History_Audio_2018_1.json", late)
    late_plays = _ids(
        data_dir,
        "select play_sid from dw.fact_track_played where strftime(played_at, '%Y-%m') = '2018-10'",
    )
    assert len(late_plays) == len(extended_plays(later / "Streaming_History_Audio_2018_1.json"))
    # besides the late plays, only plays of their tracks (a track's length, from its
    # longest complete play, or its key, from its largest id, may have changed)
    (others,) = query(
        data_dir,
        "select count(*) from dw.fact_track_played where list_contains(?, play_sid)"
        " and track_sid not in (select track_sid from dw.fact_track_played"
        " where list_contains(?, play_sid))",
        [sorted(logged - late_plays), sorted(late_plays)],
    )[0]
    assert late_plays <= logged and others == 0
    tables = _equals_full_refresh(cli, data_dir)
    assert any(str(row[0]).startswith("2018-10") for row in tables["dw.agg_monthly_track"])


def test_an_export_of_more_plays_than_the_journal_keeps_is_published_whole(
    cli: Cli, built_2018_copy: Path, data_dir: Path, tmp_path: Path
) -> None:
    """An old export covering years, imported after a build: the fact gets more new plays
    than the serving journal keeps keys for in one statement (serving_keys_limit, 50,000 in
    macros/serving_journal.sql), so the build journals the fact as made whole, and the next
    serving copy copies it whole while it writes the groups the other tables journalled."""
    _published(cli)
    tracks = [(f"{n:022d}", f"Song {n}", f"Band {n % 97}", f"Record {n % 151}") for n in range(400)]
    start = datetime(2012, 1, 1, tzinfo=UTC).timestamp()
    rows = [
        {
            "ts": datetime.fromtimestamp(start + 3600 * n, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ms_played": 150_000 + n % 90_000,
            "master_metadata_track_name": name,
            "master_metadata_album_artist_name": artist,
            "master_metadata_album_album_name": album,
            "spotify_track_uri": f"spotify:track:{track}",
            "reason_start": "trackdone",
            "reason_end": "trackdone",
        }
        for n in range(50_400)
        for track, name, artist, album in [tracks[n * 7 % len(tracks)]]
    ]
    old = tmp_path / "old"
    old.mkdir()
    (old / "Streaming_History_Audio_2012-2017.json").write_text(json.dumps(rows))
    assert cli_json(cli, "import", str(old))["new_plays"] == len(rows)
    assert cli_json(cli, "transform")["scope"] == "changed data"
    journal = query(
        data_dir,
        "select table_name, count(*), count(key_value) from raw.serving_journal"
        " where build_id = (select max(build_id) from raw.serving_builds) group by all",
    )
    journalled = {table: (entries, keys) for table, entries, keys in journal}
    assert journalled["fact_track_played"] == (1, 0)  # made whole: one row, no key
    assert journalled["fact_artist_genre"] == (1, 0)
    entries, keys = journalled["agg_daily_listening"]  # its days, one key each
    assert entries == keys > 2_000
    _publishes_what_changed(cli, data_dir, _tables(data_dir))


def test_a_merge_of_two_old_plays(cli: Cli, shared: Path, tmp_path: Path) -> None:
    """Rematch merges two plays an earlier version stored apart (a paused play and its
    scrobble, 2019) below a newer history: the survivor changes, the other leaves."""
    from test_dedupe_windows import _a_paused_play_stored_as_two

    data, dd = _a_paused_play_stored_as_two(cli, tmp_path)
    cli("import", str(AUDIO_2023), *dd)
    cli("transform", *dd)
    cli("publish", *dd)
    pair = query(data, "select play_sid from dw.fact_track_played where year(played_at) = 2019")
    assert len(pair) == 2
    assert cli_json(cli, "rematch", *dd)["plays_merged"] == 1

    def run(*args: str, expect: int = 0) -> Any:
        return cli(*args, *dd, expect=expect)

    assert _logged_changes(run, data) == {play_sid for (play_sid,) in pair}
    _equals_full_refresh(run, data)
    assert query(
        data, "select count(*) from dw.fact_track_played where year(played_at) = 2019"
    ) == [(1,)]


def test_a_play_whose_row_moved_twice_between_builds_leaves(cli: Cli, tmp_path: Path) -> None:
    """The builds look for plays merged away among the plays rows have left
    (raw.play_id_moves): a row that moves on again before the next build must not hide the
    play it left first, which raw.play_id_overrides (the latest move only) no longer names."""
    from test_dedupe_windows import _a_paused_play_stored_as_two

    data, dd = _a_paused_play_stored_as_two(cli, tmp_path)

    def run(*args: str, expect: int = 0) -> Any:
        return cli(*args, *dd, expect=expect)

    run("transform")
    run("publish")
    ((scrobble_play, scrobble_key),) = query(
        data, "select play_id, source_key from raw.lastfm_scrobbles"
    )
    assert cli_json(cli, "rematch", *dd)["plays_merged"] == 1  # scrobble_play -> the survivor
    ((survivor,),) = query(data, "select play_id from raw.play_id_overrides")
    # a second import moves the scrobble on, to a play of its own, before any build
    with duckdb.connect(str(data / "warehouse.duckdb")) as con:
        store_play_id_overrides(
            con,
            pl.DataFrame(
                {
                    "source": ["lastfm"],
                    "source_key": [scrobble_key],
                    "play_id": ["moved-on"],
                    "previous_play_id": [survivor],
                }
            ),
            datetime.now(UTC),
        )
    assert query(data, "select previous_play_id from raw.play_id_overrides") == [(survivor,)]
    tables = _equals_full_refresh(run, data)
    plays = {row[0] for row in tables["dw.fact_track_played"]}
    assert scrobble_play not in plays
    assert {"moved-on", survivor} <= plays


def _move(data_dir: Path, key: str, to: str, previous: str) -> None:
    """A later import moves the extended-history row ``key`` from play ``previous`` to ``to``."""
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        store_play_id_overrides(
            con,
            pl.DataFrame(
                {
                    "source": ["spotify_extended_history"],
                    "source_key": [key],
                    "play_id": [to],
                    "previous_play_id": [previous],
                }
            ),
            datetime.now(UTC),
        )


def test_a_merge_moves_a_play_to_another_track(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """A later import merges a play of a track heard once into an earlier play of another
    track: the earlier row wins, so the once-heard track has no play left and the other
    counts as before. The tracks heard are recomputed from the de-duplicated plays' log,
    which holds the merged play's old track, not only the plays written now."""
    _published(cli)
    ((once, once_track),) = query(
        data_dir,
        "select any_value(play_id), track_id from intermediate.int_plays_deduplicated"
        " where source = 'spotify_extended_history' group by track_id having count(*) = 1"
        " order by track_id limit 1",
    )
    ((survivor, survivor_track),) = query(
        data_dir,
        "select play_id, track_id from intermediate.int_plays_deduplicated"
        " where source = 'spotify_extended_history' and track_id <> ?"
        " and played_at < (select played_at from intermediate.int_plays_deduplicated"
        " where play_id = ?) order by played_at limit 1",
        [once_track, once],
    )
    ((key,),) = query(
        data_dir,
        "select source_key from raw.spotify_extended_history where play_id = ?",
        [once],
    )
    _move(data_dir, key, survivor, once)
    tables = _equals_full_refresh(cli, data_dir)
    heard = {row[0]: row[1] for row in tables["intermediate.int_tracks_identified"]}
    assert once_track not in heard
    assert survivor_track in heard
    plays = {row[0] for row in tables["dw.fact_track_played"]}
    assert survivor in plays and once not in plays


def test_rows_that_move_on_leave_their_plays_as_they_were(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """Rows move on after they joined a play (found by a review, 2026-12-04). Q's earlier
    row joins P and, after a build, moves on to a play of its own: P, back to its own row,
    is older than the newest play conformed, yet changed at the move (it kept Q's track,
    and Q's listen counted twice). R's later row joins A and, after a build, A's own row
    moves to S and on from S before the next build: A, left with R's row, changed at the
    first move, which the row's latest move no longer names (A kept its own track)."""
    _published(cli)
    # the first plays of four tracks played more than twice, none its track's longest
    # complete play: the moves below change no track's row, so no lookup brings these plays
    # back to the conformed plays' build (only their own change can)
    plays = query(
        data_dir,
        "with plays as (select play_id, plays.track_id, source_key, plays.played_at,"
        " plays.ms_played, count(*) over tracks as heard, row_number() over (tracks"
        " order by plays.played_at) as nth, max(plays.ms_played) filter (where"
        " plays.reason_end = 'trackdone') over tracks as longest"
        " from intermediate.int_plays_deduplicated as plays"
        " join raw.spotify_extended_history using (play_id)"
        " where plays.track_id is not null window tracks as (partition by plays.track_id))"
        " select play_id, track_id, source_key from plays"
        " where heard > 2 and nth = 1 and ms_played < longest order by played_at limit 4",
    )
    (q, q_track, q_key), (p, p_track, _), (a, _, a_key), (r, r_track, r_key) = plays
    _move(data_dir, q_key, p, q)
    _move(data_dir, r_key, a, r)
    assert cli_json(cli, "transform")["scope"] == "changed data"
    _move(data_dir, q_key, "split-off", p)
    _move(data_dir, a_key, "s", a)
    _move(data_dir, a_key, "moved-on", "s")
    _equals_full_refresh(cli, data_dir)
    tracks = dict(query(data_dir, "select play_sid, track_id from dw.fact_track_played"))
    assert (tracks[p], tracks["split-off"], tracks[a]) == (p_track, q_track, r_track)
    assert q not in tracks and r not in tracks and "s" not in tracks


def test_an_enrichment_that_moves_an_artist_or_excludes_it(
    cli: Cli, built_2018_copy: Path, data_dir: Path
) -> None:
    """MusicBrainz places the most played artist in Germany, then (a newer lookup) in
    France: the artist's rows change; no play does, so no aggregate of plays is rebuilt.
    Then a lookup gives it a genre exclusions.yaml lists: the next build (not a full
    refresh: the file did not change) leaves its plays out, and a lookup without the genre
    brings them back. Each change is compared with a full refresh."""
    ((lookup_key, artist_sid),) = query(
        data_dir,
        "select musicbrainz_lookup_key, artist_sid from intermediate.int_artists"
        " order by play_count desc limit 1",
    )
    of_artist = "select play_sid from dw.fact_track_played where artist_sid = ?"

    def lookup(area: str, genre: str) -> None:
        with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
            con.execute(
                "insert into raw.musicbrainz_artists (lookup_key, status, mbid, artist_name,"
                " area_id, genres, looked_up_at) values (?, 'found', 'mbid-1', 'Someone',"
                " ?, [?], now())",
                [lookup_key, area, genre],
            )

    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.execute(
            "insert into raw.musicbrainz_areas values"
            " ('area-de', 'Germany', 'Country', 'DE', null, null, now()),"
            " ('area-fr', 'France', 'Country', 'FR', null, null, now())"
        )
    lookup("area-de", "rock")
    (data_dir / "exclusions.yaml").write_text("genres:\n  - name: Krautrock\n")
    # enriched from the start: a country and a genre, and the exclusions (the whole history
    # is built again for them)
    assert cli_json(cli, "transform")["full_refresh"] is True
    _published(cli)
    plays = _ids(data_dir, of_artist, [artist_sid])
    lookup("area-fr", "rock")
    assert _logged_changes(cli, data_dir) == set()
    _equals_full_refresh(cli, data_dir)
    assert query(
        data_dir, "select country from dw.dim_artist where artist_sid = ?", [artist_sid]
    ) == [("France",)]
    lookup("area-fr", "krautrock")
    assert _logged_changes(cli, data_dir) == plays  # they leave, and only they
    _equals_full_refresh(cli, data_dir)
    assert _ids(data_dir, of_artist, [artist_sid]) == set()
    lookup("area-fr", "rock")
    assert cli_json(cli, "transform")["scope"] == "changed data"
    assert _ids(data_dir, of_artist, [artist_sid]) == plays  # back


def test_a_larger_id_rekeys_its_group(
    cli: Cli, built_2018_copy: Path, data_dir: Path, tmp_path: Path
) -> None:
    """A track is keyed by the largest Spotify id of its (artist, name) group: a late play of
    the same song under a larger id (a re-release, on an album of its own) changes the key
    of every play of the group, and only those are conformed and logged again. The plays
    rekeyed keep the key of their album: its largest id among every play of the album,
    here on another track (two tracks of one album name that enrichment gives two album
    ids), not among the rekeyed plays alone."""
    rows = load_rows(AUDIO_2018)  # imported and built in built_2018_copy
    # the most played track of an album with another track, played more than once (so
    # that the re-release, played once, does not become its name's twin)
    ((artist, album, track, track_id, other_id),) = query(
        data_dir,
        "with tracks as (select artist_name, album_name, track_name, track_id, count(*) as n"
        " from intermediate.int_plays_conformed where track_id is not null and album_name"
        " is not null group by all), top as (select artist_name, album_name,"
        " arg_max(track_name, n) as track_name, arg_max(track_id, n) as track_id"
        " from tracks group by all having count(distinct track_name) > 1 and max(n) > 1)"
        " select top.*, min(tracks.track_id) from top join tracks using (artist_name,"
        " album_name) where tracks.track_name <> top.track_name group by all"
        " order by all limit 1",
    )
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        con.executemany(
            "insert into raw.spotify_tracks (track_id, album_id, fetched_at) values (?, ?, now())",
            [[track_id, "ALBUM1"], [other_id, "ALBUM9"]],
        )
    cli("transform")
    _published(cli)
    ((plays,),) = query(
        data_dir,
        "select count(*) from intermediate.int_plays_conformed"
        " where artist_name = ? and track_name = ?",
        [artist, track],
    )
    (row,) = [
        r
        for r in rows
        if r["master_metadata_album_artist_name"] == artist
        and r["master_metadata_track_name"] == track
        and r["master_metadata_album_album_name"] == album
        and r["ms_played"] > 0
    ][:1]
    rerelease = row | {
        "ts": "2018-12-31T23:59:00Z",
        "spotify_track_uri": "spotify:track:" + "z" * 22,
        "master_metadata_album_album_name": "A single of its own",
    }
    logged = _import_late(
        cli, data_dir, tmp_path / "late", "Streaming_History_Audio_2018_9.json", [rerelease]
    )
    group = _ids(
        data_dir,
        "select play_id from intermediate.int_plays_deduplicated"
        " where artist_name = ? and track_name = ?",
        [artist, track],
    )
    assert len(group) == plays + 1
    assert logged == group
    (conformed,) = query(
        data_dir,
        "select count(*) from intermediate.int_plays_conformed_changes where play_sid is not null",
    )
    assert conformed == (2 * plays + 1,)  # each old row and its new one, and the new play
    tables = _equals_full_refresh(cli, data_dir)
    keyed = [r for r in tables["intermediate.int_tracks"] if r[2:4] == (track, artist)]
    assert [r[1] for r in keyed] == ["z" * 22]


def test_side_tables_wait_for_rows_of_their_own(cli: Cli, shared: Path, data_dir: Path) -> None:
    """A run where only the data changed leaves the podcast and polling-gap tables alone
    unless their raw tables gained a row that counts since the last whole build began:
    here a later export of music only, after a build recorded on a real import."""
    cli("import", str(AUDIO_2018))  # music, podcasts and a row set aside
    stamps = side_table_stamps()
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        assert stamped_since_last_transform(con, stamps) == set(stamps)  # never built
        con.execute(
            "insert into raw.transform_runs values ('built', 'everything', false, now(), now(), 1)"
        )
        assert stamped_since_last_transform(con, stamps) == set()
    music = [
        r
        for r in load_rows(AUDIO_2023)
        if r["spotify_track_uri"] and r["master_metadata_track_name"] and r["ms_played"] > 0
    ]
    later = data_dir.parent / "later"
    later.mkdir()
    (later / "Streaming_History_Audio_2023_3.json").write_text(json.dumps(music))
    cli("import", str(later))
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        changed = stamped_since_last_transform(con, stamps)
    assert changed == {"spotify_extended_history"}
    selection = changed_data_selection(changed)
    assert "fact_other_played+" in selection
    assert "agg_polling_gaps+" not in selection  # a gap closes when an export covers it
    # music rows of 0 ms are kept in their raw table and counted as set aside: only a new
    # one changes that count, which a day of plays seldom brings
    assert "agg_set_aside_rows+" in selection
    zero = [r for r in load_rows(AUDIO_2023) if r["spotify_track_uri"] and r["ms_played"] == 0]
    assert zero
    not_played = data_dir.parent / "not-played"
    not_played.mkdir()
    (not_played / "Streaming_History_Audio_2023_4.json").write_text(json.dumps(zero[:1]))
    cli("import", str(not_played))
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:
        changed = stamped_since_last_transform(con, stamps)
    assert changed == {"spotify_extended_history", "spotify_extended_history of 0 ms"}
    assert "agg_set_aside_rows+" not in changed_data_selection(changed)
