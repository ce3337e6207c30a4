"""The ``music-tracker`` command line: one typer app, one subcommand per job.

Thin on purpose: a command reads its settings, runs one job from the job's own module
(importers/run.py, ingest.py, transform.py, publish.py, report.py, backup.py, status.py,
demo/run.py), turns its errors into one line and an exit code, and prints the result
(console.py; ``--json`` as it is). Jobs are imported inside their command, so ``--help``
starts without Polars, dbt or Prefect. Command functions end in ``_command``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.text import Text

from music_tracker import __version__, console, interrupts
from music_tracker.console import err, out
from music_tracker.files import disk_full, disk_full_hint
from music_tracker.settings import Settings, cap_hint, get_settings, problems, unknown_settings

app = typer.Typer(
    name="music-tracker",
    help="Your listening history as a DuckDB star schema and public dashboards.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # click's plain help: typer's rich panels show "<bool>" after flags that take no value
    rich_markup_mode=None,
)

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


# Another process has the warehouse: try again later (sysexits' EX_TEMPFAIL), not 1 or 2
EXIT_BUSY = 75
EXIT_DISK_FULL = 74  # a full disk (sysexits' EX_IOERR), as importers.errors.NoRoom's


def _settings(data_dir: Path | None) -> Settings:
    try:
        settings = get_settings(data_dir=data_dir) if data_dir else get_settings()
    except (ValidationError, SettingsError) as exc:
        for line in problems(exc):
            err.print("[red]error:[/]", Text(line), soft_wrap=True)
        raise typer.Exit(2) from None
    for warning in unknown_settings():
        console.warn(warning)
    # messages name absolute paths: "data/warehouse.duckdb" depends on where one stands
    try:
        settings = settings.model_copy(update={"data_dir": settings.data_dir.resolve()})
    except (OSError, RuntimeError) as exc:  # a loop of links, a working folder removed
        raise _fail(f"the data folder {settings.data_dir} cannot be followed: {exc}", 2) from None
    if settings.data_dir.exists() and not settings.data_dir.is_dir():
        hint = settings.data_dir.name == "warehouse.duckdb"
        raise _fail(
            f"the data folder {settings.data_dir} is a file, not a folder"
            + (f"; use its folder, --data-dir {settings.data_dir.parent}" if hint else ""),
            2,
        )
    console.setup_logging(settings.log_level)
    return settings


def _fail(message: str, code: int = 1) -> typer.Exit:
    if interrupts.received():
        # an error Ctrl+C caused: the command's one line says what it left (__main__)
        return typer.Exit(interrupts.EXIT_INTERRUPTED)
    err.print("[red]error:[/]", Text(message), soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _writing(settings: Settings, what: str) -> Iterator[None]:
    """The writer lock around a command that writes the warehouse: one writer at a time
    (the scheduler's flows take it too); a clear message instead of DuckDB's lock error."""
    import duckdb

    from music_tracker.lock import DataFolderError, WriterBusy, writer_lock
    from music_tracker.warehouse import WarehouseBusy

    try:
        lock = writer_lock(settings.data_dir, what, wait_s=settings.lock_wait_s)
        lock.__enter__()
    except DataFolderError as exc:
        raise _fail(str(exc), 2) from None
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
        raise _fail(f"{str(exc).splitlines()[0]}\n{cap_hint(settings, what)}") from None
    except (OSError, duckdb.Error) as exc:
        if not disk_full(exc):
            raise
        raise _fail(
            f"{exc}{disk_full_hint(settings.data_dir, what, exc)}", EXIT_DISK_FULL
        ) from None
    finally:
        lock.__exit__(None, None, None)


def _fail_disk_aware(settings: Settings, what: str, message: str) -> typer.Exit:
    """``_fail``, with the full-disk hint and exit code when the message says so."""
    if disk_full(message):  # one that names its disk (a copy elsewhere) keeps its words
        hint = "" if " is full" in message else disk_full_hint(settings.data_dir, what)
        return _fail(message + hint, EXIT_DISK_FULL)
    return _fail(message)


def _show(
    result: dict[str, Any], as_json: bool, for_people: Callable[[dict[str, Any]], None]
) -> None:
    """The command's result: as JSON with --json, else in words (``console``)."""
    if as_json:
        out.print_json(data=result)
    else:
        for_people(result)


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
        typer.Argument(help="Export files, folders or zips (Spotify, Last.fm, ListenBrainz)."),
    ],
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            help="Force the format: spotify_extended_history, spotify_account_data, lastfm,"
            " spotify_api (a saved recently-played response), listenbrainz.",
        ),
    ] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import listening history: all files commit together or nothing does."""
    from music_tracker.importers.detect import Format
    from music_tracker.importers.errors import ImportInputError
    from music_tracker.importers.run import ImportOptions, run_import

    settings = _settings(data_dir)
    forced = None
    if source is not None:
        # the account-data podcast and audiobook files are told apart from their names
        internal = (Format.ACCOUNT_PODCAST, Format.ACCOUNT_AUDIOBOOK)
        choices = {f.value: f for f in Format if f not in internal}
        if source not in choices:
            raise _fail(f"--source {source!r} is not one of {', '.join(choices)}", 2)
        forced = choices[source]
    # stored at its commit: a Ctrl+C after it lets the summary print (and exit 0)
    interrupts.settles_on_commit()
    with _writing(settings, "import"), console.progress("import", quiet=as_json) as bar:
        task = bar.add_task("finding files", total=None)
        options = ImportOptions(
            forced=forced,
            progress=lambda what: bar.update(task, advance=1, description=what),
            on_files=lambda count: bar.update(task, total=count + 2),
        )
        try:
            result = run_import(settings, paths, options).as_dict()
        except ImportInputError as exc:
            unchanged = "nothing was imported; the warehouse is unchanged"
            raise _fail(f"{exc}\n{unchanged}", exc.exit_code) from None
    _show(result, as_json, console.import_summary)


@app.command("rematch")
def rematch_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Match every stored play again under the current rules (after an upgrade).

    Plays an earlier version stored twice are merged; rows are moved, never deleted. Run
    `transform` afterwards to rebuild the star schema.
    """
    from music_tracker.importers.run import run_rematch

    settings = _settings(data_dir)
    if not settings.warehouse_path.exists():
        raise _fail(f"no warehouse in {settings.data_dir}: import your history first")
    interrupts.settles_on_commit()
    with _writing(settings, "rematch"), console.progress("rematch", quiet=as_json) as bar:
        bar.add_task("matching every stored play again", total=None)
        result = run_rematch(settings)
    _show(result, as_json, console.rematch_summary)


@app.command("transform")
def transform_command(
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
    with _writing(settings, "transform"), console.progress("dbt build", quiet=as_json) as bar:
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
            message = f"dbt build failed:\n{exc}"
            if "Out of Memory" in message:
                anew = "no imported play was touched; the next build makes the star schema anew"
                message += f"\n{cap_hint(settings, 'transform', anew)}"
            raise _fail_disk_aware(settings, "transform", message) from None
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
        "replayed": result.replayed,
    }
    _show(summary, as_json, console.transform_summary)


@app.command("publish")
def publish_command(
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
    full: Annotated[bool, typer.Option("--full", help="Copy every table anew.")] = False,
) -> None:
    """Write the serving copy Metabase reads (serving/) and point Metabase at it."""
    from music_tracker.metabase.handoff import current_copy
    from music_tracker.publish import PublishError, interrupted_line, publish

    settings = _settings(data_dir)
    before = current_copy(settings.serving_dir)
    interrupts.say(lambda: interrupted_line(settings, before))
    with _writing(settings, "publish"), console.progress("publish", quiet=as_json) as bar:
        task = bar.add_task("", total=None)

        def on_table(name: str, total: int) -> None:
            bar.update(task, advance=1, total=total, description=name)

        try:
            result = publish(settings, on_table=on_table, full=full).as_dict()
        except PublishError as exc:
            raise _fail_disk_aware(settings, "publish", str(exc)) from None
    interrupts.settle()
    _show(result, as_json, console.publish_summary)


@app.command("run")
def run_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """The whole pipeline once, as a Prefect flow: ingest, enrich, transform, publish, report."""
    import os

    from music_tracker.orchestration.serve import prefect_environment

    settings = _settings(data_dir)
    os.environ.update(prefect_environment(settings))
    from music_tracker.lock import WriterBusy
    from music_tracker.orchestration.flows import pipeline_flow

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


@app.command("serve")
def serve_command(
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
    try:
        serve_schedules(settings)
    except ServeError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        pass


@app.command("backup")
def backup_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Copy the warehouse, landing files, state (and Metabase's database) to the backups."""
    from music_tracker.backup import BackupDiskFull, backup, interrupted_line
    from music_tracker.backup_layout import BackupError, backup_root, backups
    from music_tracker.lock import WriterBusy
    from music_tracker.warehouse import WarehouseBusy

    settings = _settings(data_dir)
    before = set(backups(backup_root(settings)))
    interrupts.say(lambda: interrupted_line(settings, before))
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
        console.warn(warning)
    _show(result, as_json, console.backup_summary)


@app.command("restore")
def restore_command(
    backup: Annotated[
        str,
        typer.Argument(
            help="A backup (backups/<UTC time>, s3://bucket/prefix/<UTC time>), or backups/"
            " or s3://bucket/prefix: the newest of this data folder's.",
        ),
    ],
    data_dir: DataDirOption = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Overwrite the data folder's warehouse.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Put a backup back, after checking every file against its checksum."""
    from music_tracker.backup import restore, restore_from_bucket
    from music_tracker.backup_layout import BackupError
    from music_tracker.lock import WriterBusy
    from music_tracker.warehouse import WarehouseBusy

    settings = _settings(data_dir)
    wait = settings.lock_wait_s
    try:
        if backup.startswith("s3://"):
            say = console.err.print if as_json else out.print
            result = restore_from_bucket(settings, backup, replace=replace, wait_s=wait, say=say)
        else:
            result = restore(settings, Path(backup).expanduser(), replace=replace, wait_s=wait)
    except (WriterBusy, WarehouseBusy) as exc:
        raise _fail(
            f"{exc}: nothing was restored; run `music-tracker restore` again when it has finished",
            EXIT_BUSY,
        ) from None
    except BackupError as exc:
        raise _fail(str(exc)) from None
    _show(result, as_json, console.restore_summary)


metabase_app = typer.Typer(help="Set up and update the Metabase dashboards.", no_args_is_help=True)
app.add_typer(metabase_app, name="metabase")


@metabase_app.command("provision")
def metabase_provision_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Make Metabase match dashboards/*.yml: database, cards, dashboards, public links."""
    from music_tracker.metabase.client import MetabaseError
    from music_tracker.metabase.provision import provision_project
    from music_tracker.reporting.definitions import DefinitionError
    from music_tracker.transform import TransformError

    settings = _settings(data_dir)
    with console.progress("metabase", quiet=as_json) as bar:
        task = bar.add_task("", total=None)
        try:
            result = provision_project(
                settings, on_step=lambda what: bar.update(task, advance=1, description=what)
            ).as_dict()
        except (DefinitionError, TransformError, MetabaseError) as exc:
            raise _fail(str(exc)) from None
    _show(result, as_json, console.provision_summary)


auth_app = typer.Typer(help="Authorize access to outside services.", no_args_is_help=True)
app.add_typer(auth_app, name="auth")


@auth_app.command("spotify")
def auth_spotify_command(
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
    from music_tracker.sources.spotify import auth

    settings = _settings(data_dir)

    def redirected(url: str, redirect: str) -> str:
        out.print("Open this address in a browser and allow access:")
        out.print(url, soft_wrap=True)
        if paste:
            return str(typer.prompt("Paste the address the browser was sent to"))
        out.print(f"Waiting for the redirect to {redirect} ...")
        return auth.wait_for_redirect(settings.spotify_redirect_port, timeout_s) or ""

    try:
        spotify, token = auth.authorize(settings, redirected)
    except auth.ReauthorizeRequired as exc:
        raise _fail(str(exc)) from None
    out.print(
        f"Authorized. Tokens saved in {spotify.store.path} (mode 0600); the authorization "
        f"lasts until about {token.refresh_expires_at:%Y-%m-%d}."
    )


@app.command("ingest")
def ingest_command(
    data_dir: DataDirOption = None,
    no_enrich: Annotated[
        bool, typer.Option("--no-enrich", help="Only poll; fetch no track metadata.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Poll Spotify's recently played tracks once and store new plays."""
    from music_tracker.importers.errors import ImportInputError
    from music_tracker.ingest import ingest
    from music_tracker.sources.http import HttpError
    from music_tracker.sources.spotify.auth import ReauthorizeRequired

    settings = _settings(data_dir)
    try:
        with _writing(settings, "ingest"):
            summary = ingest(settings, enrich=not no_enrich)
    except ReauthorizeRequired as exc:
        raise _fail(str(exc)) from None
    except (HttpError, ImportInputError) as exc:
        lost = "nothing was lost: the next run polls from the same cursor"
        raise _fail(f"{exc}; {lost}", getattr(exc, "exit_code", 1)) from None
    interrupts.settle()
    result = summary.as_dict()
    _show(result, as_json, console.ingest_summary)


@app.command("enrich")
def enrich_command(
    data_dir: DataDirOption = None,
    limit: Annotated[
        int | None, typer.Option("--limit", help="Look up at most this many artists.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Look up artists in MusicBrainz: country, type, genres (1 request per second)."""
    from music_tracker import warehouse
    from music_tracker.lock import WriterBusy
    from music_tracker.sources.musicbrainz.enrich import (
        ArtistsUnknown,
        EnrichNotPossible,
        locked_writer,
        run_enrichment,
    )

    settings = _settings(data_dir)

    with console.progress("MusicBrainz", quiet=as_json) as bar:
        task = bar.add_task("", total=None)
        try:
            summary = run_enrichment(
                settings,
                limit=limit,
                on_start=lambda total: bar.update(task, total=total),
                on_artist=lambda name: bar.update(task, advance=1, description=name),
                writer=locked_writer(settings),
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
    _show(result, as_json, console.enrich_summary)


@app.command("report")
def report_command(
    data_dir: DataDirOption = None,
    serve_it: Annotated[
        bool, typer.Option("--serve", help="Then serve it on 127.0.0.1 until Ctrl+C.")
    ] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port for --serve.")] = 8000,
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
    from music_tracker.lock import DataFolderError, ReportBusy
    from music_tracker.report import CopyFailed, OutputRefused, check_output, report
    from music_tracker.reporting.definitions import DefinitionError
    from music_tracker.reporting.static_site import PortTaken, ReportError, open_server, serve

    settings = _settings(data_dir)
    server = target = None
    try:
        if serve_it:  # a port in use is told before the build
            server = open_server(settings.report_dir, port)
        if output is not None:
            target = check_output(output, settings)
        with console.progress("report", quiet=as_json) as bar:
            task = bar.add_task("", total=None)
            result = report(
                settings,
                on_page=lambda page: bar.update(task, advance=1, description=page),
                copy_to=target,
            )
    except ReportBusy as exc:
        raise _fail(f"{exc}: run `music-tracker report` again when it is done", EXIT_BUSY) from None
    except (OutputRefused, DefinitionError, ReportError, CopyFailed, PortTaken) as exc:
        raise _fail_disk_aware(settings, "report", str(exc)) from None
    except DataFolderError as exc:
        raise _fail(str(exc), 2) from None
    except OSError as exc:  # the report itself, before any copy
        raise _fail(f"cannot write the report in {settings.report_dir}: {exc}") from None
    if server is None:  # --serve stops on Ctrl+C, and that is no interruption
        interrupts.settle()
    _show(result, as_json, console.report_summary)
    if server is not None:
        out.print(f"serving the report at http://127.0.0.1:{port}/index.html (Ctrl+C stops)")
        serve(server)


@app.command("export")
def export_command(
    fmt: Annotated[str, typer.Option("--format", help="listenbrainz, csv or parquet.")],
    output: Annotated[Path, typer.Option("--output", help="Folder to write into.")],
    since: Annotated[str | None, typer.Option("--since", help="From this local date.")] = None,
    data_dir: DataDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every play out of the star schema: music and other content in two files."""
    from music_tracker import export

    with console.progress("export", quiet=as_json) as bar:
        try:
            # a quoted "~/x" reaches us unexpanded (no shell in between)
            result = export.run(_settings(data_dir), fmt, output.expanduser(), since, bar)
        except export.ExportError as exc:
            raise _fail(str(exc), exc.exit_code) from None
    out.print_json(data=result) if as_json else out.print(Text(export.in_words(result)))


@app.command("status")
def status_command(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Plays per source, freshness of each flow, what was set aside, warnings."""
    from music_tracker.status import NoWarehouse, gather, settings_read
    from music_tracker.warehouse import WarehouseBusy

    settings = _settings(data_dir)
    try:
        report = gather(settings)
    except NoWarehouse as exc:
        raise _fail(str(exc)) from None
    except WarehouseBusy as exc:  # and no earlier status saved to show instead
        raise _fail(f"{exc}: run `music-tracker status` again in a moment", EXIT_BUSY) from None
    _show(report, as_json, lambda report: console.status_report(report, settings_read()))


@app.command("demo")
def demo_command(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Folder for the demo's data (default data/demo; never the real data folder).",
            show_default=False,
        ),
    ] = None,
    musicbrainz_interval: Annotated[
        float, typer.Option(min=0.0, help="Seconds between requests (the real MusicBrainz: 1).")
    ] = 1.0,
    plays_per_year: Annotated[
        int,
        typer.Option(min=150, help="Plays a year in the generated history (a quicker run: less)."),
    ] = 3_000,
) -> None:
    """Run the pipeline end to end on a generated 18-year history (no credentials)."""
    from music_tracker.demo import run as demo
    from music_tracker.transform import TransformError

    # the demo never writes where real data lives: its own folder unless one is named,
    # and never a folder with a warehouse or tokens that the demo did not make
    settings = _settings(data_dir or demo.DEMO_DATA_DIR)
    try:
        demo.claim_folder(settings)
        spec = demo.reference_spec()
        done = demo.run_demo(
            settings,
            out.print,
            musicbrainz_interval=musicbrainz_interval,
            spec=spec,
            plays_per_year=plays_per_year,
        )
    except TransformError as exc:
        raise _fail(f"dbt build failed:\n{exc}") from None
    except demo.BUSY as exc:
        raise _fail(
            f"{exc}: run `music-tracker demo` again when it has finished", EXIT_BUSY
        ) from None
    except demo.FAILURES as exc:  # a data folder that cannot be used is a setting: 2
        raise _fail(str(exc), 2 if isinstance(exc, demo.DataFolderError) else 1) from None
    status_command(data_dir=settings.data_dir, as_json=False)
    console.demo_summary(done, settings.data_dir)
