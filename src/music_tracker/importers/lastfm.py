"""Read a Last.fm scrobble export: headerless CSV lines ``artist,album,track,date`` (UTC).

One file holds every scrobble of an account, so it is read a block of whole records at a
time (``importers.blocks``): ``read_scrobbles`` yields one
:class:`~music_tracker.importers.readers.Parsed` per block.

Natural key (rule 1): ``(date, artist, track)`` as written in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl

from music_tracker.importers import blocks
from music_tracker.importers.detect import HEADER, LASTFM_DATE_FORMAT, Format
from music_tracker.importers.errors import ImportInputError
from music_tracker.importers.readers import Parsed, key_sql, parse_utc
from music_tracker.names import name_key
from music_tracker.warehouse import ArrowStream, frame_of

# a record's end inside a field: a scrobble's date (LASTFM_DATE_FORMAT), then a line break
_ANOTHER_SCROBBLE = r",\s*\d{1,2} [A-Za-z]{3} \d{4} \d{1,2}:\d{2}\s*\r?\n"


def read_scrobbles(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    display_name: str,
    block_bytes: int | None = None,
) -> Iterator[Parsed]:
    """The scrobbles of ``path``, a block of whole records at a time; a record's
    ``file_row`` is its number in the file (from 1, the header line counted if there is one).

    A bad record raises :class:`ImportInputError` when its block is read: the blocks before
    it have been handed on by then, so the caller keeps what it stores from them until the
    file has been read to the end (the import stages them and commits nothing on an error).
    """
    rows_before = 0
    with path.open("rb") as handle:
        for block in blocks.csv_blocks(handle, block_bytes or blocks.BLOCK_BYTES):
            raw = _parse_block(block, display_name, rows_before)
            height = raw.height
            raw = raw.with_row_index("file_row", offset=rows_before + 1).with_columns(
                pl.col("file_row").cast(pl.Int64)
            )
            rows_before += height
            yield _scrobbles(con, raw, display_name)


def _parse_block(block: bytes, display_name: str, rows_before: int) -> pl.DataFrame:
    try:
        return pl.read_csv(
            block,
            has_header=False,
            new_columns=HEADER,
            schema_overrides=dict.fromkeys(HEADER, pl.String),
            quote_char='"',
        )
    except pl.exceptions.PolarsError as exc:
        raise ImportInputError(
            display_name,
            f"cannot be read as a Last.fm scrobble export{_from_row(rows_before)}:"
            f" {str(exc).splitlines()[0]}",
            hint="expected headerless CSV lines of four fields: artist,album,track,date",
        ) from exc


def _from_row(rows_before: int) -> str:
    """Where a block that cannot be read starts (the first block: the file)."""
    return f" (at row {rows_before + 1} or after it)" if rows_before else ""


def _scrobbles(con: duckdb.DuckDBPyConnection, raw: pl.DataFrame, display_name: str) -> Parsed:
    """One block's records (``raw``, numbered) as rows of ``raw.lastfm_scrobbles``."""
    is_header = pl.concat_list([pl.col(c).str.to_lowercase() for c in HEADER]) == pl.lit(HEADER)
    raw = raw.filter(~is_header)
    # a quote left open makes one field of the records after it, up to the next quote:
    # a field holding a line break and then another scrobble's date (the file's own form)
    swallowed = pl.any_horizontal(
        pl.col(c).str.contains(_ANOTHER_SCROBBLE).fill_null(False) for c in HEADER[:3]
    )
    refusals = (
        (
            swallowed,
            "a quote opened in this row runs over the rows after it",
            'fix the quote (a " inside a field is written "") and import again',
        ),
        (
            pl.col("track").is_null() | pl.col("artist").is_null(),
            "a scrobble without artist or track",
            "fix or delete that row and import again",
        ),
    )
    for bad, reason, hint in refusals:  # the first row of the first kind found is named
        first = raw.filter(bad).head(1)
        if first.height:
            raise ImportInputError(display_name, reason, row=int(first["file_row"][0]), hint=hint)
    started_at = parse_utc(
        raw.with_columns(pl.col("date").str.strip_chars()), "date", LASTFM_DATE_FORMAT, display_name
    )
    con.register("_lastfm_rows", ArrowStream(raw))
    try:
        keys = frame_of(
            con.sql(
                f"select file_row, {key_sql(('date', 'artist', 'track'))} as source_key"
                " from _lastfm_rows"
            )
        )
    finally:
        con.unregister("_lastfm_rows")
    music = (
        raw.with_columns(started_at=started_at)
        .join(keys, on="file_row")
        .select(
            "source_key",
            "started_at",
            pl.col("track").alias("track_name"),
            pl.col("artist").alias("artist_name"),
            pl.col("album").alias("album_name"),
            name_key(pl.col("artist"), pl.col("track")).alias("name_key"),
            "file_row",
        )
    )
    return Parsed(Format.LASTFM, raw.height, music)
