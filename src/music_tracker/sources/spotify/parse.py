"""Spotify Web API objects into warehouse rows (Polars), shared by ingest and import.

Recorded real responses (docs/architecture.md, "Reference data") and the fake's responses
go through these same functions. Fields Spotify removed for development-mode apps in 2026
(popularity, followers, genres, label, available_markets) are read when present and left
null when not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from music_tracker.names import name_key

UTC_TYPE = pl.Datetime("us", "UTC")

API_PLAY_SCHEMA = pl.Schema(
    {
        "played_at_text": pl.String(),
        "played_at": UTC_TYPE,
        "track_id": pl.String(),
        "track_name": pl.String(),
        "artist_id": pl.String(),
        "artist_name": pl.String(),
        "artist_ids": pl.List(pl.String()),
        "artist_names": pl.List(pl.String()),
        "album_id": pl.String(),
        "album_name": pl.String(),
        "duration_ms": pl.Int64(),
        "isrc": pl.String(),
        "context_type": pl.String(),
        "context_uri": pl.String(),
        "file_row": pl.Int64(),
    }
)


def is_recently_played_page(body: Any) -> bool:
    """True for a recently-played response (a cursor page of play-history objects)."""
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        return False
    first = body["items"][0] if body["items"] else {}
    return "played_at" in first and "track" in first if first else "cursors" in body


def recently_played_rows(page: dict[str, Any]) -> pl.DataFrame:
    """One row per play-history item, in page order (``file_row`` 1-based)."""
    rows = []
    for index, item in enumerate(page.get("items", []), start=1):
        track = item.get("track") or {}
        artists = track.get("artists") or []
        album = track.get("album") or {}
        context = item.get("context") or {}
        rows.append(
            {
                "played_at_text": item.get("played_at"),
                "played_at": _parse_time(item.get("played_at")),
                "track_id": track.get("id"),
                "track_name": track.get("name"),
                "artist_id": artists[0].get("id") if artists else None,
                "artist_name": artists[0].get("name") if artists else None,
                "artist_ids": [a.get("id") for a in artists],
                "artist_names": [a.get("name") for a in artists],
                "album_id": album.get("id"),
                "album_name": album.get("name"),
                "duration_ms": track.get("duration_ms"),
                "isrc": (track.get("external_ids") or {}).get("isrc"),
                "context_type": context.get("type"),
                "context_uri": context.get("uri"),
                "file_row": index,
            }
        )
    frame = pl.DataFrame(rows, schema=API_PLAY_SCHEMA)
    return frame.with_columns(name_key=name_key(pl.col("artist_name"), pl.col("track_name")))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def track_row(track: dict[str, Any]) -> dict[str, Any]:
    """A /tracks/{id} object as a row of raw.spotify_tracks."""
    artists = track.get("artists") or []
    return {
        "track_id": track.get("id"),
        "track_name": track.get("name"),
        "duration_ms": track.get("duration_ms"),
        "popularity": track.get("popularity"),
        "explicit": track.get("explicit"),
        "isrc": (track.get("external_ids") or {}).get("isrc"),
        "album_id": (track.get("album") or {}).get("id"),
        "artist_ids": [a.get("id") for a in artists],
        "artist_names": [a.get("name") for a in artists],
    }


def album_row(album: dict[str, Any]) -> dict[str, Any]:
    """An /albums/{id} object as a row of raw.spotify_albums."""
    return {
        "album_id": album.get("id"),
        "album_name": album.get("name"),
        "album_type": album.get("album_type"),
        "artist_names": [a.get("name") for a in album.get("artists") or []],
        "label": album.get("label"),
        "popularity": album.get("popularity"),
        "release_date": album.get("release_date"),
        "release_date_precision": album.get("release_date_precision"),
        "total_tracks": album.get("total_tracks"),
    }


def artist_row(artist: dict[str, Any]) -> dict[str, Any]:
    """An /artists/{id} object as a row of raw.spotify_artists."""
    followers = artist.get("followers")
    return {
        "artist_id": artist.get("id"),
        "artist_name": artist.get("name"),
        "popularity": artist.get("popularity"),
        "followers": followers.get("total") if isinstance(followers, dict) else None,
        "genres": artist.get("genres"),
    }
