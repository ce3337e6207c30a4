"""``music-tracker enrich``: MusicBrainz facts for artists not yet looked up.

Which artists: the ones the star schema knows (``intermediate.int_artists``, built by the
last ``transform``), most played first, keyed ``spotify:<artist id>`` or
``name:<normalized name>`` exactly as the model joins them. How an artist is found, in
order: the Spotify artist URL relationship (no name matching), an ISRC of one of its
tracks, then a name search whose best candidate must score at least the threshold (ties:
exact name first, then the smaller MBID, so reruns agree). Then the artist itself (area,
type, gender, life span, genres, tags) and its areas up to the country.

Every finished lookup is committed at once, so the run can be stopped at any moment and
resumed. A miss is recorded and retried only after ``musicbrainz_retry_days``; a failing
artist (5xx after retries, timeouts) is logged and skipped without being recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from music_tracker import warehouse
from music_tracker.lock import writer_lock
from music_tracker.settings import Settings
from music_tracker.sources.http import BudgetExhausted, HttpError, QuotaExceeded, RateLimited
from music_tracker.sources.musicbrainz.client import MusicBrainzClient

log = logging.getLogger(__name__)

_MAX_AREA_DEPTH = 8
_STOP_AREA_TYPES = {"Country"}


class ArtistsUnknown(Exception):
    """No star schema yet: enrichment reads the artists the last transform built."""


@dataclass
class Pending:
    lookup_key: str
    artist_id: str | None
    artist_name: str
    isrcs: list[str] = field(default_factory=list)


@dataclass
class MusicBrainzSummary:
    looked_up: int = 0
    found: int = 0
    missing: int = 0
    failed: int = 0
    areas: int = 0
    matched_by: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "looked_up": self.looked_up,
            "found": self.found,
            "missing": self.missing,
            "failed": self.failed,
            "areas_fetched": self.areas,
            "matched_by": self.matched_by,
            "stopped": self.stopped,
        }


def pending_artists(
    con: duckdb.DuckDBPyConnection, retry_after: timedelta, limit: int | None
) -> list[Pending]:
    """Artists never looked up, or missed longer ago than ``retry_after``; most played first."""
    exists = con.execute(  # a view: the artists of the plays the last transform conformed
        "select count(*) from information_schema.tables"
        " where table_schema = 'intermediate' and table_name = 'int_artists'"
    ).fetchone()
    if not exists or not exists[0]:
        raise ArtistsUnknown(
            "the star schema has not been built yet: run `music-tracker transform` first"
        )
    try:
        rows = con.execute(
            """
            with latest as (
                select lookup_key, status, looked_up_at from raw.musicbrainz_artists
                qualify row_number() over (partition by lookup_key order by looked_up_at desc) = 1
            ),
            track_artists as (
                select credited.artist_id, tracks.isrc
                from raw.spotify_tracks as tracks, unnest(tracks.artist_ids) as credited (artist_id)
                where tracks.isrc is not null
                union all
                select artist_id, isrc from raw.spotify_api_plays where isrc is not null
            ),
            isrcs as (
                select artist_id, list(distinct isrc order by isrc) as isrcs
                from track_artists group by artist_id
            )
            select artists.musicbrainz_lookup_key, artists.artist_id,
                   artists.unmasked_artist_name, coalesce(isrcs.isrcs, [])
            from intermediate.int_artists as artists
            left join latest on artists.musicbrainz_lookup_key = latest.lookup_key
            left join isrcs on artists.artist_id = isrcs.artist_id
            where latest.lookup_key is null
               or (latest.status = 'missing' and latest.looked_up_at < $cutoff)
            order by artists.play_count desc, artists.musicbrainz_lookup_key
            """
            + ("limit $limit" if limit else ""),
            {"cutoff": datetime.now(UTC) - retry_after, **({"limit": limit} if limit else {})},
        ).fetchall()
    except duckdb.CatalogException as exc:
        # the view reads tables the star schema builds: a build that was interrupted (or
        # failed) may have left one missing until the next build makes it again
        raise ArtistsUnknown(
            f"the star schema is incomplete ({str(exc).splitlines()[0]}): run"
            " `music-tracker transform`"
        ) from None
    return [Pending(key, artist_id, name, list(isrcs)[:3]) for key, artist_id, name, isrcs in rows]


Writer = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


def enrich_artists(
    writer: Writer,
    client: MusicBrainzClient,
    pending: list[Pending],
    *,
    min_score: int,
    known_areas: set[str],
    on_artist: Callable[[str], None] | None = None,
) -> MusicBrainzSummary:
    """Look up each pending artist and the areas it needs; store each as it is done.

    The lookups (a second or more each, MusicBrainz allows one request a second) happen
    with the warehouse closed: ``writer()`` opens it only to store one artist and its new
    areas in one transaction, so an hour-long run never keeps another writer (a scheduled
    poll) out for more than a moment.
    """
    summary = MusicBrainzSummary()
    for artist in pending:
        if on_artist:
            on_artist(artist.artist_name)
        try:
            found = _resolve(client, artist, min_score)
            areas: list[dict[str, Any]] = []
            body, matched_by = None, None
            if found is not None:
                mbid, matched_by = found
                body = client.artist(mbid)
                areas = _walk_areas(client, body, known_areas)
            with writer() as con, warehouse.transaction(con):
                for area in areas:
                    warehouse.insert_row(con, "raw.musicbrainz_areas", **area)
                _store_artist(con, artist.lookup_key, body, matched_by)
            known_areas.update(area["area_id"] for area in areas)
            if matched_by is None:
                summary.missing += 1
            else:
                summary.areas += len(areas)
                summary.found += 1
                summary.matched_by[matched_by] = summary.matched_by.get(matched_by, 0) + 1
            summary.looked_up += 1
        except (BudgetExhausted, QuotaExceeded, RateLimited) as exc:
            summary.stopped = str(exc)
            break
        except HttpError as exc:
            summary.failed += 1
            log.warning("MusicBrainz lookup of %s failed, skipped: %s", artist.artist_name, exc)
    return summary


def stored_area_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {row[0] for row in con.execute("select area_id from raw.musicbrainz_areas").fetchall()}


def _resolve(client: MusicBrainzClient, artist: Pending, min_score: int) -> tuple[str, str] | None:
    if artist.artist_id:
        mbid = client.artist_by_spotify_id(artist.artist_id)
        if mbid:
            return mbid, "spotify_url"
    for isrc in artist.isrcs:
        mbid = client.artist_by_isrc(isrc, artist.artist_name)
        if mbid:
            return mbid, "isrc"
    candidates = [
        c for c in client.search_artist(artist.artist_name) if int(c.get("score", 0)) >= min_score
    ]
    if not candidates:
        return None
    wanted = artist.artist_name.casefold()
    best = min(
        candidates,
        key=lambda c: (-int(c.get("score", 0)), c.get("name", "").casefold() != wanted, c["id"]),
    )
    return str(best["id"]), "search"


def _walk_areas(
    client: MusicBrainzClient, artist: dict[str, Any], known: set[str]
) -> list[dict[str, Any]]:
    """Fetch the artist's areas and their parents up to the country: the rows to store."""
    rows: list[dict[str, Any]] = []
    seen = set(known)
    for key in ("area", "begin-area", "end-area"):
        area_id = (artist.get(key) or {}).get("id")
        for _ in range(_MAX_AREA_DEPTH):
            if not area_id or area_id in seen:
                break
            area = client.area(area_id)
            parent = _parent(area)
            rows.append(
                {
                    "area_id": area_id,
                    "area_name": area.get("name"),
                    "area_type": area.get("type"),
                    "iso_3166_1": (area.get("iso-3166-1-codes") or [None])[0],
                    "iso_3166_2": (area.get("iso-3166-2-codes") or [None])[0],
                    "parent_area_id": parent,
                    "looked_up_at": datetime.now(UTC),
                }
            )
            seen.add(area_id)
            area_id = None if area.get("type") in _STOP_AREA_TYPES else parent
    return rows


def _parent(area: dict[str, Any]) -> str | None:
    """The area this one is part of: a "part of" relation pointing backward."""
    for relation in area.get("relations", []):
        if (
            relation.get("type") == "part of"
            and relation.get("direction") == "backward"
            and relation.get("area")
        ):
            return str(relation["area"]["id"])
    return None


def _store_artist(
    con: duckdb.DuckDBPyConnection, key: str, body: dict[str, Any] | None, matched_by: str | None
) -> None:
    if body is None:
        warehouse.insert_row(
            con,
            "raw.musicbrainz_artists",
            lookup_key=key,
            status="missing",
            looked_up_at=datetime.now(UTC),
        )
        return
    life = body.get("life-span") or {}

    def names(items: list[dict[str, Any]] | None) -> list[str]:
        ranked = sorted(items or [], key=lambda g: (-int(g.get("count", 0)), g.get("name", "")))
        return [g["name"] for g in ranked if g.get("name")]

    warehouse.insert_row(
        con,
        "raw.musicbrainz_artists",
        lookup_key=key,
        status="found",
        matched_by=matched_by,
        mbid=body.get("id"),
        artist_name=body.get("name"),
        artist_type=body.get("type"),
        gender=body.get("gender"),
        area_id=(body.get("area") or {}).get("id"),
        begin_area_id=(body.get("begin-area") or {}).get("id"),
        end_area_id=(body.get("end-area") or {}).get("id"),
        begin_date=life.get("begin"),
        end_date=life.get("end"),
        genres=names(body.get("genres")),
        tags=names(body.get("tags")),
        looked_up_at=datetime.now(UTC),
    )


class EnrichNotPossible(Exception):
    """Enrichment cannot start (no warehouse, no contact); the message says what to do."""


def locked_writer(settings: Settings) -> Writer:
    """A writer that takes the writer lock (``writer_wait_s``) and the warehouse only for
    each stored lookup: a run of an hour lets the scheduled polls in between (they are
    short; it waits for them). What the command uses; a flow already holds the lock."""

    @contextmanager
    def writer() -> Iterator[duckdb.DuckDBPyConnection]:
        with (
            writer_lock(settings.data_dir, "enrich", wait_s=settings.writer_wait_s),
            warehouse.connect(
                settings.warehouse_path,
                file_wait_s=settings.lock_wait_s,
                memory_limit=settings.duckdb_memory_limit,
            ) as con,
        ):
            yield con

    return writer


def run_enrichment(
    settings: Settings,
    *,
    limit: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_artist: Callable[[str], None] | None = None,
    writer: Writer | None = None,
) -> MusicBrainzSummary:
    """What ``music-tracker enrich`` and the scheduled flow run: look up at most ``limit``
    artists that are not enriched yet (misses are retried after the configured days).

    ``writer`` opens the warehouse for one short write (default: a plain connection; the
    command passes one that also takes the writer lock each time)."""
    from music_tracker.sources.http import Budget

    if not settings.warehouse_path.exists():
        raise EnrichNotPossible(
            f"no warehouse at {settings.warehouse_path}: run `music-tracker import` first"
        )
    if not settings.contact.strip():
        raise EnrichNotPossible(
            "MUSIC_TRACKER_CONTACT is not set: MusicBrainz asks every client to name a contact"
            " (an e-mail or a URL) in its User-Agent; set it in .env and run enrich again"
        )

    def connect() -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        return warehouse.connect(
            settings.warehouse_path,
            file_wait_s=settings.lock_wait_s,
            memory_limit=settings.duckdb_memory_limit,
        )

    writer = writer or connect
    client = MusicBrainzClient(
        settings.musicbrainz_base,
        settings.contact,
        timeout_s=settings.http_timeout_s,
        budget=Budget(settings.musicbrainz_requests_per_run),
        min_interval_s=settings.musicbrainz_min_interval_s,
    )
    try:
        with writer() as con:
            pending = pending_artists(con, timedelta(days=settings.musicbrainz_retry_days), limit)
            known_areas = stored_area_ids(con)
        if on_start:
            on_start(len(pending))
        return enrich_artists(
            writer,
            client,
            pending,
            min_score=settings.musicbrainz_min_score,
            known_areas=known_areas,
            on_artist=on_artist,
        )
    finally:
        client.close()
