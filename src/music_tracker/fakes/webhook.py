"""A fake chat webhook (Slack, Discord or ntfy style) that keeps every message it is sent:
where the failure and recovery messages go in the tests and the soak."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from music_tracker.fakes.server import LoopbackServer


class FakeWebhook(LoopbackServer):
    """Each POST's JSON body, its text (Slack's ``text`` or Discord's ``content``) and
    when it arrived, in order."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.texts: list[str] = []
        self.times: list[datetime] = []

    @property
    def url(self) -> str:
        return f"{self.root_url}/hook"

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.times.append(datetime.now(UTC))
                fake.messages.append(body)
                fake.texts.append(str(body.get("text", body.get("content", ""))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler
