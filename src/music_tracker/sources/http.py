"""The HTTP layer every outside system uses: timeouts, retries, rate limits, a budget.

Built on httpx (the client) and stamina (retries with exponential backoff and jitter).
What is retried: network errors, 5xx, and 429 whose ``Retry-After`` is short enough to wait
for (the wait honours the header, clamped). What stops the run cleanly: a 429 asking for a
longer wait, Spotify's ``QUOTA_EXCEEDED``, and the per-run request budget. A 429 or 5xx is
never treated as "not found".
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import httpx
import stamina

log = logging.getLogger(__name__)

RETRY_ATTEMPTS = 5
# Longest Retry-After worth waiting for inside a run; longer ones end the run (the next
# scheduled run picks up, the cursor is unchanged).
MAX_RETRY_AFTER_S = 60.0


class HttpError(Exception):
    """A request failed for good; the message says what to do."""


class RateLimited(HttpError):
    """429 with a Retry-After longer than a run should wait."""

    def __init__(self, retry_after_s: float, url: str) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            f"rate limited by {url}: retry after {retry_after_s:.0f} s; "
            "the run stopped and the next scheduled run continues"
        )


class QuotaExceeded(HttpError):
    """Spotify's QUOTA_EXCEEDED: stop until later."""


class BudgetExhausted(HttpError):
    """The run used its request budget; the rest waits for the next run."""


class Unauthorized(HttpError):
    """401: the access token was refused."""


class NotFound(HttpError):
    """404: the object does not exist (a real miss, unlike 429 or 5xx)."""


class ClientError(HttpError):
    """Another 4xx: the request itself was refused; ``response`` says why."""

    def __init__(self, message: str, response: httpx.Response) -> None:
        self.response = response
        super().__init__(message)


class Forbidden(HttpError):
    """403 or 410: this app may not use the endpoint (e.g. development-mode batch calls)."""


class _Retryable(Exception):
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"{response.status_code} from {response.request.url}")


@dataclass
class Budget:
    """At most ``limit`` requests per run (retries count)."""

    limit: int
    used: int = 0

    def spend(self) -> None:
        if self.used >= self.limit:
            raise BudgetExhausted(
                f"request budget of {self.limit} for this run is used up; "
                "the rest is fetched by the next run"
            )
        self.used += 1


@cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: loading the CA bundle costs ~50 ms each time."""
    return ssl.create_default_context()


def retry_after_seconds(response: httpx.Response) -> float:
    """The Retry-After header in seconds (missing or unreadable: 1 s)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _retry_hook(error: Exception) -> bool | float:
    """stamina hook: retry network errors, 5xx and short 429s (waiting Retry-After)."""
    if isinstance(error, httpx.TransportError):
        return True
    if isinstance(error, _Retryable):
        if error.response.status_code == 429:
            return min(retry_after_seconds(error.response), MAX_RETRY_AFTER_S)
        return True
    return False


class HttpClient:
    """A JSON client for one service: base URL, default headers, timeout, budget."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        budget: Budget,
        headers: Mapping[str, str] | None = None,
        auth_header: Callable[[], Mapping[str, str]] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.budget = budget
        self._auth_header = auth_header
        self._client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout_s),
            headers=dict(headers or {}),
            transport=transport,
            verify=tls_context(),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and return its JSON, retrying what is worth retrying."""
        response = self.request("GET", path, params=params)
        return response.json()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One logical request; raises the HttpError subclasses above on failure."""
        _say_retries_in_words()
        try:
            for attempt in stamina.retry_context(
                on=_retry_hook,
                attempts=RETRY_ATTEMPTS,
                timeout=None,
                wait_initial=0.5,
                wait_max=30.0,
                wait_jitter=1.0,
            ):
                with attempt:
                    return self._send(method, path, **kwargs)
        except _Retryable as exc:
            response = exc.response
            if response.status_code == 429:
                raise RateLimited(
                    retry_after_seconds(response), str(response.request.url)
                ) from None
            raise HttpError(
                f"{response.status_code} from {response.request.url} after "
                f"{RETRY_ATTEMPTS} attempts; the service is failing, try again later"
            ) from None
        except httpx.TransportError as exc:
            raise HttpError(f"network error for {path}: {exc}; try again later") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.budget.spend()
        headers = dict(self._auth_header()) if self._auth_header else {}
        response = self._client.request(method, path.lstrip("/"), headers=headers, **kwargs)
        status = response.status_code
        if status == 429:
            if _is_quota_exceeded(response):
                raise QuotaExceeded(
                    f"{response.request.url}: QUOTA_EXCEEDED; the app's quota is used up, "
                    "the run stopped and later runs continue"
                )
            if retry_after_seconds(response) > MAX_RETRY_AFTER_S:
                raise RateLimited(retry_after_seconds(response), str(response.request.url))
            raise _Retryable(response)
        if status >= 500:
            raise _Retryable(response)
        if status == 401:
            raise Unauthorized(f"401 from {response.request.url}")
        if status == 404:
            raise NotFound(f"404 from {response.request.url}")
        if status in (403, 410):
            raise Forbidden(f"{status} from {response.request.url}")
        if status >= 400:
            raise ClientError(
                f"{status} from {response.request.url}: {response.text[:200]}", response
            )
        return response


def _is_quota_exceeded(response: httpx.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    reason = error.get("reason") if isinstance(error, dict) else body.get("reason")
    return reason == "QUOTA_EXCEEDED"


def _describe(cause: Exception) -> str:
    if isinstance(cause, _Retryable):
        return f"HTTP {cause.response.status_code} from {cause.response.request.url}"
    if isinstance(cause, httpx.TimeoutException):
        return f"no answer in time from {cause.request.url}"
    if isinstance(cause, httpx.TransportError):
        return f"network error ({cause})"
    return str(cause)


def _log_retry(details: stamina.instrumentation.RetryDetails) -> None:
    log.warning(
        "%s; trying again in %.1f s (retry %d of %d)",
        _describe(details.caused_by),
        details.wait_for,
        details.retry_num,
        RETRY_ATTEMPTS - 1,
    )


def _say_retries_in_words() -> None:
    """Log each retry as a sentence instead of stamina's structured event (once per process)."""
    if stamina.instrumentation.get_on_retry_hooks() != (_log_retry,):
        stamina.instrumentation.set_on_retry_hooks([_log_retry])
