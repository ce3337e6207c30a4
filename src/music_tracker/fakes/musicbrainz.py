"""A fake MusicBrainz web service on 127.0.0.1, built from the documented JSON shapes.

Endpoints: URL lookup with artist relationships (``/ws/2/url?resource=...``), ISRC lookup
with artist credits, artist search (scored), artist lookup (area, begin/end area, life
span, genres, tags) and area lookup with area relationships (the parent as a backward
"part of"). Like the real service it measures the rate of requests and answers 503 while
it is over one a second, and it logs every request with its arrival time.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from music_tracker.fakes.server import LoopbackServer

MIN_INTERVAL_S = 1.0
# The rate is measured over this many intervals. Not the gap between two arrivals: requests
# a client spaced a second apart reach a busy machine's server together when they queued on
# the way (30 ms apart, seen 2 ms apart). A client that waits for each answer and spaces
# its requests ``interval`` apart has at most RATE_WINDOW + 2 arrivals in any RATE_WINDOW
# intervals (each arrives after it was sent and before the next is sent).
RATE_WINDOW = 10
RATE_SLACK = 2


@dataclass
class FakeArea:
    area_id: str
    name: str
    area_type: str
    parent: str | None = None
    iso_3166_1: str | None = None
    iso_3166_2: str | None = None


@dataclass
class FakeArtist:
    mbid: str
    name: str
    artist_type: str = "Group"
    gender: str | None = None
    area: str | None = None
    begin_area: str | None = None
    spotify_id: str | None = None
    isrcs: list[str] = field(default_factory=list)
    genres: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggedRequest:
    at: float
    path: str
    status: int
    user_agent: str


def _uuid(text: str) -> str:
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))


def standard_areas() -> dict[str, FakeArea]:
    """A small real-shaped hierarchy: countries, subdivisions, a county, cities, a district."""
    areas = [
        FakeArea(_uuid("US"), "United States", "Country", None, "US"),
        FakeArea(_uuid("US-CA"), "California", "Subdivision", _uuid("US"), None, "US-CA"),
        FakeArea(_uuid("LA County"), "Los Angeles County", "County", _uuid("US-CA")),
        FakeArea(_uuid("Los Angeles"), "Los Angeles", "City", _uuid("LA County")),
        FakeArea(_uuid("Hollywood"), "Hollywood", "District", _uuid("Los Angeles")),
        FakeArea(_uuid("GB"), "United Kingdom", "Country", None, "GB"),
        FakeArea(_uuid("GB-ENG"), "England", "Subdivision", _uuid("GB"), None, "GB-ENG"),
        FakeArea(_uuid("Manchester"), "Manchester", "City", _uuid("GB-ENG")),
        FakeArea(_uuid("CA"), "Canada", "Country", None, "CA"),
        FakeArea(_uuid("CA-ON"), "Ontario", "Subdivision", _uuid("CA"), None, "CA-ON"),
        FakeArea(_uuid("Toronto"), "Toronto", "City", _uuid("CA-ON")),
        FakeArea(_uuid("SE"), "Sweden", "Country", None, "SE"),
        FakeArea(_uuid("Stockholm"), "Stockholm", "City", _uuid("SE")),
        FakeArea(_uuid("JP"), "Japan", "Country", None, "JP"),
        FakeArea(_uuid("BR"), "Brazil", "Country", None, "BR"),
    ]
    return {area.area_id: area for area in areas}


class FakeMusicBrainz(LoopbackServer):
    """The fake service; use as a context manager to serve it on a free port."""

    def __init__(
        self,
        artists: list[FakeArtist],
        areas: dict[str, FakeArea] | None = None,
        *,
        min_interval_s: float = MIN_INTERVAL_S,
    ) -> None:
        # the real service's rule is one request per second; tests compress it (with the
        # client's interval compressed alike) and one test keeps the real second
        self.min_interval_s = min_interval_s
        self.artists = {a.mbid: a for a in artists}
        self.areas = areas or standard_areas()
        self.log: list[LoggedRequest] = []
        self.fail_next: list[int] = []  # statuses to answer with, regardless of the path
        self.slow_s = 0.0
        self.slow_next = 0  # how many of the next answers come after slow_s
        # a busy machine: every ``late_every``-th request reaches the service ``late_s``
        # after it was sent, so that it arrives just before the next one (0: never)
        self.late_s = 0.0
        self.late_every = 0
        self._seen = 0
        self._recent: deque[float] = deque()  # arrivals within the rate's window
        self._lock = threading.Lock()

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/ws/2"

    @property
    def rate_window_s(self) -> float:
        return RATE_WINDOW * self.min_interval_s

    def most_requests_in(self, window_s: float) -> int:
        """The most requests that arrived within any ``window_s`` seconds."""
        times = sorted(r.at for r in self.log)
        return max(
            (bisect.bisect_right(times, at + window_s) - i for i, at in enumerate(times)),
            default=0,
        )

    def handle(self, path: str, query: dict[str, str], user_agent: str) -> tuple[int, Any]:
        with self._lock:
            self._seen += 1
            late = self.late_every and self._seen % self.late_every == 0
        if late:
            time.sleep(self.late_s)
        with self._lock:
            now = time.monotonic()
            while self._recent and now - self._recent[0] >= self.rate_window_s:
                self._recent.popleft()
            too_fast = self.min_interval_s > 0 and len(self._recent) >= RATE_WINDOW + RATE_SLACK
            self._recent.append(now)
            status, body = (
                (503, {"error": "Your requests are exceeding the allowable rate limit."})
                if too_fast
                else self._answer(path, query, user_agent)
            )
            self.log.append(LoggedRequest(now, path, status, user_agent))
        if self.slow_next > 0:
            self.slow_next -= 1
            time.sleep(self.slow_s)
        return status, body

    def _answer(self, path: str, query: dict[str, str], user_agent: str) -> tuple[int, Any]:
        if self.fail_next:
            return self.fail_next.pop(0), {"error": "injected"}
        if not user_agent or query.get("fmt") != "json":
            return 400, {"error": "a User-Agent and fmt=json are required"}
        parts = [p for p in path.removeprefix("/ws/2/").split("/") if p]
        if parts == ["url"]:
            return self._url(query.get("resource", ""))
        if len(parts) == 2 and parts[0] == "isrc":
            return self._isrc(parts[1])
        if parts == ["artist"]:
            return 200, self._search(query.get("query", ""))
        if len(parts) == 2 and parts[0] == "artist":
            artist = self.artists.get(parts[1])
            return (200, self._artist(artist)) if artist else (404, {"error": "Not Found"})
        if len(parts) == 2 and parts[0] == "area":
            area = self.areas.get(parts[1])
            return (200, self._area(area)) if area else (404, {"error": "Not Found"})
        return 404, {"error": "Not Found"}

    def _url(self, resource: str) -> tuple[int, Any]:
        spotify_id = resource.rsplit("/", 1)[-1]
        for artist in self.artists.values():
            if artist.spotify_id and artist.spotify_id == spotify_id:
                return 200, {
                    "id": _uuid(resource),
                    "resource": resource,
                    "relations": [
                        {
                            "type": "free streaming",
                            "target-type": "artist",
                            "direction": "backward",
                            "artist": _artist_ref(artist),
                        }
                    ],
                }
        return 404, {"error": "Not Found"}

    def _isrc(self, isrc: str) -> tuple[int, Any]:
        recordings = [
            {
                "id": _uuid(f"recording:{isrc}"),
                "title": f"Recording {isrc}",
                "artist-credit": [{"name": a.name, "joinphrase": "", "artist": _artist_ref(a)}],
            }
            for a in self.artists.values()
            if isrc in a.isrcs
        ]
        if not recordings:
            return 404, {"error": "Not Found"}
        return 200, {"isrc": isrc, "recordings": recordings}

    def _search(self, query: str) -> dict[str, Any]:
        wanted = query.removeprefix("artist:").strip('"').replace('\\"', '"').casefold()
        scored = []
        for artist in self.artists.values():
            name = artist.name.casefold()
            score = (
                100
                if name == wanted
                else 85
                if wanted and (wanted in name or name in wanted)
                else 0
            )
            if score:
                scored.append({**_artist_ref(artist), "type": artist.artist_type, "score": score})
        scored.sort(key=lambda a: (-a["score"], a["id"]))
        return {
            "created": "2026-01-01T00:00:00.000Z",
            "count": len(scored),
            "offset": 0,
            "artists": scored,
        }

    def _artist(self, artist: FakeArtist) -> dict[str, Any]:
        return {
            **_artist_ref(artist),
            "type": artist.artist_type,
            "gender": artist.gender,
            "area": self._area_ref(artist.area),
            "begin-area": self._area_ref(artist.begin_area),
            "end-area": None,
            "life-span": {"begin": "1999", "end": None, "ended": False},
            "genres": [
                {"name": g, "count": 10 - i, "id": _uuid(g)} for i, g in enumerate(artist.genres)
            ],
            "tags": [{"name": t, "count": 5 - i} for i, t in enumerate(artist.tags)],
            "aliases": [],
        }

    def _area_ref(self, area_id: str | None) -> dict[str, Any] | None:
        area = self.areas.get(area_id or "")
        if area is None:
            return None
        ref: dict[str, Any] = {
            "id": area.area_id,
            "name": area.name,
            "sort-name": area.name,
            "type": area.area_type,
        }
        if area.iso_3166_1:
            ref["iso-3166-1-codes"] = [area.iso_3166_1]
        return ref

    def _area(self, area: FakeArea) -> dict[str, Any]:
        body = self._area_ref(area.area_id) or {}
        if area.iso_3166_2:
            body["iso-3166-2-codes"] = [area.iso_3166_2]
        relations = []
        if area.parent:
            relations.append(
                {
                    "type": "part of",
                    "direction": "backward",
                    "target-type": "area",
                    "area": self._area_ref(area.parent),
                }
            )
        for child in self.areas.values():
            if child.parent == area.area_id:
                relations.append(
                    {
                        "type": "part of",
                        "direction": "forward",
                        "target-type": "area",
                        "area": self._area_ref(child.area_id),
                    }
                )
        body["relations"] = relations
        return body


def _artist_ref(artist: FakeArtist) -> dict[str, Any]:
    return {"id": artist.mbid, "name": artist.name, "sort-name": artist.name, "disambiguation": ""}


def _handler(fake: FakeMusicBrainz) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            status, body = fake.handle(url.path, query, self.headers.get("User-Agent", ""))
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            return

    return Handler
