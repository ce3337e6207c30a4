"""The Spotify Web API client: recently-played and single-item metadata lookups."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from music_tracker.sources.http import (
    Budget,
    Forbidden,
    HttpClient,
    HttpError,
    NotFound,
    Unauthorized,
)
from music_tracker.sources.spotify.auth import SpotifyAuth

log = logging.getLogger(__name__)

RECENTLY_PLAYED_LIMIT = 50


class SpotifyAuthError(HttpError):
    """The API refused the token even after a refresh."""


class SpotifyClient:
    """Spotify Web API at ``api_base`` with tokens from ``auth``."""

    def __init__(
        self,
        api_base: str,
        auth: SpotifyAuth,
        budget: Budget,
        *,
        timeout_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.auth = auth
        self._token: str | None = None
        self.http = HttpClient(
            api_base,
            timeout_s=timeout_s,
            budget=budget,
            auth_header=self._header,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def _header(self) -> dict[str, str]:
        if self._token is None:
            self._token = self.auth.access_token()
        return {"Authorization": f"Bearer {self._token}"}

    def get_response(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        """GET with one token refresh on 401, then a clear error."""
        try:
            return self.http.request("GET", path, params=params)
        except Unauthorized:
            log.debug("access token refused; refreshing once")
            self._token = self.auth.access_token(force_refresh=True)
            try:
                return self.http.request("GET", path, params=params)
            except Unauthorized as exc:
                raise SpotifyAuthError(
                    "Spotify refused a freshly refreshed token: run `music-tracker auth spotify`"
                ) from exc

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET and decode JSON (see :meth:`get_response`)."""
        return self.get_response(path, params).json()

    def recently_played(self, after_ms: int | None) -> httpx.Response:
        """The newest plays (at most 50), only those after ``after_ms`` when given.

        The raw response is returned so that it can be stored exactly as received.
        """
        params: dict[str, Any] = {"limit": RECENTLY_PLAYED_LIMIT}
        if after_ms is not None:
            params["after"] = after_ms
        return self.get_response("me/player/recently-played", params)

    def item(self, kind: str, item_id: str) -> dict[str, Any]:
        """One track, album or artist (``kind`` is tracks, albums or artists)."""
        body: dict[str, Any] = self.get(f"{kind}/{item_id}")
        return body

    def several(self, kind: str, ids: list[str]) -> list[dict[str, Any]] | None:
        """The batch endpoint, or None when the app may not use it (development mode)."""
        try:
            body = self.get(kind, {"ids": ",".join(ids)})
        except (Forbidden, NotFound):
            return None
        items: list[dict[str, Any]] = [item for item in body.get(kind, []) if item]
        return items
