"""``music-tracker transform``: ``dbt build`` in-process on the warehouse.

dbt runs through its Python API (``dbtRunner``) in this process, with the warehouse path and
the model's settings handed over as environment variables that ``transform/profiles.yml``
and ``dbt_project.yml`` read. Progress comes from dbt's own events; a failure names the
failing model or test.

What a run builds (its *scope*):

* ``everything``: every seed, model and test. The first run, ``--full-refresh``, and any run
  after the dbt project, the versions of dbt or DuckDB, or a setting the models read
  (time zone, stream threshold) or what ``exclusions.yaml`` says changed since
  the last successful run.
* ``changed data``: otherwise only the data can have changed, and the run builds what data
  can change (:func:`changed_data_selection`): every table and its tests, but not the views
  (they read live data), the seeds, models and tests that depend on code alone (tag
  ``code_only``), or the side tables whose raw tables gained no row that counts since the
  last whole build (:data:`SIDE_TABLES`). This is the scheduled runs' scope.
* ``selection``: ``--select``, exactly what was asked.

The project's fingerprint (a hash of the project files, versions and those settings) is
stored in ``raw.transform_runs`` after each successful run of the first two scopes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import io
import logging
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any

from music_tracker import exclusions, files, interrupts, replay
from music_tracker.settings import PROJECT_ROOT, Settings, memory_bytes

if TYPE_CHECKING:  # dbt is imported when a build starts, not with the command line
    from dbt.cli.main import dbtRunnerResult
    from dbt_common.events.base_types import EventMsg

log = logging.getLogger(__name__)

PROJECT_DIR = PROJECT_ROOT / "transform"
# what dbt writes into the project folder; not part of the project
_GENERATED = {"target", "logs", "dbt_packages", ".user.yml", "__pycache__"}
EVERYTHING = "everything"
CHANGED_DATA = "changed data"
SELECTION = "selection"


class NothingToBuild(Exception):
    """dbt was not started: there is no warehouse to build from."""


class TransformError(Exception):
    """dbt failed: the message names each failing model or test."""


@dataclass
class TransformResult:
    """What a build did."""

    scope: str = EVERYTHING
    succeeded: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    full_refresh: bool = False
    threads: int = 1
    replayed: bool = False  # the statements of dbt's last such build, run again


_DBT_OWN = {"DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}  # the DBT_* variables dbt runs with


def _dbt_variables(settings: Settings, threads: int = 1) -> dict[str, str]:
    """The environment variables the profile and the project read."""
    return {
        "MUSIC_TRACKER_WAREHOUSE": settings.warehouse_path.name,
        "MUSIC_TRACKER_TIMEZONE": settings.timezone,
        "MUSIC_TRACKER_STREAM_THRESHOLD_MS": str(settings.stream_threshold_ms),
        "MUSIC_TRACKER_CALENDAR_LAST_DAY": _calendar_last_day(settings),
        "MUSIC_TRACKER_DBT_MEMORY_LIMIT": settings.dbt_memory_limit,
        "MUSIC_TRACKER_DBT_THREADS": str(threads),
        "MUSIC_TRACKER_DBT_MOST_NEW_KEYS": str(most_new_keys(settings)),
        **_DBT_OWN,
    }


def dbt_flags_from_environment() -> list[str]:
    """The caller's ``DBT_*`` variables: dbt takes its flags from them too (``DBT_EMPTY``
    builds every model from no rows; ``DBT_FULL_REFRESH``, ``DBT_INDIRECT_SELECTION``...),
    so a build under them is not what a plan records (``run_build``)."""
    return sorted(key for key in os.environ if key.startswith("DBT_") and key not in _DBT_OWN)


def _calendar_last_day(settings: Settings) -> str:
    """The calendar's last day as dim_date reads it (empty: 30 days after the build)."""
    day = settings.calendar_last_day
    return day.isoformat() if day else ""


_ENV_VAR = re.compile(r"""\{\{\s*env_var\(\s*'(\w+)'\s*(?:,\s*'([^']*)'\s*)?\)\s*\}\}""")


def session_settings(settings: Settings) -> dict[str, str]:
    """The DuckDB settings ``transform/profiles.yml`` gives dbt-duckdb (which sets them on
    every cursor), its ``env_var`` calls filled in as dbt would fill them."""
    import yaml

    profile = yaml.safe_load((PROJECT_DIR / "profiles.yml").read_text())
    output = profile["music_tracker"]["outputs"]["warehouse"]
    variables = _dbt_variables(settings)

    def filled(value: object) -> str:
        def variable(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in variables:
                return variables[name]
            if default is None:
                raise KeyError(f"transform/profiles.yml reads {name}, which is not set")
            return default

        return _ENV_VAR.sub(variable, str(value))

    return {str(key): filled(value) for key, value in (output.get("settings") or {}).items()}


@contextmanager
def _environment(settings: Settings, threads: int = 1) -> Iterator[None]:
    """dbt's environment; the working directory is the warehouse's folder while dbt runs.

    The profile names the warehouse relative to that folder: dbt keys its parse cache
    (``transform/target/partial_parse.msgpack``) on the profile's values, so with a relative
    path one cache serves every data folder, and a first build in a new folder does not
    parse the whole project again (about 5 s here).
    """
    values = _dbt_variables(settings, threads)
    saved = {key: os.environ.get(key) for key in values}
    cwd = Path.cwd()
    os.environ.update(values)
    os.chdir(settings.warehouse_path.resolve().parent)
    try:
        yield
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# What a build holds grows with the plays, not with the warehouse file: a freshly imported
# 10-million-play warehouse (raw tables only) was under the old 1.5 GB file threshold, got
# four threads, and its first build ran out of the shared 256 MB cap in a uniqueness test
# over every play beside other models. Models share one cap, so above this many plays per
# byte of it dbt builds one model at a time (256 MB: about 2.1 million plays; 1.94 million
# built with four threads within 256 MB, docs/benchmarks.md).
BYTES_OF_CAP_PER_PLAY = 128


def max_parallel_plays(settings: Settings) -> int:
    """Up to this many stored play rows, dbt builds several models at once."""
    return memory_bytes(settings.dbt_memory_limit) // BYTES_OF_CAP_PER_PLAY


def most_new_keys(settings: Settings) -> int:
    """Up to this many rows imported since the last build, a raw key's uniqueness test
    looks the new keys up among the stored ones (macros/get_where_subquery.sql); above it,
    it groups every key, and a changed-data build goes to dbt and is not recorded for
    replay (its recorded tests look the keys up). At 10 million plays, under the 256 MB
    cap on two DuckDB threads, looking up 6 million new keys passed (3.4 s) and 8 million
    ran out of it; grouping all 9.8 million took 2.4 s. Half the plays a build holds
    several models at once for: 1 million at 256 MB."""
    return max_parallel_plays(settings) // 2


def dbt_threads(settings: Settings, play_rows: int) -> int:
    """How many models dbt builds at once (``settings.dbt_threads``, 0 for automatic), for
    a warehouse holding ``play_rows`` rows in its raw play tables."""
    if settings.dbt_threads:
        return settings.dbt_threads
    return 1 if play_rows > max_parallel_plays(settings) else 4


def target_dir(settings: Settings) -> Path:
    """Where dbt writes compiled SQL, its parse cache and ``manifest.json``."""
    return settings.dbt_target_dir or PROJECT_DIR / "target"


def project_fingerprint(settings: Settings) -> str:
    """A hash of everything a build's output depends on apart from the data: the dbt
    project, the dbt and DuckDB versions and the settings the models read (the exclusions
    join it in ``_combined``, by what they say rather than how the file is written)."""
    digest = hashlib.sha256()
    for path in sorted(PROJECT_DIR.rglob("*")):
        relative = path.relative_to(PROJECT_DIR)
        if not path.is_file() or _GENERATED.intersection(relative.parts):
            continue
        digest.update(f"{relative.as_posix()}\0".encode())
        digest.update(path.read_bytes())
    for package in ("dbt-core", "dbt-duckdb", "duckdb"):
        digest.update(f"{package}=={importlib.metadata.version(package)}\0".encode())
    digest.update(f"{settings.timezone}\0{settings.stream_threshold_ms}".encode())
    digest.update(f"\0{_calendar_last_day(settings)}".encode())
    return digest.hexdigest()


def build_fingerprint(settings: Settings) -> str | None:
    """The fingerprint a whole build would record now (``run_build``): a star schema whose
    last whole build recorded another was built before a change of the project (an
    upgrade), of a setting the models read or of exclusions.yaml's entries. None when
    exclusions.yaml cannot be read (status and transform say why)."""
    try:
        excluded = exclusions.load(exclusions.path_in(settings.data_dir))
    except exclusions.ExclusionsError:
        return None
    return _combined(project_fingerprint(settings), exclusions.fingerprint(excluded))


def _combined(project: str, excluded: str) -> str:
    """The build's fingerprint: the project's and, when there are any, the exclusions'
    (an edit of exclusions.yaml rebuilds the whole history: plays come back or go)."""
    if excluded == exclusions.fingerprint([]):
        return project
    return hashlib.sha256(f"{project}\0{excluded}".encode()).hexdigest()


# The dw tables each fed by a raw table or two of their own, beside the plays, and what
# marks a change of their input: a raw table (append-only, written by imports and polls),
# the column stamped with the time a row of it was written, and which of its rows count
# (a condition on the row, "true" for every row). A changed-data run leaves such a table and
# its tests alone when no counted row was written since the last whole build began. No
# model reads these tables (the exclusion takes everything downstream of them too: keep it
# that way).
Stamp = tuple[str, str, str]
_NOT_A_PLAY = "play_id is null"  # a music row kept with 0 ms played (it never gets one)
SIDE_TABLES: dict[str, dict[str, Stamp]] = {
    "fact_other_played": {"other_plays": ("other_plays", "imported_at", "true")},
    # the rows set aside with a reason, and the rows of 0 ms kept in each raw table: a day
    # of plays seldom has one, so most scheduled runs leave the table alone
    "agg_set_aside_rows": {
        "set_aside_rows": ("set_aside_rows", "imported_at", "true"),
        "other_plays of 0 ms": ("other_plays", "imported_at", "ms_played <= 0"),
        **{
            f"{table} of 0 ms": (table, "imported_at", _NOT_A_PLAY)
            for table in (
                "spotify_extended_history",
                "spotify_account_data",
                "spotify_api_plays",
                "lastfm_scrobbles",
                "listenbrainz_listens",
            )
        },
    },
    # a gap closes when the extended history covers it
    "agg_polling_gaps": {
        "api_gaps": ("api_gaps", "detected_at", "true"),
        "spotify_extended_history": ("spotify_extended_history", "imported_at", "true"),
    },
}


def side_table_stamps() -> dict[str, Stamp]:
    """Each change mark a side table reads, by name."""
    return {name: stamp for stamps in SIDE_TABLES.values() for name, stamp in stamps.items()}


def changed_data_selection(changed_stamps: set[str], *, excludes: bool = True) -> list[str]:
    """dbt's selection for a run where only the data changed: every node, less the seeds,
    the views (they read live data), what depends on code alone (tag ``code_only``: new
    data cannot change it), the side tables none of whose change marks moved
    (``changed_stamps``), and, when exclusions.yaml lists nothing (``excludes`` false),
    what counts and checks exclusions (tag ``exclusions``). Cautious indirect selection: a
    test goes with an excluded node only when every node it reads is excluded, so a test
    reading a view and a table still runs."""
    unchanged = [
        f"{model}+"
        for model, stamps in SIDE_TABLES.items()
        if not changed_stamps.intersection(stamps)
    ]
    if not excludes:
        unchanged.append("tag:exclusions")
    return [
        "--select",
        "fqn:*",
        "--exclude",
        "resource_type:seed",
        "tag:code_only",
        "config.materialized:view",
        *unchanged,
        "--indirect-selection",
        "cautious",
    ]


# Written when a build starts, removed when it has been recorded as finished
UNFINISHED_MARK = ".transform-unfinished"


def run_build(
    settings: Settings,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    unit_tests: bool = False,
    on_node: Callable[[str, int], None] | None = None,
    wait_s: float | None = None,
) -> TransformResult:
    """Run ``dbt build``, or replay a changed-data build dbt ran before for the same
    selection (unless ``settings.transform_replay`` is off); ``on_node(name, total)`` is
    called as each model or test finishes.

    The build holds a writer's turn at the warehouse (``warehouse.turn``) from its first
    connection to its record, dbt's own connection in between: a reader (`report`,
    `status`) waits for it, and never opens the file in the seconds after our connection
    closed and before dbt opened it, which failed dbt's open at once. It waits ``wait_s``
    (default ``lock_wait_s``; the flows' ``writer_wait_s``) for readers to finish, then
    WarehouseBusy."""
    from music_tracker import warehouse

    if not settings.warehouse_path.exists():
        raise NothingToBuild(
            f"no warehouse at {settings.warehouse_path}: run `music-tracker import` first"
        )
    # a bad exclusions.yaml stops the run before anything is changed
    try:
        excluded = exclusions.load(exclusions.path_in(settings.data_dir))
    except exclusions.ExclusionsError as exc:
        raise NothingToBuild(str(exc)) from None
    fingerprint = _combined(project_fingerprint(settings), exclusions.fingerprint(excluded))
    wait = settings.lock_wait_s if wait_s is None else wait_s
    with warehouse.turn(settings.warehouse_path, read_only=False, wait_s=wait, what="transform"):
        return _build(settings, fingerprint, excluded, full_refresh, select, unit_tests, on_node)


def _build(
    settings: Settings,
    fingerprint: str,
    excluded: list[exclusions.Exclusion],
    full_refresh: bool,
    select: str | None,
    unit_tests: bool,
    on_node: Callable[[str, int], None] | None,
) -> TransformResult:
    """``run_build``'s build, in its writer's turn."""
    from music_tracker import warehouse

    # opening also brings the raw schema up to date before dbt reads it
    with warehouse.connect(settings.warehouse_path, file_wait_s=settings.lock_wait_s) as con:
        last_fingerprint = warehouse.last_transform_fingerprint(con)
        threads = dbt_threads(settings, warehouse.stored_play_rows(con))
        changed_stamps = warehouse.stamped_since_last_transform(con, side_table_stamps())
        new_rows = warehouse.rows_imported_since_last_transform(con)
        if select is None:  # a selection builds with what the last whole build stored
            with warehouse.transaction(con, work=False):
                exclusions.store(con, excluded)
        catalog = warehouse.catalog_fingerprint(con)
        # the build's row in the serving journal, after the catalog is read: the journal's
        # rows are data, not part of what decides the SQL
        warehouse.start_serving_build(con)
    # a build that started and never recorded its end (killed, or failed) may have left a
    # seed or table half replaced: the next build makes everything again
    unfinished = settings.data_dir / UNFINISHED_MARK
    if select:
        scope = SELECTION
    elif full_refresh or unit_tests or last_fingerprint != fingerprint or unfinished.exists():
        scope = EVERYTHING
    else:
        scope = CHANGED_DATA
    if scope == EVERYTHING and last_fingerprint not in (None, fingerprint):
        # the project, a version or a setting the models read changed since the last build:
        # incremental tables hold rows the old code computed, so they are rebuilt whole
        full_refresh = True
    selection: list[str] = []
    if scope == SELECTION:
        selection = ["--select", str(select)]
    elif scope == CHANGED_DATA:
        selection = changed_data_selection(changed_stamps, excludes=bool(excluded))
    # a changed-data build dbt ran before, for the same project and selection, is replayed
    # (music_tracker/replay.py); unit tests and other scopes always go to dbt
    key = None
    flags = dbt_flags_from_environment()
    if flags and scope == CHANGED_DATA:
        # a plan is shared by every data folder: one recorded under these would be replayed
        # where nobody set them, and one replayed here would not do what they ask
        log.warning("%s set: this build goes to dbt and is not recorded", ", ".join(flags))
    if scope == CHANGED_DATA and new_rows > most_new_keys(settings):
        # a large export imported: its tests group every key (macros/get_where_subquery.sql),
        # which a plan recorded on a day's plays does not, and this build's plan would make
        # every later day's tests group every key
        log.info("%s rows imported since the last build: not replayed", f"{new_rows:,}")
    elif scope == CHANGED_DATA and not unit_tests and settings.transform_replay and not flags:
        key = replay.plan_key(fingerprint, catalog, selection)
    started_at = datetime.now(UTC)
    if scope != SELECTION:
        files.write_text(unfinished, started_at.isoformat())
    result = None
    plan = replay.load(target_dir(settings), key) if key else None
    if key and plan is not None:
        try:
            result = _replay(settings, plan, on_node)
        except replay.PlanFailed as exc:
            # the warehouse is not what the plan was recorded on; what ran of it is stored
            # as after a build that stopped: dbt builds everything (as the next run would)
            log.warning("the recorded build no longer fits (%s): dbt builds everything", exc)
            replay.drop(target_dir(settings), key)
            scope, selection, key = EVERYTHING, [], None
    if result is None:
        recorder = replay.Recorder(key, fingerprint) if key else None
        result = _dbt_build(
            settings,
            threads=threads,
            full_refresh=full_refresh,
            selection=selection,
            unit_tests=unit_tests,
            on_node=on_node,
            recorder=recorder,
        )
        recorded = recorder.plan() if recorder is not None else None
        if recorded is not None and replay.portable(recorded, settings.data_dir):
            try:
                replay.save(target_dir(settings), recorded)
            except OSError as exc:  # the build passed: the next one goes to dbt again
                log.warning("the build could not be recorded for replay: %s", exc)
        # where plans were kept until 2026-12-05, unless that is where they are kept now
        before = settings.data_dir / "dbt" / "plans"
        if before.resolve() != replay.plans_dir(target_dir(settings)).resolve():
            shutil.rmtree(before, ignore_errors=True)
    result.scope = scope
    result.full_refresh = full_refresh
    result.threads = threads
    if scope == SELECTION and result.succeeded + result.skipped == 0:
        raise TransformError(
            f"--select {select!r} matches no model, seed or test of the dbt project "
            "(names are like fact_track_played or dim_artist; `+name` adds its parents)"
        )
    if scope != SELECTION:
        with warehouse.connect(settings.warehouse_path, file_wait_s=settings.lock_wait_s) as con:
            warehouse.record_transform(
                con,
                fingerprint=fingerprint,
                scope=scope,
                full_refresh=full_refresh,
                started_at=started_at,
                finished_at=datetime.now(UTC),
                nodes=result.succeeded,
            )
        unfinished.unlink(missing_ok=True)
    return result


def _replay(
    settings: Settings, plan: replay.Plan, on_node: Callable[[str, int], None] | None
) -> TransformResult:
    """A recorded build run again (music_tracker/replay.py); fails as dbt's build would,
    naming each failing test."""
    from music_tracker import warehouse

    with warehouse.connect(
        settings.warehouse_path,
        memory_limit=settings.dbt_memory_limit,
        file_wait_s=settings.lock_wait_s,
    ) as con:
        try:
            done = replay.replay(con, plan, session=session_settings(settings), on_node=on_node)
        except replay.StatementFailed as exc:
            raise TransformError(str(exc)) from None
    if done.failures:
        raise TransformError("\n".join(done.failures))
    return TransformResult(succeeded=done.succeeded, seconds=done.seconds, replayed=True)


def _dbt_build(
    settings: Settings,
    *,
    threads: int,
    full_refresh: bool,
    selection: list[str],
    unit_tests: bool,
    on_node: Callable[[str, int], None] | None,
    recorder: replay.Recorder | None,
) -> TransformResult:
    """``dbt build`` in this process; ``recorder`` (if any) is handed every event."""
    total = {"nodes": 0}

    def callback(event: EventMsg) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            total["nodes"] = int(getattr(event.data, "node_count", 0))
        elif name == "NodeFinished" and on_node is not None:
            node = event.data.node_info
            on_node(node.node_name, total["nodes"])

    args = [
        "build",
        # The JSON artifacts (manifest.json, run_results.json: 1-2 s) are not read by
        # anything; partial parsing keeps its own file.
        "--no-write-json",
    ]
    if full_refresh:
        args.append("--full-refresh")
    args += selection
    if not unit_tests:
        # unit tests pin logic, not data: `make test` runs them, scheduled builds skip them
        args += ["--exclude-resource-type", "unit_test"]
    callbacks: list[Callable[[EventMsg], None]] = [callback]
    if recorder is not None:
        callbacks.append(recorder)
    outcome = _invoke(settings, args, callbacks, threads)
    if _held_elsewhere(outcome):  # by another program: our own readers wait for the build
        from music_tracker import warehouse

        path = settings.warehouse_path
        raise warehouse.busy_by_another_program(path, outcome.exception, 0)
    return _summarize(outcome)


def _held_elsewhere(outcome: dbtRunnerResult) -> bool:
    """Whether dbt could not open the warehouse because another process holds it."""
    from music_tracker import warehouse

    return outcome.exception is not None and warehouse.held_by_another(outcome.exception)


def write_manifest(settings: Settings) -> Path:
    """``manifest.json`` for dbt-metabase (builds skip writing it: nothing else reads it).

    ``dbt parse`` reads no data; with the parse cache it takes a second or two."""
    outcome = _invoke(settings, ["parse"], [])
    if not outcome.success:
        raise TransformError(f"dbt parse failed: {outcome.exception or 'see dbt/logs'}")
    return target_dir(settings) / "manifest.json"


# dbt's own loggers format every event, the debug ones (each statement) included, before
# their level drops it, and scan the environment for secrets on each line (dbt_common's
# _Logger.write_line): about a tenth of a build's CPU here, even with --quiet. So dbt runs
# with neither logger, and _dbt_log keeps what they kept.
_LOG_ARGS = ("--log-level", "none", "--log-level-file", "none", "--no-use-colors")
_LOG_FILE_BYTES = 10 * 1024 * 1024  # dbt's own rotation: five old files of 10 MB
_LOGGED = {"info", "warn", "error"}
# what --quiet still printed: errors, and what a model prints ({{ print() }}, dbt show)
_PRINTED = {"PrintEvent", "ShowNode", "CompiledNode"}


def _log_folder(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "dbt" / "logs"


def _invoke(
    settings: Settings,
    args: list[str],
    callbacks: list[Callable[[EventMsg], None]],
    threads: int = 1,
) -> dbtRunnerResult:
    """dbt's ``args`` (the command first) in this process, on the settings' project
    target and log folder, with our log callback after ``callbacks``."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.event_manager_client import cleanup_event_logger

    # the logger dbt sets up on its import prints its first moments' events (before it
    # reads these arguments) to the stdout of then, past _dbt_output: Ctrl+C in those
    # moments printed "Encountered an error" and a stack trace. Without it, what fails
    # there comes back in the outcome, which the command tells
    cleanup_event_logger()
    logs = _log_folder(settings)  # resolved before _environment changes the directory
    command, *rest = args
    full = [
        command,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        # the project's own target/ (dbt's default): compiled SQL and the parse cache,
        # shared by every data folder (see _environment)
        "--target-path",
        str(target_dir(settings)),
        "--log-path",  # dbt makes it even when it writes no log there
        str(logs),
        *_LOG_ARGS,
        *rest,
    ]
    with _environment(settings, threads), _dbt_output() as printed, _dbt_log(logs) as log:
        try:
            outcome = dbtRunner(callbacks=[*callbacks, log]).invoke(full)
        finally:
            _release_warehouse()
        if _held_elsewhere(outcome):  # its traceback, printed thrice: the one line says it
            printed.seek(0)
            printed.truncate()
        return outcome


class _LogFile(RotatingFileHandler):
    """``dbt.log``, rotated as dbt rotates it. A write that fails (a full disk, a read-only
    folder) never fails the build: the first failure is kept, and told once after it."""

    failure: str | None = None

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if self.failure is None:
            self.failure = str(sys.exc_info()[1])


@contextmanager
def _dbt_log(folder: Path) -> Iterator[Callable[[Any], None]]:
    """A dbt callback writing what dbt's loggers wrote with ``--log-level-file info
    --quiet``: each event at info level and above into ``folder/dbt.log``, in dbt's
    format (one line per node started and finished, its result, any error), and on stdout
    (which :func:`_dbt_output` turns into stderr) the errors and what a model prints, as
    ``--quiet`` printed them."""
    from dbt_common.events.format import timestamp_to_datetime_string
    from dbt_common.events.functions import env_scrubber

    path = folder / "dbt.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = _LogFile(path, maxBytes=_LOG_FILE_BYTES, backupCount=5, encoding="utf-8")
    except OSError as exc:  # dbt opening its own log failed the same way before
        raise TransformError(
            f"dbt could not run: its log {path} cannot be written ({exc.strerror or exc}):"
            " check that folder's owner and permissions"
        ) from None
    lock = threading.Lock()  # dbt fires events from each of its threads

    def write(msg: Any) -> None:
        level, name = msg.info.level, msg.info.name
        printed = level == "error" or name in _PRINTED
        if level not in _LOGGED and not printed:
            return
        text = env_scrubber(msg.info.msg)
        stamp = timestamp_to_datetime_string(msg.info.ts)
        line = f"{stamp} [{level:<5}] [{msg.info.thread[:10]:<10}]: {text}"
        if name == "MainReportVersion":  # where each run starts, as dbt marks it
            line = f"\n\n{'=' * 30} {stamp} | {msg.info.invocation_id} {'=' * 30}\n{line}"
        with lock:
            if level in _LOGGED:
                handler.emit(logging.LogRecord("dbt", logging.INFO, "", 0, line, None, None))
            if printed:  # as --quiet printed it: the time (UTC), then the message
                print(text if name in _PRINTED else f"{datetime.now(UTC):%H:%M:%S}  {text}")

    try:
        yield write
    finally:
        try:
            handler.close()
        except OSError as exc:  # the last lines' flush
            handler.failure = handler.failure or str(exc)
        if handler.failure is not None:
            log.warning(
                "dbt's log %s could not be written: %s (the build is not affected)",
                path,
                handler.failure,
            )


@contextmanager
def _dbt_output() -> Iterator[io.StringIO]:
    """dbt's printed errors, on stderr once it returns: stdout carries only what
    music-tracker itself prints (one JSON document with --json). Not after Ctrl+C: dbt
    then prints "Encountered an error" and a stack trace of where the signal fell, and the
    command's one line says what happened (music_tracker.interrupts)."""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield printed
    finally:
        if not interrupts.received():
            sys.stderr.write(printed.getvalue())


def _release_warehouse() -> None:
    """Close dbt-duckdb's cached database so this process can open the warehouse again.

    dbt-duckdb keeps one DuckDB instance per process (``DuckDBConnectionManager._ENV``) and
    its ``close_all_connections`` only forgets it; DuckDB refuses a second instance of the
    same file with another configuration, so it is closed here explicitly.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters

    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()
    reset_adapters()


def _summarize(outcome: Any) -> TransformResult:
    result = TransformResult()
    if outcome.exception is not None:
        raise TransformError(f"dbt could not run: {outcome.exception}")
    for node_result in getattr(outcome.result, "results", []) or []:
        status = str(node_result.status)
        result.seconds += float(node_result.execution_time or 0)
        if status in ("success", "pass"):
            result.succeeded += 1
        elif status == "skipped":
            result.skipped += 1
        else:
            node = node_result.node
            kind = node.resource_type
            lines = [line.strip() for line in (node_result.message or "").splitlines()]
            # dbt's first line repeats the node name; the cause follows it
            detail = " ".join(line for line in lines[:4] if line) or status
            result.failures.append(f"{kind} {node.name} ({node.original_file_path}): {detail}")
    if not outcome.success and not result.failures:
        result.failures.append("dbt reported a failure without a failing node; see the dbt log")
    if result.failures:
        raise TransformError("\n".join(result.failures))
    return result
