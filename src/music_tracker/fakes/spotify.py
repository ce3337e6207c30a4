"""A fake Spotify: accounts service and Web API on 127.0.0.1, shaped like a 2026
development-mode app sees them.

* A listening history advances with a simulated clock (``advance``); the ground truth is
  ``plays``. ``/v1/me/player/recently-played`` exposes only the last 50, newest first,
  with ``after``/``before`` cursors in Unix ms, like the real endpoint.
* Objects are development-mode shaped: no ``popularity``, ``followers``, ``genres``,
  ``label``, ``available_markets``, ``linked_from``; ``external_ids`` (ISRC) kept. Batch
  endpoints (``/v1/tracks?ids=`` ...) answer 403 unless ``extended_quota`` is set.
* Faults can be queued (``inject``) or drawn at random (``fault_rate``): 429 with
  Retry-After, 429 QUOTA_EXCEEDED, 500/502/503, slow responses, an expired access token,
  and ``invalid_grant`` on refresh.
* Accounts: ``/accounts/authorize`` redirects to the loopback redirect URI with a code;
  ``/accounts/api/token`` does the authorization-code (PKCE) and refresh-token grants.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from music_tracker.fakes.server import LoopbackServer
from music_tracker.simulation.listener import Track, build_catalogue

FAULTS = ("429", "quota", "500", "502", "503", "slow", "expire_token")
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)


@dataclass
class FakePlay:
    played_at: datetime  # end of play, ms precision, UTC
    track: Track


@dataclass
class RequestRecord:
    method: str
    path: str
    status: int
    at: float = field(default_factory=time.monotonic)


class FakeSpotify(LoopbackServer):
    """The fake services; use as a context manager to serve them on a free port."""

    def __init__(
        self,
        *,
        seed: int = 1,
        start: datetime = datetime(2026, 1, 5, 7, 0, tzinfo=UTC),
        plays_per_day: float = 300.0,
        artists: int = 150,
        extended_quota: bool = False,
        fault_rate: float = 0.0,
        retry_after_s: int = 1,
        slow_s: float = 0.2,
        rotate_refresh_tokens: bool = False,
        catalogue: list[Track] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.catalogue = catalogue or build_catalogue(random.Random(seed + 1), artists=artists)
        self._weights = [1 / (rank + 1) ** 0.8 for rank in range(len(self.catalogue))]
        self.clock = start
        self.plays: list[FakePlay] = []
        self.plays_per_day = plays_per_day
        self.extended_quota = extended_quota
        self.fault_rate = fault_rate
        self.retry_after_s = retry_after_s
        self.slow_s = slow_s
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.queued_faults: list[str] = []
        # faults of the accounts service's token endpoint, in order ("429", "500"-"503")
        self.token_faults: list[str] = []
        self.requests: list[RequestRecord] = []  # answered requests
        self.api_requests_received = 0  # counted on arrival, before any (slow) fault
        self.access_tokens: dict[str, datetime] = {}
        self.refresh_tokens: set[str] = set()
        self.revoked = False
        self.fail_next_refresh = False
        self._codes: dict[str, tuple[str, str]] = {}
        self._tracks = {t.track_id: t for t in self.catalogue}
        self._albums: dict[str, list[Track]] = {}
        self._artists: dict[str, str] = {}
        for track in self.catalogue:
            self._albums.setdefault(_album_id(track), []).append(track)
            self._artists[artist_id_for(track.artist)] = track.artist
        self._lock = threading.Lock()
        self._next_play_at = start

    # -- lifecycle -------------------------------------------------------------------
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def accounts_base(self) -> str:
        return f"{self.base_url}/accounts"

    # -- the listener ----------------------------------------------------------------
    def advance(self, delta: timedelta) -> list[FakePlay]:
        """Move the clock on; the listener plays tracks meanwhile. Returns the new plays."""
        with self._lock:
            self.clock += delta
            new: list[FakePlay] = []
            # mean pause between plays so that plays_per_day holds (tracks last ~215 s)
            mean_pause_s = max(1.0, 86_400 / self.plays_per_day - 215)
            while self._next_play_at <= self.clock:
                track = self.rng.choices(self.catalogue, weights=self._weights)[0]
                play = FakePlay(
                    self._next_play_at.replace(
                        microsecond=self._next_play_at.microsecond // 1000 * 1000
                    ),
                    track,
                )
                new.append(play)
                pause = timedelta(seconds=self.rng.expovariate(1 / mean_pause_s))
                self._next_play_at += timedelta(milliseconds=track.duration_ms) + pause
            self.plays.extend(new)
            return new

    def inject(self, *faults: str) -> None:
        """Queue faults for the next API requests, in order (see ``FAULTS``; ``ok`` holds
        a place for a request answered normally).

        ``invalid_grant`` applies to the next refresh at the accounts service instead.
        """
        for fault in faults:
            if fault == "invalid_grant":
                self.fail_next_refresh = True
            else:
                self.queued_faults.append(fault)

    def grant_tokens(self) -> tuple[str, str]:
        """Issue tokens directly (tests that do not exercise the PKCE flow)."""
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access_tokens[access] = self.clock + ACCESS_TOKEN_LIFETIME
        self.refresh_tokens.add(refresh)
        return access, refresh

    # -- responses -------------------------------------------------------------------
    def _next_fault(self) -> str | None:
        if self.queued_faults:
            return self.queued_faults.pop(0)
        if self.fault_rate and self.rng.random() < self.fault_rate:
            return self.rng.choice(FAULTS)
        return None

    def handle_api(
        self, path: str, query: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], Any]:
        self.api_requests_received += 1
        fault = self._next_fault()
        if fault == "slow":
            time.sleep(self.slow_s)
        elif fault == "expire_token":
            self.access_tokens.clear()
        elif fault == "429":
            return (
                429,
                {"Retry-After": str(self.retry_after_s)},
                _error(429, "API rate limit exceeded"),
            )
        elif fault == "quota":
            body = _error(429, "Quota exceeded")
            body["error"]["reason"] = "QUOTA_EXCEEDED"
            return 429, {}, body
        elif fault in ("500", "502", "503"):
            return int(fault), {}, _error(int(fault), "Server error")
        token = (authorization or "").removeprefix("Bearer ")
        expires = self.access_tokens.get(token)
        if expires is None or expires <= self.clock:
            return 401, {}, _error(401, "The access token expired")
        return self._route(path, query)

    def _route(self, path: str, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        parts = [p for p in path.removeprefix("/v1/").split("/") if p]
        if parts == ["me", "player", "recently-played"]:
            return 200, {}, self._recently_played(query)
        if len(parts) == 1 and parts[0] in ("tracks", "albums", "artists"):
            if not self.extended_quota:
                return 403, {}, _error(403, "Forbidden")
            ids = query.get("ids", "").split(",")
            return 200, {}, {parts[0]: [self._object(parts[0], i) for i in ids]}
        if len(parts) == 2 and parts[0] in ("tracks", "albums", "artists"):
            found = self._object(parts[0], parts[1])
            if found is None:
                return 404, {}, _error(404, "Resource not found")
            return 200, {}, found
        return 404, {}, _error(404, "Service not found")

    def _recently_played(self, query: dict[str, str]) -> dict[str, Any]:
        limit = min(max(int(query.get("limit", "20")), 1), 50)
        with self._lock:
            visible = [p for p in self.plays if p.played_at <= self.clock][-50:]
        visible.reverse()  # newest first
        if "after" in query:
            after = _from_ms(int(query["after"]))
            visible = [p for p in visible if p.played_at > after]
        if "before" in query:
            before = _from_ms(int(query["before"]))
            visible = [p for p in visible if p.played_at < before]
        page = visible[:limit]
        href = f"https://api.spotify.com/v1/me/player/recently-played?{urlencode(query)}"
        body: dict[str, Any] = {
            "items": [
                {
                    "track": self._track(p.track),
                    "played_at": p.played_at.strftime("%Y-%m-%dT%H:%M:%S.")
                    + f"{p.played_at.microsecond // 1000:03d}Z",
                    "context": _album_context(p.track),
                }
                for p in page
            ],
            "next": None,
            "cursors": None,
            "limit": limit,
            "href": href,
        }
        if page:
            newest, oldest = _to_ms(page[0].played_at), _to_ms(page[-1].played_at)
            body["cursors"] = {"after": str(newest), "before": str(oldest)}
            body["next"] = (
                f"https://api.spotify.com/v1/me/player/recently-played?before={oldest}&limit={limit}"
            )
        return body

    def _object(self, kind: str, item_id: str) -> dict[str, Any] | None:
        if kind == "tracks":
            track = self._tracks.get(item_id)
            return self._track(track) if track else None
        if kind == "albums":
            tracks = self._albums.get(item_id)
            return self._album(tracks) if tracks else None
        name = self._artists.get(item_id)
        return _artist(item_id, name) if name else None

    def _track(self, track: Track) -> dict[str, Any]:
        tracks = self._albums[_album_id(track)]
        return {
            "album": {**_album_base(track, len(tracks)), "artists": [_simple_artist(track.artist)]},
            "artists": [_simple_artist(track.artist)],
            "disc_number": 1,
            "duration_ms": track.duration_ms,
            "explicit": False,
            "external_ids": {"isrc": isrc_for(track.track_id)},
            "external_urls": {"spotify": f"https://open.spotify.com/track/{track.track_id}"},
            "href": f"https://api.spotify.com/v1/tracks/{track.track_id}",
            "id": track.track_id,
            "is_local": False,
            "is_playable": True,
            "name": track.name,
            "track_number": tracks.index(track) + 1,
            "type": "track",
            "uri": f"spotify:track:{track.track_id}",
        }

    def _album(self, tracks: list[Track]) -> dict[str, Any]:
        first = tracks[0]
        return {
            **_album_base(first, len(tracks)),
            "artists": [_simple_artist(first.artist)],
            "copyrights": [{"text": f"(P) {first.artist}", "type": "P"}],
            "external_ids": {"upc": str(abs(hash(_album_id(first))) % 10**12).zfill(12)},
            "tracks": {
                "href": f"https://api.spotify.com/v1/albums/{_album_id(first)}/tracks",
                "limit": 50,
                "next": None,
                "offset": 0,
                "previous": None,
                "total": len(tracks),
                "items": [],
            },
        }

    # -- accounts --------------------------------------------------------------------
    def handle_authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        code = secrets.token_urlsafe(16)
        self._codes[code] = (query.get("code_challenge", ""), query.get("redirect_uri", ""))
        redirect = urlencode({"code": code, "state": query.get("state", "")})
        target = f"{query.get('redirect_uri')}?{redirect}"
        return 302, {"Location": target}, None

    def handle_token(self, form: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if self.token_faults:
            fault = self.token_faults.pop(0)
            if fault == "429":
                return 429, {"Retry-After": "1"}, {"error": "rate_limited"}
            return int(fault), {}, {"error": "server_error"}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            challenge, redirect = self._codes.pop(form.get("code", ""), ("", ""))
            verifier = form.get("code_verifier", "")
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if not challenge or digest != challenge or redirect != form.get("redirect_uri"):
                return (
                    400,
                    {},
                    {"error": "invalid_grant", "error_description": "Invalid authorization code"},
                )
            access, refresh = self.grant_tokens()
            return 200, {}, _token_body(access, refresh)
        if grant == "refresh_token":
            if self.fail_next_refresh:
                self.fail_next_refresh = False
                self.revoked = True
            refresh = form.get("refresh_token", "")
            if self.revoked or refresh not in self.refresh_tokens:
                return (
                    400,
                    {},
                    {"error": "invalid_grant", "error_description": "Refresh token revoked"},
                )
            access, new_refresh = self.grant_tokens()
            if not self.rotate_refresh_tokens:
                self.refresh_tokens.discard(new_refresh)
                new_refresh = None  # type: ignore[assignment]
            return 200, {}, _token_body(access, new_refresh)
        return 400, {}, {"error": "unsupported_grant_type"}


def _handler(fake: FakeSpotify) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int, headers: dict[str, str], body: Any) -> None:
            # logged before the answer leaves: a client that has its answer finds it logged
            fake.requests.append(RequestRecord(self.command, self.path, status))
            payload = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/accounts/authorize":
                self._reply(*fake.handle_authorize(query))
            elif url.path.startswith("/v1/"):
                self._reply(*fake.handle_api(url.path, query, self.headers.get("Authorization")))
            else:
                self._reply(404, {}, _error(404, "not found"))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlparse(self.path).path == "/accounts/api/token":
                self._reply(*fake.handle_token(form))
            else:
                self._reply(404, {}, _error(404, "not found"))

        def log_message(self, *args: Any) -> None:
            return

    return Handler


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


def _token_body(access: str, refresh: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
        "scope": "user-read-recently-played",
    }
    if refresh:
        body["refresh_token"] = refresh
    return body


def _to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _stable_id(text: str) -> str:
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    number = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    out = []
    for _ in range(22):
        number, digit = divmod(number, 62)
        out.append(alphabet[digit])
    return "".join(out)


def _album_id(track: Track) -> str:
    return _stable_id(f"album:{track.artist}:{track.album}")


def artist_id_for(name: str) -> str:
    """The fake's Spotify artist id for an artist name (stable, 22 base-62 characters)."""
    return _stable_id(f"artist:{name}")


def isrc_for(track_id: str) -> str:
    """The fake's ISRC for a track id (stable)."""
    serial = int(hashlib.md5(track_id.encode()).hexdigest(), 16) % 10**7
    return f"QZ{_stable_id(track_id)[:3].upper()}{serial:07d}"


def _simple_artist(name: str) -> dict[str, Any]:
    artist_id = artist_id_for(name)
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
        "href": f"https://api.spotify.com/v1/artists/{artist_id}",
        "id": artist_id,
        "name": name,
        "type": "artist",
        "uri": f"spotify:artist:{artist_id}",
    }


def _artist(artist_id: str, name: str) -> dict[str, Any]:
    return {**_simple_artist(name), "images": []}


def _album_base(track: Track, total_tracks: int) -> dict[str, Any]:
    album_id = _album_id(track)
    year = 1990 + int(hashlib.md5(album_id.encode()).hexdigest(), 16) % 36
    return {
        "album_type": "album",
        "total_tracks": total_tracks,
        "external_urls": {"spotify": f"https://open.spotify.com/album/{album_id}"},
        "href": f"https://api.spotify.com/v1/albums/{album_id}",
        "id": album_id,
        "images": [],
        "name": track.album,
        "release_date": str(year),
        "release_date_precision": "year",
        "type": "album",
        "uri": f"spotify:album:{album_id}",
    }


def _album_context(track: Track) -> dict[str, Any]:
    album_id = _album_id(track)
    return {
        "type": "album",
        "href": f"https://api.spotify.com/v1/albums/{album_id}",
        "external_urls": {"spotify": f"https://open.spotify.com/album/{album_id}"},
        "uri": f"spotify:album:{album_id}",
    }
