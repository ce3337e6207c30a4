"""Failure and recovery messages, once per cause, and each flow's health for `status`.

``state/flows.json`` keeps, per flow: the last success, the last failure and its cause,
and whether the owner was told. A failing flow sends one message (Slack, Discord or ntfy
style JSON / text POST to ``MUSIC_TRACKER_NOTIFY_WEBHOOK_URL``); the same cause again
(every 10 minutes while Spotify is down, say) sends nothing; a different cause sends a
new message; the first success after a failure sends a recovery message.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from music_tracker import files
from music_tracker.settings import Settings

log = logging.getLogger(__name__)

STATE_FILE = "flows.json"


def _path(settings: Settings) -> Path:
    return settings.state_dir / STATE_FILE


def load_health(settings: Settings) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(settings: Settings, health: dict[str, dict[str, Any]]) -> None:
    files.write_text(_path(settings), json.dumps(health, indent=2, sort_keys=True))


@contextmanager
def _updating(settings: Settings) -> Iterator[dict[str, dict[str, Any]]]:
    """flows.json read, changed and written under an exclusive lock: serve's watchdog, the
    runner's crash hook (a thread of serve) and each run's process all write it."""
    settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(settings.state_dir / f"{STATE_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        health = load_health(settings)
        yield health
        _save(settings, health)
    finally:
        os.close(fd)  # and with it the lock


def _cause_key(cause: str) -> str:
    """The cause without what changes from one run to the next (numbers, ids, times)."""
    return re.sub(r"\d+", "#", cause)[:300]


def record_failure(settings: Settings, flow: str, cause: str, *, key: str | None = None) -> bool:
    """Remember a failure; True when a message was sent (a new cause). ``key`` names the
    cause when its text carries details that change while the cause stays the same."""
    now = datetime.now(UTC).isoformat()
    cause_key = key or _cause_key(cause)
    with _updating(settings) as health:
        entry = health.setdefault(flow, {})
        new_cause = entry.get("cause_key") != cause_key or not entry.get("failing")
        if not entry.get("failing_since"):
            entry["failing_since"] = now
        entry.update({"failing": True, "last_failure": now, "cause": cause, "cause_key": cause_key})
    if not new_cause:
        return False
    # outside the lock: a slow webhook never holds up the writers
    sent = send(settings, f"Music Tracker: {flow} failed", f"{flow} failed: {cause}")
    with _updating(settings) as health:
        health.setdefault(flow, {})["notified"] = sent
    return sent


def record_success(settings: Settings, flow: str, summary: str = "") -> bool:
    """Remember a success; True when a recovery message was sent."""
    with _updating(settings) as health:
        entry = health.setdefault(flow, {})
        was_failing = bool(entry.get("failing"))
        since = entry.get("failing_since")
        entry.update(
            {
                "failing": False,
                "last_success": datetime.now(UTC).isoformat(),
                "summary": summary,
                "failing_since": None,
                "cause_key": None,
            }
        )
        cause = entry.get("cause")
    if not was_failing:
        return False
    return send(
        settings,
        f"Music Tracker: {flow} works again",
        f"{flow} works again (failing since {since}; last cause: {cause})",
    )


def record_poll(settings: Settings) -> None:
    """Remember that Spotify was polled successfully (the watchdog's liveness rule: an
    ingest run that skipped, the writer lock being busy, polled nothing)."""
    with _updating(settings) as health:
        health.setdefault("ingest", {})["last_poll"] = datetime.now(UTC).isoformat()


def send(settings: Settings, title: str, text: str) -> bool:
    """POST one message to the webhook; False (and a log line) when none is set or it fails.
    A message that cannot be delivered never fails the flow that sends it."""
    url = settings.notify_webhook_url.get_secret_value()
    if not url:
        log.warning("%s (no MUSIC_TRACKER_NOTIFY_WEBHOOK_URL set, nobody was told)", text)
        return False
    try:
        if settings.notify_format == "ntfy":
            response = httpx.post(url, content=text.encode(), headers={"Title": title}, timeout=10)
        else:
            key = "content" if settings.notify_format == "discord" else "text"
            response = httpx.post(url, json={key: text}, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("could not send the message %r: %s", title, exc)
        return False
    return True
