"""The raw schema: its tables, its version, the migrations from older versions, and the
SQL pieces every reader of plays shares (a play's effective id)."""

from __future__ import annotations

import duckdb

RAW_SCHEMA_VERSION = 9

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

# The music rows' columns that tell how long a play was (with a listen's start and end):
# the match window reaches as far back as the longest (importers/parts.py)
LENGTH_COLUMNS = ("ms_played", "duration_ms")

# What the matching step reads of each staged music table (dedupe.linked_view's inputs).
MATCH_COLUMNS = {
    "spotify_extended_history": ["played_at", "ms_played", "track_id", "name_key"],
    "spotify_api": ["played_at", "duration_ms", "track_id", "name_key"],
    "spotify_account_data": ["played_at", "ms_played", "name_key"],
    "lastfm": ["started_at", "name_key"],
    "listenbrainz": ["started_at", "played_at", "ms_played", "track_id", "name_key"],
}


DDL = """
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

-- The play tables' text columns whose values repeat (or never do) for any listener name
-- their compression: without it DuckDB tries every method on each column of each row group
-- it writes; naming them made the import's insert 7-8% shorter (docs/benchmarks.md, "The
-- play tables' compression named"). FSST for the hashes and name keys, dictionaries for the
-- few values of a device, a country, a reason. The names and ids of tracks, artists and
-- albums repeat as much as a listener repeats them: DuckDB still chooses for those (a
-- dictionary of ids heard once is three times FSST's size). A table made before keeps
-- choosing for every column.
create table if not exists raw.spotify_extended_history (
    source_key varchar not null using compression fsst,   -- md5(ts, spotify_track_uri, ms_played)
    play_id varchar using compression fsst,   -- null when not a play (0 ms played)
    played_at timestamptz not null,   -- ts: end of play, UTC
    ms_played bigint not null,
    track_uri varchar,
    track_id varchar,
    track_name varchar,
    artist_name varchar,
    album_name varchar,
    name_key varchar using compression fsst,
    platform varchar using compression dictionary,
    conn_country varchar using compression dictionary,
    ip_addr varchar,
    user_agent varchar using compression dictionary,
    username varchar using compression dictionary,
    reason_start varchar using compression dictionary,
    reason_end varchar using compression dictionary,
    shuffle boolean,
    skipped boolean,
    offline boolean,
    offline_at timestamptz,
    incognito_mode boolean,
    file_sha256 varchar not null using compression dictionary,
    file_row bigint not null,
    imported_at timestamptz not null
);

create table if not exists raw.spotify_account_data (
    -- md5(endTime, artistName, trackName, msPlayed)
    source_key varchar not null using compression fsst,
    play_id varchar using compression fsst,
    played_at timestamptz not null,   -- endTime: end of play, UTC, minute precision
    ms_played bigint not null,
    track_name varchar not null,
    artist_name varchar not null,
    name_key varchar using compression fsst,
    file_sha256 varchar not null using compression dictionary,
    file_row bigint not null,
    imported_at timestamptz not null
);

create table if not exists raw.lastfm_scrobbles (
    source_key varchar not null using compression fsst,   -- md5(date, artist, track)
    play_id varchar using compression fsst,
    started_at timestamptz not null,  -- a scrobble's time is the start of play, UTC
    track_name varchar not null,
    artist_name varchar not null,
    album_name varchar,
    name_key varchar using compression fsst,
    file_sha256 varchar not null using compression dictionary,
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
    -- md5(listened_at, artist, track[, ms_played, ended_at])
    source_key varchar not null using compression fsst,
    play_id varchar using compression fsst,
    started_at timestamptz not null,  -- listened_at: start of play, UTC, whole seconds
    played_at timestamptz,            -- end of play, when the listen says (ended_at)
    ms_played bigint,                 -- time heard, when the listen says
    duration_ms bigint,               -- the track's length
    track_id varchar,                 -- Spotify id (from spotify_id or origin_url)
    track_name varchar not null,
    artist_name varchar not null,
    album_name varchar,
    name_key varchar using compression fsst,
    recording_mbid varchar,
    -- the source a Music Tracker export named
    exported_source varchar using compression dictionary,
    platform varchar using compression dictionary,
    conn_country varchar using compression dictionary,
    reason_start varchar using compression dictionary,
    reason_end varchar using compression dictionary,
    shuffle boolean,
    skipped boolean,
    file_sha256 varchar not null using compression dictionary,
    file_row bigint not null,
    imported_at timestamptz not null
);

create table if not exists raw.spotify_api_plays (
    source_key varchar not null using compression fsst,   -- md5(played_at, track.id)
    play_id varchar using compression fsst,
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
    context_type varchar using compression dictionary,
    context_uri varchar,
    name_key varchar using compression fsst,
    file_sha256 varchar not null using compression dictionary,
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

-- Every move of a stored row, append-only (raw.play_id_overrides keeps only the latest):
-- a play whose every row moved away is among these previous_play_ids, however many times
-- its rows moved on before the next build. The builds look for plays merged away among
-- them instead of comparing every play with every other (docs/deduplication.md).
create table if not exists raw.play_id_moves (
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
    source_key varchar not null using compression fsst,
    source varchar not null using compression dictionary,
    content_type varchar not null using compression dictionary,   -- podcast, audiobook, video
    played_at timestamptz not null,
    ms_played bigint not null,
    show_name varchar,
    item_name varchar,
    item_uri varchar,
    author_name varchar,
    platform varchar using compression dictionary,
    conn_country varchar using compression dictionary,
    reason_start varchar using compression dictionary,
    reason_end varchar using compression dictionary,
    shuffle boolean,
    skipped boolean,
    file_sha256 varchar not null using compression dictionary,
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

-- What each build changed in the star schema, so that a publish writes only that into a
-- copy of the last serving copy (src/music_tracker/publish.py). One row per build (every
-- `music-tracker transform`, dbt's or replayed): a new id and a random token, so a serving
-- copy names the build it holds and a restored warehouse cannot pass for the one it was.
create table if not exists raw.serving_builds (
    build_id bigint not null,          -- the last one + 1
    token varchar not null,
    started_at timestamptz not null
);

-- Rows of the `dw` tables a build wrote or deleted, as the groups a publish replaces: the
-- values of the table's `serving_key` (the model's config) whose rows changed, or null
-- when the build made the table whole (transform/macros/serving_journal.sql).
create table if not exists raw.serving_journal (
    build_id bigint not null,
    table_name varchar not null,
    key_column varchar,
    key_value varchar                  -- null: every row
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


# Tables whose primary key cost every write (raw schema 6 dropped them): DuckDB rewrites a
# table's index at each checkpoint, and a poll's connection checkpoints when it closes: with
# a few thousand rows in these tables that was half of a poll's 0.1 s open-write-close,
# measured. Their uniqueness is kept by the code that writes them (comments in DDL).
_WERE_KEYED = ("import_runs", "import_files", "other_plays", "set_aside_rows")


def drop_primary_keys(con: duckdb.DuckDBPyConnection) -> None:
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


def rekey_api_plays(con: duckdb.DuckDBPyConnection) -> None:
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


# A music row's play: its override when a later import moved it (raw.play_id_overrides).
OVERRIDES_JOIN = (
    "left join raw.play_id_overrides as o on o.source = $source and o.source_key = t.source_key"
)
EFFECTIVE_PLAY_ID = "coalesce(o.play_id, t.play_id)"


def play_ids_query(
    *, since: bool = False, overrides: bool = True, sources: tuple[str, ...] = tuple(MUSIC_TABLES)
) -> str:
    """Every source's stored plays' ids (``$source_<n>`` parameters name the sources).

    ``overrides=False`` for a warehouse older than raw.play_id_overrides, read as it is.
    """
    parts = []
    for n, table in enumerate(MUSIC_TABLES[source] for source in sources):
        join = OVERRIDES_JOIN.replace("$source", f"$source_{n}") if overrides else ""
        play_id = EFFECTIVE_PLAY_ID if overrides else "t.play_id"
        imported_at = "greatest(t.imported_at, o.changed_at)" if overrides else "t.imported_at"
        changed = f" and {imported_at} > $built" if since else ""
        parts.append(
            f"select {play_id} as play_id from {table} as t {join}"
            f" where t.play_id is not null{changed}"
        )
    return " union ".join(parts)


def play_id_params(sources: tuple[str, ...] = tuple(MUSIC_TABLES)) -> dict[str, str]:
    return {f"source_{n}": source for n, source in enumerate(sources)}


def has_raw_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    (count,) = con.execute(
        "select count(*) from duckdb_tables() where schema_name = 'raw' and table_name = $name",
        {"name": name},
    ).fetchone()  # type: ignore[misc]
    return bool(count)
