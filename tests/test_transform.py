"""dbt builds on the real exports: the star schema's figures, incremental = full refresh."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from conftest import ACCOUNT_DIR, EXTENDED_DIR, Cli, cli_json, load_rows, query

AUDIO_2018 = EXTENDED_DIR / "Streaming_History_Audio_2018.json"
AUDIO_2023 = EXTENDED_DIR / "Streaming_History_Audio_2023_3.json"


def _fact(data_dir: Path) -> list[tuple]:
    return query(
        data_dir,
        "select * exclude (row_hash) from dw.fact_track_played order by play_sid",
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """Real exports imported and built once, with the dbt unit tests."""
    from typer.testing import CliRunner

    from music_tracker.cli import app

    data_dir = tmp_path_factory.mktemp("built") / "data"
    runner = CliRunner()
    for args in (
        ["import", str(EXTENDED_DIR), str(ACCOUNT_DIR)],
        ["transform", "--unit-tests"],
    ):
        result = runner.invoke(app, [*args, "--data-dir", str(data_dir)])
        assert result.exit_code == 0, result.output
    return data_dir


def test_fact_counts_every_play_once(built: Path) -> None:
    extended = {
        (r["ts"], r["spotify_track_uri"], r["ms_played"]): r
        for r in load_rows(AUDIO_2018, AUDIO_2023)
        if r["spotify_track_uri"] and r["ms_played"] > 0
    }
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


def test_incremental_equals_full_refresh(
    cli: Cli, shared: Path, data_dir: Path, tmp_path: Path
) -> None:
    """Real data in three steps, incremental builds between, then a full refresh."""
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
    cli("transform")
    before = dict(query(data_dir, "select source, count(*) from dw.fact_track_played group by 1"))
    assert before["spotify_account_data"] > 700
    cli("import", str(AUDIO_2023))  # the richer export of the same plays arrives
    cli("transform")
    after = dict(query(data_dir, "select source, count(*) from dw.fact_track_played group by 1"))
    assert "spotify_account_data" not in after  # every account play got its richer row
    incremental = _fact(data_dir)
    cli("transform", "--full-refresh")
    assert _fact(data_dir) == incremental
    status = cli_json(cli, "status")
    assert len(incremental) == status["plays"]


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


def test_time_zone_setting(
    cli: Cli, shared: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli("import", str(AUDIO_2018))
    monkeypatch.setenv("MUSIC_TRACKER_TIMEZONE", "Asia/Tokyo")
    from music_tracker.settings import _cached_settings

    _cached_settings.cache_clear()
    cli("transform")
    ((local,),) = query(
        data_dir,
        "select played_at_local from dw.fact_track_played"
        " where played_at = '2018-10-03 22:33:04+00'",
    )
    assert str(local) == "2018-10-04 07:33:04"
