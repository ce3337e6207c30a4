"""The staged music rows matched and stored, part after part, in time order.

An import of more rows than a part holds (``Staging.plan_parts``) matches each part
against what the parts before it stored in the import's transaction, as if they had been
imported first: the de-duplication rules give the same plays either way.

A part is matched (Polars, ``dedupe.regroup``) and stored (DuckDB's insert, one thread)
in about equal times. The two overlap: what part k+1's matching reads of the parts before
it lies at most ``EDGE`` before its first day (the stored rows of its window, and the
natural keys within a day), so part k's rows from then on and its moves of stored rows
are stored first, part k+1's stored rows are read, and the rest of part k is inserted on
a thread of its own while part k+1 is matched. Track lengths come from API rows, and a
part with API rows reads stored plays anywhere in the history (``_windows_of_stale_
scrobbles``): when part k or part k+1 holds any, part k is stored whole before part k+1
reads anything, as without the overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import duckdb
import polars as pl

from music_tracker import dedupe, interrupts, warehouse
from music_tracker.importers.staging import Staging
from music_tracker.importers.summary import NOT_A_PLAY, ImportSummary

# How far outside a batch's time span stored rows are matched again with it (dedupe.regroup).
# A play's rows lie within its length plus the pause allowance (15 min) of each other, so
# every play a new row can touch lies well inside; three hours leave room for a one-hour
# track, and keep a poll's window small.
MATCH_WINDOW = timedelta(hours=3)
# How far before a part's first day its matching reads stored rows: the match window
# (``warehouse.linked_rows``, widened by the longest play, at most to here) and a day
# (``warehouse.stored_keys``)
EDGE = max(MATCH_WINDOW, timedelta(days=1))
_TIME = "_time"  # an assigned row's time, which tells the part's edge from the rest


@dataclass
class Assigned:
    """One part matched: per source, the staged rows to store (``_stage_row``,
    ``play_id``, and their time), and the stored rows whose play changes."""

    rows: dict[str, pl.DataFrame]
    overrides: pl.DataFrame
    # the plays this part made (``play_id``, ``source``, ``_time``): a later part that
    # absorbs one of them into another play undoes its count (``_match``)
    made: pl.DataFrame | None = None


@dataclass
class _Gathered:
    """What one part's matching reads: its fresh rows (rule 1 applied), the stored rows of
    its windows, the known track lengths."""

    fresh: dict[str, pl.DataFrame]
    stored: dict[str, pl.DataFrame]
    durations: pl.DataFrame


def assign(
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    tolerances: dedupe.Tolerances,
    summary: ImportSummary,
    *,
    part: int,
) -> Assigned:
    """Apply the de-duplication rules to one part of the staged rows: rule 1 per source,
    then rule 2 over the part's window."""
    return _match(_gather(con, staging, summary, part), tolerances, summary, None)


def store_parts(
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    first: Assigned,
    now: datetime,
    *,
    parts: int,
    tolerances: dedupe.Tolerances,
    summary: ImportSummary,
    progress: Callable[[str], None] | None,
    memory_limit: str,
) -> None:
    """Store part 0 (``first``, matched before) and match and store the parts after it,
    each part's insert beside the next part's matching where it can (module docstring).
    ``memory_limit``: the connection's DuckDB cap in force (``warehouse.capped``'s)."""
    assigned = first
    # the plays the parts made that the next part's matching can reach (a day's, at most)
    made = _reachable([first.made], staging, 1)
    batches = _staged(staging, 1) if parts > 1 else {}
    # one thread for every part's insert: a new thread per part took about 40 MB more at
    # the peak (1.5 million plays), its allocations in arenas of their own
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-insert") as inserter:
        for part in range(1, parts):
            if progress:
                progress(f"de-duplicating and storing part {part + 1} of {parts}")
            rest: dict[str, pl.DataFrame] = {}
            if _reads_only_the_edge(staging, assigned, part):
                edge, rest = _split(assigned, cast(datetime, staging.part_start(part)) - EDGE)
                store(con, staging, edge, now, part=part - 1, memory_limit=memory_limit)
            else:
                store(con, staging, assigned, now, part=part - 1, memory_limit=memory_limit)
            gathered = _gather(con, staging, summary, part, batches)
            insert_rest = (
                (lambda p=part - 1, r=rest: _insert(staging, r, now, p, memory_limit))
                if rest
                else None
            )
            with _beside(con, inserter, insert_rest):
                assigned = _match(gathered, tolerances, summary, made)
                del gathered
                # the next part's staged rows, read while the insert still runs (the
                # matching was the shorter of the two for most parts at 10 million plays)
                batches = _staged(staging, part + 1) if part + 1 < parts else {}
            made = _reachable([made, assigned.made], staging, part + 1)
            del rest
    store(con, staging, assigned, now, part=parts - 1, memory_limit=memory_limit)


def store(
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    assigned: Assigned,
    now: datetime,
    *,
    part: int,
    memory_limit: str,
) -> None:
    """Store one part's matched rows and the stored rows it moved to another play."""
    _insert(staging, assigned.rows, now, part, memory_limit)
    warehouse.store_play_id_overrides(con, assigned.overrides, now)


def _insert(
    staging: Staging, rows: dict[str, pl.DataFrame], now: datetime, part: int, memory_limit: str
) -> None:
    for source, chosen in rows.items():
        staging.store_music(source, chosen.select("_stage_row", "play_id"), now, part=part)
    # the blocks it wrote are on disk and its buffers are free: the next part, or the
    # commit, starts from less
    warehouse.drop_cached_blocks(staging.con, memory_limit)
    warehouse.release_freed_memory()


def _reads_only_the_edge(staging: Staging, assigned: Assigned, part: int) -> bool:
    """Whether ``part``'s matching reads nothing of the part before it but its edge."""
    before = assigned.rows.get(dedupe.API)
    return (before is None or before.is_empty()) and not staging.has_rows(dedupe.API, part)


def _split(assigned: Assigned, cutoff: datetime) -> tuple[Assigned, dict[str, pl.DataFrame]]:
    """The rows at or after ``cutoff`` (and any without a time) with the moves, and the
    rest."""
    edge: dict[str, pl.DataFrame] = {}
    rest: dict[str, pl.DataFrame] = {}
    for source, rows in assigned.rows.items():
        late = pl.col(_TIME).is_null() | (pl.col(_TIME) >= cutoff)
        edge[source] = rows.filter(late)
        earlier = rows.filter(~late)
        if earlier.height:  # a part of a day or two can be all edge: nothing to insert beside
            rest[source] = earlier
    return Assigned(edge, assigned.overrides), rest


@contextmanager
def _beside(
    con: duckdb.DuckDBPyConnection, inserter: ThreadPoolExecutor, work: Callable[[], None] | None
) -> Iterator[None]:
    """Run ``work`` (an insert on ``con``) on the ``inserter`` thread during the block,
    which must not use ``con``; its error is raised after the block. Should the block fail
    or Ctrl+C come while the insert is waited for, the insert is interrupted and waited
    for (a second Ctrl+C holds until it returns) before the error goes on: the transaction
    is rolled back on ``con`` after it, never beside it."""
    if work is None:
        yield
        return
    future = inserter.submit(work)
    try:
        yield
        wait([future])
    except BaseException:
        con.interrupt()
        with interrupts.held():
            wait([future])
        raise
    future.result()


def _staged(staging: Staging, part: int) -> dict[str, pl.DataFrame]:
    """Each source's staged rows of ``part`` (no warehouse read: it can run beside an
    insert)."""
    return {source: staging.match_columns(source, part) for source in staging.music_sources}


def _gather(
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    summary: ImportSummary,
    part: int,
    batches: dict[str, pl.DataFrame] | None = None,
) -> _Gathered:
    """What ``part``'s matching reads; ``batches``: its staged rows, read before
    (``_staged``), taken from the dict as they are used."""
    fresh: dict[str, pl.DataFrame] = {}
    for source in staging.music_sources:
        # each batch kept only as its fresh rows; without ``batches``, one source's at a
        # time (a first import's batch is the whole history). A part's batches read ahead
        # are all its sources' at once: a part's rows at most (``Staging.plan_parts``)
        batch = batches.pop(source) if batches else staging.match_columns(source, part)
        known_keys = staging.stored_keys(source, batch)
        fresh[source], in_batch, already = dedupe.drop_known(batch, known_keys)
        del batch, known_keys
        summary.duplicates_in_input += in_batch
        summary.already_stored += already
    windows: list[tuple[datetime, datetime]] = []
    times = [b[warehouse.TIME_COLUMN[s]] for s, b in fresh.items() if b.height]
    if times:
        all_times = pl.concat(times)
        # a play's rows lie within its length and the match window of each other: a
        # play longer than three hours (sleep sounds, an audiobook-length mix) would have
        # its rows before the window matched as another play (helper-55)
        window = min(MATCH_WINDOW + timedelta(milliseconds=staging.longest_ms), EDGE)
        start = cast(datetime, all_times.min()) - window
        end = cast(datetime, all_times.max()) + window
        windows.append((start, end))
    durations = warehouse.track_durations(con)
    if dedupe.API in fresh:  # this batch's API rows say their tracks' lengths too
        known = durations["track_id"]
        durations = (
            pl.concat([durations, fresh[dedupe.API].select("track_id", "duration_ms")])
            .drop_nulls()
            .unique(subset="track_id", keep="first", maintain_order=True)
        )
        windows += _windows_of_stale_scrobbles(con, durations, known)
    stored: dict[str, pl.DataFrame] = {}
    if windows:
        stored = {
            source: pl.concat(
                [warehouse.linked_rows(con, source, start, end) for start, end in windows]
            ).unique(subset="source_key", keep="first", maintain_order=True)
            for source in warehouse.MUSIC_TABLES
        }
    return _Gathered(fresh, stored, durations)


def _reachable(made: list[pl.DataFrame | None], staging: Staging, part: int) -> pl.DataFrame | None:
    """Of the plays the parts before ``part`` made, those its matching can read stored."""
    frames = [frame for frame in made if frame is not None]
    start = staging.part_start(part) if part < staging.parts else None
    if not frames or start is None:
        return None
    return pl.concat(frames).filter(pl.col(_TIME) >= start - EDGE)


def _match(
    gathered: _Gathered,
    tolerances: dedupe.Tolerances,
    summary: ImportSummary,
    made: pl.DataFrame | None,
) -> Assigned:
    """Rule 2 over the part's window (Polars only: no warehouse read, so that it can run
    beside an insert). ``made``: the plays this import's parts before made within its
    reach."""
    fresh = gathered.fresh
    result = dedupe.regroup(
        gathered.stored, fresh, tolerances, warehouse.TIME_COLUMN, gathered.durations
    )
    summary.linked_to_other_source += result.linked
    summary.written_twice += result.written_twice
    summary.plays_merged += result.merged
    for source, count in result.new_plays.items():
        summary.new_plays += count
        summary.per_source[source] += count
    if made is not None and result.merged_ids.len():
        # a play an earlier part of this import made, now absorbed into another: one play
        # of this import, as in one part, where its rows joined a play of another source
        # (helper-55: 399 new plays and 1 merged for 398 stored)
        undone = made.filter(pl.col("play_id").is_in(result.merged_ids.implode()))
        for source, count in undone.group_by("source").len().iter_rows():
            summary.new_plays -= count
            summary.per_source[source] -= count
        summary.plays_merged -= undone.height
        summary.linked_to_other_source += undone.height
    not_plays = sum(result.not_plays.values())
    if not_plays:
        summary.set_aside[NOT_A_PLAY] += not_plays
    rows = {
        source: chosen.join(
            fresh[source].select(
                pl.col("_stage_row").cast(chosen["_stage_row"].dtype),
                pl.col(warehouse.TIME_COLUMN[source]).alias(_TIME),
            ),
            on="_stage_row",
            how="left",
        )
        for source, chosen in result.assigned.items()
    }
    made = (
        pl.concat(
            [
                result.new_ids.filter(pl.col("source") == source)
                .join(
                    frame.select(pl.col("_stage_row").cast(pl.UInt32), _TIME),
                    on="_stage_row",
                )
                .select("play_id", "source", _TIME)
                for source, frame in rows.items()
            ],
            how="vertical_relaxed",
        )
        if rows
        else None
    )
    return Assigned(rows, result.overrides, made)


def _windows_of_stale_scrobbles(
    con: duckdb.DuckDBPyConnection, durations: pl.DataFrame, known: pl.Series
) -> list[tuple[datetime, datetime]]:
    """Where stored plays hold a scrobble that the track lengths this batch tells first
    show they were heard too briefly to have (``dedupe.regroup`` matches them again).

    Such a play can lie anywhere in the history, far from the batch: a first poll of the
    API tells the lengths of tracks heard for years. Only the plays that now hold a
    scrobble they cannot have are looked at, so a poll reads a few windows at most.
    """
    learned = durations.filter(~pl.col("track_id").is_in(known.implode()))["track_id"]
    if learned.is_empty():
        return []
    held = warehouse.scrobbled_extended_rows(con, learned)
    stale = dedupe.too_brief_for_a_scrobble(held, durations)["played_at"].sort()
    windows: list[tuple[datetime, datetime]] = []
    for at in stale:
        if windows and at - MATCH_WINDOW <= windows[-1][1]:
            windows[-1] = (windows[-1][0], at + MATCH_WINDOW)
        else:
            windows.append((at - MATCH_WINDOW, at + MATCH_WINDOW))
    return windows
