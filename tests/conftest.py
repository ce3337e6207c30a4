"""Shared fixtures: where the real exports live, a fresh data dir, the CLI runner."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from music_tracker.cli import app
from music_tracker.settings import DEFAULT_CONFIG_FILE, ENV_FILE, user_config_dir

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSIC_TRACKER_SHARED", REPO.parent / "shared"))
# Chromium for the report's browser tests (Debian's package; .ci/run installs it), and
# where they keep screenshots for a person to look at
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Chromium still looks up its sign-in host (accounts.google.com) at start, flags or
    # not: no host resolves but 127.0.0.1 (a rule's `*` takes addresses too), so nothing
    # is asked of a DNS server; the pages under test are files or on 127.0.0.1
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
ARTIFACTS = Path(os.environ.get("MUSIC_TRACKER_TEST_ARTIFACTS", REPO / "test-artifacts"))
SPOTIFY_DATA = SHARED / "data" / "spotify"
EXTENDED_DIR = SPOTIFY_DATA / "extended_history_2026"
ACCOUNT_DIR = SPOTIFY_DATA / "account_data_2024"

# The owner's own settings (~/.config/music-tracker/, read wherever a command runs) must not
# reach the tests: their data folder or time zone would. Only when there are any, so that
# other tools' XDG_CONFIG_HOME (podman's, Chromium's) is left alone otherwise.
_OWN_SETTINGS = user_config_dir()
if _OWN_SETTINGS is not None and any(
    (_OWN_SETTINGS / name).is_file() for name in (ENV_FILE, DEFAULT_CONFIG_FILE)
):
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="music-tracker-no-config-")

# The calendar (dw.dim_date) runs to 30 days after each build unless told its last day: a
# test comparing builds on either side of midnight would see one day more. Pinned for the
# whole run (set before the parallel workers start, which inherit it).
if not os.environ.get("MUSIC_TRACKER_CALENDAR_LAST_DAY", "").strip():  # empty: the default
    os.environ["MUSIC_TRACKER_CALENDAR_LAST_DAY"] = (
        datetime.date.today() + datetime.timedelta(days=30)
    ).isoformat()

# dbt builds one model at a time in the tests unless a test says otherwise: the parallel
# workers already keep both cores busy, and dbt's four threads (the automatic choice on a
# small warehouse) cost about 9% more CPU per build for nothing then. The automatic choice
# is tested where it is decided (test_threads_follow_the_stored_plays_not_the_file_size,
# which builds with it) and the stack test's demo builds with it inside the image.
os.environ.setdefault("MUSIC_TRACKER_DBT_THREADS", "1")

# Parallel workers (pytest-xdist, `make test` runs five) each keep their own dbt parse cache
# and compiled SQL: two dbt runs writing one target/ at once would trip over each other.
# Outside the dbt project, whose files make up the build fingerprint.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    os.environ["MUSIC_TRACKER_DBT_TARGET_DIR"] = str(REPO / ".pytest_cache" / f"dbt-{_WORKER}")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SPOTIFY_DATA.is_dir():
        pytest.fail(f"real exports not found at {SPOTIFY_DATA}: set MUSIC_TRACKER_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """Real exports imported and built once per test run, with the dbt unit tests.

    Read-only for the tests that use it: copy it before changing anything.
    """

    def make(folder: Path) -> None:
        data_dir = folder / "data"
        _invoke(data_dir, "import", str(EXTENDED_DIR), str(ACCOUNT_DIR))
        _invoke(data_dir, "transform", "--unit-tests")

    return _once_per_run(tmp_path_factory, "built", make) / "data"


@pytest.fixture(scope="session")
def built_2018(tmp_path_factory: pytest.TempPathFactory, shared: Path) -> Path:
    """The 2018 extended export alone (1,750 rows), imported and built once per test
    run: where a test of a build's behaviour starts. Read-only: copy it before changing
    anything (``built_2018_copy``)."""

    def make(folder: Path) -> None:
        data_dir = folder / "data"
        _invoke(data_dir, "import", str(EXTENDED_DIR / "Streaming_History_Audio_2018.json"))
        _invoke(data_dir, "transform")

    return _once_per_run(tmp_path_factory, "built-2018", make) / "data"


def _once_per_run(
    tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]
) -> Path:
    """A folder made once for the whole test run, by whichever worker asks first (the
    others wait for it): the report fixtures take a minute each to build."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if _WORKER:  # every worker's base folder is a child of the run's
        root = root.parent
    target = root / name
    with (root / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            make(target)
            (target / ".complete").touch()
    return target


@contextmanager
def held_elsewhere(held: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``held``, the head of a ``with`` statement (``writer_lock(Path(sys.argv[1]), 'a
    writer', wait_s=0)``), entered by another process for the block: it holds when the
    block starts and lets go when it ends. ``args``: that process's ``sys.argv[1:]``."""
    code = (
        "import sys; from pathlib import Path\n"
        "from music_tracker import warehouse\n"
        "from music_tracker.lock import backup_folder_lock, writer_lock\n"
        f"with {held}:\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        yield holder
    finally:
        holder.communicate("\n", timeout=30)


def offline_tab(browser: Any, width: int) -> tuple[Any, list[str]]:
    """A new Chromium page ``width`` px wide that reaches nothing but files, and the list
    its console errors and page errors are collected in."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
    )
    return page, errors


def _invoke(data_dir: Path, *args: str) -> None:
    result = CliRunner().invoke(app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="session")
def real_report(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """The real exports' star schema (``built``), copied, and its report: the data folder.
    Shared by the report's tests, read-only."""

    def make(folder: Path) -> None:
        built = request.getfixturevalue("built")
        shutil.copytree(built, folder / "data", ignore=shutil.ignore_patterns("serving", "report"))
        _invoke(folder / "data", "report")

    return _once_per_run(tmp_path_factory, "real-report", make) / "data"


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's generator at a tenth of its plays (300 a year, 2008 on), imported and
    built, its 25 most played artists looked up in the fake MusicBrainz, built again, and
    its report: the data folder. Shared by the report's tests, read-only."""

    def make(folder: Path) -> None:
        from music_tracker.demo.run import enrich_with_fake_musicbrainz, generate_inputs
        from music_tracker.settings import Settings

        data_dir = folder / "data"
        inputs = generate_inputs(folder / "exports", plays_per_year=300)
        exports = (inputs.lastfm_csv, inputs.old_extended, inputs.new_extended, inputs.account_data)
        _invoke(data_dir, "import", *map(str, exports))
        _invoke(data_dir, "transform")
        enrich_with_fake_musicbrainz(
            Settings(data_dir=data_dir), inputs.catalogue, limit=25, interval_s=0
        )
        _invoke(data_dir, "transform")
        _invoke(data_dir, "report")

    return _once_per_run(tmp_path_factory, "demo-report", make) / "data"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def built_copy(built: Path, tmp_path: Path) -> Path:
    """A private copy of the built data folder, to change (serving/ and report/ left out)."""
    import shutil

    target = tmp_path / "data"
    shutil.copytree(built, target, ignore=shutil.ignore_patterns("serving", "report"))
    return target


@pytest.fixture
def built_2018_copy(built_2018: Path, tmp_path: Path) -> Path:
    """A private copy of ``built_2018`` at ``data_dir``'s place, as if the test had imported
    the 2018 export and built it there: the next build is incremental."""
    target = tmp_path / "data"
    shutil.copytree(built_2018, target, ignore=shutil.ignore_patterns("serving", "report"))
    return target


Cli = Callable[..., Any]


@pytest.fixture
def cli(data_dir: Path) -> Cli:
    """Run ``music-tracker ARGS --data-dir DATA`` in-process; return the result."""
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> Any:
        extra = [] if "--data-dir" in args else ["--data-dir", str(data_dir)]
        result = runner.invoke(app, [*args, *extra])
        assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
        return result

    return run


def cli_json(cli: Cli, *args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def query(data_dir: Path, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(sql, params).fetchall()


def load_rows(*paths: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(json.loads(path.read_text()))
    return rows


def extended_plays(*paths: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    """The music plays of extended-history files, computed here from the files alone.

    Rows with one natural key (ts, track uri, ms_played) are one row, the first kept. And
    a row that ends less than its ms_played (less 2 s, ts being cut to the second) after
    the first row of a play of the same track and ms_played is that play written twice:
    the real export holds 12 (a 210,024 ms play ending at 22:16:08 and again at 22:16:11),
    and plays of one track cannot overlap. A row further from the play's first row is a
    play of its own, however near the copy before it.
    """
    from datetime import datetime, timedelta

    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in load_rows(*paths):
        if row["spotify_track_uri"] and row["ms_played"] > 0:
            rows.setdefault((row["ts"], row["spotify_track_uri"], row["ms_played"]), row)
    plays: dict[tuple[str, str, int], dict[str, Any]] = {}
    first_end: dict[tuple[str, int], datetime] = {}  # of the latest play of a track and ms
    for key in sorted(rows, key=lambda k: (k[1], k[2], k[0])):
        ts, uri, ms = key
        end = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")
        first = first_end.get((uri, ms))
        if first is not None and end - first + timedelta(seconds=2) < timedelta(milliseconds=ms):
            continue
        first_end[(uri, ms)] = end
        plays[key] = rows[key]
    return plays


def completed_runs(api: str, deployment: str) -> int:
    """Flow runs of ``deployment`` that completed, as the Prefect API at ``api`` tells."""
    import httpx

    answer = httpx.post(f"{api}/flow_runs/filter", json={"limit": 200}, timeout=5).json()
    deployments = {
        d["id"]: d["name"]
        for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=5).json()
    }
    return sum(
        1
        for run in answer
        if run["state_type"] == "COMPLETED" and deployments.get(run["deployment_id"]) == deployment
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    """Each run starts with no replay plan in the workers' dbt folders: a plan recorded by
    an earlier run's code would be replayed (its key holds the dbt project, not our Python),
    and within a run whether a test's changed-data build goes to dbt or replays a plan an
    earlier test of its worker recorded depends on the order (both must give the same
    tables; tests/test_replay.py covers each path on purpose)."""
    if not _WORKER:  # the controller, before any worker starts
        for plans in (REPO / ".pytest_cache").glob("dbt-*/plans"):
            shutil.rmtree(plans, ignore_errors=True)


# The longest tests, with their seconds in a full run of `make test` (2026-12-06, 07:52),
# dealt to the workers first so that the run ends on short tests (the hung lite run, last,
# held one run 38 s with one core busy at most). Those that mostly wait (podman's build,
# a scheduler's intervals and time limits, an injected rate limit), then long builds that
# need no fixture another worker makes (the real exports' `built`).
_LONG_WAITS = {
    "test_the_images_build_and_the_stack_runs": 157,
    "test_a_hung_run_is_stopped_told_and_the_schedule_goes_on": 63,
    "test_a_hung_lite_run_is_stopped_told_and_the_schedule_goes_on": 40,
    "test_weeks_of_polling_with_faults_lose_and_duplicate_nothing": 40,
    "test_a_few_hundred_artists": 37,
    "test_with_metabase_the_hourly_refresh_writes_the_report_the_polls_left": 30,
    "test_a_failed_poll_is_retried_and_a_musicbrainz_outage_stops_nothing": 26,
    "test_serve_fires_the_schedule_and_stops_cleanly": 23,
    "test_one_failing_artist_does_not_stop_the_run": 20,
    "test_a_new_instance_is_set_up_with_every_dashboard_and_public_links": 17,
}
_LONG_BUILDS = {
    "test_a_changed_warehouse_goes_to_dbt": 25,
    "test_late_plays_for_an_old_month": 25,
    "test_a_scheduled_build_replays_the_last_one": 23,
    "test_an_enrichment_that_moves_an_artist_or_excludes_it": 23,
    "test_a_merge_of_two_old_plays": 20,
    "test_incremental_equals_full_refresh": 21,
    "test_a_play_whose_row_moved_twice_between_builds_leaves": 18,
    "test_a_report_of_a_history_wholly_excluded_says_so": 16,
}


@pytest.hookimpl(trylast=True)  # after -k and --deselect have taken theirs out
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each worker's first tests are its share of the longest, dealt longest first to the
    worker with the least so far; the tests on Prefect's test harness together, on one
    worker (each worker that runs one starts its own harness: 7 CPU-s, and again whenever
    its tests of that module are apart). In each share the builds go before the waits, but
    the containers' minutes start the run: a run that began with every worker waiting
    left a core idle for half a minute. xdist's worksteal hands the k-th of N workers the
    k-th of N slices of the list, in order (sizes ``left // workers_left``), and later
    moves only the ends of the queues; every worker computes the same order. In a small
    selection a share can be longer than its slice: the rest of it then runs on the next
    worker (test_orchestration.py alone on five workers starts the harness three times)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    long = {**_LONG_WAITS, **_LONG_BUILDS}

    def seconds(item: pytest.Item) -> int:
        return long.get(getattr(item, "originalname", ""), 5)

    def waits(unit: list[pytest.Item]) -> bool:
        return unit[0].name != "test_the_images_build_and_the_stack_runs" and (
            unit is harnessed or getattr(unit[0], "originalname", "") in _LONG_WAITS
        )

    harnessed = [item for item in items if "harness" in getattr(item, "fixturenames", ())]
    units = [[item] for item in items if seconds(item) > 5 and item not in harnessed]
    units = sorted(
        [*units, harnessed] if harnessed else units, key=lambda unit: -sum(map(seconds, unit))
    )
    dealt = {id(item) for unit in units for item in unit}
    rest = iter([item for item in items if id(item) not in dealt])
    shares: list[list[list[pytest.Item]]] = [[] for _ in range(workers)]
    load = [0] * workers
    for unit in units:
        k = load.index(min(load))
        shares[k].append(unit)
        load[k] += sum(map(seconds, unit))
    ordered, left = [], len(items)
    for k in range(workers):
        head = [item for unit in sorted(shares[k], key=waits) for item in unit]
        size = left // (workers - k)
        left -= size
        ordered += head + list(itertools.islice(rest, max(0, size - len(head))))
    items[:] = ordered + list(rest)
