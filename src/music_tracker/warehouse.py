"""The only code that writes ``warehouse.duckdb``: schema, transactions, inserts, status.

DuckDB allows one read-write process per file; everything that writes goes through
:func:`connect`, and a whole import is one transaction (:func:`transaction`), so a failed
run leaves the warehouse exactly as it was.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb

from music_tracker import interrupts
from music_tracker.connections import connect_duckdb

if TYPE_CHECKING:  # Polars is imported where rows are written, not by readers (transform)
    import polars as pl

RAW_SCHEMA_VERSION = 7

# Music tables per source; ``play_id`` links rows of different sources that are one play.
MUSIC_TABLES = {
    "spotify_extended_history": "raw.spotify_extended_history",
    "spotify_api": "raw.spotify_api_plays",
    "spotify_account_data": "raw.spotify_account_data",
    "lastfm": "raw.lastfm_scrobbles",
    "listenbrainz": "raw.listenbrainz_listens",
}
# An API play's natural key: md5 of its instant written one way (UTC, microseconds) and the
# track id, never the text Spotify sent ("…:33.750Z" and "…:33.75Z" are one play). Raw
# schema 4 re-keyed the rows stored before, whose key hashed that text.
API_SOURCE_KEY_SQL = (
    "md5(concat_ws(chr(31),"
    " coalesce(strftime(played_at at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ'), ''),"
    " coalesce(cast(track_id as varchar), '')))"
)

# The time column each music table is ordered and windowed by.
TIME_COLUMN = {
    "spotify_extended_history": "played_at",
    "spotify_api": "played_at",
    "spotify_account_data": "played_at",
    "lastfm": "started_at",
    "listenbrainz": "started_at",
}

# What the matching step reads of each staged music table (dedupe.linked_view's inputs).
MATCH_COLUMNS = {
    "spotify_extended_history": ["played_at", "ms_played", "track_id", "name_key"],
    "spotify_api": ["played_at", "duration_ms", "track_id", "name_key"],
    "spotify_account_data": ["played_at", "ms_played", "name_key"],
    "lastfm": ["started_at", "name_key"],
    "listenbrainz": ["started_at", "played_at", "ms_played", "track_id", "name_key"],
}


_DDL = """
create schema if not exists raw;

create table if not exists raw.schema_version (version integer not null);

create table if not exists raw.import_runs (
    run_id varchar not null,           -- unique: a new uuid per run
    command varchar not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    summary json not null
);

create table if not exists raw.import_files (
    file_sha256 varchar not null,      -- unique: a known file is never imported again
    source varchar not null,
    original_name varchar not null,
    landing_path varchar not null,
    size_bytes bigint not null,
    rows_read bigint not null,
    run_id varchar not null,
    imported_at timestamptz not null
);

create table if not exists raw.spotify_extended_history (
    source_key varchar not null,   -- md5(ts, spotify_track_uri, ms_played)
    play_id varchar,                  -- null when not a play (0 ms played)
    played_at timestamptz not null,   -- ts: end of play, UTC
    ms_played bigint not null,
    track_uri varchar,
    track_id varchar,
    track_name varchar,
    artist_name varchar,
    album_name varchar,
    name_key varchar,
    platform varchar,
    conn_country varchar,
    ip_addr varchar,
    user_agent varchar,
    username varchar,
    reason_start varchar,
    reason_end varchar,
    shuffle boolean,
    skipped boolean,
    offline boolean,
    offline_at timestamptz,
    incognito_mode boolean,
    file_sha256 varchar not null,
    file_row bigint not null,
    imported_at timestamptz not null
);

create table if not exists raw.spotify_account_data (
    source_key varchar not null,   -- md5(endTime, artistName, trackName, msPlayed)
    play_id varchar,
    played_at timestamptz not null,   -- endTime: end of play, UTC, minute precision
    ms_played bigint not null,
    track_name varchar not null,
    artist_name varchar not null,
    name_key varchar,
    file_sha256 varchar not null,
    file_row bigint not null,
    imported_at timestamptz not null
);

create table if not exists raw.lastfm_scrobbles (
    source_key varchar not null,   -- md5(date, artist, track)
    play_id varchar,
    started_at timestamptz not null,  -- a scrobble's time is the start of play, UTC
    track_name varchar not null,
    artist_name varchar not null,
    album_name varchar,
    name_key varchar,
    file_sha256 varchar not null,
    file_row bigint not null,
    imported_at timestamptz not null
);

-- exclusions.yaml as the last transform read it (music_tracker/exclusions.py): the plays
-- it matches stay here in raw and are left out of the star schema
create table if not exists raw.exclusions (
    kind varchar not null,         -- artist, track, album, genre
    entry varchar not null,        -- as written in the file
    match_name varchar,            -- the name, case-folded (null for an id)
    spotify_id varchar,
    reason varchar,
    line_number integer not null
);

-- listens from a ListenBrainz export (docs/listenbrainz.md); ours carry the end of play and
-- the time heard, other tools' only the start
create table if not exists raw.listenbrainz_listens (
    source_key varchar not null,   -- md5(listened_at, artist, track[, ms_played, ended_at])
    play_id varchar,
    started_at timestamptz not null,  -- listened_at: start of play, UTC, whole seconds
    played_at timestamptz,            -- end of play, when the listen says (ended_at)
    ms_played bigint,                 -- time heard, when the listen says
    duration_ms bigint,               -- the track's length
    track_id varchar,                 -- Spotify id (from spotify_id or origin_url)
    track_name varchar not null,
    artist_name varchar not null,
    album_name varchar,
    name_key varchar,
    recording_mbid varchar,
    exported_source varchar,          -- the source a Music Tracker export named
    platform varchar,
    conn_country varchar,
    reason_start varchar,
    reason_end varchar,
    shuffle boolean,
    skipped boolean,
    file_sha256 varchar not null,
    file_row bigint not null,
    imported_at timestamptz not null
);

create table if not exists raw.spotify_api_plays (
    source_key varchar not null,   -- md5(played_at, track.id)
    play_id varchar,
    played_at timestamptz not null,   -- end of play as the API reports it, UTC
    track_id varchar not null,
    track_name varchar,
    artist_id varchar,
    artist_name varchar,
    artist_ids varchar[],
    artist_names varchar[],
    album_id varchar,
    album_name varchar,
    duration_ms bigint,
    isrc varchar,
    context_type varchar,
    context_uri varchar,
    name_key varchar,
    file_sha256 varchar not null,
    file_row bigint not null,
    imported_at timestamptz not null
);

-- A stored music row whose play changed after it was stored: a later, richer row proved two
-- plays to be one (dedupe.regroup). Its play is this play_id, not the one in its table; the
-- music tables stay append-only. One row per stored row (the latest change).
create table if not exists raw.play_id_overrides (
    source varchar not null,
    source_key varchar not null,
    play_id varchar not null,
    previous_play_id varchar not null,
    changed_at timestamptz not null
);

-- Shows found among the music of old account data (importers/podcasts.py), and why; one
-- row per show, its latest decision. `status` lists them.
create table if not exists raw.podcast_decisions (
    show_name varchar not null,
    reason varchar not null,
    plays bigint not null,
    decided_at timestamptz not null
);

create table if not exists raw.other_plays (
    source_key varchar not null,
    source varchar not null,
    content_type varchar not null,    -- podcast, audiobook, video
    played_at timestamptz not null,
    ms_played bigint not null,
    show_name varchar,
    item_name varchar,
    item_uri varchar,
    author_name varchar,
    platform varchar,
    conn_country varchar,
    reason_start varchar,
    reason_end varchar,
    shuffle boolean,
    skipped boolean,
    file_sha256 varchar not null,
    file_row bigint not null,
    imported_at timestamptz not null   -- (source, content_type, source_key) unique: checked
                                       -- against what is stored before each insert
);

-- Enrichment caches (filled by `ingest` and `enrich`; one row per id, fetched once).
create table if not exists raw.spotify_tracks (
    track_id varchar not null,
    track_name varchar,
    duration_ms bigint,
    popularity integer,               -- null for development-mode apps since 2026
    explicit boolean,
    isrc varchar,
    album_id varchar,
    artist_ids varchar[],
    artist_names varchar[],
    fetched_at timestamptz not null
);

create table if not exists raw.spotify_albums (
    album_id varchar not null,
    album_name varchar,
    album_type varchar,
    artist_names varchar[],
    label varchar,
    popularity integer,
    release_date varchar,
    release_date_precision varchar,
    total_tracks integer,
    fetched_at timestamptz not null
);

create table if not exists raw.spotify_artists (
    artist_id varchar not null,
    artist_name varchar,
    popularity integer,
    followers bigint,
    genres varchar[],
    fetched_at timestamptz not null
);

create table if not exists raw.musicbrainz_artists (
    lookup_key varchar not null,       -- spotify artist id, or normalized name
    status varchar not null,           -- found, missing
    matched_by varchar,                -- spotify_url, isrc, search
    mbid varchar,
    artist_name varchar,
    artist_type varchar,
    gender varchar,
    area_id varchar,
    begin_area_id varchar,
    end_area_id varchar,
    begin_date varchar,
    end_date varchar,
    genres varchar[],
    tags varchar[],
    looked_up_at timestamptz not null
);

create table if not exists raw.musicbrainz_areas (
    area_id varchar not null,
    area_name varchar,
    area_type varchar,                 -- Country, Subdivision, County, City, District, ...
    iso_3166_1 varchar,
    iso_3166_2 varchar,
    parent_area_id varchar,
    looked_up_at timestamptz not null
);

-- Periods where polling may have missed plays: a full page of 50 that did not reach back
-- to the newest stored play. Closed (in queries) once an extended export covers them.
create table if not exists raw.api_gaps (
    gap_from timestamptz not null,     -- newest play stored before the poll
    gap_to timestamptz not null,       -- oldest play of the full page
    detected_at timestamptz not null
);

-- One row per successful `music-tracker transform` that built every node (not a --select):
-- the fingerprint of the dbt project and settings it built, so the next run knows whether
-- only the data changed since (src/music_tracker/transform.py).
create table if not exists raw.transform_runs (
    fingerprint varchar not null,
    scope varchar not null,             -- 'everything' or 'changed data'
    full_refresh boolean not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    nodes integer not null
);

create table if not exists raw.set_aside_rows (
    file_sha256 varchar not null,
    file_row bigint not null,
    source varchar not null,
    reason varchar not null,
    record json,
    imported_at timestamptz not null   -- (file_sha256, file_row) unique: a file is read once
);
"""


DEFAULT_MEMORY_LIMIT = "128MB"


def open_warehouse(
    path: Path, *, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
    """Open (and on first use create) the warehouse with the raw schema in place.

    DuckDB would otherwise cache up to 80% of the machine's memory; the production VM has
    2 GB shared with Metabase, so the limit is explicit (it spills to disk beyond it).
    """
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit}
    if read_only:
        con = _connect(path, read_only=True, config=config)
        _session(con)
        return con
    new = not path.exists()
    # the warehouse holds personal data (IP addresses, user agents in raw): a new data
    # folder and warehouse are private to the owner; existing ones keep their modes
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    con = _connect(path, read_only=False, config=config)
    if new:
        path.chmod(0o600)
    _session(con)
    (exists,) = con.execute(
        "select count(*) from duckdb_tables()"
        " where schema_name = 'raw' and table_name = 'schema_version'"
    ).fetchone()  # type: ignore[misc]
    current = None
    if exists:
        (current,) = con.execute("select max(version) from raw.schema_version").fetchone()  # type: ignore[misc]
    if current is None:  # a new warehouse (the DDL is idempotent, but costs time per open)
        con.execute(_DDL)
        con.execute("insert into raw.schema_version values (?)", [RAW_SCHEMA_VERSION])
    elif current < RAW_SCHEMA_VERSION:  # an older warehouse: add what later versions added
        with transaction(con, work=False):
            con.execute(_DDL)
            if current < 4:
                _rekey_api_plays(con)
            if current < 6:
                _drop_primary_keys(con)
            con.execute("update raw.schema_version set version = ?", [RAW_SCHEMA_VERSION])
    return con


def _session(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("set TimeZone = 'UTC'")


class WarehouseBusy(Exception):
    """Another process has the warehouse open: DuckDB allows one writer and no reader
    beside it (our own commands take turns by the writer lock; this is anyone else, or a
    `status` reading for a moment)."""


# How long opening the warehouse waits for another process to let go of it
# (MUSIC_TRACKER_LOCK_WAIT_S; the CLI sets it from the settings).
LOCK_WAIT_S = 10.0
_LOCK_HELD = "Could not set lock"


def _connect(
    path: Path, *, read_only: bool, config: dict[str, str | bool | int | float | list[str]]
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return connect_duckdb(path, read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if _LOCK_HELD not in str(exc):
                raise
            if time.monotonic() >= deadline:
                held = re.search(r"Conflicting lock is held in (.*?)\.(?: See|$)", str(exc))
                by = f" by {held.group(1)}" if held else ""
                raise WarehouseBusy(
                    f"{path} is open in another process{by} (waited {LOCK_WAIT_S:.0f} s)"
                ) from None
            time.sleep(0.2)


def checkpoint(path: Path, *, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> None:
    """Fold the write-ahead log into the file (a backup copies it then), as it is: no
    schema upgrade. Waits for another process to let go of the file like every writer
    (``LOCK_WAIT_S``), then WarehouseBusy naming it."""
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit}
    with _connect(path, read_only=False, config=config) as con:
        con.execute("checkpoint")


def wait_until_free(path: Path) -> None:
    """Return once no other process has the file open (waiting ``LOCK_WAIT_S``, then
    WarehouseBusy naming it): before a restore replaces it. A file DuckDB cannot read
    (the damaged one a restore replaces) is free as far as this goes."""
    try:
        _connect(path, read_only=False, config={"memory_limit": DEFAULT_MEMORY_LIMIT}).close()
    except duckdb.Error:
        return


# Tables whose primary key cost every write (raw schema 6 dropped them): DuckDB rewrites a
# table's index at each checkpoint, and a poll's connection checkpoints when it closes: with
# a few thousand rows in these tables that was half of a poll's 0.1 s open-write-close,
# measured. Their uniqueness is kept by the code that writes them (comments in _DDL).
_WERE_KEYED = ("import_runs", "import_files", "other_plays", "set_aside_rows")


def _drop_primary_keys(con: duckdb.DuckDBPyConnection) -> None:
    """Raw schema 6: the same tables, rows and columns, without their primary keys."""
    for table in _WERE_KEYED:
        con.execute(f"create table raw._unkeyed as select * from raw.{table}")
        con.execute(f"drop table raw.{table}")
        con.execute(f"alter table raw._unkeyed rename to {table}")
    # not null as the DDL has it (CREATE TABLE AS keeps types, not constraints)
    for table, columns in (
        ("import_runs", ("run_id", "command", "started_at", "finished_at", "summary")),
        ("import_files", ("file_sha256", "source", "original_name", "landing_path")),
        ("other_plays", ("source_key", "source", "content_type", "played_at", "ms_played")),
        ("set_aside_rows", ("file_sha256", "file_row", "source", "reason", "imported_at")),
    ):
        for column in columns:
            con.execute(f"alter table raw.{table} alter column {column} set not null")


def _rekey_api_plays(con: duckdb.DuckDBPyConnection) -> None:
    """Raw schema 4: API rows keyed on their instant (``API_SOURCE_KEY_SQL``), not the text.

    A row whose new key another row already has (one play polled twice under two
    spellings of its time) keeps its old key: it is a double an earlier version stored,
    left as it is rather than deleted.
    """
    con.execute(
        f"""
        create temp table _api_keys as
        select source_key as old_key, {API_SOURCE_KEY_SQL} as new_key
        from raw.spotify_api_plays
        qualify count(*) over (partition by new_key) = 1
        """
    )
    con.execute(
        "update raw.play_id_overrides as o set source_key = k.new_key from _api_keys as k"
        " where o.source = 'spotify_api' and o.source_key = k.old_key"
    )
    con.execute(
        "update raw.spotify_api_plays as t set source_key = k.new_key from _api_keys as k"
        " where t.source_key = k.old_key"
    )
    con.execute("drop table _api_keys")


@contextmanager
def connect(
    path: Path, *, read_only: bool = False, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context-managed :func:`open_warehouse`; the connection is closed on exit."""
    con = open_warehouse(path, read_only=read_only, memory_limit=memory_limit)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(
    con: duckdb.DuckDBPyConnection, *, work: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """All or nothing: commit when the block ends normally, roll back on any exception.

    Ctrl+C during the commit waits for it to return (``interrupts.held``): the command then
    knows whether it was stored. ``work=False``: a schema upgrade on opening, which does
    not finish the command that opened the warehouse (``interrupts.committed``).
    """
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    with interrupts.held():
        con.execute("commit")
        if work:
            interrupts.committed()


def imported_file_hashes(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Content hashes of every file imported so far."""
    return {row[0] for row in con.execute("select file_sha256 from raw.import_files").fetchall()}


# NO_PYARROW: frames cross between DuckDB and Polars through the Arrow C stream interface
# (``frame_of``, ``ArrowStream``), never through pyarrow, which is not installed: loading
# and using it cost an import 40-60 MB of its memory (measured at 350,000 plays). DuckDB
# scans a Polars frame itself only through pyarrow, so every frame it reads is wrapped.


def frame_of(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query's result as a Polars frame (NO_PYARROW). The caller builds ``relation``
    (``con.sql``) itself: DuckDB finds frames read by name among the caller's variables."""
    import polars as pl

    return pl.DataFrame(relation)


class ArrowStream:
    """A Polars frame as DuckDB scans it, by variable name or ``con.register`` (NO_PYARROW)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.frame.__arrow_c_stream__(requested_schema)


def release_freed_memory() -> None:
    """Hand back to the system the memory DuckDB has freed but still holds.

    DuckDB's Linux builds allocate through their own jemalloc, which keeps freed pages for
    reuse: after an import has read its files, and after it has inserted a part, that is
    100-150 MB the next step would stack on (measured at 350,000 plays: the import's peak
    went from 400-430 MB to about 360 MB). Purging at those points costs milliseconds,
    where returning every free at once (``DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:0``) made
    the import 25-35% slower. A build without that allocator (macOS, ARM) has nothing to
    purge: this does nothing there.
    """
    mallctl = _duckdb_mallctl()
    if mallctl is not None:
        # MALLCTL_ARENAS_ALL (4096): every arena; jemalloc's documented "arena.<i>.purge"
        mallctl(b"arena.4096.purge", None, None, None, 0)


@functools.cache
def _duckdb_mallctl() -> Any:
    import ctypes

    try:
        import _duckdb  # DuckDB's compiled module, which `import duckdb` has loaded

        library = ctypes.CDLL(_duckdb.__file__)
        mallctl = library.duckdb_je_mallctl
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    mallctl.argtypes = [
        ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
    ]  # fmt: skip
    mallctl.restype = ctypes.c_int
    return mallctl


# FRAMES_BY_NAME: what an import runs once per part of a large history reads its Polars
# frame by its variable's name (DuckDB's replacement scan), not through con.register: a
# view registered and unregistered inside a transaction keeps its frame alive until the
# transaction ends (measured: 25-40 MB per part of 400,000 rows, 1.6 GB at 10 million plays).
# A table of the same name in the search path would win over the frame: these names
# (import_probe_keys, import_overrides, import_assigned) are no table's.


def stored_keys(con: duckdb.DuckDBPyConnection, source: str, batch: pl.DataFrame) -> pl.Series:
    """Which of the ``batch``'s keys (``source_key``) are already stored for ``source``.

    A natural key includes the time it was read from, so only stored rows within a day of
    the batch's times are compared: a part of a large import is checked against its own
    months, not against every row the parts before it stored.
    """
    import_probe_keys = ArrowStream(batch.select("source_key"))  # noqa: F841 (FRAMES_BY_NAME)
    times = batch[TIME_COLUMN[source]]
    if batch.is_empty() or times.null_count():
        start, end = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    else:
        start = cast(datetime, times.min()) - timedelta(days=1)
        end = cast(datetime, times.max()) + timedelta(days=1)
    found = con.sql(
        f"select t.source_key from {MUSIC_TABLES[source]} as t"
        f" semi join import_probe_keys as p using (source_key)"
        f" where t.{TIME_COLUMN[source]} between $start and $end",
        params={"start": start, "end": end},
    )
    return frame_of(found)["source_key"]


def linked_rows(
    con: duckdb.DuckDBPyConnection, source: str, start: datetime, end: datetime
) -> pl.DataFrame:
    """Stored rows of ``source`` that belong to a play, in the columns matching reads.

    ``play_id`` is the row's play now (after any override), with its ``source_key``. Only
    rows whose time lies in [start, end] are read, so a daily batch of 100 plays does not
    load 20 years of history.
    """
    time_column = TIME_COLUMN[source]
    columns = ", ".join(f"t.{column}" for column in MATCH_COLUMNS[source])
    return frame_of(
        con.sql(
            f"select {_EFFECTIVE_PLAY_ID} as play_id, t.source_key, {columns}"
            f" from {MUSIC_TABLES[source]} as t {_OVERRIDES_JOIN}"
            f" where t.play_id is not null and t.{time_column} between $start and $end",
            params={"start": start, "end": end, "source": source},
        )
    )


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


# A music row's play: its override when a later import moved it (raw.play_id_overrides).
_OVERRIDES_JOIN = (
    "left join raw.play_id_overrides as o on o.source = $source and o.source_key = t.source_key"
)
_EFFECTIVE_PLAY_ID = "coalesce(o.play_id, t.play_id)"


def _play_ids_query(
    *, since: bool = False, overrides: bool = True, sources: tuple[str, ...] = tuple(MUSIC_TABLES)
) -> str:
    """Every source's stored plays' ids (``$source_<n>`` parameters name the sources).

    ``overrides=False`` for a warehouse older than raw.play_id_overrides, read as it is.
    """
    parts = []
    for n, table in enumerate(MUSIC_TABLES[source] for source in sources):
        join = _OVERRIDES_JOIN.replace("$source", f"$source_{n}") if overrides else ""
        play_id = _EFFECTIVE_PLAY_ID if overrides else "t.play_id"
        imported_at = "greatest(t.imported_at, o.changed_at)" if overrides else "t.imported_at"
        changed = f" and {imported_at} > $built" if since else ""
        parts.append(
            f"select {play_id} as play_id from {table} as t {join}"
            f" where t.play_id is not null{changed}"
        )
    return " union ".join(parts)


def _play_id_params(sources: tuple[str, ...] = tuple(MUSIC_TABLES)) -> dict[str, str]:
    return {f"source_{n}": source for n, source in enumerate(sources)}


def _has_raw_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (count,) = con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'raw' and table_name = $name",
        {"name": name},
    ).fetchone()  # type: ignore[misc]
    return bool(count)


def store_play_id_overrides(
    con: duckdb.DuckDBPyConnection, overrides: pl.DataFrame, now: datetime
) -> None:
    """Move stored rows to another play (``source``, ``source_key``, ``play_id``,
    ``previous_play_id``), replacing any earlier move of the same row."""
    if overrides.is_empty():
        return
    import_overrides = ArrowStream(overrides)  # noqa: F841 (read by name: FRAMES_BY_NAME)
    con.execute(
        "delete from raw.play_id_overrides as o using import_overrides as n"
        " where o.source = n.source and o.source_key = n.source_key"
    )
    con.execute(
        "insert into raw.play_id_overrides by name"
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


def status(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Plays per source, distinct plays, first and last play, other content, last import."""
    # an older warehouse opened read-only may predate raw.play_id_overrides
    moves = _has_raw_table(con, "play_id_overrides")
    # an older warehouse opened read-only may predate a source's table (ListenBrainz's)
    sources = tuple(s for s in MUSIC_TABLES if _has_raw_table(con, MUSIC_TABLES[s][4:]))
    params = _play_id_params(sources) if moves else {}
    per_source: dict[str, Any] = {}
    for source in sources:
        table = MUSIC_TABLES[source]
        time_col = TIME_COLUMN[source]
        # plays, not rows: a play the export wrote twice is two rows of one play
        play_id = _EFFECTIVE_PLAY_ID if moves else "t.play_id"
        join = _OVERRIDES_JOIN if moves else ""
        plays, first, last, not_plays, last_import = con.execute(
            f"select count(distinct {play_id}),"
            f" min(t.{time_col}) filter (where t.play_id is not null),"
            f" max(t.{time_col}) filter (where t.play_id is not null),"
            f" count(*) filter (where t.play_id is null), max(t.imported_at)"
            f" from {table} as t {join}",
            {"source": source} if moves else {},
        ).fetchone()  # type: ignore[misc]
        per_source[source] = {
            "plays": plays,
            "first_play_at": _iso(first),
            "last_play_at": _iso(last),
            "last_import_at": _iso(last_import),
            "rows_not_plays": not_plays,
        }
    (distinct,) = con.execute(
        f"select count(*) from ({_play_ids_query(overrides=moves, sources=sources)})", params
    ).fetchone()  # type: ignore[misc]
    starts = [v["first_play_at"] for v in per_source.values() if v["first_play_at"]]
    ends = [v["last_play_at"] for v in per_source.values() if v["last_play_at"]]
    other = dict(
        con.execute(
            "select content_type, count(*) from raw.other_plays group by all order by 1"
        ).fetchall()
    )
    set_aside = dict(
        con.execute(
            "select reason, count(*) from raw.set_aside_rows group by all order by 1"
        ).fetchall()
    )
    podcast_shows = (
        [
            {"show": show, "reason": reason, "plays": plays}
            for show, reason, plays in con.execute(
                "select show_name, reason, plays from raw.podcast_decisions order by show_name"
            ).fetchall()
        ]
        if _has_raw_table(con, "podcast_decisions")
        else []
    )
    # rows kept in raw that are not plays (0 ms played), as the import summary counts them
    not_plays = sum(v["rows_not_plays"] for v in per_source.values())
    if not_plays:
        set_aside["0 ms played (not a play; row kept in raw)"] = not_plays
    # an older warehouse opened read-only may predate raw.transform_runs: never built then
    has_runs = _has_raw_table(con, "transform_runs")
    star = (
        con.execute(
            "select finished_at from raw.transform_runs order by finished_at desc limit 1"
        ).fetchone()
        if has_runs
        else None
    )
    built_at = star[0] if star else None
    plays_since_build = None
    if built_at is not None:
        since_build = _play_ids_query(since=True, overrides=moves, sources=sources)
        (plays_since_build,) = con.execute(
            f"select count(*) from ({since_build})",
            {"built": built_at, **params},
        ).fetchone()  # type: ignore[misc]
    gaps = [
        {"from": _iso(gap_from), "to": _iso(gap_to), "closed": closed}
        for gap_from, gap_to, closed in con.execute(
            """
            select gap_from, gap_to,
                   gap_to <= (select max(played_at) from raw.spotify_extended_history)
                   and gap_from >= (select min(played_at) from raw.spotify_extended_history)
            from raw.api_gaps order by gap_from
            """
        ).fetchall()
    ]
    files, last_import = con.execute(
        "select count(*), max(imported_at) from raw.import_files"
    ).fetchone()  # type: ignore[misc]
    return {
        "plays": distinct,
        "plays_per_source": {k: v["plays"] for k, v in per_source.items()},
        "sources": per_source,
        "first_play_at": min(starts) if starts else None,
        "last_play_at": max(ends) if ends else None,
        "other_content": other,
        "set_aside_rows": set_aside,
        "podcast_shows_in_old_account_data": podcast_shows,
        "gaps": gaps,
        "open_gaps": sum(1 for gap in gaps if not gap["closed"]),
        "star_schema_built_at": _iso(built_at),
        "plays_imported_since_build": plays_since_build,
        "files_imported": files,
        "last_import_at": _iso(last_import),
    }


# the tables whose rows become plays: what a build holds grows with them
PLAY_TABLES = (
    "spotify_extended_history",
    "spotify_account_data",
    "spotify_api_plays",
    "lastfm_scrobbles",
    "listenbrainz_listens",
)


# the change logs the dbt project's int_plays_conformed and fact_track_played write
# (transform/macros/play_changes.sql), in schema intermediate
CHANGE_LOGS = ("int_plays_conformed_changes", "fact_track_played_changes")


def stored_play_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows of the raw play tables, from DuckDB's catalogue (no table is scanned)."""
    listed = ", ".join(f"'{table}'" for table in PLAY_TABLES)
    (rows,) = con.execute(
        "select coalesce(sum(estimated_size), 0) from duckdb_tables()"
        f" where schema_name = 'raw' and table_name in ({listed})"
    ).fetchone()  # type: ignore[misc]
    return int(rows)


def last_transform_fingerprint(con: duckdb.DuckDBPyConnection) -> str | None:
    """The project fingerprint of the newest successful whole-project transform, if any."""
    row = con.execute(
        "select fingerprint from raw.transform_runs order by finished_at desc limit 1"
    ).fetchone()
    return None if row is None else str(row[0])


def record_transform(
    con: duckdb.DuckDBPyConnection,
    *,
    fingerprint: str,
    scope: str,
    full_refresh: bool,
    started_at: datetime,
    finished_at: datetime,
    nodes: int,
) -> None:
    """Remember a successful whole-project transform (see :func:`last_transform_fingerprint`).

    Every model has now consumed the change logs (transform/macros/play_changes.sql):
    they are emptied in the same transaction."""
    with transaction(con):
        con.execute(
            "insert into raw.transform_runs values (?, ?, ?, ?, ?, ?)",
            [fingerprint, scope, full_refresh, started_at, finished_at, nodes],
        )
        logs = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'intermediate'"
            " and list_contains(?, table_name)",
            [list(CHANGE_LOGS)],
        ).fetchall()
        for (table,) in logs:
            con.execute(f"delete from intermediate.{table}")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


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
