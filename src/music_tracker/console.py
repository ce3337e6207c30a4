"""What the commands print for people: each job's result in words and tables, on stdout;
errors, warnings and progress bars on stderr. ``--json`` prints the result itself instead.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

out = Console()
err = Console(stderr=True)


def progress(label: str, *, quiet: bool) -> Progress:
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


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # one line per HTTP request is noise at INFO; our own modules log what matters
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level.upper())))


def local(iso: str | None, zone: ZoneInfo, *, date_only: bool = False) -> str:
    """An ISO UTC time as local wall-clock time; '-' when there is none."""
    if not iso:
        return "-"
    moment = datetime.fromisoformat(iso).astimezone(zone)
    return f"{moment:%Y-%m-%d}" if date_only else f"{moment:%Y-%m-%d %H:%M %Z}"


def warn(message: str) -> None:
    err.print("[yellow]warning:[/]", Text(message), soft_wrap=True)


def import_summary(result: dict[str, Any]) -> None:
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


def provision_summary(result: dict[str, Any]) -> None:
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


def status_report(report: dict[str, Any], settings_read: str) -> None:
    zone = ZoneInfo(report["timezone"])
    if not report["plays"]:
        out.print(f"no plays yet in {report['warehouse']}")
    else:
        out.print(f"[bold]{report['plays']:,}[/] plays in {report['warehouse']}")
        out.print(
            f"from {report['local']['first_play_at']} to {report['local']['last_play_at']}"
            f" ({report['timezone']}; {report.get('play_times', 'start of play')} in every"
            " source)"
        )
    table = Table(
        "source", "plays", "first play (start)", "last play (start)", "last import", box=None
    )
    for source, facts in report["sources"].items():
        if facts["plays"] or facts["last_import_at"]:
            table.add_row(
                source,
                f"{facts['plays']:,}",
                local(facts["first_play_at"], zone, date_only=True),
                local(facts["last_play_at"], zone, date_only=True),
                local(facts["last_import_at"], zone),
            )
    for kind, count in report["other_content"].items():
        table.add_row(f"{kind} (not music)", f"{count:,}", "", "", "")
    if table.row_count:
        out.print(table)
    for reason, count in report["set_aside_rows"].items():
        out.print(f"set aside: {count:,} rows: {reason}")
    for entry in report.get("exclusions", {}).get("entries", []):
        out.print(
            Text(f"excluded (exclusions.yaml): {entry['plays']:,} plays of {entry['kind']}"
                 f" {entry['entry']}: {entry['reason']}")
        )  # fmt: skip
    for show in report["podcast_shows_in_old_account_data"]:
        out.print(
            Text(f"podcast, not music (old account data): {show['show']},"
                 f" {show['plays']:,} plays: {show['reason']}")
        )  # fmt: skip
    if report["star_schema_built_at"] is None:
        out.print("star schema: not built yet (run `music-tracker transform`)")
    else:
        since, stale = report["plays_imported_since_build"], report.get("star_schema_stale")
        out.print(
            f"star schema: built {report['local']['star_schema_built_at']};"
            + (f" {since:,} plays imported since (run `music-tracker transform`)" if since
               else f" {stale} (run `music-tracker transform`)" if stale
               else " up to date")
        )  # fmt: skip
    for name, health in report["flows"].items():
        line = f"flow {name}: last success {local(health.get('last_success'), zone)}"
        if health.get("failing"):
            line += f"; [red]failing[/] since {local(health.get('failing_since'), zone)}"
        out.print(line)
    schedule = report["schedule"]
    if schedule is not None:
        checked = local(schedule["checked_at"], zone)
        if not schedule["running"]:
            out.print(f"schedule (serve): not running (last checked {checked})")
        elif schedule["healthy"]:
            out.print(f"schedule (serve): healthy (checked {checked})")
        else:
            out.print(f"schedule (serve): [red]unhealthy[/] (checked {checked})")
    out.print(Text(settings_read), soft_wrap=True)
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {warning}")


def rematch_summary(result: dict[str, Any]) -> None:
    """What `rematch` moved and merged."""
    out.print(
        f"{result['rows_matched']:,} stored rows matched again: {result['plays_merged']:,}"
        f" plays merged into another, {result['plays_split']:,} split off,"
        f" {result['rows_moved']:,} rows moved"
    )


def publish_summary(result: dict[str, Any]) -> None:
    """The new serving copy, Metabase's answer, copies removed."""
    out.print(
        f"published {Path(result['path']).name}: {result['tables']} tables, "
        f"{result['rows']:,} rows, {result['bytes'] / 1e6:.1f} MB in {result['seconds']} s"
    )
    if result["since"]:
        written = ", ".join(result["written"]) or "nothing: no build since"
        out.print(Text(f"from {result['since']}, written: {written}"), soft_wrap=True)
    else:
        out.print(Text(f"every table copied: {result['why_whole']}"))
    out.print(Text(f"Metabase: {result['metabase']}"))
    if result["removed"]:
        out.print(f"removed {len(result['removed'])} old serving copies")


def backup_summary(result: dict[str, Any]) -> None:
    """Where the backup went, how big, what was pruned."""
    out.print(
        f"backed up to {result['path']}: {result['files']:,} files "
        f"({result['landing_files_new']:,} landing files new), {result['bytes'] / 1e6:.1f} MB"
        f" in {result['seconds']} s"
    )
    folder = result["data_folder"]["id"][:8]
    removed = f"; removed {len(result['removed'])} older: {', '.join(result['removed'])}"
    out.print(
        f"kept {len(result['kept'])} backup{'' if len(result['kept']) == 1 else 's'} of this"
        f" data folder ({folder})" + (removed if result["removed"] else "")
    )
    left = _left_alone(result["left_alone"])
    if left:
        out.print(f"left alone: {left}")
    bucket = result["bucket"]
    if bucket is not None:
        gone = f", removed {', '.join(bucket['removed'])}" if bucket["removed"] else ""
        left = _left_alone(bucket["left_alone"])
        out.print(
            f"bucket: {bucket['uploaded_files']:,} files uploaded"
            f" ({bucket['uploaded_bytes'] / 1e6:.1f} MB), {len(bucket['kept'])} backups of"
            f" this data folder kept{gone}" + (f"; left alone: {left}" if left else "")
        )


def _left_alone(left: dict[str, list[str]]) -> str:
    """The backups a backup's pruning did not touch, by why."""
    said = []
    if left["other_data_folders"]:
        said.append(f"{len(left['other_data_folders'])} of other data folders")
    if left["without_data_folder"]:
        said.append(
            f"{len(left['without_data_folder'])} made before backups named their data folder"
            " (never pruned: delete them yourself when no longer needed)"
        )
    return ", ".join(said)


def restore_summary(result: dict[str, Any]) -> None:
    """What was put back, and what to do next."""
    out.print(f"restored {result['files']:,} files from {result['restored_from']}")
    if result.get("note"):
        out.print(Text(result["note"]), soft_wrap=True)
    elif result["data_folder"]:
        out.print(
            f"this data folder continues the backups of data folder {result['data_folder'][:8]}"
        )
    if result["metabase"]:
        out.print(
            Text(f"Metabase's database is in {result['metabase']}: copy it back while Metabase "
                 "is stopped, or run `music-tracker metabase provision` on a new one")
        )  # fmt: skip
    out.print("then: `music-tracker transform` and `music-tracker publish`")


def ingest_summary(result: dict[str, Any]) -> None:
    """What one poll fetched and stored."""
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


def enrich_summary(result: dict[str, Any]) -> None:
    """What the MusicBrainz lookups found."""
    matched = matched_in_words(result["matched_by"])
    out.print(
        f"MusicBrainz: {result['looked_up']} artists looked up, {result['found']} found"
        + (f" ({matched})" if matched else "")
        + f", {result['missing']} not found, {result['failed']} failed (tried again next run),"
        f" {result['areas_fetched']} areas fetched"
    )
    if result["stopped"]:
        out.print(f"[yellow]stopped early:[/] {result['stopped']}")


def matched_in_words(matched_by: dict[str, int]) -> str:
    """{"spotify_url": 6, "search": 18} as "6 by Spotify link, 18 by name"."""
    ways = {"spotify_url": "by Spotify link", "isrc": "by ISRC", "search": "by name"}
    return ", ".join(f"{n} {ways.get(way, way)}" for way, n in matched_by.items() if n)


def transform_summary(summary: dict[str, Any]) -> None:
    rebuilt = ", incremental tables rebuilt" if summary["full_refresh"] else ""
    # a replay runs the statements of dbt's last build of the same selection (replay.py)
    how = ", replayed" if summary.get("replayed") else ""
    out.print(
        f"dbt build ({summary['scope']}{rebuilt}{how}): {summary['succeeded']} models, seeds"
        " and tests passed"
    )


def report_summary(result: dict[str, Any]) -> None:
    if result.get("note"):  # every play kept out: one page that says so
        out.print(Text(f"nothing to draw: {result['note']}"), style="yellow")
    out.print(
        f"wrote {result['pages']} pages of {result['dashboards']} dashboards"
        f" ({result['queries']} card queries) in {result['seconds']} s"
    )
    out.print(f"open {result['index']}")
    if "copied_to" in result:
        out.print(f"copied to {result['copied_to']}")
    for warning in result.get("warnings") or []:
        warn(warning)
    to_fill = result.get("to_fill") or []
    if to_fill:  # the pages tell visitors what is missing; what to run is the owner's
        out.print("cards shown empty until you run:")
    for hint in to_fill:
        out.print(Text(f"  {hint['to_fill']}"), soft_wrap=True)
        out.print(Text(f"    empty on: {', '.join(hint['dashboards'])}"), soft_wrap=True)


def demo_summary(done: dict[str, Any], data_dir: Path) -> None:
    """The demo's last words: the public links and where the report is."""
    out.print(
        f"\n[bold]Public Metabase dashboards[/] (the links a real instance at"
        f" {done['metabase']['site']} would give; the demo's Metabase is a stand-in that is"
        " gone now):"
    )
    for link in done["metabase"]["public_links"].values():
        out.print(Text(f"  {link['title']}: {link['url']}"), soft_wrap=True)
    written = done["report"]
    out.print(
        f"\n[bold]The report:[/] {written['index']} ({written['pages']} pages; open it in a "
        f"browser, or run `music-tracker report --serve --data-dir {data_dir}`)"
    )
