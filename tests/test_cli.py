"""The first hour: a newcomer's mistakes end in one clear line and a non-zero exit, never a
traceback, and leave nothing half-created. Run through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ACCOUNT_DIR, EXTENDED_DIR, Cli, cli_json, held_elsewhere

CLI = str(Path(sys.executable).with_name("music-tracker"))
AUDIO_2018 = EXTENDED_DIR / "Streaming_History_Audio_2018.json"


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``music-tracker ARGS`` in a clean environment: no MUSIC_TRACKER_ setting leaks in,
    but the worker's own dbt target folder (two dbt runs must not share one) and the
    calendar the run pins (conftest.py)."""
    keep = {"MUSIC_TRACKER_DBT_TARGET_DIR", "MUSIC_TRACKER_CALENDAR_LAST_DAY"}
    base = {k: v for k, v in os.environ.items() if not k.startswith("MUSIC_TRACKER_") or k in keep}
    done = subprocess.run(
        [CLI, *args],
        cwd=cwd,
        env={**base, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


@pytest.mark.parametrize(
    ("env", "args", "words"),
    [
        (
            {"MUSIC_TRACKER_LOG_LEVEL": "verbose"},
            ["status"],
            "MUSIC_TRACKER_LOG_LEVEL='verbose': not a log level: use one of DEBUG, INFO",
        ),
        (
            {"MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT": "lots"},
            ["import", str(AUDIO_2018)],
            "MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT='lots': not a memory size",
        ),
        (
            {"MUSIC_TRACKER_DBT_MEMORY_LIMIT": "lots"},
            ["transform", "--json"],
            "MUSIC_TRACKER_DBT_MEMORY_LIMIT='lots': not a memory size",
        ),
        (
            {"MUSIC_TRACKER_CALENDAR_LAST_DAY": "31/01/2027"},
            ["transform", "--json"],
            "MUSIC_TRACKER_CALENDAR_LAST_DAY='31/01/2027': not a day: write it as YYYY-MM-DD",
        ),
        (
            {"MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S": "0.2"},
            ["enrich"],
            "MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S=0.2: MusicBrainz allows one request a",
        ),
        (
            # a list setting as a bare name: pydantic-settings' 73-line traceback before
            {"MUSIC_TRACKER_NOT_PODCASTS": "Gustav Mahler"},
            ["import", str(AUDIO_2018)],
            "MUSIC_TRACKER_NOT_PODCASTS='Gustav Mahler': not a JSON list; use a JSON list",
        ),
    ],
)
def test_a_bad_setting_is_one_line_before_anything_is_touched(
    tmp_path: Path, env: dict[str, str], args: list[str], words: str
) -> None:
    data = tmp_path / "data"
    done = run(*args, "--data-dir", str(data), cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert words in done.stderr
    assert done.stdout == ""  # --json readers get nothing half-written
    assert not data.exists()


def test_home_in_a_data_dir_setting_is_expanded(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = run(
        "import",
        str(AUDIO_2018),
        cwd=tmp_path,
        env={"MUSIC_TRACKER_DATA_DIR": "~/mt", "HOME": str(home)},
    )
    assert done.returncode == 0, done.stderr
    assert (home / "mt" / "warehouse.duckdb").is_file()
    assert not (tmp_path / "~").exists()


def test_settings_come_from_the_config_folder_wherever_the_command_runs(
    tmp_path: Path,
) -> None:
    """The user's config folder is read from any working directory (before, the same
    command run elsewhere silently used ./data); `status` names the files it read."""
    config = tmp_path / "xdg" / "music-tracker"
    config.mkdir(parents=True)
    data = tmp_path / "music-data"
    (config / ".env").write_text(f"MUSIC_TRACKER_DATA_DIR={data}\n")
    here = tmp_path / "elsewhere"
    here.mkdir()
    (here / "music-tracker.toml").write_text('timezone = "Europe/Berlin"\n')
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert run("import", str(AUDIO_2018), cwd=here, env=env).returncode == 0
    assert (data / "warehouse.duckdb").is_file() and not (here / "data").exists()
    read = json.loads(run("status", "--json", cwd=here, env=env).stdout)
    assert read["settings_files"] == [str(here / "music-tracker.toml"), str(config / ".env")]
    assert read["timezone"] == "Europe/Berlin"
    # without XDG_CONFIG_HOME the folder is ~/.config/music-tracker; without any file,
    # status says where it looked
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    config.rename(home / ".config" / "music-tracker")
    text = run("status", cwd=here, env={"XDG_CONFIG_HOME": "", "HOME": str(home)}).stdout
    assert f"settings read from {here / 'music-tracker.toml'}, {home / '.config'}" in text
    nothing = run("status", cwd=tmp_path, env={**env, "HOME": str(home / "none")})
    assert "no warehouse at" in nothing.stderr
    assert f"no .env or music-tracker.toml in {tmp_path} or {tmp_path / 'xdg'}" in nothing.stderr


def test_the_order_of_the_settings_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nearer wins: the environment, the working directory's .env, its music-tracker.toml (or
    MUSIC_TRACKER_CONFIG's file), the config folder's .env, its music-tracker.toml."""
    from music_tracker.settings import Settings, settings_files

    config = tmp_path / "xdg" / "music-tracker"
    config.mkdir(parents=True)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("MUSIC_TRACKER_TIMEZONE", raising=False)
    monkeypatch.delenv("MUSIC_TRACKER_CONFIG", raising=False)
    layers = [  # farthest first: each overrides the ones before
        (config / "music-tracker.toml", 'timezone = "Asia/Tokyo"\n', "Asia/Tokyo"),
        (config / ".env", "MUSIC_TRACKER_TIMEZONE=UTC\n", "UTC"),
        (here / "music-tracker.toml", 'timezone = "Europe/Berlin"\n', "Europe/Berlin"),
        (here / ".env", "MUSIC_TRACKER_TIMEZONE=America/Lima\n", "America/Lima"),
    ]
    for path, text, zone in layers:
        path.write_text(text)
        assert Settings().timezone == zone, path
    assert settings_files() == [path for path, _, _ in reversed(layers)]
    monkeypatch.setenv("MUSIC_TRACKER_TIMEZONE", "Africa/Lagos")
    assert Settings().timezone == "Africa/Lagos"
    monkeypatch.delenv("MUSIC_TRACKER_TIMEZONE")
    (here / ".env").unlink()
    (tmp_path / "other.toml").write_text('timezone = "Asia/Seoul"\n')
    monkeypatch.setenv("MUSIC_TRACKER_CONFIG", str(tmp_path / "other.toml"))
    assert Settings().timezone == "Asia/Seoul"  # instead of ./music-tracker.toml
    assert settings_files()[0] == tmp_path / "other.toml"


def test_a_data_dir_that_is_the_warehouse_file_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert run("import", str(AUDIO_2018), "--data-dir", str(data), cwd=tmp_path).returncode == 0
    for command in (["import", str(AUDIO_2018)], ["status"]):
        done = run(*command, "--data-dir", str(data / "warehouse.duckdb"), cwd=tmp_path)
        assert done.returncode == 2
        assert "is a file, not a folder; use its folder, --data-dir" in done.stderr


def test_a_data_dir_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    """/proc/x cannot be created (and nothing under /proc written): one line naming the
    folder and the setting, exit 2, no traceback, in every command that writes (run and
    serve make Prefect's home and the state folder first)."""
    commands = (["import", str(AUDIO_2018)], ["publish"], ["transform"], ["demo"], ["run"],
                ["serve"], ["serve", "--lite"])  # fmt: skip
    for command in commands:
        done = run(*command, "--data-dir", "/proc/x", cwd=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert "cannot use the data folder /proc/x" in done.stderr, (command, done.stderr)
        assert "--data-dir or MUSIC_TRACKER_DATA_DIR" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_failed_first_import_creates_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "Streaming_History_Audio_2020.json"
    bad.write_text('[{"ts": "2020-01-01T00:00:00Z", "ms_played": ')  # truncated
    data = tmp_path / "data"
    done = run("import", str(bad), "--data-dir", str(data), cwd=tmp_path)
    assert done.returncode == 1
    assert str(bad) in done.stderr and "the warehouse is unchanged" in done.stderr
    assert not data.exists()


def test_version_help_and_a_bare_command(tmp_path: Path) -> None:
    version = run("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == "0.1.0"
    for args in ([], ["-h"], ["--help"]):
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 0, args
        assert "Usage: music-tracker" in done.stdout and "import" in done.stdout
    for command in ("transform", "report", "ingest", "import"):
        flags = run(command, "-h", cwd=tmp_path).stdout
        assert "--json" in flags and "<bool>" not in flags, command


def test_every_documented_source_is_accepted(tmp_path: Path) -> None:
    account = tmp_path / "history.json"
    account.write_text(
        json.dumps(
            [
                {
                    "endTime": "2024-03-01 10:00",
                    "artistName": "Band",
                    "trackName": "Song",
                    "msPlayed": 200000,
                }
            ]
        )
    )
    done = run(
        "import", str(account), "--source", "spotify_account_data", "--data-dir", "d", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["new_plays"] == 1
    refused = run("import", str(account), "--source", "spotify_podcasts", cwd=tmp_path)
    assert refused.returncode == 2
    assert "spotify_account_data" in refused.stderr and "spotify_api" in refused.stderr


def test_transform_without_data_or_with_an_empty_selection(tmp_path: Path) -> None:
    empty = run("transform", "--data-dir", "nothing-here", cwd=tmp_path)
    assert empty.returncode == 1
    assert "run `music-tracker import` first" in empty.stderr
    assert "dbt build failed" not in empty.stderr
    assert run("import", str(AUDIO_2018), "--data-dir", "d", cwd=tmp_path).returncode == 0
    nothing = run("transform", "--select", "no_such_model", "--data-dir", "d", cwd=tmp_path)
    assert nothing.returncode == 1
    assert "--select 'no_such_model' matches no model" in nothing.stderr
    # dbt's own error output never reaches stdout, which --json readers parse (another
    # memory limit is another dbt profile: parsed in a target folder of its own, so that
    # the worker's parse cache stays warm for the tests after this one)
    starved = run(
        "transform", "--json", "--data-dir", "d", cwd=tmp_path,
        env={"MUSIC_TRACKER_DBT_MEMORY_LIMIT": "1KB",
             "MUSIC_TRACKER_DBT_TARGET_DIR": str(tmp_path / "dbt-target")},
    )  # fmt: skip
    assert starved.returncode == 1
    assert starved.stdout == "" and "Out of Memory" in starved.stderr
    # the cap named is the one the build ran under (helper-56: it named the import's)
    assert "MUSIC_TRACKER_DBT_MEMORY_LIMIT=1KB" in starved.stderr, starved.stderr
    assert "MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT" not in starved.stderr


def test_status_a_person_can_read(tmp_path: Path) -> None:
    empty = run("status", "--data-dir", "nothing", cwd=tmp_path)
    assert empty.returncode == 1 and "run `music-tracker import` first" in empty.stderr
    imported = run(
        "import", str(EXTENDED_DIR), "--data-dir", "d", "--json", cwd=tmp_path
    )  # fmt: skip
    reported = json.loads(imported.stdout)["set_aside"]
    text = run("status", "--data-dir", "d", cwd=tmp_path).stdout
    # local times in the configured zone, not UTC ISO strings; each source's range
    # the start of the first play (its end less the time heard), whatever the source
    assert "from 2018-09-12 14:33 MDT to 2023-11-04" in text and "(America/Denver;" in text
    assert "+00:00" not in text and "None" not in text
    assert "spotify_extended_history" in text and "2018-09-12" in text
    assert "star schema: not built yet" in text
    facts = json.loads(run("status", "--data-dir", "d", "--json", cwd=tmp_path).stdout)
    # the rows the import reported as set aside are the rows status shows (the videos' and
    # podcasts' 0 ms rows too: 198 of the 279)
    assert facts["set_aside_rows"] == reported and sum(reported.values()) == 279
    assert facts["local"]["first_play_at"] == "2018-09-12 14:33 MDT"
    assert facts["star_schema_built_at"] is None
    berlin = json.loads(
        run(
            "status", "--data-dir", "d", "--json", cwd=tmp_path,
            env={"MUSIC_TRACKER_TIMEZONE": "Europe/Berlin"},
        ).stdout
    )  # fmt: skip
    assert berlin["local"]["first_play_at"] == "2018-09-12 22:33 CEST"


def test_the_demo_never_touches_real_data(tmp_path: Path) -> None:
    real = tmp_path / "real"
    assert run("import", str(AUDIO_2018), "--data-dir", str(real), cwd=tmp_path).returncode == 0
    before = (real / "warehouse.duckdb").stat().st_mtime_ns
    done = run("demo", "--data-dir", str(real), cwd=tmp_path)
    assert done.returncode == 1
    assert "holds real data (warehouse.duckdb)" in done.stderr
    assert (real / "warehouse.duckdb").stat().st_mtime_ns == before
    assert not (real / "demo-inputs").exists()
    assert "data/demo" in run("demo", "--help", cwd=tmp_path).stdout


def test_enrich_needs_a_contact(tmp_path: Path) -> None:
    assert run("import", str(AUDIO_2018), "--data-dir", "d", cwd=tmp_path).returncode == 0
    done = run("enrich", "--data-dir", "d", cwd=tmp_path)
    assert done.returncode == 2
    assert "MUSIC_TRACKER_CONTACT is not set" in done.stderr


def test_a_misspelled_setting_is_warned_about(tmp_path: Path) -> None:
    (tmp_path / "music-tracker.toml").write_text('MUSIC_TRACKER_TIMEZONE = "Europe/Berlin"\n')
    done = run(
        "status", "--data-dir", "d", cwd=tmp_path, env={"MUSIC_TRACKER_TIMEZNOE": "UTC"}
    )  # fmt: skip
    assert "MUSIC_TRACKER_TIMEZNOE is not a Music Tracker setting" in done.stderr
    assert "'MUSIC_TRACKER_TIMEZONE' is not a setting and is ignored (write timezone)" in (
        done.stderr
    )
    (tmp_path / "music-tracker.toml").write_text('timezone = "Mars/Olympus"\n')
    bad = run("status", "--data-dir", "d", cwd=tmp_path)
    assert bad.returncode == 2
    assert "MUSIC_TRACKER_TIMEZONE='Mars/Olympus': not an IANA time zone name" in bad.stderr


def test_personal_data_is_private_to_the_owner(tmp_path: Path) -> None:
    """Exports hold IP addresses and user agents: what import creates is 0700/0600."""
    data = tmp_path / "data"
    assert run("import", str(AUDIO_2018), "--data-dir", str(data), cwd=tmp_path).returncode == 0
    landed = next((data / "landing").rglob("*.json"))
    modes = {path: path.stat().st_mode & 0o777 for path in (data, data / "landing", landed)}
    modes[data / "warehouse.duckdb"] = (data / "warehouse.duckdb").stat().st_mode & 0o777
    assert modes == {
        data: 0o700,
        data / "landing": 0o700,
        landed: 0o600,
        data / "warehouse.duckdb": 0o600,
    }
    for folder in landed.relative_to(data).parents:
        assert (data / folder).stat().st_mode & 0o077 == 0, folder


def test_file_names_with_brackets_print_as_they_are(tmp_path: Path) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "Streaming_History_Audio_2018.json").write_bytes(AUDIO_2018.read_bytes())
    (export / "[2024] Playlist1.json").write_text("{}")
    done = run("import", str(export), "--data-dir", "d", cwd=tmp_path)
    assert done.returncode == 0
    assert "skipped " + str(export / "[2024] Playlist1.json") in done.stdout


def test_a_folder_without_history_is_an_error_that_names_what_was_found(tmp_path: Path) -> None:
    folder = tmp_path / "Downloads"
    folder.mkdir()
    (folder / "Userdata.json").write_text("{}")
    (folder / "notes.txt").write_text("shopping list")
    done = run("import", str(folder), "--data-dir", "d", cwd=tmp_path)
    assert done.returncode == 1
    assert "no listening history found (2 files: Userdata.json, notes.txt)" in done.stderr
    assert not (tmp_path / "d").exists()


def test_another_process_holding_the_warehouse(
    cli: Cli, shared: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB lets nobody open the file beside a writer (here a DuckDB shell of the owner's):
    `status` shows what it read last, with a warning; a command that writes waits, then
    says who holds it and exits 75, leaving everything as it was."""
    import subprocess
    import sys

    cli("import", str(EXTENDED_DIR))
    before = cli_json(cli, "status")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]);"
            " print('open', flush=True); time.sleep(60)",
            str(data_dir / "warehouse.duckdb"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        monkeypatch.setenv("MUSIC_TRACKER_LOCK_WAIT_S", "0.5")
        during = cli_json(cli, "status")
        assert during["plays"] == before["plays"]
        assert any("is open in another program" in w for w in during["warnings"])
        result = cli("import", str(ACCOUNT_DIR), expect=75)
        assert f"(PID {holder.pid})" in result.output and "nothing was changed" in result.output
        assert "Traceback" not in result.output
    finally:
        holder.kill()
        holder.wait()
    after = cli_json(cli, "status")
    assert after["plays"] == before["plays"]
    assert not any("another process" in w for w in after["warnings"])


def _start(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """``music-tracker ARGS`` started, not waited for (``run``'s clean environment)."""
    keep = {"MUSIC_TRACKER_DBT_TARGET_DIR", "MUSIC_TRACKER_CALENDAR_LAST_DAY"}
    base = {k: v for k, v in os.environ.items() if not k.startswith("MUSIC_TRACKER_") or k in keep}
    return subprocess.Popen(
        [CLI, *args],
        cwd=cwd,
        env={**base, "COLUMNS": "200", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_first_imports_at_once_keep_the_warehouse(tmp_path: Path) -> None:
    """Two imports of one export into a new data folder at once (issue 26, item 5): one
    imports, the other waits its MUSIC_TRACKER_LOCK_WAIT_S and exits 75 (or imports
    nothing new, had it waited long enough), and the warehouse is there with every play.
    Before, the loser deleted the warehouse the winner was writing in 5 runs of 6; two
    rounds make a pass by luck unlikely (1 in 36)."""
    wait = {"MUSIC_TRACKER_LOCK_WAIT_S": "1"}
    for round_ in range(2):
        data = tmp_path / f"round-{round_}" / "data"
        both = [
            _start("import", str(EXTENDED_DIR), "--data-dir", str(data), "--json",
                   cwd=tmp_path, env=wait)
            for _ in range(2)
        ]  # fmt: skip
        done = [(proc.wait(timeout=300), *proc.communicate()) for proc in both]
        assert (data / "warehouse.duckdb").is_file(), (round_, done)
        assert sorted(code for code, _, _ in done) in ([0, 0], [0, 75]), done
        new_plays = sum(json.loads(stdout)["new_plays"] for code, stdout, _ in done if code == 0)
        status = json.loads(run("status", "--json", "--data-dir", str(data), cwd=tmp_path).stdout)
        assert status["plays"] == new_plays > 1000, (round_, done)
        for code, stdout, stderr in done:
            assert "Traceback" not in stdout + stderr
            if code == 75:  # the writer lock turned it away, not DuckDB's own lock
                assert "`import` (process" in stderr and "is writing the warehouse" in stderr


def test_the_writer_lock_exists_before_the_data_folder_does(tmp_path: Path) -> None:
    """A writer holding the lock on a data folder not made yet keeps an import out (exit 75,
    naming it, nothing created beside the lock); once it lets go having written nothing,
    the folder it made is gone again."""
    data = tmp_path / "new" / "data"
    held = "writer_lock(Path(sys.argv[1]), 'a first writer', wait_s=0)"
    with held_elsewhere(held, str(data)) as holder:
        done = run(
            "import", str(AUDIO_2018), "--data-dir", str(data),
            cwd=tmp_path, env={"MUSIC_TRACKER_LOCK_WAIT_S": "0.3"},
        )  # fmt: skip
        assert done.returncode == 75, done.stdout + done.stderr
        assert "`a first writer` (process" in done.stderr
        assert sorted(p.name for p in data.iterdir()) == [".writer.lock"]
    assert holder.returncode == 0
    assert not (tmp_path / "new").exists()


def test_the_demo_finding_another_writer_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer in the demo's folder (its publish takes the writer lock): one line
    and the busy exit, as every writing command, not a traceback."""
    from typer.testing import CliRunner

    from music_tracker.cli import app
    from music_tracker.demo import run as demo_run
    from music_tracker.lock import WriterBusy

    def busy(*args: object, **kwargs: object) -> None:
        raise WriterBusy("another music-tracker process is writing the warehouse (waited 1 s)")

    monkeypatch.setattr(demo_run, "run_demo", busy)
    done = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path / "demo")])
    assert done.exit_code == 75, (done.output, done.exception)
    assert "is writing the warehouse (waited 1 s): run `music-tracker demo` again" in done.output


def test_a_dbt_log_that_fills_the_disk_does_not_fail_the_build(
    built_2018_copy: Path, tmp_path: Path
) -> None:
    """dbt's log (written by transform.py since dbt's own loggers are off) on a full disk:
    the build passes, and one warning says the log could not be written. dbt builds with
    its automatic threads here (the clean environment), so the log is written from four."""
    log = built_2018_copy / "dbt" / "logs" / "dbt.log"
    log.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to("/dev/full")  # every write: "No space left on device"
    # dbt's build, not one replayed from a plan an earlier test's build recorded
    replay_off = {"MUSIC_TRACKER_TRANSFORM_REPLAY": "false"}
    done = run(
        "transform", "--json", "--data-dir", str(built_2018_copy), cwd=tmp_path, env=replay_off
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["threads"] == 4
    assert f"dbt's log {log} could not be written" in " ".join(done.stderr.split())
    assert "No space left on device" in done.stderr
    assert "Logging error" not in done.stderr
