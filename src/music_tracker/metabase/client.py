"""A small Metabase API client: waiting for a starting instance, first-user setup, login.

Built on the project's HTTP layer (httpx with retries and backoff). Authentication is an
API key (``X-API-Key``, Metabase 0.49+) when one is configured, otherwise a session from the
admin e-mail and password (``X-Metabase-Session``), closed again when the client closes.
Credentials are never printed or logged: messages name the setting, not its value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from music_tracker.settings import Settings
from music_tracker.sources.http import Budget, Forbidden, HttpClient, HttpError, Unauthorized

log = logging.getLogger(__name__)

# Every request of one provision counts; a few thousand is far above what 14 dashboards need.
REQUESTS_PER_RUN = 5_000


class MetabaseError(Exception):
    """Metabase could not do what was asked; the message says what to do."""


class MetabaseClient:
    """JSON calls against one Metabase instance (``settings.metabase_url``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        poll_s: float = 2.0,
    ) -> None:
        if not settings.metabase_url:
            raise MetabaseError(
                "MUSIC_TRACKER_METABASE_URL is empty: set it to the address the pipeline "
                "reaches Metabase at (http://metabase:3000 in the compose stack)"
            )
        self.settings = settings
        self.url = settings.metabase_url.rstrip("/")
        self._sleep = sleep
        self._poll_s = poll_s
        self._session: str | None = None
        self._http = HttpClient(
            self.url,
            timeout_s=settings.http_timeout_s,
            budget=Budget(REQUESTS_PER_RUN),
            headers={"Accept": "application/json"},
            auth_header=self._auth,
        )

    # -- plumbing -------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        key = self.settings.metabase_api_key.get_secret_value()
        if key:
            return {"X-API-Key": key}
        if self._session:
            return {"X-Metabase-Session": self._session}
        return {}

    def close(self) -> None:
        if self._session and not self.settings.metabase_api_key.get_secret_value():
            try:
                self._http.request("DELETE", "/api/session/")
            except HttpError as exc:  # the session expires on its own
                log.debug("logout failed: %s", exc)
        self._http.close()

    def __enter__(self) -> MetabaseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """One API call; list answers wrapped in ``{"data": [...]}`` are unwrapped."""
        try:
            response = self._http.request(
                method,
                path,
                json=body,
                params={k: v for k, v in params.items() if v is not None} or None,
            )
        except Unauthorized:
            raise MetabaseError(self._refused()) from None
        except Forbidden as exc:
            raise MetabaseError(
                f"Metabase forbids {method} {path} ({exc}): the configured user or API key "
                "must belong to the Administrators group"
            ) from None
        except HttpError as exc:
            raise MetabaseError(f"{method} {path}: {exc}") from None
        if not response.content:
            return None
        data = response.json()
        if isinstance(data, dict) and "data" in data and isinstance(data["data"], list):
            return data["data"]
        return data

    def _refused(self) -> str:
        if self.settings.metabase_api_key.get_secret_value():
            return (
                f"Metabase at {self.url} refused the API key in MUSIC_TRACKER_METABASE_API_KEY:"
                " create a new one (Admin > Settings > Authentication > API keys, group "
                "Administrators) and set it"
            )
        return (
            f"Metabase at {self.url} refused the login of "
            f"MUSIC_TRACKER_METABASE_ADMIN_EMAIL={self.settings.metabase_admin_email!r}: set "
            "MUSIC_TRACKER_METABASE_ADMIN_PASSWORD to that admin's password (or an API key in "
            "MUSIC_TRACKER_METABASE_API_KEY) and run again"
        )

    # -- startup, setup, login ------------------------------------------------------------

    def wait_until_up(self, wait_s: float) -> None:
        """Wait for ``GET /api/health`` to answer ``ok``: a new Metabase takes a minute or
        two to start (connection refused, then 503 while it migrates its database)."""
        deadline = time.monotonic() + wait_s
        last = ""
        with httpx.Client(base_url=self.url, timeout=self.settings.http_timeout_s) as raw:
            while True:
                try:
                    response = raw.get("/api/health")
                    if response.status_code == 200 and response.json().get("status") == "ok":
                        return
                    last = f"HTTP {response.status_code} {response.text[:80].strip()}"
                except (httpx.TransportError, ValueError) as exc:
                    last = type(exc).__name__ if not str(exc) else str(exc)
                if time.monotonic() >= deadline:
                    raise MetabaseError(
                        f"Metabase at {self.url} is not up after {wait_s:.0f} s (last answer: "
                        f"{last}). A new instance needs a minute or two: check its container "
                        "log, then run `music-tracker metabase provision` again"
                    )
                log.info("waiting for Metabase at %s (%s)", self.url, last)
                self._sleep(self._poll_s)

    def sign_in(self, *, site_name: str) -> bool:
        """Authenticate; on a new instance create the first admin first. True when this
        call did the first-user setup."""
        if self.settings.metabase_api_key.get_secret_value():
            return False
        email = self.settings.metabase_admin_email
        password = self.settings.metabase_admin_password.get_secret_value()
        if not email or not password:
            raise MetabaseError(
                "set MUSIC_TRACKER_METABASE_ADMIN_EMAIL and MUSIC_TRACKER_METABASE_ADMIN_PASSWORD"
                " (the admin provision creates on a new Metabase, or logs in as), or "
                "MUSIC_TRACKER_METABASE_API_KEY"
            )
        properties = self.call("GET", "/api/session/properties")
        token = properties.get("setup-token")
        set_up_before = bool(properties.get("has-user-setup"))
        if token and not set_up_before:
            body = {
                "token": token,
                "user": {
                    "email": email,
                    "password": password,
                    "first_name": "Music",
                    "last_name": "Tracker",
                },
                "prefs": {"site_name": site_name, "allow_tracking": False},
            }
            try:
                answer = self._http.request("POST", "/api/setup/", json=body).json()
            except (Forbidden, HttpError) as exc:
                if "403" not in str(exc):
                    raise MetabaseError(f"first-user setup failed: {exc}") from None
                log.info("setup was done meanwhile by someone else; logging in")
                set_up_before = True
            else:
                self._session = str(answer["id"])
                return True
        try:
            answer = self._http.request(
                "POST", "/api/session/", json={"username": email, "password": password}
            ).json()
        except (Unauthorized, HttpError) as exc:
            if isinstance(exc, Unauthorized) or " 400 " in f" {exc} " or "401" in str(exc):
                raise MetabaseError(
                    self._refused()
                    + (
                        " (this Metabase was set up before, by someone else or by hand)"
                        if set_up_before
                        else ""
                    )
                ) from None
            raise MetabaseError(f"login failed: {exc}") from None
        self._session = str(answer["id"])
        return False

    @property
    def session_id(self) -> str | None:
        return self._session
