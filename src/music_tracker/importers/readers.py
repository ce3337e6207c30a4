"""Read one export file into canonical Polars frames.

Every reader returns a :class:`Parsed`: music rows in the schema of the source's raw
table, non-music rows (podcast episodes, audiobook chapters, video) in the shared
``other`` schema, and rows set aside with the reason. Readers are pure apart from reading
the file; de-duplication and storage happen later (``music_tracker.dedupe``,
``music_tracker.warehouse``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from music_tracker.importers.detect import Format
from music_tracker.importers.errors import ImportInputError
from music_tracker.names import name_key, with_name_key
from music_tracker.sources.spotify.parse import is_recently_played_page, recently_played_rows
from music_tracker.warehouse import API_SOURCE_KEY_SQL, ArrowStream, frame_of

# Spotify launched in 2008 and Last.fm in 2002: anything earlier is a broken clock, not a play.
EARLIEST_PLAY = datetime(2002, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
UTC_TYPE = pl.Datetime("us", "UTC")
# offline_timestamp is in ms in old exports and in s in new ones: values above this are ms.
_OFFLINE_MS_THRESHOLD = 10_000_000_000

OTHER_SCHEMA = pl.Schema(
    {
        "source_key": pl.String(),
        "source": pl.String(),
        "content_type": pl.String(),
        "played_at": UTC_TYPE,
        "ms_played": pl.Int64(),
        "show_name": pl.String(),
        "item_name": pl.String(),
        "item_uri": pl.String(),
        "author_name": pl.String(),
        "platform": pl.String(),
        "conn_country": pl.String(),
        "reason_start": pl.String(),
        "reason_end": pl.String(),
        "shuffle": pl.Boolean(),
        "skipped": pl.Boolean(),
        "file_row": pl.Int64(),
    }
)
SET_ASIDE_SCHEMA = pl.Schema(
    {
        "file_row": pl.Int64(),
        "reason": pl.String(),
        "record": pl.String(),
    }
)


@dataclass
class Parsed:
    """What one file held, split by kind."""

    format: Format
    rows_read: int
    music: pl.DataFrame
    other: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=OTHER_SCHEMA))
    set_aside: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SET_ASIDE_SCHEMA))


def read_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: Format,
    display_name: str,
    *,
    is_video: bool = False,
) -> Parsed:
    """Read ``path`` (shown to the user as ``display_name``) as format ``fmt``.

    ``con`` is any DuckDB connection: its JSON reader is the fastest here, and it computes
    the md5 natural keys. Nothing is written through it.
    """
    if fmt is Format.EXTENDED:
        return _read_extended(con, path, display_name, is_video=is_video)
    if fmt is Format.ACCOUNT_MUSIC:
        return _read_account_music(con, path, display_name)
    if fmt in (Format.ACCOUNT_PODCAST, Format.ACCOUNT_AUDIOBOOK):
        return _read_account_other(con, path, fmt, display_name)
    if fmt is Format.API:
        return _read_api_page(con, path, display_name)
    # Last.fm and ListenBrainz files, which can hold a whole account, have readers of their
    # own that read them a block at a time (importers/lastfm.py, importers/listenbrainz.py)
    raise ValueError(f"read_file does not read {fmt.value}")


def key_sql(columns: tuple[str, ...]) -> str:
    """md5 over the natural-key fields (docs/deduplication.md, "Within one source"):
    stable across library versions."""
    parts = ", ".join(f"coalesce(cast({c} as varchar), '')" for c in columns)
    return f"md5(concat_ws(chr(31), {parts}))"


def read_json_rows(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    display_name: str,
    columns: dict[str, str],
    key: tuple[str, ...],
    what: str,
    json_format: str = "array",
    row_offset: int = 0,
    extra: str = "",
) -> pl.DataFrame:
    """The records of ``path`` in ``columns``, with their natural key (md5 of ``key``,
    ``source_key``) and ``file_row``: a record's number, or its line in JSON lines with
    blank lines, after ``row_offset`` (when ``path`` is a block of a larger file,
    importers/blocks.py). ``extra``: more columns, SQL over ``columns``."""
    spec = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
    try:
        # materialized in a temporary table, then handed over as Arrow (NO_PYARROW): as fast
        # as pyarrow's ``to_arrow_table`` here, where streaming the query straight into
        # Polars took 1.5-2x as long (10 history files)
        con.execute(
            f"create or replace temp table _read_json_rows as select *, {key_sql(key)}"
            f" as source_key{extra} from read_json($path, format=$format, columns={spec})",
            {"path": str(path), "format": json_format},
        )
    except duckdb.OutOfMemoryException:
        raise  # not the file's fault: the command names the memory setting
    except duckdb.Error as exc:
        detail = re.sub(r'in file "[^"]*", ', "", str(exc).splitlines()[0])
        # DuckDB counts records (blank lines skipped), in the block: the line in the file
        lines = _record_lines(path)

        def in_file(at: re.Match[str]) -> str:
            number = int(at[2])
            if at[1] == "line" and lines is not None and 0 < number <= len(lines):
                number = lines[number - 1]
            return f"in {at[1]} {number + row_offset}"

        detail = re.sub(r"in (line|record/value) (\d+)", in_file, detail)
        bad_line = _first_bad_json_line(path)
        if bad_line is not None:
            # DuckDB's line number for malformed JSON lines is one past the line (1.5)
            raise ImportInputError(
                display_name,
                f"cannot be read as {what}: that line is not JSON ({bad_line[1]})",
                row=row_offset + bad_line[0],
                hint="the file may be truncated or edited; fix or delete that line, or"
                " download the export again",
            ) from exc
        raise ImportInputError(
            display_name,
            f"cannot be read as {what}: {detail}",
            hint="the file may be truncated or edited; download the export again",
        ) from exc
    try:
        frame = frame_of(con.sql("from _read_json_rows"))
    finally:
        con.execute("drop table _read_json_rows")
    lines = _record_lines(path)
    if lines is not None and len(lines) == frame.height:
        # JSON lines with blank lines: a record's row is its line in the file, as an editor
        # shows it (DuckDB skips blank lines when it counts)
        rows = pl.Series("file_row", lines, dtype=pl.Int64) + row_offset
        return frame.with_columns(file_row=rows)
    return frame.with_row_index("file_row", offset=row_offset + 1).with_columns(
        pl.col("file_row").cast(pl.Int64)
    )


def _record_lines(path: Path) -> list[int] | None:
    """In JSON lines with blank lines, the line number (from 1) of each record; None for a
    JSON array or JSON lines without blank lines (a record's row is then its number)."""
    with path.open("rb") as handle:
        if not handle.read(1024).removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
            return None
        handle.seek(0)
        # (a first line of only a byte-order mark is blank too)
        numbers = [
            number
            for number, line in enumerate(handle, start=1)
            if line.removeprefix(b"\xef\xbb\xbf").strip()
        ]
    return numbers if numbers and numbers[-1] != len(numbers) else None


def _first_bad_json_line(path: Path) -> tuple[int, str] | None:
    """In JSON lines, the number (from 1) of the first line that is not JSON, and why."""
    with path.open("rb") as handle:
        if not handle.read(1024).removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
            return None  # a JSON array: DuckDB's message stands
        handle.seek(0)
        for number, line in enumerate(handle, start=1):
            if not line.removeprefix(b"\xef\xbb\xbf").strip():
                continue
            try:
                json.loads(line.removeprefix(b"\xef\xbb\xbf"))
            except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
                return number, getattr(exc, "msg", None) or str(exc)
    return None


def parse_utc(frame: pl.DataFrame, column: str, fmt: str, display_name: str) -> pl.Series:
    """Parse a text column to UTC; an unparseable or impossible time is an error naming the row."""
    parsed = frame[column].str.strptime(UTC_TYPE, fmt, strict=False)
    now = datetime.now(UTC)
    bad = frame.filter(
        parsed.is_null() | (parsed < EARLIEST_PLAY) | (parsed > now + FUTURE_SLACK)
    ).head(1)
    if bad.height:
        raise ImportInputError(
            display_name,
            f"impossible timestamp {column}={bad[column][0]!r}",
            row=int(bad["file_row"][0]),
            hint=f"times must lie between {EARLIEST_PLAY:%Y-%m-%d} and one day after now "
            "(UTC); fix or delete that row and import again",
        )
    return parsed


EXTENDED_COLUMNS = {
    "ts": "VARCHAR",
    "username": "VARCHAR",
    "platform": "VARCHAR",
    "ms_played": "BIGINT",
    "conn_country": "VARCHAR",
    "ip_addr": "VARCHAR",
    "ip_addr_decrypted": "VARCHAR",
    "user_agent_decrypted": "VARCHAR",
    "master_metadata_track_name": "VARCHAR",
    "master_metadata_album_artist_name": "VARCHAR",
    "master_metadata_album_album_name": "VARCHAR",
    "spotify_track_uri": "VARCHAR",
    "episode_name": "VARCHAR",
    "episode_show_name": "VARCHAR",
    "spotify_episode_uri": "VARCHAR",
    "audiobook_title": "VARCHAR",
    "audiobook_uri": "VARCHAR",
    "audiobook_chapter_uri": "VARCHAR",
    "audiobook_chapter_title": "VARCHAR",
    "reason_start": "VARCHAR",
    "reason_end": "VARCHAR",
    "shuffle": "BOOLEAN",
    "skipped": "BOOLEAN",
    "offline": "BOOLEAN",
    "offline_timestamp": "BIGINT",
    "incognito_mode": "BOOLEAN",
}


def _read_extended(
    con: duckdb.DuckDBPyConnection, path: Path, display_name: str, *, is_video: bool
) -> Parsed:
    raw = read_json_rows(
        con,
        path,
        display_name,
        EXTENDED_COLUMNS,
        ("ts", "spotify_track_uri", "ms_played"),
        "Spotify extended streaming history",
    )
    played_at = parse_utc(raw, "ts", "%Y-%m-%dT%H:%M:%SZ", display_name)
    offline = pl.col("offline_timestamp")
    frame = raw.with_columns(
        played_at=played_at,
        offline_at=pl.when(offline >= _OFFLINE_MS_THRESHOLD)
        .then(pl.from_epoch(offline, time_unit="ms"))
        .otherwise(pl.from_epoch(offline, time_unit="s"))
        .dt.replace_time_zone("UTC")
        .cast(UTC_TYPE),
        ip_addr=pl.coalesce("ip_addr", "ip_addr_decrypted"),
        content_type=pl.when(pl.lit(is_video))
        .then(pl.lit("video"))
        .when(pl.col("spotify_track_uri").is_not_null())
        .then(pl.lit("music"))
        .when(pl.col("spotify_episode_uri").is_not_null() | pl.col("episode_name").is_not_null())
        .then(pl.lit("podcast"))
        .when(
            pl.col("audiobook_chapter_uri").is_not_null() | pl.col("audiobook_title").is_not_null()
        )
        .then(pl.lit("audiobook"))
        .when(pl.col("master_metadata_track_name").is_not_null())
        .then(pl.lit("music"))  # a local file: track name without a Spotify URI
        .otherwise(pl.lit(None)),
    )
    frame = frame.with_columns(
        reason=pl.when(pl.col("content_type").is_null())
        .then(pl.lit("no track, episode or chapter in the row"))
        .otherwise(_missing_reason({"ms_played": "ms_played"}))
    )
    kept = frame.filter(pl.col("reason").is_null())
    music = with_name_key(
        kept.filter(pl.col("content_type") == "music"),
        "master_metadata_album_artist_name",
        "master_metadata_track_name",
    ).select(
        "source_key",
        "played_at",
        "ms_played",
        pl.col("spotify_track_uri").alias("track_uri"),
        pl.col("spotify_track_uri").str.strip_prefix("spotify:track:").alias("track_id"),
        pl.col("master_metadata_track_name").alias("track_name"),
        pl.col("master_metadata_album_artist_name").alias("artist_name"),
        pl.col("master_metadata_album_album_name").alias("album_name"),
        "name_key",
        "platform",
        "conn_country",
        "ip_addr",
        pl.col("user_agent_decrypted").alias("user_agent"),
        "username",
        "reason_start",
        "reason_end",
        "shuffle",
        "skipped",
        "offline",
        "offline_at",
        "incognito_mode",
        "file_row",
    )
    other = kept.filter(pl.col("content_type").is_in(["podcast", "audiobook", "video"])).select(
        "source_key",
        pl.lit(Format.EXTENDED.value).alias("source"),
        "content_type",
        "played_at",
        "ms_played",
        pl.coalesce("episode_show_name", "audiobook_title").alias("show_name"),
        pl.coalesce("episode_name", "audiobook_chapter_title").alias("item_name"),
        pl.coalesce("spotify_episode_uri", "audiobook_chapter_uri").alias("item_uri"),
        pl.lit(None, pl.String).alias("author_name"),
        "platform",
        "conn_country",
        "reason_start",
        "reason_end",
        "shuffle",
        "skipped",
        "file_row",
    )
    set_aside = _set_aside(frame, EXTENDED_COLUMNS)
    return Parsed(Format.EXTENDED, raw.height, music, other.cast(OTHER_SCHEMA), set_aside)


def _missing_reason(required: dict[str, str]) -> pl.Expr:
    """ "no <field> in the row" for a row without a field its raw table requires
    (``required``: column -> the export's name for it); null for a complete row."""
    missing = pl.concat_str(
        [pl.when(pl.col(column).is_null()).then(pl.lit(name)) for column, name in required.items()],
        separator=", ",
        ignore_nulls=True,
    )
    return pl.when(missing != "").then(pl.lit("no ") + missing + pl.lit(" in the row"))


def _set_aside(frame: pl.DataFrame, columns: dict[str, str]) -> pl.DataFrame:
    """The rows of ``frame`` with a ``reason``, as the export wrote them (``columns``)."""
    return frame.filter(pl.col("reason").is_not_null()).select(
        "file_row", "reason", pl.struct(*columns).struct.json_encode().alias("record")
    )


def _read_account_music(con: duckdb.DuckDBPyConnection, path: Path, display_name: str) -> Parsed:
    columns = {
        "endTime": "VARCHAR",
        "artistName": "VARCHAR",
        "trackName": "VARCHAR",
        "msPlayed": "BIGINT",
    }
    key = ("endTime", "artistName", "trackName", "msPlayed")
    raw = read_json_rows(con, path, display_name, columns, key, "Spotify account data (music)")
    played_at = parse_utc(raw, "endTime", "%Y-%m-%d %H:%M", display_name)
    raw = raw.with_columns(
        played_at=played_at,
        reason=_missing_reason(
            {"artistName": "artistName", "trackName": "trackName", "msPlayed": "msPlayed"}
        ),
    )
    music = raw.filter(pl.col("reason").is_null()).select(
        "source_key",
        "played_at",
        pl.col("msPlayed").alias("ms_played"),
        pl.col("trackName").alias("track_name"),
        pl.col("artistName").alias("artist_name"),
        name_key(pl.col("artistName"), pl.col("trackName")).alias("name_key"),
        "file_row",
    )
    return Parsed(Format.ACCOUNT_MUSIC, raw.height, music, set_aside=_set_aside(raw, columns))


def _read_account_other(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: Format, display_name: str
) -> Parsed:
    if fmt is Format.ACCOUNT_PODCAST:
        columns = {
            "endTime": "VARCHAR",
            "podcastName": "VARCHAR",
            "episodeName": "VARCHAR",
            "msPlayed": "BIGINT",
        }
        show, item, author, content = "podcastName", "episodeName", None, "podcast"
    else:
        columns = {
            "endTime": "VARCHAR",
            "audiobookName": "VARCHAR",
            "chapterName": "VARCHAR",
            "authorName": "VARCHAR",
            "msPlayed": "BIGINT",
        }
        show, item, author, content = "audiobookName", "chapterName", "authorName", "audiobook"
    key = ("endTime", show, item, "msPlayed")
    raw = read_json_rows(con, path, display_name, columns, key, f"Spotify account data ({content})")
    played_at = parse_utc(raw, "endTime", "%Y-%m-%d %H:%M", display_name)
    raw = raw.with_columns(played_at=played_at, reason=_missing_reason({"msPlayed": "msPlayed"}))
    other = raw.filter(pl.col("reason").is_null()).select(
        "source_key",
        pl.lit(Format.ACCOUNT_MUSIC.value).alias("source"),
        pl.lit(content).alias("content_type"),
        "played_at",
        pl.col("msPlayed").alias("ms_played"),
        pl.col(show).alias("show_name"),
        pl.col(item).alias("item_name"),
        pl.lit(None, pl.String).alias("item_uri"),
        (pl.col(author) if author else pl.lit(None, pl.String)).alias("author_name"),
        *(
            pl.lit(None, pl.String).alias(c)
            for c in ("platform", "conn_country", "reason_start", "reason_end")
        ),
        *(pl.lit(None, pl.Boolean).alias(c) for c in ("shuffle", "skipped")),
        "file_row",
    )
    empty = pl.DataFrame(schema=ACCOUNT_MUSIC_SCHEMA)
    return Parsed(fmt, raw.height, empty, other.cast(OTHER_SCHEMA), _set_aside(raw, columns))


ACCOUNT_MUSIC_SCHEMA = pl.Schema(
    {
        "source_key": pl.String(),
        "played_at": UTC_TYPE,
        "ms_played": pl.Int64(),
        "track_name": pl.String(),
        "artist_name": pl.String(),
        "name_key": pl.String(),
        "file_row": pl.Int64(),
    }
)


def _read_api_page(con: duckdb.DuckDBPyConnection, path: Path, display_name: str) -> Parsed:
    """A recently-played response (API source): natural key (played_at, track.id).

    The key holds the instant, written one way (``warehouse.API_SOURCE_KEY_SQL``), not the
    text Spotify sent: "…:33.750Z" and "…:33.75Z" are one play.
    """
    try:
        page = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImportInputError(display_name, f"not valid JSON ({exc})") from exc
    if not is_recently_played_page(page):
        raise ImportInputError(display_name, "not a Spotify recently-played response")
    rows = recently_played_rows(page)
    parse_utc(rows, "played_at_text", "%Y-%m-%dT%H:%M:%S%.fZ", display_name)
    local = rows.filter(pl.col("track_id").is_null())
    plays = rows.filter(pl.col("track_id").is_not_null())
    con.register("_api_rows", ArrowStream(plays))
    try:
        keys = frame_of(
            con.sql(f"select file_row, {API_SOURCE_KEY_SQL} as source_key from _api_rows")
        )
    finally:
        con.unregister("_api_rows")
    music = plays.join(keys, on="file_row").drop("played_at_text")
    set_aside = local.select(
        "file_row",
        pl.lit("local file or unavailable track without a Spotify id").alias("reason"),
        pl.struct("played_at_text", "track_name", "artist_name")
        .struct.json_encode()
        .alias("record"),
    )
    return Parsed(Format.API, rows.height, music, set_aside=set_aside)
