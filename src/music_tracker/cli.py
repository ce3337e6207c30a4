"""The ``music-tracker`` command line: one typer app, one subcommand per job."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from pydantic import SecretStr, ValidationError
from pydantic_settings import SettingsError
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from music_tracker import __version__, interrupts
from music_tracker.files import disk_full
from music_tracker.settings import (
    Settings,
    get_settings,
    settings_files,
    settings_folder_here,
    unknown_settings,
    user_config_dir,
)

app = typer.Typer(
    name="music-tracker",
    help="Your listening history as a DuckDB star schema and public dashboards.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # click's plain help: typer's rich panels show "<bool>" after flags that take no value
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data folder (warehouse.duckdb, landing/, state/ ...). "
        "Env MUSIC_TRACKER_DATA_DIR; default ./data.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DEMO_DATA_DIR = Path("data/demo")
DEMO_MARKER = ".music-tracker-demo"


# Another process is writing (or has the warehouse open): try again later (sysexits'
# EX_TEMPFAIL), told apart from bad input (1) and bad settings (2)
EXIT_BUSY = 75
# The disk is full (sysexits' EX_IOERR): nothing stored was lost; free space and run again
EXIT_DISK_FULL = 74


def _settings(data_dir: Path | None) -> Settings:
    try:
        settings = get_settings(data_dir=data_dir) if data_dir else get_settings()
    except ValidationError as exc:
        for problem in exc.errors(include_url=False):
            field = ".".join(str(part) for part in problem["loc"])
            reason = str(problem["msg"]).removeprefix("Value error, ")
            # a rule across settings names them itself; one setting is named with its value
            value = problem.get("input")
            shown = str(value) if isinstance(value, Path) else value
            line = f"MUSIC_TRACKER_{field.upper()}={shown!r}: {reason}" if field else reason
            err.print("[red]error:[/]", Text(line), soft_wrap=True)
        raise typer.Exit(2) from None
    except SettingsError as exc:
        # a list setting whose value is not JSON: pydantic-settings fails before validating
        named = re.search(r'field "(\w+)"', str(exc))
        name = f"MUSIC_TRACKER_{named.group(1).upper()}" if named else "a MUSIC_TRACKER_ setting"
        value = os.environ.get(name)
        shown = f"{name}={value!r}" if value is not None else name
        err.print(
            "[red]error:[/]",
            Text(f'{shown}: not a JSON list; use a JSON list, such as ["Name A", "Name B"]'),
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    for warning in unknown_settings():
        err.print("[yellow]warning:[/]", Text(warning), soft_wrap=True)
    # messages name absolute paths: "data/warehouse.duckdb" depends on where one stands
    settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        hint = (
            f"; use its folder, --data-dir {settings.data_dir.parent}"
            if settings.data_dir.name == "warehouse.duckdb"
            else ""
        )
        raise _fail(
            f"the data folder {settings.data_dir.resolve()} is a file, not a folder{hint}", 2
        )
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    if interrupts.received():
        # an error Ctrl+C caused (a query interrupted, a file half read): the command's
        # one line says what state things are in, not this (music_tracker.__main__)
        return typer.Exit(interrupts.EXIT_INTERRUPTED)
    err.print("[red]error:[/]", Text(message), soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _writing(settings: Settings, what: str) -> Iterator[None]:
    """The writer lock around a command that writes the warehouse: one writer at a time
    (the scheduler's flows take it too); a clear message instead of DuckDB's lock error."""
    import duckdb

    from music_tracker.warehouse import WarehouseBusy
    from music_tracker.warehouse.lock import WriterBusy, writer_lock

    try:
        lock = writer_lock(settings.data_dir, what, wait_s=settings.lock_wait_s)
        lock.__enter__()
    except WriterBusy as exc:
        raise _fail(
            f"{exc}: run `music-tracker {what}` again when it has finished", EXIT_BUSY
        ) from None
    try:
        yield
    except WarehouseBusy as exc:
        raise _fail(
            f"{exc}: nothing was changed; run it again when it is free", EXIT_BUSY
        ) from None
    except duckdb.OutOfMemoryException as exc:
        default = Settings.model_fields["duckdb_memory_limit"].default
        raise _fail(
            f"{str(exc).splitlines()[0]}\n`{what}` needed more than DuckDB's memory cap "
            f"(MUSIC_TRACKER_DUCKDB_MEMORY_LIMIT={settings.duckdb_memory_limit}); the write "
            f"was rolled back and nothing stored was lost. Raise the cap (the default is "
            f"{default}) or free memory, then run `music-tracker {what}` again"
        ) from None
    except (OSError, duckdb.Error) as exc:
        if not disk_full(exc):
            raise
        raise _fail(f"{exc}{_disk_full_hint(settings, what)}", EXIT_DISK_FULL) from None
    finally:
        lock.__exit__(None, None, None)


def _disk_full_hint(settings: Settings, what: str) -> str:
    """What to do when a write failed for want of disk space (DuckDB rolls the failed
    transaction back: what was stored before stays)."""
    try:
        free = f"{shutil.disk_usage(settings.data_dir).free / 2**20:,.0f} MB free"
    except OSError:
        free = "free space unknown"
    return (
        f"\nthe disk holding {settings.data_dir} is full ({free}): `{what}` stopped and the "
        f"write that failed was rolled back; no stored play was lost. Free some space, then "
        f"run `music-tracker {what}` again"
    )


def _fail_disk_aware(settings: Settings, what: str, message: str) -> typer.Exit:
    """``_fail``, with the full-disk hint and exit code when the message says so."""
    if disk_full(message):
        return _fail(message + _disk_full_hint(settings, what), EXIT_DISK_FULL)
    return _fail(message)


def _progress(label: str, *, quiet: bool) -> Progress:
    """The progress bar every long command shows (on stderr; hidden with --json)."""
    return Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # one line per HTTP request is noise at INFO; our own modules log what matters
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


@app.callback(invoke_without_command=True)
def main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True)
    ] = False,
) -> None:
    """Music Tracker."""
    if version:
        out.print(__version__)
        raise typer.Exit
    if ctx.invoked_subcommand is None:  # bare `music-tracker`: the help, not an error
        out.print(ctx.get_help())
        raise typer.Exit


@app.command("import")
def import_command(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Export files, folders or .zip archives (Spotify or Last.fm)."),
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Force the format: spotify_extended_history, spotify_account_data, lastfm,"
            " spotify_api (a saved recently-played response).",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import listening history: all files commit together or nothing does."""
    from music_tracker.dedupe import tolerances_from
    from music_tracker.importers.detect import Format
    from music_tracker.importers.errors import ImportInputError
    from music_tracker.importers.podcasts import PodcastRules
    from music_tracker.importers.run import run_import

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    forced = None
    if source is not None:
        # the account-data podcast and audiobook files are told apart from their names
        internal = (Format.ACCOUNT_PODCAST, Format.ACCOUNT_AUDIOBOOK)
        choices = {f.value: f for f in Format if f not in internal}
        if source not in choices:
            raise _fail(f"--source {source!r} is not one of {', '.join(choices)}", 2)
        forced = choices[source]
    tolerances = tolerances_from(settings)
    # stored at its commit: a Ctrl+C after it lets the summary print (and exit 0)
    interrupts.settles_on_commit()
    with _writing(settings, "import"), _progress("import", quiet=as_json) as bar:
        task = bar.add_task("finding files", total=None)

        def on_files(count: int) -> None:
            bar.update(task, total=count + 2)

        def step(what: str) -> None:
            bar.update(task, advance=1, description=what)

        try:
            summary = run_import(
                paths,
                settings.data_dir,
                forced=forced,
                tolerances=tolerances,
                progress=step,
                on_files=on_files,
                memory_limit=settings.duckdb_memory_limit,
                max_file_bytes=settings.import_max_file_mb * 2**20,
                min_free_bytes=settings.min_free_mb * 2**20,
                podcast_rules=PodcastRules(
                    frozenset(settings.podcast_shows), frozenset(settings.not_podcasts)
                ),
            )
        except ImportInputError as exc:
            raise _fail(f"{exc}\nnothing was imported; the warehouse is unchanged") from None
    result = summary.as_dict()
    if as_json:
        out.print_json(data=result)
        return
    _print_import_summary(result)


def _print_import_summary(result: dict[str, Any]) -> None:
    table = Table(title="Import summary", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("files imported", str(result["files_imported"]))
    table.add_row("files already imported", str(result["files_already_imported"]))
    table.add_row("files skipped", str(len(result["files_skipped"])))
    table.add_row("rows read", f"{result['rows_read']:,}")
    table.add_row("new plays", f"{result['new_plays']:,}")
    for source, count in result["new_plays_per_source"].items():
        table.add_row(f"  from {source}", f"{count:,}")
    dups = result["duplicates"]
    table.add_row("duplicates: repeated in input", f"{dups['repeated_in_input']:,}")
    table.add_row("duplicates: already stored", f"{dups['already_stored']:,}")
    table.add_row("duplicates: same play, other source", f"{dups['same_play_from_other_source']:,}")
    if dups.get("same_play_written_twice"):
        table.add_row(
            "duplicates: one play the export wrote twice", f"{dups['same_play_written_twice']:,}"
        )
    if dups.get("stored_plays_merged"):
        table.add_row("stored plays merged (proven one)", f"{dups['stored_plays_merged']:,}")
    for reason, count in result["set_aside"].items():
        table.add_row(f"set aside: {reason}", f"{count:,}")
    for kind, count in result["new_other_content"].items():
        table.add_row(f"new {kind} plays (kept apart)", f"{count:,}")
    out.print(table)
    for name in result.get("old_account_data_files", []):
        out.print(
            Text(
                f"old account data (podcasts mixed in, told apart by the evidence; see"
                f" status): {name}"
            )
        )
    for skipped in result["files_skipped"]:
        # Text: a file name like "[2024] playlist.json" is not rich markup
        out.print(Text(f"skipped {skipped['file']}: {skipped['reason']}"))


@app.command()
def rematch(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Match every stored play again under the current rules (after an upgrade).

    Plays an earlier version stored twice are merged; rows are moved, never deleted. Run
    `transform` afterwards to rebuild the star schema.
    """
    from music_tracker.dedupe import tolerances_from
    from music_tracker.importers.run import run_rematch

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    if not (settings.data_dir / "warehouse.duckdb").exists():
        raise _fail(f"no warehouse in {settings.data_dir}: import your history first")
    interrupts.settles_on_commit()
    with _writing(settings, "rematch"), _progress("rematch", quiet=as_json) as bar:
        bar.add_task("matching every stored play again", total=None)
        result = run_rematch(
            settings.data_dir,
            tolerances=tolerances_from(settings),
            memory_limit=settings.duckdb_memory_limit,
        )
    if as_json:
        out.print_json(data=result)
        return
    out.print(
        f"{result['rows_matched']:,} stored rows matched again: {result['plays_merged']:,}"
        f" plays merged into another, {result['plays_split']:,} split off,"
        f" {result['rows_moved']:,} rows moved"
    )


@app.command()
def transform(
    data_dir: DataDirOption = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Rebuild every table, incremental ones too.")
    ] = False,
    select: Annotated[
        str | None, typer.Option("--select", help="dbt node selection (default: everything).")
    ] = None,
    unit_tests: Annotated[
        bool,
        typer.Option(
            "--unit-tests", help="Also run the dbt unit tests (logic checks; off for runs)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Build the star schema with dbt (models and tests); fails naming what failed."""
    from music_tracker.transform import NothingToBuild, TransformError, run_build

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    with _writing(settings, "transform"), _progress("dbt build", quiet=as_json) as bar:
        task = bar.add_task("starting", total=None)

        def on_node(name: str, total: int) -> None:
            bar.update(task, advance=1, total=total or None, description=name)

        try:
            result = run_build(
                settings,
                full_refresh=full_refresh,
                select=select,
                unit_tests=unit_tests,
                on_node=on_node,
            )
        except TransformError as exc:
            raise _fail_disk_aware(settings, "transform", f"dbt build failed:\n{exc}") from None
        except NothingToBuild as exc:  # dbt never ran: not a "dbt build failed"
            raise _fail(str(exc)) from None
    interrupts.settle()
    summary = {
        "scope": result.scope,
        "succeeded": result.succeeded,
        "skipped": result.skipped,
        "node_seconds": round(result.seconds, 2),
        "full_refresh": result.full_refresh,
        "threads": result.threads,
    }
    if as_json:
        out.print_json(data=summary)
    else:
        rebuilt = ", incremental tables rebuilt" if result.full_refresh else ""
        out.print(
            f"dbt build ({result.scope}{rebuilt}): {result.succeeded} models, seeds and tests"
            " passed"
        )


def _publish(settings: Settings, *, quiet: bool) -> dict[str, Any]:
    """Write the serving copy (and point Metabase at it); exit 1 with the reason if not."""
    from music_tracker.metabase.handoff import current_copy
    from music_tracker.publish import PublishError, publish

    before = current_copy(settings.serving_dir)
    interrupts.say(lambda: _publish_interrupted(settings, before))
    with _writing(settings, "publish"), _progress("publish", quiet=quiet) as bar:
        task = bar.add_task("", total=None)

        def on_table(name: str, total: int) -> None:
            bar.update(task, advance=1, total=total, description=name)

        try:
            return publish(settings, on_table=on_table).as_dict()
        except PublishError as exc:
            raise _fail_disk_aware(settings, "publish", str(exc)) from None


def _publish_interrupted(settings: Settings, before: Path | None) -> str:
    """The state a Ctrl+C left publishing in: a copy is visible only once complete."""
    from music_tracker.metabase.handoff import current_copy

    after = current_copy(settings.serving_dir)
    if after == before:
        return interrupts.LINES["publish"]
    if settings.metabase_url:
        return (
            f"interrupted: {after} is complete, but Metabase may still read the copy before"
            " it: run `music-tracker publish` again"
        )
    return f"interrupted: {after} was published; replaced copies are removed next time"


@app.command()
def publish(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Write the serving copy Metabase reads (serving/) and point Metabase at it."""
    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    result = _publish(settings, quiet=as_json)
    interrupts.settle()
    if as_json:
        out.print_json(data=result)
        return
    out.print(
        f"published {Path(result['path']).name}: {result['tables']} tables, "
        f"{result['rows']:,} rows, {result['bytes'] / 1e6:.1f} MB in {result['seconds']} s"
    )
    out.print(Text(f"Metabase: {result['metabase']}"))
    if result["removed"]:
        out.print(f"removed {len(result['removed'])} old serving copies")


@app.command()
def run(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """The whole pipeline once, as a Prefect flow: ingest, enrich, transform, publish, report."""
    import os

    from music_tracker.orchestration.serve import prefect_environment

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    os.environ.update(prefect_environment(settings))
    from music_tracker.orchestration.flows import pipeline_flow
    from music_tracker.warehouse.lock import WriterBusy

    try:
        result = pipeline_flow(data_dir=str(settings.data_dir))
    except WriterBusy as exc:
        raise _fail(f"{exc}; run again when it has finished") from None
    except Exception as exc:  # the flow's failure, already logged and notified
        raise _fail(f"the pipeline failed: {exc}") from None
    if as_json:
        out.print_json(data=result)
        return
    for step, value in result.items():
        out.print(Text(f"{step}: {value}"), soft_wrap=True)


@app.command()
def serve(
    data_dir: DataDirOption = None,
    lite: Annotated[
        bool,
        typer.Option(
            "--lite",
            help="Without a Prefect server (the 1 GB plan): a loop of its own runs the same "
            "jobs and records each run in state/runs.jsonl (MUSIC_TRACKER_SCHEDULER=lite).",
        ),
    ] = False,
) -> None:
    """Run the schedules until stopped: ingest every 10 minutes, the hourly refresh."""
    from music_tracker.orchestration.serve import ServeError
    from music_tracker.orchestration.serve import serve as serve_schedules

    settings = _settings(data_dir)
    if lite:
        settings = settings.model_copy(update={"scheduler": "lite"})
    _setup_logging(settings.log_level)
    try:
        serve_schedules(settings)
    except ServeError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command("backup")
def backup_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Copy the warehouse, landing files, state (and Metabase's database) to the backups."""
    from music_tracker.backup import BackupDiskFull, backup
    from music_tracker.backup_layout import BackupError, backup_root, backups
    from music_tracker.warehouse import WarehouseBusy
    from music_tracker.warehouse.lock import WriterBusy

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    before = set(backups(backup_root(settings)))
    interrupts.say(lambda: _backup_interrupted(settings, before))
    try:
        result = backup(settings, wait_s=settings.lock_wait_s).as_dict()
    except (WriterBusy, WarehouseBusy) as exc:
        raise _fail(
            f"{exc}: no backup was made; run `music-tracker backup` again when it has finished",
            EXIT_BUSY,
        ) from None
    except BackupDiskFull as exc:
        raise _fail(str(exc), EXIT_DISK_FULL) from None
    except BackupError as exc:
        raise _fail(str(exc)) from None
    interrupts.settle()
    for warning in result["warnings"]:
        err.print("[yellow]warning:[/]", Text(warning), soft_wrap=True)
    if as_json:
        out.print_json(data=result)
        return
    out.print(
        f"backed up to {result['path']}: {result['files']:,} files "
        f"({result['landing_files_new']:,} landing files new), {result['bytes'] / 1e6:.1f} MB"
        f" in {result['seconds']} s"
    )
    if result["removed"]:
        out.print(f"removed {len(result['removed'])} old backups")


def _backup_interrupted(settings: Settings, before: set[Path]) -> str:
    """The state a Ctrl+C left backing up in: a backup is listed only once complete."""
    from music_tracker.backup_layout import backup_root, backups

    new = [path for path in backups(backup_root(settings)) if path not in before]
    if not new:
        return interrupts.LINES["backup"]
    bucket = "; the bucket may lag until the next backup" if settings.backup_bucket else ""
    return f"interrupted: the backup in {new[-1]} is complete{bucket}"


@app.command("restore")
def restore_command(
    backup: Annotated[
        str,
        typer.Argument(
            help="A backup folder (backups/<UTC time>), or the bucket's s3://bucket/prefix"
            " (its newest backup) or s3://bucket/prefix/<UTC time>.",
        ),
    ],
    data_dir: DataDirOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the data folder's warehouse.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Put a backup back, after checking every file against its checksum."""
    from music_tracker.backup import restore
    from music_tracker.backup_layout import BackupError
    from music_tracker.warehouse import WarehouseBusy
    from music_tracker.warehouse.lock import WriterBusy

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    try:
        if backup.startswith("s3://"):
            result = _restore_from_bucket(settings, backup, replace=replace)
        else:
            result = restore(settings, Path(backup), replace=replace, wait_s=settings.lock_wait_s)
    except (WriterBusy, WarehouseBusy) as exc:
        raise _fail(
            f"{exc}: nothing was restored; run `music-tracker restore` again when it has finished",
            EXIT_BUSY,
        ) from None
    except BackupError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        out.print_json(data=result)
        return
    out.print(f"restored {result['files']:,} files from {result['restored_from']}")
    if result["metabase"]:
        out.print(
            Text(f"Metabase's database is in {result['metabase']}: copy it back while Metabase "
                 "is stopped, or run `music-tracker metabase provision` on a new one")
        )  # fmt: skip
    out.print("then: `music-tracker transform` and `music-tracker publish`")


def _restore_from_bucket(settings: Settings, url: str, *, replace: bool) -> dict[str, Any]:
    """Fetch a backup from the bucket into the local backup folder, then restore it from
    there (checksums first, as for any backup)."""
    import re

    from music_tracker.backup import refuse_to_overwrite, restore
    from music_tracker.backup_layout import BackupError, backup_root
    from music_tracker.bucket import BucketError, download

    match = re.fullmatch(r"(s3://.+?)(?:/(\d{8}T\d{6}Z))?/?", url)
    if match is None:
        raise BackupError(f"{url}: not a bucket URL (s3://bucket/prefix[/<UTC time>])")
    refuse_to_overwrite(settings, replace=replace)  # before fetching anything
    root = backup_root(settings)
    out.print(f"fetching {match.group(2) or 'the newest backup'} from {match.group(1)} into {root}")
    try:
        where = settings.model_copy(update={"backup_bucket": match.group(1)})
        folder = download(where, root, match.group(2))
    except BucketError as exc:
        raise BackupError(str(exc)) from exc
    return restore(settings, folder, replace=replace, wait_s=settings.lock_wait_s)


metabase_app = typer.Typer(help="Set up and update the Metabase dashboards.", no_args_is_help=True)
app.add_typer(metabase_app, name="metabase")


def _provision(settings: Settings, *, quiet: bool) -> dict[str, Any]:
    from music_tracker.metabase.client import MetabaseError
    from music_tracker.metabase.provision import provision
    from music_tracker.reporting.definitions import DefinitionError, load_dashboards
    from music_tracker.transform import TransformError, write_manifest

    try:
        dashboards = load_dashboards()
    except DefinitionError as exc:
        raise _fail(str(exc)) from None
    with _progress("metabase", quiet=quiet) as bar:
        task = bar.add_task("dbt manifest", total=None)
        try:
            manifest = write_manifest(settings) if settings.data_dir.is_dir() else None
        except TransformError as exc:
            raise _fail(str(exc)) from None
        try:
            result = provision(
                settings,
                dashboards,
                manifest=manifest,
                on_step=lambda what: bar.update(task, advance=1, description=what),
            )
        except MetabaseError as exc:
            raise _fail(str(exc)) from None
    return result.as_dict()


@metabase_app.command("provision")
def metabase_provision(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Make Metabase match dashboards/*.yml: database, cards, dashboards, public links."""
    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    result = _provision(settings, quiet=as_json)
    if as_json:
        out.print_json(data=result)
        return
    _print_provision(result)


def _print_provision(result: dict[str, Any]) -> None:
    if result["set_up"]:
        out.print(f"set up the new Metabase at {result['url']} (first admin created)")
    changes = [
        f"{len(result[kind])} {kind}" for kind in ("created", "updated", "archived") if result[kind]
    ]
    out.print(
        f"Metabase at {result['url']}: "
        + (", ".join(changes) if changes else "nothing changed")
        + f"; {result['unchanged']} cards already up to date"
    )
    for kind in ("updated", "archived"):
        for what in result[kind]:
            out.print(Text(f"  {kind} {what}"))
    out.print(Text(f"data model: {result['metadata']}"))
    out.print(f"public dashboards (also in {result['links_file']}):")
    for link in result["public_links"].values():
        out.print(Text(f"  {link['title']}: {link['url']}"))


auth_app = typer.Typer(help="Authorize access to outside services.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")


@auth_app.command("spotify")
def auth_spotify(
    data_dir: DataDirOption = None,
    paste: Annotated[
        bool,
        typer.Option(
            "--paste",
            help="Headless server: print the URL, then paste the address the browser was "
            "redirected to (it fails to load; that is fine).",
        ),
    ] = False,
    timeout_s: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the browser.")
    ] = 300.0,
) -> None:
    """Authorize Music Tracker to read your recently played tracks (PKCE, loopback)."""
    import secrets

    from music_tracker.sources.spotify import auth

    settings = _settings(data_dir)
    if not settings.spotify_client_id:
        raise _fail(
            "setting MUSIC_TRACKER_SPOTIFY_CLIENT_ID is empty: create an app in Spotify's "
            "developer dashboard with the redirect URI "
            f"{auth.redirect_uri(settings.spotify_redirect_port)} and set its client id"
        )
    verifier, challenge = auth.pkce_pair()
    state = secrets.token_urlsafe(16)
    redirect = auth.redirect_uri(settings.spotify_redirect_port)
    url = auth.authorize_url(
        settings.spotify_accounts_base, settings.spotify_client_id, redirect, challenge, state
    )
    out.print("Open this address in a browser and allow access:")
    out.print(url, soft_wrap=True)
    if paste:
        received = typer.prompt("Paste the address the browser was sent to")
    else:
        out.print(f"Waiting for the redirect to {redirect} ...")
        received = auth.wait_for_redirect(settings.spotify_redirect_port, timeout_s) or ""
        if not received:
            raise _fail("no redirect arrived in time: run again, or use --paste on a server")
    spotify = auth.SpotifyAuth(
        settings.spotify_accounts_base,
        settings.spotify_client_id,
        auth.TokenStore(settings.state_dir),
        settings.http_timeout_s,
    )
    try:
        token = spotify.exchange_code(auth.code_from_redirect(received, state), verifier, redirect)
    except auth.ReauthorizeRequired as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"Authorized. Tokens saved in {spotify.store.path} (mode 0600); the authorization "
        f"lasts until about {token.refresh_expires_at:%Y-%m-%d}."
    )


@app.command()
def ingest(
    data_dir: DataDirOption = None,
    no_enrich: Annotated[
        bool, typer.Option("--no-enrich", help="Only poll; fetch no track metadata.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Poll Spotify's recently played tracks once and store new plays."""
    from music_tracker.importers.errors import ImportInputError
    from music_tracker.sources.http import HttpError
    from music_tracker.sources.spotify.auth import ReauthorizeRequired
    from music_tracker.sources.spotify.ingest import ingest as run_ingest

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    try:
        with _writing(settings, "ingest"):
            summary = run_ingest(settings, enrich=not no_enrich)
    except ReauthorizeRequired as exc:
        raise _fail(str(exc)) from None
    except (HttpError, ImportInputError) as exc:
        raise _fail(f"{exc}; nothing was lost: the next run polls from the same cursor") from None
    interrupts.settle()
    result = summary.as_dict()
    if as_json:
        out.print_json(data=result)
        return
    out.print(
        f"fetched {result['fetched']} recent plays: {result['new_plays']} new, "
        f"{result['duplicates']} already stored ({result['requests']} requests)"
    )
    if result["gap"]:
        out.print(
            f"[yellow]plays may be missing[/] between {result['gap']['from']} and "
            f"{result['gap']['to']}: import an extended export covering it"
        )
    enrichment = result["enrichment"]
    out.print(
        f"metadata: {enrichment['tracks']} tracks, {enrichment['albums']} albums, "
        f"{enrichment['artists']} artists fetched"
    )
    if result["stopped"]:
        out.print(f"[yellow]stopped early:[/] {result['stopped']}")


@app.command()
def enrich(
    data_dir: DataDirOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Look up at most this many artists.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Look up artists in MusicBrainz: country, type, genres (1 request per second)."""
    from music_tracker import warehouse
    from music_tracker.sources.musicbrainz.enrich import (
        ArtistsUnknown,
        EnrichNotPossible,
        run_enrichment,
    )
    from music_tracker.warehouse.lock import WriterBusy, writer_lock

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)

    @contextmanager
    def writer() -> Iterator[Any]:
        # the writer lock and the warehouse only for each stored lookup: a run of an hour
        # lets the scheduled polls in between (they are short; it waits for them)
        with (
            writer_lock(settings.data_dir, "enrich", wait_s=settings.writer_wait_s),
            warehouse.connect(
                settings.warehouse_path,
                file_wait_s=settings.lock_wait_s,
                memory_limit=settings.duckdb_memory_limit,
            ) as con,
        ):
            yield con

    with _progress("MusicBrainz", quiet=as_json) as bar:
        task = bar.add_task("", total=None)
        try:
            summary = run_enrichment(
                settings,
                limit=limit,
                on_start=lambda total: bar.update(task, total=total),
                on_artist=lambda name: bar.update(task, advance=1, description=name),
                writer=writer,
            )
        except (WriterBusy, warehouse.WarehouseBusy) as exc:
            raise _fail(
                f"{exc}: the lookups stored so far are kept; run `music-tracker enrich` again",
                EXIT_BUSY,
            ) from None
        except EnrichNotPossible as exc:
            code = 2 if "MUSIC_TRACKER_CONTACT" in str(exc) else 1
            raise _fail(str(exc), code) from None
        except ArtistsUnknown as exc:
            raise _fail(str(exc)) from None
    interrupts.settle()
    result = summary.as_dict()
    if as_json:
        out.print_json(data=result)
        return
    matched = _matched_in_words(result["matched_by"])
    out.print(
        f"MusicBrainz: {result['looked_up']} artists looked up, {result['found']} found"
        + (f" ({matched})" if matched else "")
        + f", {result['missing']} not found, {result['failed']} failed (tried again next run),"
        f" {result['areas_fetched']} areas fetched"
    )
    if result["stopped"]:
        out.print(f"[yellow]stopped early:[/] {result['stopped']}")


def _matched_in_words(matched_by: dict[str, int]) -> str:
    """{"spotify_url": 6, "search": 18} as "6 by Spotify link, 18 by name"."""
    ways = {"spotify_url": "by Spotify link", "isrc": "by ISRC", "search": "by name"}
    return ", ".join(f"{n} {ways.get(way, way)}" for way, n in matched_by.items() if n)


def _write_report(settings: Settings, *, quiet: bool) -> dict[str, Any]:
    """Render the dashboards into ``report/``; a clear error and exit 1 when it cannot."""
    from datetime import UTC, datetime

    from music_tracker.reporting.definitions import DefinitionError, load_dashboards
    from music_tracker.reporting.static_site import Context, ReportError, build_report

    try:
        dashboards = load_dashboards()
    except DefinitionError as exc:
        raise _fail(str(exc)) from None
    context = Context(
        timezone=settings.timezone,
        stream_threshold_ms=settings.stream_threshold_ms,
        built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
    with _progress("report", quiet=quiet) as bar:
        task = bar.add_task("", total=None)
        try:
            summary = build_report(
                settings.warehouse_path,
                settings.report_dir,
                context,
                dashboards=dashboards,
                on_page=lambda name: bar.update(task, advance=1, description=name),
                memory_limit=settings.duckdb_memory_limit,
            )
        except ReportError as exc:
            raise _fail(str(exc)) from None
    return summary.as_dict()


REPORT_MARK = "assets/report.js"  # a folder holding this is a report written here


def _check_report_output(output: Path, settings: Settings) -> None:
    """Refuse a folder the copy would wrongly replace: one holding other files (the
    owner's site), or the data folder's own report."""
    data, report = settings.data_dir.resolve(), settings.report_dir.resolve()
    for folder in (data, report):
        # replacing the output would take the data folder (or the report) with it
        if output == folder or folder.is_relative_to(output) or output.is_relative_to(folder):
            raise _fail(
                f"--output {output} holds or lies inside the data folder ({data}): the copy "
                "replaces its folder as a whole; choose a folder outside it"
            )
    if output.exists() and (not output.is_dir() or (
        any(output.iterdir()) and not (output / REPORT_MARK).is_file()
    )):  # fmt: skip
        raise _fail(
            f"--output {output} holds files that are not a report written by music-tracker, "
            "and the copy replaces the folder as a whole: choose a new or empty folder "
            f"(e.g. {output / 'music'})"
        )


def _copy_report(report_dir: Path, output: Path) -> Path:
    """The finished report copied beside ``output``, then swapped in by renames."""
    import shutil
    import tempfile

    output.parent.mkdir(parents=True, exist_ok=True)
    # names of our own beside it: a folder of the owner's is never taken for a leftover
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    partial, old = scratch / "new", scratch / "old"
    try:
        shutil.copytree(report_dir, partial)
        if output.exists():
            output.rename(old)
        partial.rename(output)
    except OSError as exc:
        if old.exists() and not output.exists():
            old.rename(output)  # the copy that was there stays
        shutil.rmtree(scratch, ignore_errors=True)
        raise _fail(f"cannot copy the report to {output}: {exc}") from None
    shutil.rmtree(scratch, ignore_errors=True)
    return output


@app.command()
def report(
    data_dir: DataDirOption = None,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then serve it on 127.0.0.1 until Ctrl+C.")
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Port for --serve.")] = 8000,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            metavar="<dir>",
            help="Also copy the finished report to this folder (a folder of another site, "
            "e.g. ~/site/music: every link in it is relative). It is replaced as a whole.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write every dashboard as a static HTML site under the data folder's report/."""
    from music_tracker.reporting.static_site import serve as serve_report

    settings = _settings(data_dir)
    _setup_logging(settings.log_level)
    if output is not None:
        _check_report_output(output.expanduser().resolve(), settings)
    result = _write_report(settings, quiet=as_json)
    if output is not None:
        result["copied_to"] = str(_copy_report(settings.report_dir, output.expanduser().resolve()))
    if not serve:  # --serve stops on Ctrl+C, and that is no interruption
        interrupts.settle()
    if as_json:
        out.print_json(data=result)
    else:
        out.print(
            f"wrote {result['pages']} pages of {result['dashboards']} dashboards"
            f" ({result['queries']} card queries) in {result['seconds']} s"
        )
        out.print(f"open {result['index']}")
        if output is not None:
            out.print(f"copied to {result['copied_to']}")
    if serve:
        url = f"http://127.0.0.1:{port}/index.html"
        out.print(f"serving the report at {url} (Ctrl+C stops)")
        try:
            serve_report(settings.report_dir, port)
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            raise _fail(f"cannot serve on 127.0.0.1:{port} ({exc}): choose --port") from None


def _save_status(path: Path, report: dict[str, Any]) -> None:
    """What `status` read, for the moments another process holds the warehouse."""
    from music_tracker import files

    read = {**report, "read_at": datetime.now(UTC).isoformat()}
    files.write_text(path, json.dumps(read, default=str))


@app.command()
def status(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Plays per source, freshness of each flow, what was set aside, warnings."""
    from music_tracker import warehouse

    settings = _settings(data_dir)
    if not settings.warehouse_path.exists():
        raise _fail(
            f"no warehouse at {settings.warehouse_path}: run `music-tracker import` first"
            f" ({_settings_read()})"
        )
    cache = settings.state_dir / "status.json"
    busy = None
    try:
        with warehouse.connect(
            settings.warehouse_path, file_wait_s=settings.lock_wait_s, read_only=True
        ) as con:
            report = warehouse.status(con)
            report["enrichment_backlog"] = _enrichment_backlog(con, settings)
        _save_status(cache, report)
    except warehouse.WarehouseBusy as exc:
        # DuckDB lets no reader open the file beside a writer: say what it last held
        if not cache.is_file():
            raise _fail(f"{exc}: run `music-tracker status` again in a moment", EXIT_BUSY) from None
        report = json.loads(cache.read_text())
        busy = f"{exc}; showing the warehouse as it was at {report['read_at']}"
    report["flows"] = _flow_health(settings)
    report["schedule"] = _schedule_health(settings)
    report["warehouse"] = str(settings.warehouse_path.resolve())
    report["settings_files"] = [str(path) for path in settings_files()]
    report["timezone"] = settings.timezone
    report["warnings"] = _warnings(settings, report) + ([busy] if busy else [])
    zone = ZoneInfo(settings.timezone)
    report["local"] = {  # the same instants, in the configured zone, for people
        key: _local(report[key], zone)
        for key in ("first_play_at", "last_play_at", "last_import_at", "star_schema_built_at")
    }
    if as_json:
        out.print_json(data=report)
        return
    if not report["plays"]:
        out.print(f"no plays yet in {report['warehouse']}")
    else:
        out.print(f"[bold]{report['plays']:,}[/] plays in {report['warehouse']}")
        out.print(
            f"from {report['local']['first_play_at']} to {report['local']['last_play_at']}"
            f" ({settings.timezone})"
        )
    table = Table("source", "plays", "first play", "last play", "last import", box=None)
    for source, facts in report["sources"].items():
        if facts["plays"] or facts["last_import_at"]:
            table.add_row(
                source,
                f"{facts['plays']:,}",
                _local(facts["first_play_at"], zone, date_only=True),
                _local(facts["last_play_at"], zone, date_only=True),
                _local(facts["last_import_at"], zone),
            )
    for kind, count in report["other_content"].items():
        table.add_row(f"{kind} (not music)", f"{count:,}", "", "", "")
    if table.row_count:
        out.print(table)
    for reason, count in report["set_aside_rows"].items():
        out.print(f"set aside: {count:,} rows: {reason}")
    for show in report["podcast_shows_in_old_account_data"]:
        out.print(
            Text(f"podcast, not music (old account data): {show['show']},"
                 f" {show['plays']:,} plays: {show['reason']}")
        )  # fmt: skip
    if report["star_schema_built_at"] is None:
        out.print("star schema: not built yet (run `music-tracker transform`)")
    else:
        since = report["plays_imported_since_build"]
        out.print(
            f"star schema: built {report['local']['star_schema_built_at']};"
            + (f" {since:,} plays imported since (run `music-tracker transform`)" if since
               else " up to date")
        )  # fmt: skip
    for name, health in report["flows"].items():
        line = f"flow {name}: last success {_local(health.get('last_success'), zone)}"
        if health.get("failing"):
            line += f"; [red]failing[/] since {_local(health.get('failing_since'), zone)}"
        out.print(line)
    schedule = report["schedule"]
    if schedule is not None:
        checked = _local(schedule["checked_at"], zone)
        if not schedule["running"]:
            out.print(f"schedule (serve): not running (last checked {checked})")
        elif schedule["healthy"]:
            out.print(f"schedule (serve): healthy (checked {checked})")
        else:
            out.print(f"schedule (serve): [red]unhealthy[/] (checked {checked})")
    out.print(Text(_settings_read()), soft_wrap=True)
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")


def _settings_read() -> str:
    """Where the settings came from, for people: the files read, or where none was found."""
    read = settings_files()
    if read:
        return "settings read from " + ", ".join(str(path) for path in read)
    places = [str(folder) for folder in (settings_folder_here(), user_config_dir()) if folder]
    return (
        "settings: no .env or music-tracker.toml in " + " or ".join(places)
        + "; only the environment, options and defaults"
    )  # fmt: skip


def _schedule_health(settings: Settings) -> dict[str, Any] | None:
    """serve's liveness as its watchdog last wrote it (None when serve never ran here)."""
    from music_tracker.orchestration.healthcheck import verdict
    from music_tracker.orchestration.watchdog import load_health

    health = load_health(settings)
    if health is None:
        return None
    healthy, why = verdict(settings.data_dir)
    running = healthy or not why.startswith("serve's watchdog has not checked")
    return {
        "running": running,
        "healthy": healthy,
        "reasons": health.get("reasons", []) if running else [why],
        "checked_at": health.get("checked_at"),
        "serve_started_at": health.get("serve_started_at"),
    }


def _enrichment_backlog(con: Any, settings: Settings) -> int | None:
    """Artists MusicBrainz has not been asked about yet (None before the first build)."""
    from datetime import timedelta

    from music_tracker.sources.musicbrainz.enrich import ArtistsUnknown, pending_artists

    try:
        return len(pending_artists(con, timedelta(days=settings.musicbrainz_retry_days), None))
    except ArtistsUnknown:
        return None


def _flow_health(settings: Settings) -> dict[str, dict[str, Any]]:
    from music_tracker.orchestration.notify import load_health
    from music_tracker.orchestration.watchdog import LIVENESS

    # the schedule's liveness is not a flow: `schedule` reports it (from health.json)
    return {
        name: {k: v for k, v in health.items() if k != "cause_key"}
        for name, health in sorted(load_health(settings).items())
        if name != LIVENESS
    }


def _local(iso: str | None, zone: ZoneInfo, *, date_only: bool = False) -> str:
    """An ISO UTC time as local wall-clock time; '-' when there is none."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso).astimezone(zone)
    return f"{moment:%Y-%m-%d}" if date_only else f"{moment:%Y-%m-%d %H:%M %Z}"


def _warnings(settings: Settings, report: dict[str, Any]) -> list[str]:
    from music_tracker.sources.spotify.auth import ReauthorizeRequired, TokenStore, expiry_warning

    warnings = [
        f"plays may be missing between {gap['from']} and {gap['to']} (polling gap): "
        "import an extended export covering it"
        for gap in report["gaps"]
        if not gap["closed"]
    ]
    from music_tracker.transform import UNFINISHED_MARK

    if (settings.data_dir / UNFINISHED_MARK).exists():
        warnings.append(
            "the last `music-tracker transform` did not finish (stopped or failed): the star"
            " schema may be incomplete until the next one, which rebuilds everything"
        )
    try:
        token = TokenStore(settings.state_dir).load()
    except ReauthorizeRequired as exc:  # a damaged token file: status still answers
        warnings.append(str(exc))
        token = None
    if token is not None and (warning := expiry_warning(token)):
        warnings.append(warning)
    for name, health in report.get("flows", {}).items():
        if health.get("failing"):
            warnings.append(
                f"the {name} flow has been failing since {health.get('failing_since')}: "
                f"{health.get('cause')}"
            )
    schedule = report.get("schedule")
    if schedule and schedule["running"] and not schedule["healthy"]:
        warnings += [f"the schedule is stalled: {reason}" for reason in schedule["reasons"]]
    backlog = report.get("enrichment_backlog")
    if backlog and backlog > 100:
        warnings.append(
            f"{backlog:,} artists wait for their MusicBrainz lookup "
            "(`music-tracker enrich`; the schedule looks up "
            f"{settings.enrich_artists_per_run} after each ingest)"
        )
    return warnings


def _demo_metabase(settings: Settings) -> dict[str, Any]:
    """Publish, then provision a fake Metabase (the real one is a Java service the demo
    does not need); checked against the Metabase API subset when ../shared is present."""
    import os
    import secrets

    from music_tracker.fakes.metabase import FakeMetabase

    # the project's reference folder beside the clone (what the tests use), when present
    beside = Path(__file__).resolve().parents[3] / "shared"
    shared = Path(os.environ.get("MUSIC_TRACKER_SHARED", beside))
    spec = shared / "specs" / "metabase" / "metabase-openapi-subset.json"
    site = settings.metabase_site_url or "https://music.example.com"
    with FakeMetabase(
        spec=spec if spec.is_file() else None,
        path_map={settings.metabase_serving_dir: str(settings.serving_dir)},
    ) as fake:
        demo_settings = settings.model_copy(
            update={
                "metabase_url": fake.root_url,
                "metabase_site_url": site,
                "metabase_admin_email": "demo@example.com",
                "metabase_admin_password": SecretStr(secrets.token_urlsafe(16)),
                "metabase_api_key": SecretStr(""),
            }
        )
        # the first copy is written before Metabase has a database to point at it
        published = _publish(demo_settings.model_copy(update={"metabase_url": ""}), quiet=False)
        out.print(
            f"  {Path(published['path']).name}: {published['tables']} tables,"
            f" {published['rows']:,} rows"
        )
        result = _provision(demo_settings, quiet=False)
        if fake.rejected:  # a request outside the spec is a bug in the provisioner
            raise _fail("the fake Metabase rejected: " + "; ".join(fake.rejected))
    out.print(
        f"  {len(result['created'])} objects created; {len(result['public_links'])} public"
        f" dashboards; links in {result['links_file']}"
    )
    return {"site": site, **result}


@app.command()
def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help=f"Folder for the demo's data (default {DEMO_DATA_DIR}; never the real data"
            " folder).",
            show_default=False,
        ),
    ] = None,
    musicbrainz_interval: Annotated[
        float,
        typer.Option(
            "--musicbrainz-interval",
            min=0.0,
            help="Seconds between requests to the demo's fake MusicBrainz (the real service"
            " allows one a second; tests pass less to finish sooner).",
        ),
    ] = 1.0,
) -> None:
    """Run the pipeline end to end on a generated 18-year history (no credentials)."""
    from music_tracker.demo.run import (
        enrich_with_fake_musicbrainz,
        generate_inputs,
        poll_fake_spotify,
    )
    from music_tracker.importers.run import run_import
    from music_tracker.transform import TransformError, run_build

    # the demo never writes where real data lives: its own folder unless one is named,
    # and never a folder with a warehouse or tokens that the demo did not make
    settings = _settings(data_dir or DEMO_DATA_DIR)
    _setup_logging(settings.log_level)
    marker = settings.data_dir / DEMO_MARKER
    real = [
        path
        for path in (settings.warehouse_path, settings.state_dir / "spotify_token.json")
        if path.exists()
    ]
    if real and not marker.exists():
        raise _fail(
            f"{settings.data_dir.resolve()} holds real data ({', '.join(p.name for p in real)}):"
            " the demo needs a folder of its own; run it without --data-dir (it uses"
            f" {DEMO_DATA_DIR}) or name an empty folder"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text("made by `music-tracker demo`: generated data, safe to delete\n")
    inputs_dir = settings.data_dir / "demo-inputs"
    out.print(f"[bold]1/8[/] generating a listening history in {inputs_dir}")
    inputs = generate_inputs(inputs_dir)
    out.print("[bold]2/8[/] importing Last.fm scrobbles and three overlapping Spotify exports")
    for path in (inputs.lastfm_csv, inputs.old_extended, inputs.new_extended, inputs.account_data):
        summary = run_import([path], settings.data_dir)
        result = summary.as_dict()
        out.print(
            f"  {path.parent.name}/{path.name}: {result['new_plays']:,} new plays, "
            f"{sum(result['duplicates'].values()):,} duplicates"
        )
    out.print(
        "[bold]3/8[/] polling a fake Spotify on 127.0.0.1 every 10 simulated minutes "
        "for 12 hours, then fetching track, album and artist metadata"
    )
    polled = poll_fake_spotify(settings, inputs.catalogue)
    out.print(
        f"  {polled['polls']} polls: {polled['new_plays']} new plays, "
        f"{polled['duplicates']} overlapping rows ignored; {polled['tracks']} tracks enriched"
    )
    out.print("[bold]4/8[/] building the star schema with dbt (models and data tests)")
    try:
        built = run_build(settings)
        out.print(f"  {built.succeeded} models, seeds and tests passed")
        out.print(
            "[bold]5/8[/] looking up the 25 most played artists in a fake MusicBrainz "
            f"(a request every {musicbrainz_interval:g} s; the real service allows one a second)"
        )
        found = enrich_with_fake_musicbrainz(
            settings, inputs.catalogue, limit=25, interval_s=musicbrainz_interval
        )
        out.print(
            f"  {found['found']} found ({_matched_in_words(found['matched_by'])}),"
            f" {found['areas_fetched']} areas"
        )
        out.print("[bold]6/8[/] rebuilding the star schema with the artists' countries and genres")
        built = run_build(settings)
    except TransformError as exc:
        raise _fail(f"dbt build failed:\n{exc}") from None
    out.print(f"  {built.succeeded} models, seeds and tests passed")
    out.print("[bold]7/8[/] writing the dashboards as a static report")
    written = _write_report(settings, quiet=False)
    out.print(
        "[bold]8/8[/] publishing the serving copy and provisioning a fake Metabase on 127.0.0.1"
        " (setup, database, cards, dashboards, public links)"
    )
    links = _demo_metabase(settings)
    status(data_dir=settings.data_dir, as_json=False)
    out.print(
        f"\n[bold]Public Metabase dashboards[/] (the links a real instance at {links['site']}"
        " would give; the demo's Metabase is a stand-in that is gone now):"
    )
    for link in links["public_links"].values():
        out.print(Text(f"  {link['title']}: {link['url']}"), soft_wrap=True)
    out.print(
        f"\n[bold]The report:[/] {written['index']} ({written['pages']} pages; open it in a "
        f"browser, or run `music-tracker report --serve --data-dir {settings.data_dir}`)"
    )
