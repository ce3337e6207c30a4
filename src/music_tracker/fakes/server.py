"""What every fake shares: a threaded HTTP server on a free 127.0.0.1 port.

``host`` is the loopback unless a fake runs as its own service (``python -m
music_tracker.fakes``, in the stack test's containers), where it listens on every interface.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class LoopbackServer:
    """Serve ``handler_class()`` on 127.0.0.1 while used as a context manager."""

    _server: ThreadingHTTPServer | None = None
    host = "127.0.0.1"
    port = 0

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._server = ThreadingHTTPServer((self.host, self.port), self.handler_class())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def root_url(self) -> str:
        assert self._server is not None, f"use {type(self).__name__} as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"
