"""Spotify authorization: Authorization Code with PKCE, tokens kept under ``state/``.

Spotify's rules as of 2026: redirect URIs must be loopback addresses
(``http://127.0.0.1:PORT/callback``), access tokens last 3600 s, a refresh may omit a new
refresh token (the old one stays valid), and refresh tokens expire six months after the
grant, after which a refresh answers ``400 invalid_grant``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import httpx

from music_tracker import files
from music_tracker.settings import Settings
from music_tracker.sources import http

SCOPES = "user-read-recently-played"
REFRESH_TOKEN_LIFETIME = timedelta(days=182)
EXPIRY_WARNING = timedelta(days=28)
_REFRESH_MARGIN = timedelta(seconds=60)
TOKEN_FILE = "spotify_token.json"


# requests one token call may make, its retries included
_TOKEN_BUDGET = 10


class ReauthorizeRequired(Exception):
    """The refresh token is gone or expired: the owner must run ``auth spotify`` again."""


@dataclass
class Token:
    """What Spotify's token endpoint gave, with the times that matter."""

    access_token: str
    refresh_token: str
    expires_at: datetime
    granted_at: datetime  # the authorization-code grant; refresh tokens die 6 months after
    scope: str = ""

    @property
    def refresh_expires_at(self) -> datetime:
        return self.granted_at + REFRESH_TOKEN_LIFETIME

    def to_json(self) -> str:
        data = asdict(self)
        data["expires_at"] = self.expires_at.isoformat()
        data["granted_at"] = self.granted_at.isoformat()
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Token:
        data = json.loads(text)
        data["expires_at"] = datetime.fromisoformat(data["expires_at"])
        data["granted_at"] = datetime.fromisoformat(data["granted_at"])
        return cls(**data)


class TokenStore:
    """The token file under ``state/``, written atomically with mode 0600."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / TOKEN_FILE

    def load(self) -> Token | None:
        if not self.path.exists():
            return None
        try:
            return Token.from_json(self.path.read_text())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            msg = (
                f"the Spotify token file {self.path} is damaged ({exc}): delete it and run "
                "`music-tracker auth spotify` again"
            )
            raise ReauthorizeRequired(msg) from None

    def save(self, token: Token) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        files.write_text(self.path, token.to_json())


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier and its S256 challenge (RFC 7636)."""
    verifier = secrets.token_urlsafe(64)[:128]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def authorize_url(
    accounts_base: str, client_id: str, redirect_uri: str, challenge: str, state: str
) -> str:
    query = urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
            "scope": SCOPES,
            "state": state,
        }
    )
    return f"{accounts_base.rstrip('/')}/authorize?{query}"


def code_from_redirect(url: str, expected_state: str) -> str:
    """The authorization code from the URL Spotify redirected the browser to."""
    query = parse_qs(urlparse(url.strip()).query)
    if "error" in query:
        raise ReauthorizeRequired(f"Spotify refused the authorization: {query['error'][0]}")
    if query.get("state", [""])[0] != expected_state:
        raise ReauthorizeRequired(
            "the redirect URL does not belong to this attempt (state differs)"
        )
    if "code" not in query:
        raise ReauthorizeRequired("the redirect URL has no ?code=: paste the whole address")
    return query["code"][0]


def wait_for_redirect(port: int, timeout_s: float) -> str | None:
    """Serve ``http://127.0.0.1:PORT/callback`` once; return the full redirect URL."""
    received: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not self.path.startswith("/callback"):
                self.send_response(404)
                self.end_headers()
                return
            received["url"] = f"http://127.0.0.1:{port}{self.path}"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Music Tracker is authorized. You can close this tab.\n")

        def log_message(self, *args: Any) -> None:
            return

    server = HTTPServer(("127.0.0.1", port), Handler)
    server.timeout = 0.5
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    try:
        while "url" not in received and datetime.now(UTC) < deadline:
            server.handle_request()
    finally:
        server.server_close()
    return received.get("url")


class SpotifyAuth:
    """Gets, stores and refreshes tokens against the accounts service at ``accounts_base``."""

    def __init__(
        self, accounts_base: str, client_id: str, store: TokenStore, timeout_s: float
    ) -> None:
        self.accounts_base = accounts_base.rstrip("/")
        self.client_id = client_id
        self.store = store
        self.timeout_s = timeout_s

    def exchange_code(self, code: str, verifier: str, redirect_uri: str) -> Token:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        body = self._token_request(data)
        now = datetime.now(UTC)
        token = Token(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            expires_at=now + timedelta(seconds=int(body.get("expires_in", 3600))),
            granted_at=now,
            scope=body.get("scope", ""),
        )
        self.store.save(token)
        return token

    def refresh(self, token: Token) -> Token:
        body = self._token_request(
            {
                "grant_type": "refresh_token",
                "refresh_token": token.refresh_token,
                "client_id": self.client_id,
            }
        )
        refreshed = Token(
            access_token=body["access_token"],
            # Spotify may omit a new refresh token: the old one stays valid
            refresh_token=body.get("refresh_token") or token.refresh_token,
            expires_at=datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 3600))),
            granted_at=token.granted_at,
            scope=body.get("scope", token.scope),
        )
        self.store.save(refreshed)
        return refreshed

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A valid access token, refreshed first when it expires within a minute."""
        token = self.store.load()
        if token is None:
            raise ReauthorizeRequired("no Spotify token yet: run `music-tracker auth spotify` once")
        if force_refresh or token.expires_at - _REFRESH_MARGIN <= datetime.now(UTC):
            token = self.refresh(token)
        return token.access_token

    def _token_request(self, data: dict[str, str]) -> dict[str, Any]:
        """POST to the token endpoint. Network errors, 429 and 5xx are retried by the HTTP
        layer and end as ``http.HttpError`` (try again later: the token is fine); only a
        refusal of the grant or the client asks for `auth spotify` again."""
        client = http.HttpClient(
            self.accounts_base, timeout_s=self.timeout_s, budget=http.Budget(_TOKEN_BUDGET)
        )
        try:
            with client:
                response = client.request("POST", "api/token", data=data)
        except http.HttpError as exc:
            refused = exc.response if isinstance(exc, http.ClientError) else None
            if isinstance(exc, http.Unauthorized) or (
                refused is not None and _error(refused) in ("invalid_client", "unauthorized_client")
            ):
                raise ReauthorizeRequired(
                    "Spotify does not know this app's client id: check "
                    "MUSIC_TRACKER_SPOTIFY_CLIENT_ID and run `music-tracker auth spotify`"
                ) from None
            if refused is not None and _error(refused) == "invalid_grant":
                raise ReauthorizeRequired(
                    "Spotify no longer accepts the stored refresh token (refresh tokens expire "
                    "six months after authorization): run `music-tracker auth spotify` again"
                ) from None
            if refused is not None:
                raise ReauthorizeRequired(
                    f"Spotify's token endpoint refused the request ({refused.status_code}, "
                    f"{_error(refused) or refused.text[:100]}): run `music-tracker auth spotify`"
                ) from None
            raise http.HttpError(f"Spotify's accounts service: {exc}") from None
        body: dict[str, Any] = response.json()
        return body


def _error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def expiry_warning(token: Token, now: datetime | None = None) -> str | None:
    """A warning when the refresh token expires within four weeks (or already has)."""
    now = now or datetime.now(UTC)
    left = token.refresh_expires_at - now
    if left <= timedelta(0):
        return "the Spotify authorization has expired: run `music-tracker auth spotify`"
    if left <= EXPIRY_WARNING:
        return (
            f"the Spotify authorization expires on {token.refresh_expires_at:%Y-%m-%d} "
            f"({left.days} days): run `music-tracker auth spotify` before then"
        )
    return None


def redirect_uri(port: int) -> str:
    return f"http://127.0.0.1:{port}/callback"


def authorize(
    settings: Settings, redirected: Callable[[str, str], str]
) -> tuple[SpotifyAuth, Token]:
    """``auth spotify``: the whole Authorization Code + PKCE exchange, tokens stored.

    ``redirected(url, redirect_uri)`` shows the owner the authorization address and
    returns the address the browser was sent to ('' when none came). ReauthorizeRequired
    says what went wrong (no client id, no redirect, a refusal)."""
    redirect = redirect_uri(settings.spotify_redirect_port)
    if not settings.spotify_client_id:
        raise ReauthorizeRequired(
            "setting MUSIC_TRACKER_SPOTIFY_CLIENT_ID is empty: create an app in Spotify's "
            f"developer dashboard with the redirect URI {redirect} and set its client id"
        )
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    url = authorize_url(
        settings.spotify_accounts_base, settings.spotify_client_id, redirect, challenge, state
    )
    received = redirected(url, redirect)
    if not received:
        raise ReauthorizeRequired(
            "no redirect arrived in time: run again, or use --paste on a server"
        )
    spotify = SpotifyAuth(
        settings.spotify_accounts_base,
        settings.spotify_client_id,
        TokenStore(settings.state_dir),
        settings.http_timeout_s,
    )
    token = spotify.exchange_code(code_from_redirect(received, state), verifier, redirect)
    return spotify, token
