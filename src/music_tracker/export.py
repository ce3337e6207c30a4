"""``music-tracker export``: every play out of the star schema, in a format another tool reads.

Three formats (docs/export.md says what each holds):

* ``csv`` and ``parquet``: the play grain of ``dw.fact_track_played`` with the names of its
  track, artist and album, UTC and local times and the source; podcasts, audiobooks and
  videos (``dw.fact_other_played``) in a second file. Written by DuckDB's own writers.
* ``listenbrainz``: JSON lines of listens as ListenBrainz exports and imports them
  (``listened_at`` and ``track_metadata``), music in ``listens.jsonl`` and the other
  content in ``other_listens.jsonl``. ``importers/listenbrainz.py`` reads them back.

The warehouse is opened read-only; both files are written beside their final names and
renamed into place once both are whole, so an interrupted or failed export never leaves
half a file under a final name, nor one new file beside an older export's other one. One
export at a time writes into a folder (a lock on the folder itself; another is told to run
again, exit 75).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from errno import EISDIR
from os import strerror
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import duckdb

from music_tracker import __version__, files, warehouse
from music_tracker.transform import UNFINISHED_MARK, build_fingerprint

if TYPE_CHECKING:
    from rich.progress import Progress

    from music_tracker.settings import Settings

# What a listen's ``additional_info`` says about where it came from (ListenBrainz's fields)
SUBMISSION_CLIENT = "music-tracker"
SPOTIFY_SERVICE = "spotify.com"
SPOTIFY_URL = "https://open.spotify.com"
# Our own ``additional_info`` keys (ListenBrainz keeps keys it does not know): the time heard,
# the exact end of play, where the play came from, and what kind of content it is
MS_PLAYED = "ms_played"
ENDED_AT = "ended_at"
SOURCE = "music_tracker_source"
CONTENT_TYPE = "music_tracker_content_type"
# the play's context, kept under the extended history's own names
CONTEXT_KEYS = ("platform", "conn_country", "reason_start", "reason_end", "shuffle", "skipped")
# rows fetched from DuckDB at a time while writing listens
_BATCH_ROWS = 20_000

ProgressCallback = Callable[[int, int], None]


class ExportFormat(StrEnum):
    """Values ``--format`` accepts."""

    LISTENBRAINZ = "listenbrainz"
    CSV = "csv"
    PARQUET = "parquet"


class ExportError(Exception):
    """An export that cannot run: a bad option (exit 2), no star schema yet, an output
    that is not a folder (exit 1)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        # a full disk exits 74 (sysexits' EX_IOERR), as every command's does
        self.exit_code = 74 if exit_code == 1 and files.disk_full(message) else exit_code


def run(
    settings: Settings, fmt: str, output: Path, since: str | None, bar: Progress
) -> dict[str, Any]:
    """``music-tracker export``: the options checked, then :func:`export_history` with its
    progress on ``bar``."""
    choices = [f.value for f in ExportFormat]
    if fmt not in choices:
        raise ExportError(f"--format {fmt!r} is not one of {', '.join(choices)}", 2)
    try:
        since_date = date.fromisoformat(since) if since else None
    except ValueError:
        raise ExportError(
            f"--since {since!r} is not a date: use YYYY-MM-DD, such as 2024-01-31", 2
        ) from None
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    if since_date is not None and since_date > today:
        raise ExportError(
            f"--since {since} is in the future ({settings.timezone}): no play is on or after"
            f" it; give a date up to {today.isoformat()}",
            2,
        )
    if not settings.warehouse_path.exists():
        raise ExportError(
            f"no warehouse at {settings.warehouse_path}: run `music-tracker import` first"
        )
    try:
        target = output.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links, a working folder removed
        raise ExportError(f"--output {output} cannot be followed: {exc}") from None
    for managed in (
        settings.landing_dir,
        settings.state_dir,
        settings.serving_dir,
        settings.report_dir,
    ):
        if target.is_relative_to(managed.resolve()):
            # landing/ holds what was imported, as it was; report/ and serving/ are replaced
            raise ExportError(
                f"--output {output} lies inside {managed}, which music-tracker manages (its"
                " files are replaced or taken for imported ones): choose a folder outside it,"
                f" such as {settings.data_dir / 'exports'}"
            )
    task = bar.add_task("writing plays", total=None)
    try:
        summary = export_history(
            settings.warehouse_path,
            target,
            ExportFormat(fmt),
            timezone=settings.timezone,
            stream_threshold_ms=settings.stream_threshold_ms,
            fingerprint=build_fingerprint(settings),
            since=since_date,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            wait_s=settings.lock_wait_s,
        )
    except warehouse.WarehouseBusy as exc:
        # another process writes: try again later (sysexits' EX_TEMPFAIL, as other commands)
        raise ExportError(f"{exc}: run `music-tracker export` again in a moment", 75) from None
    return summary.as_dict()


def in_words(result: dict[str, Any]) -> str:
    """The summary for people."""
    lines = [f"{f['rows']:,} {f['content']} plays -> {f['path']}" for f in result["files"]]
    if result["since"]:
        lines.append(f"plays on or after {result['since']} ({result['timezone']})")
    lines += [f"warning: {warning}" for warning in result["warnings"]]
    return "\n".join(lines)


@dataclass
class ExportSummary:
    """What an export wrote; printed for people and as JSON for machines."""

    format: str
    output: str
    since: str | None
    timezone: str
    files: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "output": self.output,
            "since": self.since,
            "timezone": self.timezone,
            "files": self.files,
            "plays": sum(f["rows"] for f in self.files if f["content"] == "music"),
            "other_plays": sum(f["rows"] for f in self.files if f["content"] != "music"),
            "warnings": self.warnings,
        }


# The play grain with names: one row per row of dw.fact_track_played
_PLAYS_SQL = """
select
    fact.play_sid,
    fact.played_at,
    fact.started_at,
    fact.played_at_local,
    fact.date_sid as played_date_local,
    fact.ms_played,
    fact.is_ms_played_estimated,
    fact.is_played_at_estimated,
    fact.is_stream,
    fact.duration_ms as track_duration_ms,
    fact.track_id,
    track.track_name,
    artist.artist_id,
    fact.artist_name,
    artist.mbid as artist_mbid,
    album.album_id,
    album.album_name,
    fact.source,
    fact.seen_by_sources,
    fact.skipped,
    fact.shuffle,
    fact.platform,
    fact.conn_country,
    fact.reason_start,
    fact.reason_end
from dw.fact_track_played as fact
left join dw.dim_track as track on fact.track_sid = track.track_sid
left join dw.dim_artist as artist on fact.artist_sid = artist.artist_sid
left join dw.dim_album as album on fact.album_sid = album.album_sid
where $since is null or fact.date_sid >= $since
order by fact.played_at, fact.play_sid
"""

_OTHER_SQL = """
select
    other.play_sid,
    other.played_at,
    other.played_at - to_milliseconds(other.ms_played) as started_at,
    other.played_at_local,
    other.date_sid as played_date_local,
    other.ms_played,
    other.is_stream,
    other.content_type,
    other.show_name,
    other.item_name,
    other.item_uri,
    other.author_name,
    other.source,
    other.skipped,
    other.shuffle,
    other.platform,
    other.conn_country,
    other.reason_start,
    other.reason_end
from dw.fact_other_played as other
where $since is null or other.date_sid >= $since
order by other.played_at, other.play_sid
"""

_FILE_NAMES = {
    ExportFormat.LISTENBRAINZ: ("listens.jsonl", "other_listens.jsonl"),
    ExportFormat.CSV: ("plays.csv", "other_plays.csv"),
    ExportFormat.PARQUET: ("plays.parquet", "other_plays.parquet"),
}


def output_files(fmt: ExportFormat) -> tuple[str, str]:
    """The names an export writes into its folder: (music, other content)."""
    return _FILE_NAMES[fmt]


def export_history(
    warehouse_path: Path,
    output: Path,
    fmt: ExportFormat,
    *,
    timezone: str,
    stream_threshold_ms: int | None = None,
    fingerprint: str | None = None,
    since: date | None = None,
    progress: ProgressCallback | None = None,
    wait_s: float = warehouse.FILE_WAIT_S,
) -> ExportSummary:
    """Write every play (on or after the local date ``since``) into the folder ``output``.
    ``timezone``, ``stream_threshold_ms``: the settings now, told apart from those the star
    schema was built with (which its local times and streams follow); ``fingerprint``: the
    one a whole build would record now (``transform.build_fingerprint``); ``wait_s`` for a
    writer to finish (a reader's turn, ``warehouse.connect``)."""
    if output.exists() and not output.is_dir():
        raise ExportError(f"--output {output} is a file: name a folder (it is made if missing)")
    with warehouse.connect(warehouse_path, read_only=True, file_wait_s=wait_s) as con:
        con.execute("set TimeZone = 'UTC'")
        _check_built(con)
        # the local times are those the star schema was built with: labelled so (unknown
        # after a build that did not finish: dw.build_settings is written early)
        unfinished = (warehouse_path.parent / UNFINISHED_MARK).exists()
        check = warehouse.build_check(
            con,
            finished=not unfinished,
            timezone=timezone,
            stream_threshold_ms=stream_threshold_ms,
            expected=fingerprint,
        )
        built = check.built_for
        timezone = built.timezone if built else timezone
        summary = ExportSummary(
            fmt.value, str(output), since.isoformat() if since else None, timezone
        )
        if built and check.differs:
            summary.warnings.append(
                f"{check.differs}: the local times are {timezone}'s, and streams those of"
                f" {built.stream_threshold_ms / 1000:g} s or more, until `music-tracker"
                " transform` rebuilds the star schema"
            )
        summary.warnings += _left_out(con, unfinished)
        if check.stale == "changed":
            summary.warnings.append(
                "the star schema was built before a change of the project (an upgrade), a"
                " setting or exclusions.yaml, which this export may not show yet: run"
                " `music-tracker transform`, then export again"
            )
        # the folders it makes, deepest first: a failed export leaves none of them
        made = [folder for folder in (output, *output.parents) if not folder.exists()]
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(_cannot_write(output, exc)) from None
        try:
            with _only_export_into(output) as locked:
                if not locked:
                    summary.warnings.append(
                        f"{output} cannot be locked (its file system locks no folder, such as"
                        " NFS): another export into it at the same time would mix their files"
                    )
                return _export_into(con, output, fmt, since, timezone, summary, progress)
        except BaseException:
            with contextlib.suppress(OSError):  # one holding anything stays, and its parents
                for folder in made:
                    folder.rmdir()
            raise


def _left_out(con: duckdb.DuckDBPyConnection, unfinished: bool) -> list[str]:
    """What the star schema, and so the export, does not hold of what was imported: plays
    imported since its last build, a build that did not finish, and the plays
    exclusions.yaml keeps out (helper-63: an export of 15,827 plays, silent beside 5,224
    imported since)."""
    notes = []
    built, since = warehouse.since_last_build(con)
    # podcasts, audiobooks and videos are exported as well, from the star schema too
    other = warehouse.other_plays_since(con, built) if built is not None else 0
    if since or other:
        counted = " and ".join(
            f"{count:,} {what}"
            for count, what in ((since, "plays"), (other, "podcast, audiobook or video plays"))
            if count
        )
        notes.append(
            f"{counted} imported since the last `music-tracker transform` are not in"
            " this export: run it, then export again"
        )
    if unfinished:
        notes.append(
            "the last `music-tracker transform` did not finish: the star schema, and this"
            " export, may be incomplete until it runs again"
        )
    try:
        (excluded,) = con.execute(
            "select count(distinct play_sid) from intermediate.int_plays_excluded"
        ).fetchone()  # type: ignore[misc]
    except duckdb.Error:  # built before exclusions, or the view cannot be read
        excluded = 0
    if excluded:
        notes.append(
            f"{excluded:,} plays are kept out of the star schema by exclusions.yaml, so out"
            " of this export too (they stay in the warehouse's raw tables)"
        )
    return notes


@contextlib.contextmanager
def _only_export_into(output: Path) -> Iterator[bool]:
    """The folder's own lock (``flock`` on the folder, no file added to it) while an
    export writes into it: two exports into one folder would otherwise write the same
    partial files and could rename one's plays beside the other's podcasts. ExportError
    (exit 75, as a busy warehouse) when another export holds it. On a file system that
    cannot lock a folder (NFS takes ``flock`` only on a file open for writing) the export
    runs without it, and is told False."""
    try:
        folder = os.open(output, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise ExportError(_cannot_write(output, exc)) from None
    try:
        try:
            fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            raise ExportError(
                f"another export is writing into {output}: run `music-tracker export` again "
                "when it is done",
                75,
            ) from None
        except OSError:  # a file system that locks no folder (NFS): as before the lock
            locked = False
        yield locked
    finally:
        os.close(folder)


def _export_into(
    con: duckdb.DuckDBPyConnection,
    output: Path,
    fmt: ExportFormat,
    since: date | None,
    timezone: str,
    summary: ExportSummary,
    progress: ProgressCallback | None,
) -> ExportSummary:
    """Both files written beside their names, then both renamed (export_history)."""
    music_name, other_name = output_files(fmt)
    targets = [output / music_name, output / other_name]
    for target in targets:
        if target.is_dir():  # found before anything is written
            in_the_way = IsADirectoryError(EISDIR, strerror(EISDIR))
            raise ExportError(_cannot_write(target, in_the_way))
    # both files written beside their names, then both renamed: a failure on the way
    # leaves the folder as it was (never this export's plays beside an older export's
    # podcasts)
    partials = [_partial(target) for target in targets]
    try:
        for target, partial, sql, content in (
            (targets[0], partials[0], _PLAYS_SQL, "music"),
            (targets[1], partials[1], _OTHER_SQL, "other"),
        ):
            relation = con.sql(sql, params={"since": since})
            total = _count(con, sql, since)
            try:
                if fmt is ExportFormat.LISTENBRAINZ:
                    lines = _listens(relation, content=content)
                    rows = _write_lines(partial, lines, total, progress)
                else:
                    rows = _copy(con, sql, since, partial, fmt, timezone)
            except (OSError, duckdb.IOException) as exc:
                raise ExportError(_cannot_write(target, exc)) from None
            if progress and fmt is not ExportFormat.LISTENBRAINZ:
                progress(rows, total)
            summary.files.append({"path": str(target), "content": content, "rows": rows})
        for target, partial in zip(targets, partials, strict=True):
            try:
                partial.replace(target)
            except OSError as exc:
                raise ExportError(_cannot_write(target, exc)) from None
    finally:
        for partial in partials:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
    return summary


def _partial(target: Path) -> Path:
    """Where a file is written before it is renamed to ``target``."""
    return target.with_name(f".{target.name}.partial")


def _cannot_write(path: Path, exc: Exception) -> str:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    if files.disk_full(exc):  # nothing of the export is left behind: the partials go
        return (
            f"cannot write {path}: {why}; free some space on its disk, or name a folder on"
            " another disk with --output"
        )
    return f"cannot write {path}: {why}; name a folder you can write to with --output"


def _check_built(con: duckdb.DuckDBPyConnection) -> None:
    built = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'dw'"
        " and table_name in ('fact_track_played', 'fact_other_played')"
    ).fetchone()
    if not built or built[0] < 2:
        raise ExportError("the star schema is not built yet: run `music-tracker transform` first")
    for sql in (_PLAYS_SQL, _OTHER_SQL):
        try:  # a column this version reads that the stored tables lack (built before an upgrade)
            con.execute(f"select * from ({sql}) limit 0", {"since": None})
        except duckdb.BinderException as exc:
            raise ExportError(
                "the star schema was built by an earlier version of music-tracker"
                f" ({str(exc).splitlines()[0]}): run `music-tracker transform` first"
            ) from None


def _count(con: duckdb.DuckDBPyConnection, sql: str, since: date | None) -> int:
    row = con.execute(f"select count(*) from ({sql})", {"since": since}).fetchone()
    return int(row[0]) if row else 0


def _copy(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    since: date | None,
    partial: Path,
    fmt: ExportFormat,
    timezone: str,
) -> int:
    """DuckDB's CSV or Parquet writer into ``partial`` (the warehouse connection's zone is
    UTC); a column names the zone of the local times."""
    select = "select *"
    if fmt is ExportFormat.CSV:
        # ISO 8601 text that says which times are UTC (Z) and which are local (no offset)
        select = (
            "select * replace ("
            + ", ".join(
                f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%g{zone}') as {column}"
                for column, zone in (
                    ("played_at", "Z"),
                    ("started_at", "Z"),
                    ("played_at_local", ""),
                )
            )
            + ")"
        )
        options = "format csv, header true"
    else:
        options = "format parquet, compression zstd"
    con.execute(
        f"copy ({select}, $timezone as timezone from ({sql})) to '{_quoted(partial)}' ({options})",
        {"since": since, "timezone": timezone},
    )
    return _count(con, sql, since)


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _write_lines(
    partial: Path, lines: Iterator[str], total: int, progress: ProgressCallback | None
) -> int:
    written = 0
    with partial.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(line)
            out.write("\n")
            written += 1
            if progress and written % _BATCH_ROWS == 0:
                progress(written, total)
    if progress:
        progress(written, total)
    return written


def _listens(relation: duckdb.DuckDBPyRelation, *, content: str) -> Iterator[str]:
    columns = relation.columns
    while batch := relation.fetchmany(_BATCH_ROWS):
        for values in batch:
            row = dict(zip(columns, values, strict=True))
            listen = _music_listen(row) if content == "music" else _other_listen(row)
            yield json.dumps(listen, ensure_ascii=False, separators=(",", ":"))


def _music_listen(row: dict[str, Any]) -> dict[str, Any]:
    estimated = row["is_ms_played_estimated"]
    info: dict[str, Any] = {
        # a play whose time heard is unknown (API, Last.fm) counted with its track's length:
        # that length, so that it counts with the same one when read back
        "duration_ms": row["ms_played"] if estimated else row["track_duration_ms"],
        "spotify_id": _spotify_url("track", row["track_id"]),
        "origin_url": _spotify_url("track", row["track_id"]),
        "spotify_artist_ids": [_spotify_url("artist", row["artist_id"])]
        if row["artist_id"]
        else None,
        "spotify_album_id": _spotify_url("album", row["album_id"]),
        "artist_mbids": [row["artist_mbid"]] if row["artist_mbid"] else None,
    }
    info.update(_common_info(row))
    if estimated:  # a scrobble or an API play: the time heard is unknown
        info.pop(MS_PLAYED)
    if row["is_played_at_estimated"]:
        # a scrobble says only its start (an API play's end is Spotify's, to the millisecond)
        info.pop(ENDED_AT)
    return {
        "listened_at": _epoch_seconds(row["started_at"]),
        "track_metadata": _without_nulls(
            {
                "artist_name": row["artist_name"],
                "track_name": row["track_name"],
                "release_name": row["album_name"],
                "additional_info": _without_nulls(info),
            }
        ),
    }


def _other_listen(row: dict[str, Any]) -> dict[str, Any]:
    uri = row["item_uri"] or ""
    kind, _, item_id = uri.removeprefix("spotify:").partition(":")
    info: dict[str, Any] = {
        CONTENT_TYPE: row["content_type"],
        "spotify_id": _spotify_url(kind, item_id) if item_id else None,
        "origin_url": _spotify_url(kind, item_id) if item_id else None,
        "author_name": row["author_name"],
    }
    info.update(_common_info(row))
    return {
        "listened_at": _epoch_seconds(row["started_at"]),
        "track_metadata": _without_nulls(
            {
                # ListenBrainz has no podcasts: the show stands as artist and release
                "artist_name": row["show_name"] or row["author_name"] or row["content_type"],
                "track_name": row["item_name"] or row["show_name"] or row["content_type"],
                "release_name": row["show_name"],
                "additional_info": _without_nulls(info),
            }
        ),
    }


def _common_info(row: dict[str, Any]) -> dict[str, Any]:
    source = row["source"]
    info: dict[str, Any] = {
        MS_PLAYED: row["ms_played"],
        ENDED_AT: _iso_ms(row["played_at"]),
        "music_service": SPOTIFY_SERVICE if source.startswith("spotify") else None,
        "submission_client": SUBMISSION_CLIENT,
        "submission_client_version": __version__,
        SOURCE: source,
    }
    info.update({key: row[key] for key in CONTEXT_KEYS})
    return info


def _spotify_url(kind: str, spotify_id: str | None) -> str | None:
    return f"{SPOTIFY_URL}/{kind}/{spotify_id}" if spotify_id else None


def _epoch_seconds(at: datetime) -> int:
    """ListenBrainz's ``listened_at``: whole seconds since 1970 (the start, rounded down)."""
    return int(at.timestamp() // 1)


def _iso_ms(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _without_nulls(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
