"""`music-tracker export`: the star schema's plays out again, through the CLI, on the real
exports (the `built` warehouse)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import ACCOUNT_DIR, Cli, cli_json, held_elsewhere, query
from music_tracker.cli import app


@pytest.fixture(scope="module")
def exported(built: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The built warehouse exported once in each format (read-only for the tests)."""
    folders = {}
    for fmt in ("csv", "parquet", "listenbrainz"):
        folders[fmt] = tmp_path_factory.mktemp("export") / fmt
        args = ["export", "--format", fmt, "--output", str(folders[fmt]), "--data-dir", str(built)]
        result = CliRunner().invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["format"] == fmt
    return folders


def test_parquet_and_csv_hold_every_play_with_names_and_local_time(
    built: Path, exported: dict[str, Path]
) -> None:
    (plays, ms, sids) = query(
        built, "select count(*), sum(ms_played), md5(string_agg(play_sid, ',' order by play_sid))"
        " from dw.fact_track_played",
    )[0]  # fmt: skip
    parquet = pl.read_parquet(exported["parquet"] / "plays.parquet")
    csv = pl.read_csv(exported["csv"] / "plays.csv", infer_schema=False)
    for frame in (parquet, csv):
        assert frame.height == plays
        assert frame["ms_played"].cast(pl.Int64).sum() == ms
        joined = ",".join(sorted(frame["play_sid"].to_list()))
        assert query(built, "select md5($s)", {"s": joined})[0][0] == sids
        assert frame["track_name"].null_count() == 0
        assert frame["artist_name"].null_count() == 0
        assert set(frame["source"]) == {"spotify_extended_history", "spotify_account_data"}
    # local time is the UTC end of play in the configured zone, to the millisecond
    zone = ZoneInfo(parquet["timezone"][0])
    sample = parquet.sample(200, seed=1)
    for utc, local in sample.select("played_at", "played_at_local").iter_rows():
        assert utc.astimezone(zone).replace(tzinfo=None) == local
    csv_row = csv.filter(pl.col("play_sid") == sample["play_sid"][0]).row(0, named=True)
    assert csv_row["played_at_local"] == sample["played_at_local"][0].isoformat(
        timespec="milliseconds"
    )
    assert csv_row["played_at"].endswith("Z")
    # album names where the export had them (account data has none)
    assert (
        csv.filter(pl.col("source") == "spotify_extended_history")["album_name"].null_count() == 0
    )


def test_other_content_goes_to_its_own_file(built: Path, exported: dict[str, Path]) -> None:
    counts = dict(
        query(built, "select content_type, count(*) from dw.fact_other_played group by 1")
    )
    other = pl.read_parquet(exported["parquet"] / "other_plays.parquet")
    assert dict(other.group_by("content_type").len().iter_rows()) == counts
    assert {"podcast", "audiobook", "video"} <= set(counts)
    listens = (exported["listenbrainz"] / "other_listens.jsonl").read_text().splitlines()
    kinds = [
        json.loads(line)["track_metadata"]["additional_info"]["music_tracker_content_type"]
        for line in listens
    ]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == counts


def test_listenbrainz_lines_are_listens(built: Path, exported: dict[str, Path]) -> None:
    lines = (exported["listenbrainz"] / "listens.jsonl").read_text().splitlines()
    assert len(lines) == query(built, "select count(*) from dw.fact_track_played")[0][0]
    extended = 0
    for line in lines:
        listen = json.loads(line)
        assert set(listen) == {"listened_at", "track_metadata"}
        assert isinstance(listen["listened_at"], int)
        meta = listen["track_metadata"]
        assert meta["artist_name"] and meta["track_name"]
        info = meta["additional_info"]
        assert info["submission_client"] == "music-tracker"
        assert info["music_service"] == "spotify.com"
        assert info["ms_played"] > 0
        assert None not in info.values()
        if info["music_tracker_source"] == "spotify_extended_history":
            extended += 1
            track_id = info["spotify_id"].removeprefix("https://open.spotify.com/track/")
            assert len(track_id) == 22
            assert "release_name" in meta
    assert (
        extended
        == query(
            built,
            "select count(*) from dw.fact_track_played where source = 'spotify_extended_history'",
        )[0][0]
    )


def test_since_is_a_local_date(built: Path, cli: Cli, tmp_path: Path) -> None:
    summary = cli_json(
        cli, "export", "--format", "parquet", "--output", str(tmp_path / "x"),
        "--since", "2023-06-01", "--data-dir", str(built),
    )  # fmt: skip
    expected = query(
        built, "select count(*) from dw.fact_track_played where date_sid >= '2023-06-01'"
    )[0][0]
    assert summary["plays"] == expected > 0
    plays = pl.read_parquet(tmp_path / "x" / "plays.parquet")
    assert plays["played_date_local"].min() >= date(2023, 6, 1)  # type: ignore[operator]


def test_an_output_under_home_written_as_a_tilde(
    built: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--output "~/x"` (quoted: no shell expands it) is the folder x in the home folder,
    not a folder named "~" in the current one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    cli("export", "--format", "csv", "--output", "~/out", "--since", "2024-01-01",
        "--data-dir", str(built))  # fmt: skip
    assert (tmp_path / "home" / "out" / "plays.csv").is_file()
    assert not (tmp_path / "~").exists()


def test_bad_requests_say_what_to_do(built: Path, cli: Cli, tmp_path: Path) -> None:
    args = ["--output", str(tmp_path / "x"), "--data-dir", str(built)]
    result = cli("export", "--format", "xml", *args, expect=2)
    assert "listenbrainz, csv, parquet" in result.output
    result = cli("export", "--format", "csv", "--since", "June", *args, expect=2)
    assert "YYYY-MM-DD" in result.output
    result = cli("export", "--format", "csv", "--since", "2999-01-01", *args, expect=2)
    assert "in the future" in result.output
    assert not (tmp_path / "x").exists()
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    result = cli("export", "--format", "csv", "--output", str(a_file), "--data-dir", str(built),
                 expect=1)  # fmt: skip
    assert "is a file" in result.output
    assert a_file.read_text() == "keep me"
    (tmp_path / "loop").symlink_to("loop")  # a loop of links: told, no traceback
    result = cli("export", "--format", "csv", "--output", str(tmp_path / "loop" / "x"),
                 "--data-dir", str(built), expect=1)  # fmt: skip
    assert "cannot be followed" in result.output and "Traceback" not in result.output
    result = cli("export", "--format", "csv", *args[:2], "--data-dir", str(tmp_path / "loop"),
                 expect=2)  # fmt: skip
    assert "the data folder" in result.output and "cannot be followed" in result.output


def test_nothing_to_export_before_transform(cli: Cli, data_dir: Path, tmp_path: Path) -> None:
    cli("import", str(ACCOUNT_DIR))
    result = cli("export", "--format", "csv", "--output", str(tmp_path / "x"), expect=1)
    assert "run `music-tracker transform` first" in result.output
    assert not (tmp_path / "x").exists()


def test_an_output_that_cannot_be_written_says_so(built: Path, cli: Cli, tmp_path: Path) -> None:
    """A folder under a file, a file that cannot be replaced: an error naming it, exit 1
    (not a traceback), and no half-written file left behind."""
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    args = ["--data-dir", str(built)]
    result = cli("export", "--format", "csv", "--output", str(a_file / "sub"), *args, expect=1)
    assert f"cannot write {a_file / 'sub'}" in result.output
    assert "Traceback" not in result.output and a_file.read_text() == "keep me"
    for fmt, name in (("csv", "plays.csv"), ("listenbrainz", "listens.jsonl")):
        folder = tmp_path / fmt
        (folder / name).mkdir(parents=True)  # a folder where the file goes
        result = cli("export", "--format", fmt, "--output", str(folder), *args, expect=1)
        assert f"cannot write {folder / name}" in result.output
        assert sorted(p.name for p in folder.iterdir()) == [name]


def test_not_into_the_folders_music_tracker_manages(
    built_copy: Path, cli: Cli, tmp_path: Path
) -> None:
    """landing/ holds what was imported as it came (an export there passes for an imported
    file), report/ is replaced as a whole: refused; a folder of its own in the data folder
    is fine."""
    args = ["--format", "listenbrainz", "--data-dir", str(built_copy)]
    for inside in ("landing", "landing/new", "report", "serving", "state"):
        result = cli("export", "--output", str(built_copy / inside), *args, expect=1)
        assert "which music-tracker manages" in result.output
        assert not (built_copy / inside / "listens.jsonl").exists()
    summary = cli_json(cli, "export", "--output", str(built_copy / "exports"), *args)
    assert summary["plays"] > 0


def test_a_star_schema_built_by_an_older_version(
    built_copy: Path, cli: Cli, tmp_path: Path
) -> None:
    """After an upgrade, before `transform` rebuilt the star schema with the new version's
    columns: an error saying to run it (exit 1), not a traceback, and no file written."""
    import duckdb

    with duckdb.connect(str(built_copy / "warehouse.duckdb")) as con:
        con.execute("alter table dw.fact_track_played drop column is_played_at_estimated")
    out = tmp_path / "x"
    result = cli("export", "--format", "listenbrainz", "--output", str(out),
                 "--data-dir", str(built_copy), expect=1)  # fmt: skip
    assert "run `music-tracker transform`" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_a_failure_on_the_second_file_leaves_the_folder_as_it_was(
    built: Path, cli: Cli, tmp_path: Path
) -> None:
    """An older export in the folder, and the second file cannot be written (a disk that
    fills up, here a folder where it is written first): neither file is replaced, so the
    folder never holds this export's plays beside the older export's podcasts."""
    folder = tmp_path / "lb"
    folder.mkdir()
    (folder / "listens.jsonl").write_text("an older export\n")
    (folder / ".other_listens.jsonl.partial").mkdir()
    result = cli("export", "--format", "listenbrainz", "--output", str(folder),
                 "--data-dir", str(built), expect=1)  # fmt: skip
    assert f"cannot write {folder / 'other_listens.jsonl'}" in result.output
    assert (folder / "listens.jsonl").read_text() == "an older export\n"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".other_listens.jsonl.partial",
        "listens.jsonl",
    ]


def test_one_export_at_a_time_writes_into_a_folder(built: Path, cli: Cli, tmp_path: Path) -> None:
    """Another export writing into the folder (its lock on the folder held) is told, exit
    75, and nothing in the folder is touched; once it is done, the export runs."""
    folder = tmp_path / "lb"
    folder.mkdir()
    (folder / "listens.jsonl").write_text("the other export's\n")
    held = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        result = cli("export", "--format", "listenbrainz", "--output", str(folder),
                     "--data-dir", str(built), expect=75)  # fmt: skip
        assert f"another export is writing into {folder}" in result.output
        assert sorted(p.name for p in folder.iterdir()) == ["listens.jsonl"]
        assert (folder / "listens.jsonl").read_text() == "the other export's\n"
    finally:
        os.close(held)
    cli("export", "--format", "listenbrainz", "--output", str(folder), "--data-dir", str(built))
    assert sorted(p.name for p in folder.iterdir()) == ["listens.jsonl", "other_listens.jsonl"]


def test_a_folder_that_cannot_be_locked_is_written_and_said(
    built: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system that locks no folder (NFS answers a folder's flock with EBADF;
    none here does, so the refusal is injected) the export runs, and says what it could
    not rule out."""

    def refused(fd: int, operation: int) -> None:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))

    monkeypatch.setattr(fcntl, "flock", refused)
    folder = tmp_path / "nfs"
    result = cli("export", "--format", "csv", "--output", str(folder), "--data-dir", str(built))
    assert "warning:" in result.output and "cannot be locked" in result.output
    assert sorted(p.name for p in folder.iterdir()) == ["other_plays.csv", "plays.csv"]


def test_a_star_schema_built_under_other_settings_or_behind_is_told(
    built_2018_copy: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A time zone or stream threshold changed since the build: status said "up to date",
    and export and report labelled the old figures with the new settings (helper-63:
    Denver's hours under "Europe/Berlin", 30 s streams under "120 s"). They now say how
    the star schema was built; status says it needs a build, as after a build that did
    not finish; and an export says what the star schema does not hold yet."""
    data = built_2018_copy
    before = cli_json(cli, "status")
    built = before["star_schema_built_for"]
    assert built["stream_threshold_ms"] == 30_000 and before["star_schema_stale"] is None
    other = "Asia/Tokyo" if built["timezone"] != "Asia/Tokyo" else "Europe/Berlin"
    monkeypatch.setenv("MUSIC_TRACKER_TIMEZONE", other)
    monkeypatch.setenv("MUSIC_TRACKER_STREAM_THRESHOLD_MS", "120000")
    status = cli_json(cli, "status")
    assert status["star_schema_stale"] == "built under other settings"
    told = (
        f"the star schema was built for {built['timezone']} and streams of 30 s; the settings"
        f" now say {other} and 120 s"
    )
    assert any(w.startswith(told) for w in status["warnings"]), status["warnings"]
    line = " ".join(cli("status").stdout.split())
    assert "built under other settings (run `music-tracker transform`)" in line, line
    assert "up to date" not in line
    exported = cli_json(cli, "export", "--format", "csv", "--output", str(tmp_path / "out"))
    assert exported["timezone"] == built["timezone"]
    assert [w for w in exported["warnings"] if w.startswith(told)], exported["warnings"]
    zones = pl.read_csv(tmp_path / "out" / "plays.csv")["timezone"].unique().to_list()
    assert zones == [built["timezone"]]
    report = cli_json(cli, "report")
    assert [w for w in report["warnings"] if w.startswith(told)], report["warnings"]
    page = (data / "report" / "index.html").read_text(encoding="utf-8")
    assert f"local to {built['timezone']}." in page and "at least 30 s" in page
    # the history starts within its newest year: the front page's year is from its first
    # play, not from 1 January (helper-68)
    ((first, newest),) = query(
        data, "select min(date_sid), max(date_sid) from dw.agg_daily_listening"
    )
    assert first.year == newest.year and (first.month, first.day) != (1, 1)
    assert (
        f"<h2>{newest.year}, from the first play, {first.day} {first:%B %Y}, to"
        f" {newest.day} {newest:%B %Y}</h2>"
    ) in page
    # the build under the settings now: nothing stale
    cli("transform")
    status = cli_json(cli, "status")
    assert status["star_schema_built_for"] == {"timezone": other, "stream_threshold_ms": 120_000}
    assert status["star_schema_stale"] is None
    assert cli_json(cli, "report")["warnings"] == []
    # a build that did not finish: status says so on the star schema's line, not "up to
    # date" above a warning, and so does an export
    (data / ".transform-unfinished").touch()
    # under the settings it was built with before: what a stopped build wrote of
    # dw.build_settings is not believed (helper-68: "built for Asia/Tokyo" over Denver's)
    monkeypatch.setenv("MUSIC_TRACKER_TIMEZONE", built["timezone"])
    assert cli_json(cli, "status")["star_schema_stale"] == "its last build did not finish"
    exported = cli_json(cli, "export", "--format", "csv", "--output", str(tmp_path / "out2"))
    assert exported["timezone"] == built["timezone"]
    assert [w for w in exported["warnings"] if "did not finish" in w], exported["warnings"]
    assert not [w for w in exported["warnings"] if "was built for" in w], exported["warnings"]
    report = cli_json(cli, "report")
    assert [w for w in report["warnings"] if "did not finish" in w] == [report["warnings"][0]]
    monkeypatch.setenv("MUSIC_TRACKER_TIMEZONE", other)
    (data / ".transform-unfinished").unlink()
    # exclusions.yaml changed since the build (or the project: an upgrade): not "up to
    # date", and an export says so (helper-68)
    (data / "exclusions.yaml").write_text("artists:\n  - Nobody By This Name\n")
    assert cli_json(cli, "status")["star_schema_stale"] == (
        "built before a change of the project, a setting or exclusions.yaml"
    )
    exported = cli_json(cli, "export", "--format", "csv", "--output", str(tmp_path / "out4"))
    assert [w for w in exported["warnings"] if "built before a change" in w]
    # also from the copy status shows while a writer holds the warehouse, saved before
    # the edit (helper-69: "up to date" beside "showing the warehouse as it was")
    held = "warehouse.turn(Path(sys.argv[1]), read_only=False, wait_s=5, what='import')"
    with held_elsewhere(held, str(data / "warehouse.duckdb")):
        monkeypatch.setenv("MUSIC_TRACKER_LOCK_WAIT_S", "0")
        shown = cli_json(cli, "status")
        assert any("showing the warehouse as it was" in w for w in shown["warnings"]), shown
        assert shown["star_schema_stale"] == (
            "built before a change of the project, a setting or exclusions.yaml"
        )
    monkeypatch.delenv("MUSIC_TRACKER_LOCK_WAIT_S")
    (data / "exclusions.yaml").unlink()
    assert cli_json(cli, "status")["star_schema_stale"] is None
    # plays imported since the build are not in an export, which says how many, podcasts
    # too (they were left out of the count)
    other = "select count(*) from raw.other_plays"
    ((other_before,),) = query(data, other)
    cli("import", str(ACCOUNT_DIR))
    since = cli_json(cli, "status")["plays_imported_since_build"]
    ((other_after,),) = query(data, other)
    assert since > 0 and other_after > other_before
    exported = cli_json(cli, "export", "--format", "csv", "--output", str(tmp_path / "out3"))
    assert exported["warnings"] == [
        f"{since:,} plays and {other_after - other_before:,} podcast, audiobook or video plays"
        " imported since the last `music-tracker transform` are not in this export: run it,"
        " then export again"
    ]
