"""The MusicBrainz web service client, with the service's rules built in.

* At most one request per second across the whole process: every instance shares one
  lock and one clock (``_RATE``), so two clients in two threads still wait for each other.
* A User-Agent naming the app, its version and the owner's contact (setting ``contact``).
* JSON (``fmt=json``); 503 (sent when over the limit) is retried with backoff by the shared
  HTTP layer, never recorded as "not found".
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import httpx

from music_tracker import __version__
from music_tracker.sources.http import Budget, HttpClient, NotFound


class _RateLimit:
    """One request per ``interval_s`` for the whole process, and when each was let go."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = 0.0
        # The spacing is the client's to keep, and only the client sees it: requests sent a
        # second apart can reach the service together when they queued on the way (a busy
        # machine). Bounded: the latest few thousand, a few tens of kilobytes.
        self.sent: deque[float] = deque(maxlen=4096)

    def wait(self, interval_s: float) -> None:
        with self.lock:
            delay = self.last + interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.last = time.monotonic()
            self.sent.append(self.last)


_RATE = _RateLimit()


def send_times(since: float = 0.0) -> list[float]:
    """When this process let MusicBrainz requests go (``time.monotonic()``), oldest first,
    from ``since`` on: retries included, the latest 4,096 at most."""
    with _RATE.lock:
        return [at for at in _RATE.sent if at >= since]


# a little over one second, so network jitter never makes two requests arrive closer
MIN_INTERVAL_S = 1.05


def user_agent(contact: str) -> str:
    """``music-tracker/<version> ( <contact> )``, the form MusicBrainz asks for."""
    return f"music-tracker/{__version__} ( {contact or 'no contact configured'} )"


class _RateLimitedTransport(httpx.BaseTransport):
    """Waits for the process-wide slot before every request, retries included."""

    def __init__(self, inner: httpx.BaseTransport, interval_s: float) -> None:
        self.inner = inner
        self.interval_s = interval_s

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _RATE.wait(self.interval_s)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class MusicBrainzClient:
    """Lookups the enrichment needs; each returns parsed JSON or raises ``NotFound``."""

    def __init__(
        self,
        base_url: str,
        contact: str,
        *,
        timeout_s: float,
        budget: Budget,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        from music_tracker.sources.http import tls_context

        transport = _RateLimitedTransport(httpx.HTTPTransport(verify=tls_context()), min_interval_s)
        self.http = HttpClient(
            base_url,
            timeout_s=timeout_s,
            budget=budget,
            headers={"User-Agent": user_agent(contact), "Accept": "application/json"},
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def _get(self, path: str, **params: Any) -> Any:
        return self.http.get_json(path, {**params, "fmt": "json"})

    def artist_by_spotify_id(self, spotify_artist_id: str) -> str | None:
        """The MBID linked to a Spotify artist URL, without any name matching."""
        try:
            body = self._get(
                "url",
                resource=f"https://open.spotify.com/artist/{spotify_artist_id}",
                inc="artist-rels",
            )
        except NotFound:
            return None
        for relation in body.get("relations", []):
            if relation.get("target-type") == "artist" and relation.get("artist"):
                return str(relation["artist"]["id"])
        return None

    def artist_by_isrc(self, isrc: str, artist_name: str) -> str | None:
        """The credited artist (matching ``artist_name`` when several) of an ISRC's recording."""
        try:
            body = self._get(f"isrc/{isrc}", inc="artist-credits")
        except NotFound:
            return None
        credits = [
            credit["artist"]
            for recording in body.get("recordings", [])
            for credit in recording.get("artist-credit", [])
            if isinstance(credit, dict) and credit.get("artist")
        ]
        wanted = artist_name.casefold()
        for artist in credits:
            if artist.get("name", "").casefold() == wanted:
                return str(artist["id"])
        return str(credits[0]["id"]) if credits else None

    def search_artist(self, name: str) -> list[dict[str, Any]]:
        """Scored candidates for a name (Lucene query on the artist field)."""
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        body = self._get("artist", query=f'artist:"{escaped}"', limit=10)
        artists: list[dict[str, Any]] = body.get("artists", [])
        return artists

    def artist(self, mbid: str) -> dict[str, Any]:
        """The artist with area, begin/end area, type, gender, life span, genres, tags."""
        body: dict[str, Any] = self._get(f"artist/{mbid}", inc="genres+tags+aliases")
        return body

    def area(self, area_id: str) -> dict[str, Any]:
        """An area with its relations (the parent is a backward "part of")."""
        body: dict[str, Any] = self._get(f"area/{area_id}", inc="area-rels")
        return body
