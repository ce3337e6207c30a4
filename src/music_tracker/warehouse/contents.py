"""What the warehouse holds, for `status`, and the record of each whole-project transform."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from music_tracker.warehouse.connection import transaction
from music_tracker.warehouse.schema import (
    EFFECTIVE_PLAY_ID,
    MUSIC_TABLES,
    OVERRIDES_JOIN,
    has_raw_table,
    play_id_params,
    play_ids_query,
)

# What counts as a podcast, audiobook or video play, as dw.fact_other_played counts them
# (transform/models/dw/fact_other_played.sql; tests/test_listenbrainz.py checks that both
# agree on the real exports): time was heard (ms_played > 0), and a listen from a
# ListenBrainz export (our own) counts only when no Spotify file holds that play (the same
# kind and time heard, ending within a minute: account data's end has minute precision).
_COUNTED_OTHER_PLAYS = """
    select o.content_type, count(*) from raw.other_plays as o
    where o.ms_played > 0 and (o.source != 'listenbrainz' or not exists (
        select 1 from raw.other_plays as s
        where s.source != 'listenbrainz' and s.content_type = o.content_type
        and s.ms_played = o.ms_played
        and s.played_at between o.played_at - interval 1 minute
        and o.played_at + interval 1 minute
    ))
    group by all order by 1
"""


# A play's start in each source's table (``t``), the one time every source can tell:
# Spotify's files say the end and the time heard, the API the end and the track's length
# (a play it reports was heard whole), Last.fm and ListenBrainz the start. `status`'s first
# and last plays are starts, whatever the source.
PLAY_START = {
    "spotify_extended_history": "t.played_at - to_milliseconds(t.ms_played)",
    "spotify_account_data": "t.played_at - to_milliseconds(t.ms_played)",
    "spotify_api": "t.played_at - to_milliseconds(coalesce(t.duration_ms, 0))",
    "lastfm": "t.started_at",
    "listenbrainz": "t.started_at",
}


def counted_other_plays(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Podcast, audiobook and video plays per content type, each counted once."""
    return {kind: int(n) for kind, n in con.execute(_COUNTED_OTHER_PLAYS).fetchall()}


def status(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Plays per source, distinct plays, first and last play, other content, last import."""
    moves, sources = _play_tables(con)
    params = play_id_params(sources) if moves else {}
    per_source: dict[str, Any] = {}
    for source in sources:
        table = MUSIC_TABLES[source]
        start = PLAY_START[source]
        # plays, not rows: a play the export wrote twice is two rows of one play
        play_id = EFFECTIVE_PLAY_ID if moves else "t.play_id"
        join = OVERRIDES_JOIN if moves else ""
        plays, first, last, not_plays, last_import = con.execute(
            f"select count(distinct {play_id}),"
            f" min({start}) filter (where t.play_id is not null),"
            f" max({start}) filter (where t.play_id is not null),"
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
        f"select count(*) from ({play_ids_query(overrides=moves, sources=sources)})", params
    ).fetchone()  # type: ignore[misc]
    starts = [v["first_play_at"] for v in per_source.values() if v["first_play_at"]]
    ends = [v["last_play_at"] for v in per_source.values() if v["last_play_at"]]
    other = counted_other_plays(con)
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
        if has_raw_table(con, "podcast_decisions")
        else []
    )
    # rows kept in raw that are not plays (0 ms played), as the import summary counts them:
    # music rows and podcast, audiobook and video rows alike
    (other_not_plays,) = con.execute(
        "select count(*) from raw.other_plays where ms_played <= 0"
    ).fetchone()  # type: ignore[misc]
    not_plays = sum(v["rows_not_plays"] for v in per_source.values()) + other_not_plays
    if not_plays:
        set_aside["0 ms played (not counted as a play)"] = not_plays
    built_at, plays_since_build = _since_last_build(con, moves, sources)
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
        # the start of the first and of the last play (PLAY_START), in every source
        "play_times": "start of play",
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


def _play_tables(con: duckdb.DuckDBPyConnection) -> tuple[bool, tuple[str, ...]]:
    """(whether plays can have moved, the sources with a table). An older warehouse opened
    read-only may predate raw.play_id_overrides, or a source's table (ListenBrainz's)."""
    moves = has_raw_table(con, "play_id_overrides")
    sources = tuple(s for s in MUSIC_TABLES if has_raw_table(con, MUSIC_TABLES[s][4:]))
    return moves, sources


def since_last_build(con: duckdb.DuckDBPyConnection) -> tuple[datetime | None, int | None]:
    """(when the last whole build finished, plays imported since): what a scheduled run
    asks before it builds, without the rest of ``status`` (its 25 queries took 0.31-0.40
    CPU-s at 350,000 plays, on every poll; these 0.08)."""
    return _since_last_build(con, *_play_tables(con))


def other_plays_since(con: duckdb.DuckDBPyConnection, built: datetime) -> int:
    """How many podcast, audiobook and video plays were imported after ``built``."""
    (count,) = con.execute(
        "select count(*) from raw.other_plays where imported_at > $built", {"built": built}
    ).fetchone()  # type: ignore[misc]
    return int(count)


def _since_last_build(
    con: duckdb.DuckDBPyConnection, moves: bool, sources: tuple[str, ...]
) -> tuple[datetime | None, int | None]:
    # an older warehouse opened read-only may predate raw.transform_runs: never built then
    star = (
        con.execute(
            "select finished_at from raw.transform_runs order by finished_at desc limit 1"
        ).fetchone()
        if has_raw_table(con, "transform_runs")
        else None
    )
    built_at = star[0] if star else None
    if built_at is None:
        return None, None
    since_build = play_ids_query(since=True, overrides=moves, sources=sources)
    params = play_id_params(sources) if moves else {}
    (plays_since_build,) = con.execute(
        f"select count(*) from ({since_build})", {"built": built_at, **params}
    ).fetchone()  # type: ignore[misc]
    return built_at, int(plays_since_build)


# the tables whose rows become plays: what a build holds grows with them
PLAY_TABLES = (
    "spotify_extended_history",
    "spotify_account_data",
    "spotify_api_plays",
    "lastfm_scrobbles",
    "listenbrainz_listens",
)


# the change logs the dbt project's int_plays_deduplicated, int_plays_conformed and
# fact_track_played write (transform/macros/play_changes.sql), in schema intermediate
CHANGE_LOGS = (
    "int_plays_deduplicated_changes",
    "int_plays_conformed_changes",
    "fact_track_played_changes",
)


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
    if not has_raw_table(con, "transform_runs"):  # an older warehouse, opened read-only
        return None
    row = con.execute(
        "select fingerprint from raw.transform_runs order by finished_at desc limit 1"
    ).fetchone()
    return None if row is None else str(row[0])


@dataclass(frozen=True)
class BuiltFor:
    """The settings a star schema was built with (``dw.build_settings``)."""

    timezone: str
    stream_threshold_ms: int

    def differs(self, timezone: str, stream_threshold_ms: int) -> str | None:
        """What differs from the settings given, in words (None: nothing): "built for
        America/Denver and streams of 30 s; the settings say Europe/Berlin and 120 s"."""
        if (self.timezone, self.stream_threshold_ms) == (timezone, stream_threshold_ms):
            return None
        return (
            f"the star schema was built for {self.timezone} and streams of"
            f" {self.stream_threshold_ms / 1000:g} s; the settings now say {timezone} and"
            f" {stream_threshold_ms / 1000:g} s"
        )


@dataclass(frozen=True)
class BuildCheck:
    """How the star schema's last build stands against the settings and project now:
    ``stale`` is None (it shows them), "unfinished" (the last build did not finish: what it
    was built for is unknown, since dw.build_settings is among the first tables a build
    writes), "settings" (built for other settings: ``differs`` says which) or "changed"
    (built before a change of the project, a setting or exclusions.yaml: its recorded
    fingerprint is not the one a build would record now). ``built_for``: the settings its
    dates, hours and streams follow, when known."""

    stale: str | None
    built_for: BuiltFor | None = None
    differs: str | None = None


def check_build(
    built: BuiltFor | None,
    recorded: str | None,
    *,
    finished: bool,
    timezone: str,
    stream_threshold_ms: int | None,
    expected: str | None,
) -> BuildCheck:
    """``BuildCheck`` of a build that wrote ``built`` and recorded the fingerprint
    ``recorded``, against the settings now and the fingerprint a build would record now
    (``expected``; None: not compared). ``stream_threshold_ms`` None: the time zone alone
    is compared. Status, report and export each say it in their own words."""
    if not finished:
        return BuildCheck("unfinished")
    if built is not None:
        threshold = (
            built.stream_threshold_ms if stream_threshold_ms is None else stream_threshold_ms
        )
        differs = built.differs(timezone, threshold)
        if differs:
            return BuildCheck("settings", built, differs)
    if expected is not None and recorded != expected:
        return BuildCheck("changed", built)
    return BuildCheck(None, built)


def build_check(
    con: duckdb.DuckDBPyConnection,
    *,
    finished: bool,
    timezone: str,
    stream_threshold_ms: int | None,
    expected: str | None,
) -> BuildCheck:
    """``check_build`` of the warehouse's own record of its last build."""
    return check_build(
        built_for(con),
        last_transform_fingerprint(con),
        finished=finished,
        timezone=timezone,
        stream_threshold_ms=stream_threshold_ms,
        expected=expected,
    )


def built_for(con: duckdb.DuckDBPyConnection) -> BuiltFor | None:
    """The settings of the star schema's last whole build (None: not built, or built by a
    version before ``dw.build_settings``)."""
    try:
        row = con.execute("select timezone, stream_threshold_ms from dw.build_settings").fetchone()
    except duckdb.CatalogException:
        return None
    return None if row is None else BuiltFor(str(row[0]), int(row[1]))


def stamped_since_last_transform(
    con: duckdb.DuckDBPyConnection, stamps: dict[str, tuple[str, str, str]]
) -> set[str]:
    """Of ``stamps`` (by name: a raw table, the column stamped with the time its rows were
    written, and a condition on the rows that count), the names with such a row written
    since the newest successful whole-project transform began, or every name when there
    was none. Writers take turns (the writer lock), so a row written before a build began
    was there when it read. DuckDB skips row groups by their stored minimum and maximum:
    this reads little of a large table."""
    row = con.execute(
        "select started_at from raw.transform_runs order by finished_at desc limit 1"
    ).fetchone()
    if row is None:
        return set(stamps)
    changed = set()
    for name, (table, column, rows) in stamps.items():
        found = con.execute(
            f"select exists (select 1 from raw.{table} where {column} >= ? and ({rows}))",
            [row[0]],
        ).fetchone()
        if found is None or found[0]:
            changed.add(name)
    return changed


def rows_imported_since_last_transform(con: duckdb.DuckDBPyConnection) -> int:
    """Rows of the raw play tables imported since the newest successful whole-project
    transform began (every row before the first), all tables together: at least what the
    raw keys' uniqueness test of any one of them counts (each table's, in
    transform/macros/get_where_subquery.sql). DuckDB skips row groups by their
    ``imported_at`` range: this reads little of a large table."""
    total = 0
    for table in PLAY_TABLES:
        if has_raw_table(con, table):
            (rows,) = con.execute(
                f"select count(*) from raw.{table} where imported_at > ("
                "select coalesce(max(started_at), timestamptz '-infinity')"
                " from raw.transform_runs)"
            ).fetchone()  # type: ignore[misc]
            total += int(rows)
    return total


def catalog_fingerprint(con: duckdb.DuckDBPyConnection) -> str:
    """A hash of the warehouse's tables and views as they stand: every column's place,
    name, type and nullability, every constraint and index. What dbt reads before it
    writes SQL (a model's schema against its table's, contracts): a replayed build is only
    replayed on the catalog it was recorded on (replay.py). Not a view's definition: what
    DuckDB prints back lists an EXCLUDE's columns in no fixed order, and views change with
    the project (its fingerprint), not the data."""
    import hashlib

    digest = hashlib.sha256()
    for sql in (
        "select schema_name, table_name, column_index, column_name, data_type, is_nullable"
        " from duckdb_columns() where database_name = current_database() and not internal",
        "select schema_name, table_name, constraint_type, constraint_text"
        " from duckdb_constraints() where database_name = current_database()",
        "select schema_name, table_name, index_name, sql"
        " from duckdb_indexes() where database_name = current_database()",
    ):
        for row in con.execute(f"{sql} order by all").fetchall():
            digest.update(repr(row).encode())
        digest.update(b"\0")
    return digest.hexdigest()


# The serving journal keeps the last this many builds (about four weeks at 70 a day); a
# publish whose last copy holds an older build copies every table (publish.py).
SERVING_BUILDS_KEPT = 2000


def start_serving_build(con: duckdb.DuckDBPyConnection) -> int:
    """The build about to run, in raw.serving_builds: its id (the last one + 1) and a random
    token. The dbt models journal what they change under it (transform/macros/
    serving_journal.sql); builds older than ``SERVING_BUILDS_KEPT`` are forgotten."""
    import secrets

    with transaction(con):
        (build_id,) = con.execute(  # type: ignore[misc]
            "insert into raw.serving_builds"
            " select coalesce(max(build_id), 0) + 1, ?, now() from raw.serving_builds"
            " returning build_id",
            [secrets.token_hex(16)],
        ).fetchone()
        for table in ("serving_journal", "serving_builds"):
            con.execute(
                f"delete from raw.{table} where build_id <= ?", [build_id - SERVING_BUILDS_KEPT]
            )
    return int(build_id)


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
