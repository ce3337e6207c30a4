"""``music-tracker import``: find files, read them, de-duplicate, store, in one transaction.

The run is all or nothing. Every input is read once, into a private copy that is hashed
as it is written, and checked before anything is stored; a bad file stops the run with a
message naming it, and the warehouse is unchanged. Only then, in a single DuckDB
transaction, are the copies renamed into ``landing/`` (content-addressed, so a file is
stored once however often it is imported) and the rows written.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from music_tracker import dedupe, files, warehouse
from music_tracker.importers import blocks, podcasts
from music_tracker.importers import parts as parts_
from music_tracker.importers.detect import (
    SNIFF_BYTES,
    EmptyHistory,
    Format,
    NotHistory,
    detect_format,
    is_data_for,
)
from music_tracker.importers.errors import ImportInputError
from music_tracker.importers.inputs import Candidate, discover, is_zip, stage
from music_tracker.importers.landing import WRITABLE_HINT, ToLand, land
from music_tracker.importers.lastfm import read_scrobbles
from music_tracker.importers.listenbrainz import read_listens
from music_tracker.importers.readers import Parsed, read_file
from music_tracker.importers.staging import Staging
from music_tracker.importers.summary import NOT_A_PLAY, ImportSummary
from music_tracker.lock import make_folders
from music_tracker.settings import Settings, memory_bytes

log = logging.getLogger(__name__)

_VIDEO_NAME = re.compile(r"streaming_history_video", re.IGNORECASE)
# Account-data files before 2023 (StreamingHistory0.json) mix podcast episodes into music.
# a browser names a second download "StreamingHistory0 (1).json"
_OLD_ACCOUNT_NAME = re.compile(r"^StreamingHistory\d+( ?\(\d+\))?\.json$", re.IGNORECASE)
# Music rows matched and stored at a time (whole days, ``Staging.plan_parts``; a day several
# sources tell weighs more a row). Matching a part holds about 0.5 KB per row in Polars:
# parts of 400,000 rows peaked at 470-500 MB at 10 million plays, parts of 150,000 at about
# 360 MB. A part's insert now runs beside the next part's matching (importers/parts.py),
# which adds the insert's memory to the matching's. Parts of whole months were at most
# this, parts of whole days are full: 120,000 peaked at 394 MiB at 10 million plays,
# 100,000 at 364 MiB in the same time (docs/benchmarks.md, "Parts of whole days"); on
# another machine 100,000 peaked at 382-401 MiB and 80,000 at 16 MiB less, in the same
# time ("The import at 10M on a machine booted new")
DEFAULT_PART_ROWS = 80_000

ProgressCallback = Callable[[str], None]


@dataclass
class _ReadFile:
    candidate: Candidate
    sha256: str
    size: int
    staged: Path
    format: Format
    rows_read: int


@dataclass(frozen=True)
class ImportOptions:
    """How one import runs, beyond the settings.

    ``forced``: the format of every file named (``--source``). ``progress``, ``on_files``:
    each step's name, and how many files were found. ``store_unchanged=False`` (API polls):
    an input that brings nothing new is neither landed nor recorded, since a poll every 10
    minutes would otherwise add a file each time. ``api_gap`` (a poll's: from, to) is
    recorded in ``raw.api_gaps`` in the same transaction as the poll's plays. ``part_rows``:
    an import of more music rows is matched and stored in parts of about as many rows, by
    time (``Staging.plan_parts``): memory stays bounded at any history size.
    """

    forced: Format | None = None
    progress: ProgressCallback | None = None
    on_files: Callable[[int], None] | None = None
    store_unchanged: bool = True
    api_gap: tuple[datetime, datetime] | None = None
    part_rows: int = DEFAULT_PART_ROWS


def run_import(
    settings: Settings, paths: list[Path], options: ImportOptions | None = None
) -> ImportSummary:
    """Import ``paths`` into the settings' warehouse; all or nothing.

    From the settings: the matching tolerances, DuckDB's memory cap and file-lock wait,
    the largest file read (``import_max_file_mb``), the disk space left free beside the
    copies (``min_free_mb``, ``inputs.stage``) and the podcast rules.
    """
    options = options or ImportOptions()
    started = datetime.now(UTC)
    summary = ImportSummary(run_id=f"import-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}")
    candidates = discover(paths)
    if options.on_files:
        options.on_files(len(candidates))
    made: list[Path] = []
    try:
        return _import(settings, options, paths, candidates, summary, started, made)
    except BaseException:
        # a failed first import leaves no empty warehouse or folders behind ("unchanged"):
        # only what this run made, never what merely did not exist when it looked (another
        # process may have made it since: its warehouse, open and being written)
        for path in reversed(made):
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_file():
                path.unlink()
                path.with_name(f"{path.name}.wal").unlink(missing_ok=True)
        raise


def _import(
    settings: Settings,
    options: ImportOptions,
    paths: list[Path],
    candidates: list[Candidate],
    summary: ImportSummary,
    started: datetime,
    made: list[Path],
) -> ImportSummary:
    """The import itself; ``made`` collects what it creates (folders, the warehouse), for
    ``run_import`` to remove should it fail."""
    progress, api_gap = options.progress, options.api_gap
    tolerances = dedupe.tolerances_from(settings)
    min_free_bytes = settings.min_free_mb * 2**20
    landing = settings.landing_dir
    made += make_folders(settings.data_dir)
    made += make_folders(landing)
    warehouse_path = settings.warehouse_path
    new = not warehouse_path.exists()
    with warehouse.connect(
        warehouse_path,
        memory_limit=settings.duckdb_memory_limit,
        file_wait_s=settings.lock_wait_s,
    ) as con:
        # every staged file is read once or twice, and DuckDB's cache of file contents
        # kept them inside the memory cap: 83 MB after the other plays of 10 million
        # (625 small files), which the insert then lacked
        warehouse.uncached_files(con)
        if new:
            # the file was not there and this connection, the only one DuckDB allows beside
            # it, opened it: this run created it (under the writer lock no other writer of
            # ours runs; a stranger holding it would have failed the connect instead)
            made.append(warehouse_path)
        # holding the warehouse, no other import runs: a staging folder left here is what
        # a killed run left behind (its rows never committed)
        for stale in landing.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)
        with _staging_folder(landing) as staging_dir:
            staging = Staging(con, Path(staging_dir))
            known = warehouse.imported_file_hashes(con)
            readers = _readers(settings.duckdb_memory_limit)
            if readers > 1:
                # two files parsed at once, each on one of DuckDB's threads: with two
                # threads each, the four shared the two cores, and the 100 first files of
                # 10 million plays took 7.8 CPU-s to parse against 5.3 (4.0 s against 2.7);
                # the import's reading went from 7.7-8.0 s to 6.6-6.9 s (docs/benchmarks.md,
                # "The readers on one thread each")
                warehouse.single_threaded(con)
            read, with_history = _read_all(
                con, staging, candidates, Path(staging_dir), known, options.forced, summary,
                progress, settings.import_max_file_mb * 2**20, min_free_bytes, readers,
            )  # fmt: skip
            # DuckDB's JSON reader freed its buffers; matching should not stack on them
            warehouse.release_freed_memory()
            # PARTS_ON_ONE_THREAD: the parts are inserted into one transaction; on two
            # threads each insert left a partly filled row group per thread in DuckDB's
            # memory, which filled the cap part after part (at 10 million plays, parts of
            # 150,000 rows ran out of 128 MB in part 41; 400,000-row parts passed with
            # 104 MB held). One thread holds 50-80 MB and inserts in half the CPU time.
            warehouse.single_threaded(con)
            _check_archives(paths, with_history)
            _check_found_history(paths, read, summary)
            if progress:
                progress("de-duplicating")
            old_files = [
                item
                for item in read
                if item.format is Format.ACCOUNT_MUSIC
                and _OLD_ACCOUNT_NAME.match(item.candidate.base_name)
            ]
            old_account = [item.sha256 for item in old_files]
            summary.old_account_files = [item.candidate.display_name for item in old_files]
            if old_account:  # not on every poll: only when old account data comes in
                # the old-format files imported before: a history imported a year at a time
                # is decided on as a whole, and their episodes are not "named in a podcast
                # file"
                stored_old = warehouse.old_account_files(con, _OLD_ACCOUNT_NAME)
                shows = podcasts.decide_shows(
                    staging.old_account_rows(old_account, stored_old),
                    staging.known_show_names(stored_old),
                    podcasts.PodcastRules(
                        frozenset(settings.podcast_shows), frozenset(settings.not_podcasts)
                    ),
                    warehouse.earlier_podcast_decisions(con),
                )
                staging.move_old_account_podcasts(old_account, shows)
            parts = staging.plan_parts(options.part_rows)
            first = parts_.assign(con, staging, tolerances, summary, part=0)
            nothing_new = not (summary.new_plays or summary.linked_to_other_source or api_gap)
            if not options.store_unchanged and nothing_new and parts > 1:
                # a poll's days weighed with their stored rows can make two parts
                nothing_new = parts_.stored_before(con, staging, summary)
            if not options.store_unchanged and nothing_new:
                # nothing new (rows set aside, such as a local file's play, come back in every
                # poll while they stay among the last 50): no landing file, no import record
                return summary
            if progress:
                progress("storing")
            # the matching of the next part runs beside each part's insert, in this
            # process: DuckDB's share of the cap keeps room for it (``STORING_SHARE``)
            with (
                warehouse.capped(con, STORING_SHARE, settings.duckdb_memory_limit) as cap,
                warehouse.transaction(con),
            ):
                now = datetime.now(UTC)
                # each file's private copy, parsed for its rows, renamed into its place
                landed = [
                    land(ToLand(i.staged, _family(i.format), i.sha256, i.candidate.base_name,
                                i.candidate.display_name), landing)
                    for i in read
                ]  # fmt: skip
                # a large import, part by part in time order: each part is matched against
                # what the parts before it stored (in this transaction), as if they had been
                # imported first; the de-duplication rules give the same plays either way
                parts_.store_parts(
                    con, staging, first, now, parts=parts, tolerances=tolerances,
                    summary=summary, progress=progress, memory_limit=cap,
                )  # fmt: skip
                other = staging.store_other(now)
                summary.other_content.update(other.new_by_type)
                summary.duplicates_in_input += other.repeated_in_input
                summary.already_stored += other.already_stored
                summary.linked_to_other_source += other.same_play_from_other_source
                if other.not_plays:
                    summary.set_aside[NOT_A_PLAY] += other.not_plays
                staging.store_set_aside(now)
                staging.store_podcast_decisions(now)
                _record_files(con, read, landed, summary, now)
                summary.files_imported = len(read)
                if api_gap is not None:
                    warehouse.insert_row(
                        con, "raw.api_gaps", gap_from=api_gap[0], gap_to=api_gap[1], detected_at=now
                    )
                warehouse.record_run(con, summary.run_id, "import", started, summary.as_dict())
            return summary


def _read_all(
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    candidates: list[Candidate],
    staging_dir: Path,
    known: set[str],
    forced: Format | None,
    summary: ImportSummary,
    progress: ProgressCallback | None,
    max_bytes: int,
    min_free_bytes: int,
    readers: int = 1,
) -> tuple[list[_ReadFile], set[Path]]:
    """Read and stage every candidate; also return the archives that held history.

    Files are parsed on ``readers`` threads (DuckDB's JSON reader and Polars release the
    GIL) while this one hashes the next and stages the last, in the candidates' order: "first
    seen" and the first bad file reported are what reading one after the other gives.
    """
    read: list[_ReadFile] = []
    seen: set[str] = set()
    with_history: set[Path] = set()
    waiting: deque[tuple[_ReadFile, Future[Iterable[Parsed]]]] = deque()
    alone: set[int] = set()  # the files parsed again on their own
    staging_failed: list[_ReadFile] = []  # a file that failed while it was staged

    def stage_next() -> None:
        item, future = waiting[0]
        waiting[0] = (item, future := outcome(item, future))
        future.exception()  # the parse ended, failed or not
        pieces = future.result()  # a file that failed stays first in ``waiting``
        if isinstance(pieces, Iterator):
            # a large file, read here a block at a time: alone, as the readers' files are
            # (beside the next files' parses, an 8 MiB block of listens and two history
            # files ran out of the 128 MB cap about half the time)
            wait([other for _, other in waiting])
        try:
            for parsed in pieces:  # a large file's blocks are read here
                staging.add(_music_source(item.format), parsed, item.sha256)
                for reason, count in parsed.set_aside.group_by("reason").len().iter_rows():
                    summary.set_aside[reason] += count
                summary.rows_read += parsed.rows_read
                item.rows_read += parsed.rows_read
        except Exception:
            staging_failed.append(item)  # the first file's failure, before any later one's
            raise
        waiting.popleft()
        read.append(item)

    def outcome(item: _ReadFile, future: Future[Iterable[Parsed]]) -> Future[Iterable[Parsed]]:
        """``future``, or the file parsed again alone if it ran out of DuckDB's cap beside
        another's: two fit on most histories, not all (JSON lines on two threads each)."""
        error = future.exception()
        if readers == 1 or id(item) in alone or not isinstance(error, duckdb.OutOfMemoryException):
            return future
        wait([other for _, other in waiting])
        alone.add(id(item))
        log.info("%s parsed again alone (over the cap beside another)", item.candidate.display_name)
        again: Future[Iterable[Parsed]] = Future()
        try:
            again.set_result(_parse(con, item, bool(_VIDEO_NAME.search(item.candidate.base_name))))
        except Exception as exc:  # the file's own failure, reported in its turn
            again.set_exception(exc)
        return again

    with ThreadPoolExecutor(readers, thread_name_prefix="import-read") as reader:
        try:
            for candidate in candidates:
                if progress:
                    progress(candidate.display_name)
                # the first bytes decide; nothing else is read or copied of a file that is
                # not listening history (a video in ~/Downloads, a PDF). Stamped before
                # anything is read of it: what is copied is checked against both (``stage``)
                before = (candidate.stamp(), candidate.head(SNIFF_BYTES))
                fmt = _format_of(candidate, before[1], forced, summary)
                if fmt is None:
                    continue
                # (the staging folder is in landing/: its copies are landed by renaming)
                copy = stage(candidate, staging_dir, before, max_bytes, min_free_bytes,
                             shown_as=staging_dir.parent)  # fmt: skip
                staged, sha256, size = copy.path, copy.sha256, copy.size
                if candidate.archive is not None:
                    with_history.add(candidate.archive)
                if sha256 in known or sha256 in seen:
                    summary.files_already_imported += 1
                    if staged is not None:
                        staged.unlink()
                    continue
                if copy.no_room is not None:
                    raise copy.no_room
                assert staged is not None  # a copy, since there was room for it
                seen.add(sha256)
                is_video = bool(_VIDEO_NAME.search(candidate.base_name))
                item = _ReadFile(candidate, sha256, size, staged, fmt, 0)
                waiting.append((item, reader.submit(_parse, con, item, is_video)))
                while len(waiting) > readers:
                    stage_next()
            while waiting:
                stage_next()
        except BaseException as failure:
            # the first file that failed in the candidates' order is reported (those waiting
            # come first); an interrupt as itself, once the parses under way have ended
            wait([future for _, future in waiting])
            earlier = isinstance(failure, Exception) and not staging_failed
            for item, future in waiting if earlier else ():
                outcome(item, future).result()
            raise
    return read, with_history


# Two files parse at once where the cap holds two of DuckDB's JSON buffers (32 MiB each):
# 2 million plays in 33.3 s against 39.2 s, same peak (docs/benchmarks.md, fifth step).
_TWO_READERS_FROM = 128 * 10**6
# DuckDB's share of its cap while the rows are stored. DuckDB fills its cap with the blocks
# it has written (on disk already) before it evicts any, and the matching beside each insert
# holds 60-80 MB of Polars' at a time: at 10 million plays the import peaked at 361-369 MiB
# under the whole 128 MB, 342-347 MiB under three quarters of it, in the same time
# (docs/benchmarks.md, "DuckDB's share while the rows are stored"); half of it no lower.
STORING_SHARE = 0.75


@contextmanager
def _staging_folder(landing: Path) -> Iterator[str]:
    """The run's own folder in landing/ (so its copies land by renaming), removed after."""
    try:
        folder = tempfile.TemporaryDirectory(dir=landing, prefix=".staging-")
    except OSError as exc:
        if files.disk_full(exc):
            raise  # told as a full disk (cli._writing)
        raise ImportInputError(
            str(landing),
            f"could not be written ({exc.strerror or exc})",
            hint=WRITABLE_HINT,
        ) from exc
    with folder as path:
        yield path


def _readers(memory_limit: str) -> int:
    """How many files are parsed at once under DuckDB's cap ``memory_limit``."""
    return 2 if memory_bytes(memory_limit) >= _TWO_READERS_FROM else 1


def _parse(con: duckdb.DuckDBPyConnection, item: _ReadFile, is_video: bool) -> Iterable[Parsed]:
    """Parse one file on the reader thread, through a cursor of its own (a DuckDB
    connection runs one query at a time). A Last.fm export, or a ListenBrainz file larger
    than a block, is not read here but block by block as it is staged (``_blocks``)."""
    if item.format is Format.LASTFM or (
        item.format is Format.LISTENBRAINZ and item.size > blocks.BLOCK_BYTES
    ):
        return _blocks(con, item)
    with con.cursor() as cursor:
        if item.format is Format.LISTENBRAINZ:
            return list(read_listens(cursor, item.staged, item.candidate.display_name))
        return [
            read_file(
                cursor, item.staged, item.format, item.candidate.display_name, is_video=is_video
            )
        ]


def _blocks(con: duckdb.DuckDBPyConnection, item: _ReadFile) -> Iterator[Parsed]:
    """A large file's blocks, read when they are asked for (on the staging thread)."""
    read = read_scrobbles if item.format is Format.LASTFM else read_listens
    with con.cursor() as cursor:
        yield from read(cursor, item.staged, item.candidate.display_name)


def _format_of(
    candidate: Candidate, head: bytes, forced: Format | None, summary: ImportSummary
) -> Format | None:
    if not head.strip() and not candidate.explicit and candidate.base_name.endswith(".jsonl"):
        # JSON lines without a line: a ListenBrainz export's feedback.jsonl or
        # pinned_recording.jsonl when there is none (named alone, an empty file is an error)
        summary.skipped.append({"file": candidate.display_name, "reason": "empty, no records"})
        return None
    try:
        detected = detect_format(candidate.display_name, head)
    except EmptyHistory:
        summary.skipped.append({"file": candidate.display_name, "reason": "empty list, no plays"})
        return None
    except NotHistory:
        # a forced format applies to a file named on the command line, and to the files
        # of a folder or zip that hold data of its shape; the export's read-me is skipped
        if forced is not None and (candidate.explicit or is_data_for(forced, head)):
            return forced
        if candidate.explicit:
            raise ImportInputError(
                candidate.display_name,
                "unknown format: not Spotify extended history, Spotify account data, "
                "a Last.fm scrobble CSV or ListenBrainz listens",
                hint="pass --source to force a format if you know what it is",
            ) from None
        summary.skipped.append({"file": candidate.display_name, "reason": "not listening history"})
        return None
    if forced is not None and _family(detected) != _family(forced):
        raise ImportInputError(
            candidate.display_name,
            f"--source {forced.value} was given but the content is {detected.value}",
            hint="drop --source to let the content decide",
        )
    return detected


def _family(fmt: Format) -> str:
    return "spotify_account_data" if fmt.value.startswith("spotify_account") else fmt.value


def _check_archives(paths: list[Path], with_history: set[Path]) -> None:
    """A zip that held nothing importable is an error: it is probably the wrong download."""
    for path in paths:
        if path not in with_history and is_zip(path):
            raise ImportInputError(
                str(path),
                "the zip archive holds no listening history",
                hint="Spotify's export is my_spotify_data.zip; a package without "
                "StreamingHistory or Streaming_History files has no plays",
            )


def _check_found_history(paths: list[Path], read: list[_ReadFile], summary: ImportSummary) -> None:
    """Folders that held no listening history at all are an error: probably the wrong one."""
    if read or summary.files_already_imported:
        return
    skipped = summary.skipped
    found = ", ".join(Path(item["file"]).name for item in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    raise ImportInputError(
        ", ".join(str(path) for path in paths),
        f"no listening history found ({len(skipped)} files: {found}{more})"
        if skipped
        else "no files found",
        hint="point it at the export as downloaded (my_spotify_data.zip) or its folder of "
        "Streaming_History / StreamingHistory JSON files, or a Last.fm CSV",
    )


def run_rematch(settings: Settings) -> dict[str, Any]:
    """Match every stored play again under the current rules, in one transaction.

    Plays an earlier version stored twice (before a rule existed) are merged into the
    survivor; rows move by ``raw.play_id_overrides``, nothing is deleted. Running it again
    changes nothing.
    """
    tolerances = dedupe.tolerances_from(settings)
    started = datetime.now(UTC)
    run_id = f"rematch-{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with warehouse.connect(
        settings.warehouse_path,
        memory_limit=settings.duckdb_memory_limit,
        file_wait_s=settings.lock_wait_s,
    ) as con:
        stored = {
            source: warehouse.linked_rows(con, source, [(datetime.min.replace(tzinfo=UTC),
                                                         datetime.max.replace(tzinfo=UTC))])
            for source in warehouse.MUSIC_TABLES
        }  # fmt: skip
        result = dedupe.regroup(
            stored,
            {},
            tolerances,
            warehouse.TIME_COLUMN,
            warehouse.track_durations(con),
            everything=True,
        )
        before = pl.concat([frame["play_id"] for frame in stored.values()]).implode()
        summary = {
            "run_id": run_id,
            "rows_matched": sum(frame.height for frame in stored.values()),
            "rows_moved": result.overrides.height,
            "plays_merged": result.merged,
            "plays_split": result.overrides.filter(~pl.col("play_id").is_in(before))[
                "play_id"
            ].n_unique(),
        }
        with warehouse.transaction(con):
            warehouse.store_play_id_overrides(con, result.overrides, datetime.now(UTC))
            warehouse.record_run(con, run_id, "rematch", started, summary)
    return summary


def _music_source(fmt: Format) -> str:
    if fmt is Format.EXTENDED:
        return dedupe.EXTENDED
    if fmt is Format.API:
        return dedupe.API
    if fmt is Format.LASTFM:
        return dedupe.LASTFM
    if fmt is Format.LISTENBRAINZ:
        return dedupe.LISTENBRAINZ
    return dedupe.ACCOUNT


def _record_files(
    con: duckdb.DuckDBPyConnection,
    read: list[_ReadFile],
    landed: list[Path],
    summary: ImportSummary,
    now: datetime,
) -> None:
    records = pl.DataFrame(
        {
            "file_sha256": [item.sha256 for item in read],
            "source": [_family(item.format) for item in read],
            "original_name": [item.candidate.display_name for item in read],
            "landing_path": [str(path) for path in landed],
            "size_bytes": [item.size for item in read],
            "rows_read": [item.rows_read for item in read],
        },
        schema_overrides={"size_bytes": pl.Int64, "rows_read": pl.Int64},
    )
    warehouse.insert_frame(con, "raw.import_files", records, run_id=summary.run_id, imported_at=now)
