"""The staged music rows matched and stored, part after part, in time order.

An import of more rows than a part holds (``Staging.plan_parts``) matches each part
against what the parts before it stored in the import's transaction, as if they had been
imported first: the de-duplication rules give the same plays either way.

A part is matched (Polars, ``dedupe.regroup``) and stored (DuckDB's insert, one thread)
in about equal times, so the two overlap: the parts' inserts run in order on a thread of
their own (``_Inserts``) while the next parts are matched. That matching cannot read the
import's connection, which is inserting. It reads the warehouse as it was before the
import through a second connection (``warehouse.committed_view``), and what this import's
parts stored from memory (``_Beside``): their rows within its reach (``EDGE`` before its
first day: the stored rows of its windows, and the natural keys within a day of its
rows) and the stored rows they moved to another play.

Every part knows the track lengths the staged API rows tell (``Staging.api_lengths``), as
an import in one part does. The stored plays those lengths first show were heard too
briefly for the scrobble they hold can lie anywhere in the history (``_stale_plays``):
the first part, matched before the inserts start, matches them again, those near its rows
with them and the others a few at a time (``_revisit``).
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
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
_TIME = "_time"  # an assigned row's time
Window = tuple[datetime, datetime]  # stored rows read from start to end (``_windows``)
# How many parts' inserts wait or run at once: the matching goes on while one part is
# inserted and the next waits, so that a part matched quickly after a slow insert does not
# hold the matching up. A part's choices (its rows' numbers and plays) are a few MB.
_QUEUED = 2


@dataclass
class Assigned:
    """One part matched: per source, the staged rows to store (``_stage_row``,
    ``play_id``, and their time), and the stored rows whose play changes."""

    rows: dict[str, pl.DataFrame]
    overrides: pl.DataFrame
    # the plays this part made (``play_id``, ``source``, ``_time``): a later part that
    # absorbs one of them into another play undoes its count (``_match``)
    made: pl.DataFrame | None = None
    # its rows within the next part's reach, as ``warehouse.linked_rows`` reads them
    # (``play_id``, ``source_key``, the matching columns): what ``_Beside`` holds of it
    reached: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class _Gathered:
    """What one part's matching reads: its fresh rows (rule 1 applied), the stored rows of
    its windows, the known track lengths."""

    fresh: dict[str, pl.DataFrame]
    stored: dict[str, pl.DataFrame]
    durations: pl.DataFrame
    # stored plays far from the part's rows that the lengths its API rows tell show held
    # a scrobble heard too briefly (``play_id``, ``played_at``): matched again in their
    # own windows (``_revisit``)
    stale: pl.DataFrame | None = None


class _Stored:
    """What a part's matching reads of the stored rows, through the import's connection:
    every row stored so far, this import's included."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        # stored rows moved to another play and not stored yet (``moved``)
        self.moves = pl.DataFrame(
            schema={"source": pl.String, "source_key": pl.String, "play_id": pl.String}
        )
        # the sources with stored plays, as ``con`` sees them before the import's inserts
        self._filled: set[str] | None = None
        self._durations: pl.DataFrame | None = None

    def moved(self, overrides: pl.DataFrame) -> None:
        """Read these stored rows (``source``, ``source_key``) in their new play
        (``play_id``) from here on; a row moved again keeps its last move."""
        if overrides.height:
            moves = pl.concat([self.moves, _compact(overrides.select(self.moves.columns))])
            self.moves = moves.unique(["source", "source_key"], keep="last", maintain_order=True)

    def keys(self, source: str, batch: pl.DataFrame) -> pl.Series:
        return warehouse.stored_keys(self.con, source, batch)

    def linked_rows(self, source: str, windows: list[Window]) -> pl.DataFrame:
        rows = self._linked_rows(source, windows)
        moves = self.moves.filter(pl.col("source") == source)
        if moves.height and rows.height:
            rows = (
                rows.join(
                    moves.select("source_key", pl.col("play_id").alias("_moved")),
                    on="source_key",
                    how="left",
                    maintain_order="left",
                )
                .with_columns(play_id=pl.coalesce("_moved", "play_id"))
                .drop("_moved")
            )
        return rows

    def _linked_rows(self, source: str, windows: list[Window]) -> pl.DataFrame:
        # a source with no stored play is not queried window by window: planning a query
        # of a few hundred windows costs as much for an empty table (helper-76)
        if self._filled is None:
            self._filled = warehouse.sources_with_plays(self.con)
        return warehouse.linked_rows(self.con, source, windows if source in self._filled else [])

    def durations(self) -> pl.DataFrame:
        # read once: the lengths stored before the import do not change during it (the
        # parts' own come from ``Staging.api_lengths``)
        if self._durations is None:
            self._durations = self._track_durations()
        return self._durations

    def _track_durations(self) -> pl.DataFrame:
        return warehouse.track_durations(self.con)

    def scrobbled_extended_rows(self, track_ids: pl.Series) -> pl.DataFrame:
        return warehouse.scrobbled_extended_rows(self.con, track_ids)


class _Beside(_Stored):
    """The same, read beside the inserts: the warehouse as it was before the import
    (``view``, ``warehouse.committed_view``) and what the parts before stored, held here
    (``add``). ``lock`` is held while the view reads: an insert lowers DuckDB's cap after
    it (``warehouse.drop_cached_blocks``), to what DuckDB then holds, not at once with it."""

    def __init__(self, view: duckdb.DuckDBPyConnection, lock: threading.Lock) -> None:
        super().__init__(view)
        self.lock = lock
        self.rows: dict[str, pl.DataFrame] = {}

    def add(self, assigned: Assigned, reach: datetime) -> None:
        """A part is stored (or waits to be): keep its rows from ``reach`` on (the next
        part's) and its moves."""
        for source, rows in assigned.reached.items():
            if source in self.rows:
                rows = pl.concat([self.rows[source], rows], how="vertical_relaxed")
            self.rows[source] = rows
        for source, rows in self.rows.items():
            time = pl.col(warehouse.TIME_COLUMN[source])
            self.rows[source] = rows.filter(time.is_null() | (time >= reach))
        self.moved(assigned.overrides)

    def keys(self, source: str, batch: pl.DataFrame) -> pl.Series:
        with self.lock:
            found = super().keys(source, batch)
        held = self.rows.get(source)
        if held is None or held.is_empty():
            return found
        # one key can lie in two parts: a listen's start (its part's time) is read from
        # more than its key holds (helper-74: two copies of a listen, one started its
        # length before the other, across midnight were stored twice)
        start, end = warehouse.key_span(batch[warehouse.TIME_COLUMN[source]])
        held = held.filter(
            pl.col(warehouse.TIME_COLUMN[source]).is_between(start, end)
            & pl.col("source_key").is_in(batch["source_key"].implode())
        )
        return pl.concat([found, held["source_key"]])

    def _linked_rows(self, source: str, windows: list[Window]) -> pl.DataFrame:
        with self.lock:
            rows = super()._linked_rows(source, windows)
        held = self.rows.get(source)
        if held is not None and held.height:
            time = warehouse.TIME_COLUMN[source]
            held = warehouse.within_windows(
                held.filter(pl.col("play_id").is_not_null()), time, windows
            )
            rows = pl.concat([rows, held.select(rows.columns).cast(rows.schema)])
        return rows

    def _track_durations(self) -> pl.DataFrame:
        with self.lock:
            return super()._track_durations()

    def scrobbled_extended_rows(self, track_ids: pl.Series) -> pl.DataFrame:
        raise AssertionError("part 0 reads the stored plays of the lengths learned (_gather)")


class _Inserts:
    """The parts' inserts (``store``), in order, on a thread of their own, at most
    ``_QUEUED`` waiting or running."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        staging: Staging,
        now: datetime,
        memory_limit: str,
        thread: ThreadPoolExecutor,
    ) -> None:
        self.con, self.staging, self.now, self.memory_limit = con, staging, now, memory_limit
        self.thread = thread
        self.lock = threading.Lock()  # see ``_Beside``
        self.queued: deque[Future[None]] = deque()

    def put(self, assigned: Assigned, part: int) -> None:
        """Insert ``part`` after those before it (its error is raised by a later call)."""
        while len(self.queued) >= _QUEUED:
            self._wait_first()
        store_part = functools.partial(
            store, self.con, self.staging, assigned, self.now, part=part,
            memory_limit=self.memory_limit, cap_lock=self.lock,
        )  # fmt: skip
        self.queued.append(self.thread.submit(store_part))

    def drain(self) -> None:
        """Wait for every insert; the first that failed raises its error."""
        while self.queued:
            self._wait_first()

    def _wait_first(self) -> None:
        # queued until it is done: Ctrl+C during the wait leaves it to ``stop`` (helper-74:
        # taken off first, it was not waited for, and a second Ctrl+C rolled back the
        # transaction beside it, whose moves of stored rows were then committed)
        self.queued[0].result()
        self.queued.popleft()

    def stop(self) -> None:
        """Interrupt the insert running and drop those waiting; return when none runs (a
        second Ctrl+C holds until then): the transaction is rolled back after it, never
        beside it."""
        for future in self.queued:
            future.cancel()
        self.con.interrupt()
        with interrupts.held():
            wait(self.queued)


@contextmanager
def _inserting(
    con: duckdb.DuckDBPyConnection, staging: Staging, now: datetime, memory_limit: str
) -> Iterator[_Inserts]:
    """``_Inserts`` for the block, every insert done after it. Should the block or an
    insert fail, or Ctrl+C come, the inserts are stopped before the error goes on."""
    # one thread for every part's insert: a new thread per part took about 40 MB more at
    # the peak (1.5 million plays), its allocations in arenas of their own
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-insert") as thread:
        inserts = _Inserts(con, staging, now, memory_limit, thread)
        try:
            yield inserts
            inserts.drain()
        except BaseException:
            inserts.stop()
            raise


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
    reads = _Stored(con)
    gathered = _gather(reads, staging, summary, part)
    assigned = _match(gathered, tolerances, summary, None, _reach(staging, part + 1))
    if gathered.stale is not None and gathered.stale.height:
        revisited = _revisit(reads, gathered.stale, gathered.durations, tolerances, summary)
        assigned.overrides = _last_moves([revisited, assigned.overrides])
    return assigned


def stored_before(con: duckdb.DuckDBPyConnection, staging: Staging, summary: ImportSummary) -> bool:
    """Whether every staged music row of the parts after the first is stored already
    (rule 1), counted in ``summary`` if so. A poll whose days weigh more than a part with
    their stored rows (``Staging.plan_parts``) is planned in parts: with nothing new in
    the first, it has nothing new if so (helper-75: such a poll was landed and recorded
    every time)."""
    in_input = stored = 0
    for part in range(1, staging.parts):
        for source in staging.music_sources:
            batch = staging.match_columns(source, part)
            fresh, in_batch, already = dedupe.drop_known(
                batch, warehouse.stored_keys(con, source, batch)
            )
            if fresh.height:
                return False
            in_input, stored = in_input + in_batch, stored + already
    summary.duplicates_in_input += in_input
    summary.already_stored += stored
    return True


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
    the inserts beside the matching (module docstring). ``memory_limit``: the
    connection's DuckDB cap in force (``warehouse.capped``'s)."""
    if parts == 1:
        store(con, staging, first, now, part=0, memory_limit=memory_limit)
        return
    assigned = first
    # the plays the parts made that the next part's matching can reach (a day's, at most)
    made = _reachable([first.made], staging, 1)
    batches = _staged(staging, 1)
    with (
        _inserting(con, staging, now, memory_limit) as inserts,
        warehouse.committed_view(con) as view,
    ):
        beside = _Beside(view, inserts.lock)
        for part in range(1, parts):
            if progress:
                progress(f"de-duplicating and storing part {part + 1} of {parts}")
            beside.add(assigned, cast(datetime, _reach(staging, part)))
            inserts.put(assigned, part - 1)
            gathered = _gather(beside, staging, summary, part, batches)
            assigned = _match(gathered, tolerances, summary, made, _reach(staging, part + 1))
            del gathered
            # the next part's staged rows, read while the inserts run
            batches = _staged(staging, part + 1) if part + 1 < parts else {}
            made = _reachable([made, assigned.made], staging, part + 1)
        inserts.put(assigned, parts - 1)


def store(
    con: duckdb.DuckDBPyConnection,
    staging: Staging,
    assigned: Assigned,
    now: datetime,
    *,
    part: int,
    memory_limit: str,
    cap_lock: threading.Lock | None = None,
) -> None:
    """Store one part's matched rows and the stored rows it moved to another play."""
    _insert(staging, assigned.rows, now, part, memory_limit, cap_lock)
    warehouse.store_play_id_overrides(con, assigned.overrides, now)


def _insert(
    staging: Staging,
    rows: dict[str, pl.DataFrame],
    now: datetime,
    part: int,
    memory_limit: str,
    cap_lock: threading.Lock | None = None,
) -> None:
    for source, chosen in rows.items():
        staging.store_music(source, chosen.select("_stage_row", "play_id"), now, part=part)
    # the blocks it wrote are on disk and its buffers are free: the next part, or the
    # commit, starts from less
    with cap_lock or nullcontext():
        warehouse.drop_cached_blocks(staging.con, memory_limit)
    warehouse.release_freed_memory()


def _reach(staging: Staging, part: int) -> datetime | None:
    """The earliest time ``part``'s matching reads stored rows of (None: no such part)."""
    start = staging.part_start(part) if part < staging.parts else None
    return None if start is None else start - EDGE


def _staged(staging: Staging, part: int) -> dict[str, pl.DataFrame]:
    """Each source's staged rows of ``part`` (no warehouse read: it can run beside an
    insert)."""
    return {source: staging.match_columns(source, part) for source in staging.music_sources}


def _gather(
    reads: _Stored,
    staging: Staging,
    summary: ImportSummary,
    part: int,
    batches: dict[str, pl.DataFrame] | None = None,
) -> _Gathered:
    """What ``part``'s matching reads (the stored rows through ``reads``); ``batches``:
    its staged rows, read before (``_staged``), taken from the dict as they are used."""
    fresh: dict[str, pl.DataFrame] = {}
    for source in staging.music_sources:
        # each batch kept only as its fresh rows; without ``batches``, one source's at a
        # time (a first import's batch is the whole history). A part's batches read ahead
        # are all its sources' at once: a part's rows at most (``Staging.plan_parts``)
        batch = batches.pop(source) if batches else staging.match_columns(source, part)
        known_keys = reads.keys(source, batch)
        fresh[source], in_batch, already = dedupe.drop_known(batch, known_keys)
        del batch, known_keys
        summary.duplicates_in_input += in_batch
        summary.already_stored += already
    windows: list[Window] = []
    times = [b[warehouse.TIME_COLUMN[s]] for s, b in fresh.items() if b.height]
    if times:
        # a play's rows lie within its length and the match window of each other: a
        # play longer than three hours (sleep sounds, an audiobook-length mix) would have
        # its rows before the window matched as another play (helper-55)
        width = min(MATCH_WINDOW + timedelta(milliseconds=staging.longest_ms), EDGE)
        windows = _windows(pl.concat(times), width)
    durations = reads.durations()
    far = None
    told = staging.api_lengths()
    if told is not None:  # the staged API rows say their tracks' lengths too
        known = durations["track_id"]
        durations = pl.concat([durations, told.cast(durations.schema)]).unique(
            subset="track_id", keep="first", maintain_order=True
        )
        if part == 0:  # every part knows them: the stored plays they show are read once
            stale = _stale_plays(reads, durations, known)
            # those near the part's rows are matched with them, the others on their own
            near = warehouse.within_windows(stale, "played_at", windows, beyond=_APART)
            windows += _windows(near["played_at"], MATCH_WINDOW, apart=2 * MATCH_WINDOW)
            far = stale.join(near, on="play_id", how="anti")
    stored = _stored_rows(reads, _merged(windows)) if windows else {}
    return _Gathered(fresh, stored, durations, far)


def _stored_rows(reads: _Stored, windows: list[Window]) -> dict[str, pl.DataFrame]:
    """Each source's stored rows of the ``windows`` (in time order, not overlapping)."""
    return {
        source: reads.linked_rows(source, windows).unique(
            subset="source_key", keep="first", maintain_order=True
        )
        for source in warehouse.MUSIC_TABLES
    }


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
    reach: datetime | None,
) -> Assigned:
    """Rule 2 over the part's window (Polars only: no warehouse read). ``made``: the plays
    this import's parts before made within its reach; ``reach``: the next part's
    (``_reach``)."""
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
    return Assigned(
        rows,
        result.overrides,
        made,
        _reached(fresh, result.assigned, reach),
    )


def _reached(
    fresh: dict[str, pl.DataFrame], chosen: dict[str, pl.DataFrame], reach: datetime | None
) -> dict[str, pl.DataFrame]:
    """The rows to store from ``reach`` on, as ``warehouse.linked_rows`` reads them."""
    reached: dict[str, pl.DataFrame] = {}
    for source, plays in chosen.items() if reach is not None else ():
        time = pl.col(warehouse.TIME_COLUMN[source])
        near = fresh[source].filter(time.is_null() | (time >= reach))
        if near.height:
            reached[source] = near.join(
                plays.select(pl.col("_stage_row").cast(near["_stage_row"].dtype), "play_id"),
                on="_stage_row",
            ).select("play_id", "source_key", *warehouse.MATCH_COLUMNS[source])
    return reached


def _stale_plays(reads: _Stored, durations: pl.DataFrame, known: pl.Series) -> pl.DataFrame:
    """The stored plays holding a scrobble that the track lengths this import tells first
    show they were heard too briefly to have (``play_id``, ``played_at``, the time of
    their extended-history row): ``dedupe.regroup`` matches them again.

    Such a play can lie anywhere in the history, far from the import's rows: a first poll
    of the API tells the lengths of tracks heard for years. Only the plays that now hold a
    scrobble they cannot have are looked at.
    """
    learned = durations.filter(~pl.col("track_id").is_in(known.implode()))["track_id"]
    if learned.is_empty():
        return pl.DataFrame(schema={"play_id": pl.String, "played_at": pl.Datetime("us", "UTC")})
    held = reads.scrobbled_extended_rows(learned)
    stale = dedupe.too_brief_for_a_scrobble(held, durations)
    return (
        stale.select("play_id", "played_at")
        .sort("played_at", "play_id")
        .unique("play_id", keep="first", maintain_order=True)
    )


# How long the stored rows read for one match of stale plays far from the import's rows
# are (``_revisit``), at most: at the densest listening measured (the 10M benchmark, about
# 57 plays an hour in two sources) 600 hours are about 70,000 rows. A first poll's 10,300
# stale plays in one match read 495,000 rows of 350,000 plays and peaked at 640 MiB; 4 GB
# before they were read in one query per source (helper-75).
_REVISIT_SPAN = timedelta(hours=600)


def _revisit(
    reads: _Stored,
    stale: pl.DataFrame,
    durations: pl.DataFrame,
    tolerances: dedupe.Tolerances,
    summary: ImportSummary,
) -> pl.DataFrame:
    """Match the ``stale`` plays (``_stale_plays``) again, a few at a time in time order,
    each with the stored rows within ``MATCH_WINDOW`` of it, and return the stored rows to
    move (``dedupe.Regrouped.overrides``). A match reads the moves of those before it; a
    row moved twice keeps the play it had before the first."""
    moved: list[pl.DataFrame] = []
    for plays, windows in _revisits(stale):
        stored = _stored_rows(reads, windows)
        result = dedupe.regroup(
            stored, {}, tolerances, warehouse.TIME_COLUMN, durations, revisit=plays
        )
        del stored
        summary.plays_merged += result.merged
        reads.moved(result.overrides)
        moved.append(_compact(result.overrides))
    return _last_moves(moved)


def _revisits(stale: pl.DataFrame) -> Iterator[tuple[pl.Series, list[Window]]]:
    """The ``stale`` plays (in time order) in groups whose windows (``MATCH_WINDOW``
    around each, joined where less than a day apart: fewer branches of the query, the
    rows of a day at most between them) span ``_REVISIT_SPAN`` at most."""
    ids: list[str] = []
    windows: list[Window] = []
    span = timedelta(0)
    for play_id, at in stale.iter_rows():
        start, end = at - MATCH_WINDOW, at + MATCH_WINDOW
        joins = bool(windows) and start <= windows[-1][1] + _APART
        added = end - windows[-1][1] if joins else end - start
        if ids and span + added > _REVISIT_SPAN:
            yield pl.Series("play_id", ids, pl.String), windows
            ids, windows, span, joins, added = [], [], timedelta(0), False, end - start
        ids.append(play_id)
        windows[-1:] = [(windows[-1][0], end)] if joins else [*windows[-1:], (start, end)]
        span += added
    if ids:
        yield pl.Series("play_id", ids, pl.String), windows


def _compact(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with strings of its own: a Polars string filtered from a frame is a view
    into that frame's buffers, and the few moves kept of each match kept its rows' whole
    buffers (a first poll's revisits grew by 2.4 MB a match: 480 MiB at the end)."""
    strings = [name for name, dtype in frame.schema.items() if dtype == pl.String]
    return frame.with_columns(pl.concat_str(pl.col(name), pl.lit("")) for name in strings)


def _last_moves(overrides: list[pl.DataFrame]) -> pl.DataFrame:
    """Moves of stored rows made one after the other as one: each row's last play, and
    the play it had before the first (a row moved back to it is not moved)."""
    every = pl.concat(overrides)
    return (
        every.group_by("source", "source_key", maintain_order=True)
        .agg(pl.col("play_id").last(), pl.col("previous_play_id").first())
        .filter(pl.col("play_id") != pl.col("previous_play_id"))
        .select(every.columns)
    )


# Where a part's rows are split into windows of their own (``_windows``): farther apart
# than a day beyond both windows. Rows less than a day apart lie in days that hold rows
# (``Staging.plan_parts`` weighs those days' stored rows).
_APART = timedelta(days=1)


def _windows(times: pl.Series, width: timedelta, *, apart: timedelta | None = None) -> list[Window]:
    """The spans within ``width`` of ``times``, split where they are more than ``apart``
    (``2 * width + _APART``) apart: rows years apart read the stored rows near each, not
    every row between them (helper-75: two scrobbles, of 2006 and 2026, onto a million
    plays read them all, 1 GB). Rows nearer each other stay in one span: a window is a
    branch of the query (``warehouse.linked_rows``), and one per evening made the first
    import of a million plays take twice as long (13.4 s against 7.0)."""
    apart = 2 * width + _APART if apart is None else apart
    spans = (
        times.drop_nulls()
        .sort()
        .to_frame("at")
        .with_columns(_span=(pl.col("at").diff() > apart).fill_null(False).cum_sum())
        .group_by("_span", maintain_order=True)
        .agg(start=pl.col("at").first() - width, end=pl.col("at").last() + width)
    )
    return list(spans.select("start", "end").iter_rows())


def _merged(windows: list[Window]) -> list[Window]:
    """``windows`` in time order, those that overlap made one."""
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged
