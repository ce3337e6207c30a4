"""``music-tracker ingest``: one poll of Spotify's recently-played, then metadata for new ids.

A job above the sources: ``sources/spotify`` fetches and parses, ``importers`` lands and
stores; this runs one after the other.

Every poll asks for the newest plays without an ``after`` filter: the endpoint holds only
the last 50, and a play Spotify learns of late (offline listening synced hours later) is
among them although it is older than anything polled before; an ``after`` filter would
drop it. The natural key removes the repeats. The response is imported like any export
file (same de-duplication, one transaction) and kept in ``landing/`` as received, but only
when it brings plays not yet stored, so landing does not grow by a file every 10 minutes;
only then is the cursor (the newest play seen) moved. A crash anywhere repeats the poll.
A gap is recorded when a full page of 50 does not reach back to the newest stored play.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from music_tracker import files, warehouse
from music_tracker.importers.detect import Format
from music_tracker.importers.run import ImportOptions, run_import
from music_tracker.settings import Settings
from music_tracker.sources.http import Budget
from music_tracker.sources.spotify.auth import SpotifyAuth, TokenStore
from music_tracker.sources.spotify.client import SpotifyClient
from music_tracker.sources.spotify.enrich import EnrichSummary, enrich_metadata

log = logging.getLogger(__name__)

CURSOR_FILE = "spotify_cursor.json"
PAGE_SIZE = 50


@dataclass
class IngestSummary:
    """What one ingest run did."""

    fetched: int = 0
    new_plays: int = 0
    duplicates: int = 0
    gap: dict[str, str] | None = None
    cursor_after_ms: int | None = None
    enrichment: EnrichSummary = field(default_factory=EnrichSummary)
    stopped: str | None = None
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "new_plays": self.new_plays,
            "duplicates": self.duplicates,
            "gap": self.gap,
            "cursor_after_ms": self.cursor_after_ms,
            "enrichment": self.enrichment.as_dict(),
            "stopped": self.stopped,
            "requests": self.requests,
        }


class CursorStore:
    """The ``after`` cursor (Unix ms of the newest play stored), in ``state/``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / CURSOR_FILE

    def load(self) -> int | None:
        """The cursor; None when there is none or the file is damaged (then the newest
        stored play takes its place, which loses nothing: polls read the newest 50)."""
        if not self.path.exists():
            return None
        try:
            value = json.loads(self.path.read_text()).get("after_ms")
            return int(value) if value is not None else None
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning(
                "the cursor file %s is damaged (%s): using the newest stored play instead;"
                " the next poll writes it anew",
                self.path,
                exc,
            )
            return None

    def save(self, after_ms: int) -> None:
        files.write_text(self.path, json.dumps({"after_ms": after_ms}))


def make_client(
    settings: Settings, budget: Budget, transport: httpx.BaseTransport | None = None
) -> SpotifyClient:
    auth = SpotifyAuth(
        settings.spotify_accounts_base,
        settings.spotify_client_id,
        TokenStore(settings.state_dir),
        settings.http_timeout_s,
    )
    return SpotifyClient(
        settings.spotify_api_base,
        auth,
        budget,
        timeout_s=settings.http_timeout_s,
        transport=transport,
    )


def ingest(settings: Settings, *, enrich: bool = True) -> IngestSummary:
    """One poll and, budget permitting, metadata for ids not yet known."""
    budget = Budget(settings.spotify_requests_per_run)
    summary = IngestSummary()
    cursors = CursorStore(settings.state_dir)
    client = make_client(settings, budget)
    try:
        _poll(settings, client, cursors, summary)
        if enrich:
            with warehouse.connect(
                settings.warehouse_path,
                file_wait_s=settings.lock_wait_s,
                memory_limit=settings.duckdb_memory_limit,
            ) as con:
                summary.enrichment = enrich_metadata(con, client)
                summary.stopped = summary.enrichment.stopped
    finally:
        summary.requests = budget.used
        client.close()
    return summary


def _poll(
    settings: Settings, client: SpotifyClient, cursors: CursorStore, summary: IngestSummary
) -> None:
    cursor = cursors.load()
    reference = _from_ms(cursor) if cursor is not None else _newest_stored(settings)
    raw = client.recently_played(None)
    page = json.loads(raw.content)
    items = page.get("items", [])
    summary.fetched = len(items)
    times = [_parse(item["played_at"]) for item in items]
    gap = None
    if reference is not None and len(items) >= PAGE_SIZE and min(times) > reference:
        gap = (reference, min(times))
        summary.gap = {"from": reference.isoformat(), "to": min(times).isoformat()}
    if items:
        # one transaction: the poll's plays and the gap it found commit together
        with tempfile.TemporaryDirectory(prefix="poll-") as folder:
            received = Path(folder) / f"recently-played-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
            received.write_bytes(raw.content)
            options = ImportOptions(forced=Format.API, store_unchanged=False, api_gap=gap)
            result = run_import(settings, [received], options).as_dict()
        summary.new_plays = result["new_plays"]
        summary.duplicates = sum(result["duplicates"].values())
    if gap is not None:
        log.warning("plays may be missing between %s and %s", *gap)
    if times:
        newest = _to_ms(max(times))
        if cursor is None or newest > cursor:
            cursors.save(newest)
            cursor = newest
    summary.cursor_after_ms = cursor


def _newest_stored(settings: Settings) -> datetime | None:
    if not settings.warehouse_path.exists():
        return None
    with warehouse.connect(settings.warehouse_path, file_wait_s=settings.lock_wait_s) as con:
        (newest,) = con.execute(
            """
            select max(played_at) from (
                select played_at from raw.spotify_extended_history where play_id is not null
                union all select played_at from raw.spotify_api_plays
                union all select played_at from raw.spotify_account_data where play_id is not null
            )
            """
        ).fetchone()  # type: ignore[misc]
    return newest if isinstance(newest, datetime) else None


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)
