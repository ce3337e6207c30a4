"""What imports read and write in the raw schema: keys already stored, rows to match again,
staged rows inserted, podcast decisions, run records."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import duckdb

from music_tracker.warehouse.arrow import ArrowStream, frame_of
from music_tracker.warehouse.schema import (
    EFFECTIVE_PLAY_ID,
    LENGTH_COLUMNS,
    MATCH_COLUMNS,
    MUSIC_TABLES,
    OVERRIDES_JOIN,
    TIME_COLUMN,
)

if TYPE_CHECKING:
    import polars as pl


def imported_file_hashes(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Content hashes of every file imported so far."""
    return {row[0] for row in con.execute("select file_sha256 from raw.import_files").fetchall()}


# FRAMES_BY_NAME: what an import runs once per part of a large history reads its Polars
# frame by its variable's name (DuckDB's replacement scan), not through con.register: a
# view registered and unregistered inside a transaction keeps its frame alive until the
# transaction ends (measured: 25-40 MB per part of 400,000 rows, 1.6 GB at 10 million plays).
# A table of the same name in the search path would win over the frame: these names
# (import_probe_keys, import_overrides, import_assigned, import_chosen) are no table's.


def stored_keys(con: duckdb.DuckDBPyConnection, source: str, batch: pl.DataFrame) -> pl.Series:
    """Which of the ``batch``'s keys (``source_key``) are already stored for ``source``.

    A natural key includes the time it was read from, so only stored rows within a day of
    the batch's times are compared: a part of a large import is checked against its own
    days, not against every row the parts before it stored.
    """
    import_probe_keys = ArrowStream(batch.select("source_key"))  # noqa: F841 (FRAMES_BY_NAME)
    start, end = key_span(batch[TIME_COLUMN[source]])
    found = con.sql(
        f"select t.source_key from {MUSIC_TABLES[source]} as t"
        f" semi join import_probe_keys as p using (source_key)"
        f" where t.{TIME_COLUMN[source]} between $start and $end",
        params={"start": start, "end": end},
    )
    return frame_of(found)["source_key"]


def key_span(times: pl.Series) -> tuple[datetime, datetime]:
    """Where the stored rows lie that ``stored_keys`` compares with a batch of rows of
    these ``times``: within a day of them, or anywhere if any time is unknown."""
    if times.is_empty() or times.null_count():
        return datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    return (
        cast(datetime, times.min()) - timedelta(days=1),
        cast(datetime, times.max()) + timedelta(days=1),
    )


def longest_stored_ms(con: duckdb.DuckDBPyConnection) -> int:
    """The longest play a stored music row tells (ms played, the track's length, or a
    listen's span from its start to its end), in milliseconds (0: none)."""
    lengths = []
    for source, table in MUSIC_TABLES.items():
        columns = MATCH_COLUMNS[source]
        spans = [f"max({c})" for c in LENGTH_COLUMNS if c in columns]
        if "started_at" in columns and "played_at" in columns:
            spans.append("max(epoch_ms(played_at) - epoch_ms(started_at))")
        lengths += [f"(select {span} from {table})" for span in spans]
    (longest,) = cast(tuple[Any], con.execute(f"select greatest({', '.join(lengths)})").fetchone())
    return max(int(longest or 0), 0)


def stored_rows_by_day(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> list[tuple[datetime, str, int]]:
    """(UTC day, source, rows) of the stored music rows that belong to a play, of the days
    from ``start`` to before ``end``: the rows a large import's parts match again."""
    queries = [
        f"select date_trunc('day', {TIME_COLUMN[source]}) as day, '{source}', count(*)"
        f" from {table} where play_id is not null"
        f" and {TIME_COLUMN[source]} >= $start and {TIME_COLUMN[source]} < $end group by day"
        for source, table in MUSIC_TABLES.items()
    ]
    rows = con.execute(" union all ".join(queries), {"start": start, "end": end}).fetchall()
    return cast(list[tuple[datetime, str, int]], rows)


# How ``linked_rows`` reads many windows. A ``union all`` of a branch a window lets DuckDB
# prune each branch to the row groups of its time range, but a branch scans its row
# group's times: windows close together scan the same row groups again (0.6-0.75 ms a
# window), and a part of scrobbles 31 hours apart onto a million plays (about 400 windows)
# was imported in 10.6 s against 4.9 for one window of its whole span (helper-76). So
# windows that cover a tenth of their span or more, past 16, are read in one scan of the
# span, each row's hour looked up among the windows' hours: 2.4 s. Few or sparse windows
# stay branches, since that scan reads every row of the span: 17 windows over twenty
# years of 10 million plays took 1.3 s scanned, 0.08 s as branches (helper-77). A join on
# the windows, or their ``or``, scans the whole table into a range join (at 10 million
# plays 26-56 s for 3,000 windows); a query per window kept a vector's Arrow buffers per
# result (a first poll's 14,740 results: 2 GB, helper-75).
_BRANCHES = 16
_DENSE = 0.1
_PER_QUERY = 200  # branches of one query
_HOUR_MS = 3_600_000


def linked_rows(
    con: duckdb.DuckDBPyConnection, source: str, windows: Sequence[tuple[datetime, datetime]]
) -> pl.DataFrame:
    """Stored rows of ``source`` that belong to a play, in the columns matching reads.

    ``play_id`` is the row's play now (after any override), with its ``source_key``. Only
    rows whose time lies in one of the ``windows`` ([start, end] each, in time order, not
    overlapping) are read, so a daily batch of 100 plays does not load 20 years of history.
    """
    import polars as pl

    time_column = TIME_COLUMN[source]
    columns = ", ".join(f"t.{column}" for column in MATCH_COLUMNS[source])
    read = f"select {EFFECTIVE_PLAY_ID} as play_id, t.source_key, {columns}"
    span = windows[-1][1] - windows[0][0] if windows else timedelta(0)
    covered = sum((end - start for start, end in windows), timedelta(0))
    if len(windows) <= _BRANCHES or covered < span * _DENSE:
        frames = []
        for first in range(0, max(len(windows), 1), _PER_QUERY):
            batch = windows[first : first + _PER_QUERY]
            params: dict[str, object] = {"source": source}
            for n, (start, end) in enumerate(batch):
                params |= {f"start_{n}": start, f"end_{n}": end}
            branches = (
                " union all ".join(
                    f"select * from {MUSIC_TABLES[source]}"
                    f" where play_id is not null and {time_column} between $start_{n} and $end_{n}"
                    for n in range(len(batch))
                )
                or f"select * from {MUSIC_TABLES[source]} where false"
            )
            query = f"{read} from ({branches}) as t {OVERRIDES_JOIN}"
            frames.append(frame_of(con.sql(query, params=params)))
        return frames[0] if len(frames) == 1 else pl.concat(frames)
    # hours counted from the span's start: never below zero, where DuckDB's ``//`` and
    # Polars' differ (helper-77)
    origin = int(windows[0][0].timestamp() * 1000)
    starts = pl.Series([start for start, _ in windows], dtype=pl.Datetime("us", "UTC"))
    ends = pl.Series([end for _, end in windows], dtype=pl.Datetime("us", "UTC"))
    linked_hours = ArrowStream(  # noqa: F841 (read by name: FRAMES_BY_NAME)
        pl.select(
            hour=pl.int_ranges(
                (starts.dt.epoch("ms") - origin) // _HOUR_MS,
                (ends.dt.epoch("ms") - origin) // _HOUR_MS + 1,
            )
        )
        .explode("hour")
        .unique()
    )
    rows = frame_of(
        con.sql(
            f"{read}, t.{time_column} as _at from {MUSIC_TABLES[source]} as t {OVERRIDES_JOIN}"
            f" where t.play_id is not null and t.{time_column} between $first and $last"
            f" and (epoch_ms(t.{time_column}) - $origin) // {_HOUR_MS}"
            " in (select hour from linked_hours)",
            params={
                "source": source,
                "first": windows[0][0],
                "last": windows[-1][1],
                "origin": origin,
            },
        )
    )
    return within_windows(rows, "_at", windows).drop("_at")


def within_windows(
    rows: pl.DataFrame,
    time: str,
    windows: Sequence[tuple[datetime, datetime]],
    *,
    beyond: timedelta = timedelta(0),
) -> pl.DataFrame:
    """The ``rows`` whose ``time`` lies in one of ``windows`` (in time order, not
    overlapping), or within ``beyond`` of one."""
    import polars as pl

    if not windows or rows.is_empty():
        return rows.clear()
    dtype = rows.schema[time]
    spans = pl.DataFrame(
        {"_start": [s - beyond for s, _ in windows], "_end": [e + beyond for _, e in windows]},
        schema={"_start": dtype, "_end": dtype},
    )
    return (
        rows.with_row_index("_at_row")
        .filter(pl.col(time).is_not_null())
        .sort(time)
        .join_asof(spans, left_on=time, right_on="_start", strategy="backward")
        .filter(pl.col(time) <= pl.col("_end"))
        .sort("_at_row")
        .drop("_at_row", "_start", "_end")
    )


def sources_with_plays(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The music sources with a stored row that belongs to a play."""
    return {
        source
        for source, table in MUSIC_TABLES.items()
        if con.execute(f"select 1 from {table} where play_id is not null limit 1").fetchone()
    }


def scrobbled_extended_rows(con: duckdb.DuckDBPyConnection, track_ids: pl.Series) -> pl.DataFrame:
    """(played_at, ms_played, track_id, play_id) of the stored extended-history rows of
    these tracks whose play holds a Last.fm scrobble, at any time."""
    con.register("_scrobbled_tracks", ArrowStream(track_ids.to_frame("track_id")))
    try:
        return frame_of(
            con.sql(
                """
                with scrobbled as (
                    select coalesce(o.play_id, t.play_id) as play_id
                    from raw.lastfm_scrobbles as t
                    left join raw.play_id_overrides as o
                        on o.source = 'lastfm' and o.source_key = t.source_key
                    where t.play_id is not null
                )
                select t.played_at, t.ms_played, t.track_id,
                       coalesce(o.play_id, t.play_id) as play_id
                from raw.spotify_extended_history as t
                left join raw.play_id_overrides as o
                    on o.source = 'spotify_extended_history' and o.source_key = t.source_key
                where t.play_id is not null
                  and t.track_id in (select track_id from _scrobbled_tracks)
                  and coalesce(o.play_id, t.play_id) in (select play_id from scrobbled)
                """
            )
        )
    finally:
        con.unregister("_scrobbled_tracks")


def track_durations(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """(track_id, duration_ms) of every track whose length is known: fetched metadata
    first, else what the recently-played endpoint said."""
    return frame_of(
        con.sql(
            """
            select track_id, arg_max(duration_ms, priority) as duration_ms from (
                select track_id, duration_ms, 2 as priority from raw.spotify_tracks
                union all
                select track_id, duration_ms, 1 as priority from raw.spotify_api_plays
            )
            where duration_ms is not null
            group by track_id
            """
        )
    )


def store_play_id_overrides(
    con: duckdb.DuckDBPyConnection, overrides: pl.DataFrame, now: datetime
) -> None:
    """Move stored rows to another play (``source``, ``source_key``, ``play_id``,
    ``previous_play_id``), replacing any earlier move of the same row in
    ``raw.play_id_overrides``; ``raw.play_id_moves`` keeps every move."""
    if overrides.is_empty():
        return
    import_overrides = ArrowStream(overrides)  # noqa: F841 (read by name: FRAMES_BY_NAME)
    con.execute(
        "delete from raw.play_id_overrides as o using import_overrides as n"
        " where o.source = n.source and o.source_key = n.source_key"
    )
    for table in ("raw.play_id_overrides", "raw.play_id_moves"):
        con.execute(
            f"insert into {table} by name"
            " select source, source_key, play_id, previous_play_id, $now as changed_at"
            " from import_overrides",
            {"now": now},
        )


def insert_row(con: duckdb.DuckDBPyConnection, table: str, **values: Any) -> None:
    """Append one row to ``table`` (a ``raw`` table), naming its columns."""
    if not table.startswith("raw.") or not all(name.isidentifier() for name in values):
        raise ValueError(f"not a raw table and columns: {table} {sorted(values)}")
    columns = ", ".join(values)
    placeholders = ", ".join(f"${name}" for name in values)
    con.execute(f"insert into {table} ({columns}) values ({placeholders})", values)


def record_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    command: str,
    started: datetime,
    summary: dict[str, Any],
) -> None:
    """The record of an import-like run (import, rematch), in its own transaction."""
    import json

    insert_row(
        con,
        "raw.import_runs",
        run_id=run_id,
        command=command,
        started_at=started,
        finished_at=datetime.now(UTC),
        summary=json.dumps(summary),
    )


def insert_frame(
    con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame, **constants: Any
) -> None:
    """Append ``frame`` (plus constant columns) to ``table``, matching columns by name."""
    import polars as pl

    if frame.is_empty():
        return
    if constants:
        frame = frame.with_columns(**{k: pl.lit(v) for k, v in constants.items()})
    con.register("_insert_frame", ArrowStream(frame))
    try:
        con.execute(f"insert into {table} by name select * from _insert_frame")
    finally:
        con.unregister("_insert_frame")


def insert_staged_music(
    con: duckdb.DuckDBPyConnection,
    source: str,
    files: list[str],
    assigned: pl.DataFrame,
    now: datetime,
) -> None:
    """Insert the staged rows of ``source`` (the run's Parquet ``files``, listed: DuckDB
    reads a listed path as it is, ``[`` and ``*`` included) that ``assigned``
    (``_stage_row``, ``play_id``) chose. DuckDB streams the files within its memory cap."""
    import_assigned = ArrowStream(assigned)  # noqa: F841 (read by name: FRAMES_BY_NAME)
    con.execute(
        f"""
        insert into {MUSIC_TABLES[source]} by name
        select staged.* exclude (_stage_row), assigned.play_id, $now as imported_at
        from read_parquet($files) as staged
        join import_assigned as assigned using (_stage_row)
        """,
        {"now": now, "files": files},
    )


def insert_staged_chosen(
    con: duckdb.DuckDBPyConnection,
    table: str,
    files: list[str],
    chosen: pl.DataFrame,
    now: datetime,
) -> None:
    """Insert the staged rows (the listed Parquet ``files``) whose ``_stage_row`` is in
    ``chosen``: the rows are read from the files as they are inserted, never held whole."""
    import_chosen = ArrowStream(chosen.select("_stage_row"))  # noqa: F841 (FRAMES_BY_NAME)
    con.execute(
        f"insert into {table} by name"
        " select staged.* exclude (_stage_row), $now as imported_at"
        " from read_parquet($files, union_by_name = true) as staged"
        " semi join import_chosen using (_stage_row)",
        {"now": now, "files": files},
    )


def insert_staged(
    con: duckdb.DuckDBPyConnection, table: str, files: list[str], now: datetime
) -> None:
    """Insert every staged row (the listed Parquet ``files``) into ``table``."""
    con.execute(
        f"insert into {table} by name"
        " select * exclude (_stage_row), $now as imported_at from read_parquet($files)",
        {"now": now, "files": files},
    )


def stored_other_keys(con: duckdb.DuckDBPyConnection, probe: pl.DataFrame) -> pl.DataFrame:
    """Which (source, content_type, source_key) of ``probe`` raw.other_plays holds."""
    con.register("_other_probe", ArrowStream(probe))
    try:
        return frame_of(
            con.sql(
                "select source, content_type, source_key from raw.other_plays"
                " semi join _other_probe using (source, content_type, source_key)"
            )
        )
    finally:
        con.unregister("_other_probe")


def replace_podcast_decisions(
    con: duckdb.DuckDBPyConnection, decided: pl.DataFrame, now: datetime
) -> None:
    """Each show's latest decision (``show_name``, ``reason``, ``plays``)."""
    con.register("_decided", ArrowStream(decided))
    try:
        con.execute(
            "delete from raw.podcast_decisions where show_name in (select show_name from _decided)"
        )
        con.execute(
            "insert into raw.podcast_decisions by name"
            " select show_name, reason, plays, $now as decided_at from _decided",
            {"now": now},
        )
    finally:
        con.unregister("_decided")


def known_show_names(con: duckdb.DuckDBPyConnection, old_account_files: list[str]) -> pl.Series:
    """Podcast shows named by podcast data: not the episodes moved out of old account-data
    files (``old_account_files``, their hashes), which a decision put there."""
    return frame_of(
        con.sql(
            "select distinct show_name from raw.other_plays where content_type = 'podcast'"
            " and not list_contains($files, file_sha256)",
            params={"files": old_account_files},
        )
    )["show_name"]


def earlier_podcast_decisions(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """The shows decided at earlier imports (``show_name``, ``reason``)."""
    return frame_of(con.sql("select show_name, reason from raw.podcast_decisions"))


def old_account_files(con: duckdb.DuckDBPyConnection, name: re.Pattern[str]) -> list[str]:
    """Hashes of the stored account-data files whose name is ``name`` (old format)."""
    return [
        sha
        for sha, original in con.execute(
            "select file_sha256, original_name from raw.import_files"
            " where source = 'spotify_account_data'"
        ).fetchall()
        # "export.zip:MyData/StreamingHistory0.json", or a path
        if name.match(re.split(r"[/\\:]", original)[-1])
    ]


def stored_old_account_rows(con: duckdb.DuckDBPyConnection, files: list[str]) -> pl.DataFrame:
    """The stored rows of old account-data ``files``: music, and episodes moved out."""
    return frame_of(
        con.sql(
            "select artist_name, track_name, ms_played, played_at"
            " from raw.spotify_account_data where list_contains($files, file_sha256)"
            " union all select show_name, item_name, ms_played, played_at"
            " from raw.other_plays where source = 'spotify_account_data'"
            " and content_type = 'podcast' and list_contains($files, file_sha256)",
            params={"files": files},
        )
    )
