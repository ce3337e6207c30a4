"""Read a ListenBrainz export: JSON lines of listens (or the older single JSON array).

The facts relied on are in docs/listenbrainz.md: ``listened_at`` is the start of play in
whole seconds since 1970 (UTC); ``track_metadata`` holds ``artist_name``, ``track_name``,
``release_name`` and ``additional_info`` (any keys; ``duration_ms``, ``spotify_id`` and
``origin_url``, ``recording_mbid`` are ListenBrainz's own). The listens ``music-tracker
export`` writes add the time heard (``ms_played``), the exact end of play (``ended_at``),
the source the play came from and, for podcasts, audiobooks and videos, the content type:
with those a listen round-trips to the same play.

Natural key (rule 1): ``(listened_at, artist_name, track_name)``, as ListenBrainz itself
tells listens apart, and for our own listens also the time heard and the end.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from music_tracker import export, warehouse
from music_tracker.importers import blocks
from music_tracker.importers.detect import Format
from music_tracker.importers.errors import ImportInputError
from music_tracker.importers.readers import (
    EARLIEST_PLAY,
    FUTURE_SLACK,
    OTHER_SCHEMA,
    UTC_TYPE,
    Parsed,
    read_json_rows,
)
from music_tracker.names import name_key

_COLUMNS = {"listened_at": "BIGINT", "track_metadata": "JSON"}
_KEY = (
    "listened_at",
    "json_extract_string(track_metadata, '$.artist_name')",
    "json_extract_string(track_metadata, '$.track_name')",
    # our own listens: plays of one track ending in one minute (account data) can start in
    # the same second
    f"json_extract_string(track_metadata, '$.additional_info.{export.MS_PLAYED}')",
    f"json_extract_string(track_metadata, '$.additional_info.{export.ENDED_AT}')",
)
# a Spotify id in a URL (open.spotify.com/track/ID) or a URI (spotify:track:ID)
_SPOTIFY_ID = r"(?:open\.spotify\.com/|spotify:)(track|episode|chapter)[/:]([A-Za-z0-9]{22})"
_OTHER_CONTENT = ("podcast", "audiobook", "video")
_FLAGS = ("shuffle", "skipped")
# the values read of ``track_metadata``, each as its text (a number's digits), parsed once
# a listen by DuckDB: one Polars ``json_path_match`` a value took 5 s of 8.8 at 350,000
_INFO = (
    export.MS_PLAYED, export.ENDED_AT, "duration_ms", "duration", "spotify_id", "origin_url",
    "recording_mbid", export.SOURCE, export.CONTENT_TYPE, "author_name", *export.CONTEXT_KEYS,
    "submission_client", "music_service", "listening_from",
)  # fmt: skip
_PATHS = (
    "$.artist_name",
    "$.track_name",
    "$.release_name",
    "$.mbid_mapping.recording_mbid",
    *(f"$.additional_info.{key}" for key in _INFO),
)
_EXTRACTED = ", json_extract_string(track_metadata, [{}]) as _values".format(
    ", ".join(f"'{path}'" for path in _PATHS)
)


def read_listens(
    con: duckdb.DuckDBPyConnection, path: Path, display_name: str, block_bytes: int | None = None
) -> Iterator[Parsed]:
    """Music listens in ``raw.listenbrainz_listens``' shape; podcasts, audiobooks and videos
    (listens our own export marked so) as other content; listens without an artist or
    title set aside with the reason.

    A file larger than a block (``importers.blocks``; our own export of a whole history, or
    ListenBrainz's older single array) is read a block of whole listens at a time, each
    written beside ``path`` for DuckDB's reader and removed once read: one
    :class:`Parsed` per block, numbered as in the file. A bad listen raises when its block
    is read, after the blocks before it have been handed on.
    """
    limit = block_bytes or blocks.BLOCK_BYTES
    small = path.stat().st_size <= limit
    is_array = not small and blocks.is_json_array(path)
    if small or not (is_array or blocks.is_json_lines(path)):
        # (objects over several lines each, one after another, are read whole as before)
        yield _listens(con, path, display_name)
        return
    pieces = (
        _array_blocks(path, display_name, limit)
        if is_array
        else blocks.json_line_blocks(path, limit)
    )
    for block, rows_before in pieces:
        written, name = tempfile.mkstemp(dir=path.parent, prefix=".block-", suffix=".json")
        block_path = Path(name)
        try:
            with os.fdopen(written, "wb") as out:
                out.write(block)
            parsed = _listens(con, block_path, display_name, rows_before)
            # DuckDB's allocator keeps a block's freed pages: 1.28 million listens
            # peaked at 402 MiB without this purge after each block, 356 with it
            warehouse.release_freed_memory()
        finally:
            block_path.unlink(missing_ok=True)
        yield parsed


def _array_blocks(path: Path, display_name: str, limit: int) -> Iterator[tuple[bytes, int]]:
    try:
        yield from blocks.json_array_blocks(path, limit)
    except blocks.BrokenArray as exc:
        raise ImportInputError(
            display_name,
            f"cannot be read as ListenBrainz listens: {exc.reason}",
            row=exc.record,
            hint="the file may be truncated or edited; download the export again",
        ) from exc


def _listens(
    con: duckdb.DuckDBPyConnection, path: Path, display_name: str, rows_before: int = 0
) -> Parsed:
    raw = read_json_rows(
        con, path, display_name, _COLUMNS, _KEY, "ListenBrainz listens", json_format="auto",
        row_offset=rows_before, extra=_EXTRACTED,
    )  # fmt: skip
    frame = raw.with_columns(
        artist_name=_meta("$.artist_name"),
        track_name=_meta("$.track_name"),
        album_name=_meta("$.release_name"),
        ms_played=_info(export.MS_PLAYED).cast(pl.Int64, strict=False),
        ended_text=_info(export.ENDED_AT),
        duration_ms=pl.coalesce(
            _info("duration_ms").cast(pl.Int64, strict=False),
            _info("duration").cast(pl.Int64, strict=False) * 1000,
        ),
        spotify_url=pl.coalesce(_info("spotify_id"), _info("origin_url")),
        recording_mbid=pl.coalesce(_info("recording_mbid"), _meta("$.mbid_mapping.recording_mbid")),
        exported_source=_info(export.SOURCE),
        content_type=_info(export.CONTENT_TYPE),
        author_name=_info("author_name"),
        **{key: _info(key) for key in export.CONTEXT_KEYS if key not in _FLAGS},
        **{key: _info(key) == "true" for key in _FLAGS},
    )
    is_other = pl.col("content_type").is_in(_OTHER_CONTENT).fill_null(False)
    frame = _with_times(frame, display_name).with_columns(
        kind=pl.col("spotify_url").str.extract(_SPOTIFY_ID, 1),
        spotify_id=pl.col("spotify_url").str.extract(_SPOTIFY_ID, 2),
        # ListenBrainz requires both, non-empty
        reason=pl.when(
            (pl.col("artist_name").str.strip_chars() == "").fill_null(True)
            | (pl.col("track_name").str.strip_chars() == "").fill_null(True)
        )
        .then(pl.lit("no artist_name or track_name in the listen"))
        # other content is counted by its time heard: without it, not a play of anything
        .when(is_other & pl.col("ms_played").is_null())
        .then(pl.format("a {} listen without its time heard (ms_played)", "content_type")),
    )
    kept = frame.filter(pl.col("reason").is_null())
    music = kept.filter(~is_other).select(
        "source_key",
        "started_at",
        "played_at",
        "ms_played",
        "duration_ms",
        pl.when(pl.col("kind") == "track").then(pl.col("spotify_id")).alias("track_id"),
        "track_name",
        "artist_name",
        "album_name",
        name_key(pl.col("artist_name"), pl.col("track_name")).alias("name_key"),
        "recording_mbid",
        "exported_source",
        *export.CONTEXT_KEYS,
        "file_row",
    )
    other = kept.filter(is_other).select(
        "source_key",
        pl.lit(Format.LISTENBRAINZ.value).alias("source"),
        "content_type",
        pl.coalesce("played_at", "started_at").alias("played_at"),
        "ms_played",
        pl.col("album_name").alias("show_name"),
        # our export names an item Spotify left unnamed (and showless) by its kind, since a
        # listen needs a title: read back, it is unnamed again
        pl.when(pl.col("album_name").is_null() & (pl.col("track_name") == pl.col("content_type")))
        .then(None)
        .otherwise(pl.col("track_name"))
        .alias("item_name"),
        pl.when(pl.col("spotify_id").is_not_null())
        .then(pl.concat_str(pl.lit("spotify:"), "kind", pl.lit(":"), "spotify_id"))
        .alias("item_uri"),
        "author_name",
        *export.CONTEXT_KEYS,
        "file_row",
    )
    set_aside = frame.filter(pl.col("reason").is_not_null()).select(
        "file_row", "reason", pl.struct(*_COLUMNS).struct.json_encode().alias("record")
    )
    return Parsed(Format.LISTENBRAINZ, raw.height, music, other.cast(OTHER_SCHEMA), set_aside)


def _meta(path: str) -> pl.Expr:
    return pl.col("_values").list.get(_PATHS.index(path))


def _info(key: str) -> pl.Expr:
    return _meta(f"$.additional_info.{key}")


def _with_times(frame: pl.DataFrame, display_name: str) -> pl.DataFrame:
    """``started_at`` and, when the listen says, ``played_at`` (its end). A listen with its
    end and time heard starts exactly that long before the end (``listened_at`` is the
    start cut to the second). An impossible time is an error naming the listen."""
    frame = frame.with_columns(
        played_at=pl.col("ended_text").str.strptime(
            UTC_TYPE, "%Y-%m-%dT%H:%M:%S%.fZ", strict=False
        ),
        listened=pl.from_epoch("listened_at", time_unit="s").dt.replace_time_zone("UTC"),
    )
    now = datetime.now(UTC)
    times = pl.coalesce("played_at", "listened")
    bad = frame.filter(
        pl.col("listened").is_null()
        | (pl.col("ended_text").is_not_null() & pl.col("played_at").is_null())
        | (times < EARLIEST_PLAY)
        | (times > now + FUTURE_SLACK)
    ).head(1)
    if bad.height:
        raise ImportInputError(
            display_name,
            f"impossible time in a listen (listened_at={bad['listened_at'][0]!r},"
            f" ended_at={bad['ended_text'][0]!r})",
            row=int(bad["file_row"][0]),
            hint=f"listened_at is whole seconds since 1970 (UTC), between {EARLIEST_PLAY:%Y}"
            " and one day after now; fix or delete that line and import again",
        )
    # ListenBrainz's own Spotify importer gives a listen Spotify's played_at, the end of
    # play: that listen says its end (matched like an API play), and starts its track's
    # length before it when the listen says the length
    client = _info("submission_client")
    from_spotify = (
        (client == "listenbrainz")
        & (_info("music_service") == export.SPOTIFY_SERVICE)
        & pl.col("ended_text").is_null()
    ) | (client.is_null() & (_info("listening_from") == "spotify"))  # its importer before 2021
    frame = frame.with_columns(
        played_at=pl.when(from_spotify.fill_null(False))
        .then(pl.col("listened"))
        .otherwise(pl.col("played_at"))
    )
    exact_start = _near_listened(pl.col("played_at"), pl.col("ms_played"))
    spotify_start = _near_listened(pl.col("played_at"), pl.col("duration_ms"))
    return frame.with_columns(
        started_at=pl.coalesce(
            exact_start,
            pl.when(from_spotify.fill_null(False)).then(spotify_start),
            pl.col("listened"),
        ).cast(UTC_TYPE),
        played_at=pl.col("played_at").cast(UTC_TYPE),
    ).drop("listened", "ended_text")


# How far from ``listened_at`` a start told by a length may lie: a listen's key is its
# ``listened_at``, and its stored copy is looked for within a day of its start
# (``warehouse.stored_keys``). A length over a day or below zero (corrupt data) made a
# listen's start days from its ``listened_at``, and the same listen told again with another
# length was stored twice: the star schema's uniqueness test then failed every build
# (helper-75). A length is at most 12 hours: one of 2^64 / 1000 ms wrapped round to -30
# minutes in microseconds, and started a listen after its end (helper-76).
_START_FROM_LISTENED = (timedelta(hours=-12), timedelta(hours=1))
_LONGEST_MS = 12 * 3_600_000


def _near_listened(end: pl.Expr, length_ms: pl.Expr) -> pl.Expr:
    """The start ``length_ms`` before ``end``, when the length is one a play can have (0
    to 12 hours) and the start lies near ``listened_at`` (``_START_FROM_LISTENED``); else
    null."""
    start = end - pl.duration(milliseconds=length_ms)
    early, late = _START_FROM_LISTENED
    near = length_ms.is_between(0, _LONGEST_MS) & (start - pl.col("listened")).is_between(
        early, late
    )
    return pl.when(near).then(start)
