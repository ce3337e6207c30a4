"""Spotify metadata for every track, album and artist id heard, fetched once.

Development-mode apps lost the batch endpoints in 2026: the batch is tried once per run and
single-item calls are used when it is refused. Results (and misses: 404) are cached in
``raw.spotify_*`` so an id is never fetched twice; a 429, 5xx or exhausted budget is never
recorded as a miss, it just ends the run's enrichment.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from music_tracker import warehouse
from music_tracker.sources.http import HttpError, NotFound
from music_tracker.sources.spotify import parse
from music_tracker.sources.spotify.client import SpotifyClient

log = logging.getLogger(__name__)

BATCH_SIZE = {"tracks": 50, "albums": 20, "artists": 50}
_ROW = {"tracks": parse.track_row, "albums": parse.album_row, "artists": parse.artist_row}
_TABLE = {
    "tracks": "raw.spotify_tracks",
    "albums": "raw.spotify_albums",
    "artists": "raw.spotify_artists",
}
_KEY = {"tracks": "track_id", "albums": "album_id", "artists": "artist_id"}

_MISSING_IDS = {
    "tracks": """
        select track_id from (
            select track_id, count(*) as plays from raw.spotify_api_plays group by 1
            union all
            select track_id, count(*) from raw.spotify_extended_history
            where track_id is not null group by 1
        )
        where track_id not in (select track_id from raw.spotify_tracks)
        group by track_id order by sum(plays) desc, track_id
    """,
    "albums": """
        select distinct album_id from raw.spotify_tracks
        where album_id is not null
          and album_id not in (select album_id from raw.spotify_albums)
        order by 1
    """,
    "artists": """
        select distinct artist_id from (
            select unnest(artist_ids) as artist_id from raw.spotify_tracks
        )
        where artist_id is not null
          and artist_id not in (select artist_id from raw.spotify_artists)
        order by 1
    """,
}


@dataclass
class EnrichSummary:
    tracks: int = 0
    albums: int = 0
    artists: int = 0
    missing: int = 0
    batch_available: bool | None = None
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tracks": self.tracks,
            "albums": self.albums,
            "artists": self.artists,
            "not_found": self.missing,
            "batch_endpoints": self.batch_available,
            "stopped": self.stopped,
        }


def enrich_metadata(con: duckdb.DuckDBPyConnection, client: SpotifyClient) -> EnrichSummary:
    """Fetch tracks, then their albums and artists, until done or the budget ends."""
    summary = EnrichSummary()
    try:
        for kind in ("tracks", "albums", "artists"):
            ids = [row[0] for row in con.execute(_MISSING_IDS[kind]).fetchall()]
            _fetch(con, client, kind, ids, summary)
    except HttpError as exc:
        summary.stopped = str(exc)
        log.warning("enrichment stopped: %s", exc)
    return summary


def _fetch(
    con: duckdb.DuckDBPyConnection,
    client: SpotifyClient,
    kind: str,
    ids: list[str],
    summary: EnrichSummary,
) -> None:
    for first in range(0, len(ids), BATCH_SIZE[kind]):
        chunk = ids[first : first + BATCH_SIZE[kind]]
        objects: list[dict[str, Any]] | None = None
        if summary.batch_available is not False:
            objects = client.several(kind, chunk)
            summary.batch_available = objects is not None
        if objects is None:
            objects = []
            for item_id in chunk:
                try:
                    objects.append(client.item(kind, item_id))
                except NotFound:
                    objects.append({"id": item_id, "_missing": True})
                    summary.missing += 1
                except HttpError:
                    _store(con, kind, objects, summary)  # keep what this chunk already has
                    raise
        _store(con, kind, objects, summary)


def _store(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    objects: list[dict[str, Any]],
    summary: EnrichSummary,
) -> None:
    if not objects:
        return
    setattr(summary, kind, getattr(summary, kind) + len(objects))
    rows = [{_KEY[kind]: obj["id"]} if obj.get("_missing") else _ROW[kind](obj) for obj in objects]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    warehouse.insert_frame(con, _TABLE[kind], frame, fetched_at=datetime.now(UTC))
