"""What every fake shares: a threaded HTTP server on a free 127.0.0.1 port.

``host`` is the loopback unless a fake runs as its own service (``python -m
music_tracker.fakes``, in the stack test's containers), where it listens on every interface.

``hang()`` makes a fake accept connections and never answer (until ``release()``): the
outside service that is up but stuck, which only the client's timeouts get out of.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up on a held (hung) request: what a hang is for
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class LoopbackServer:
    """Serve ``handler_class()`` on 127.0.0.1 while used as a context manager."""

    _server: ThreadingHTTPServer | None = None
    host = "127.0.0.1"
    port = 0

    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    _answering: threading.Event | None = None

    @property
    def answering(self) -> threading.Event:
        """Set while requests are answered; cleared by ``hang()``."""
        if self._answering is None:
            self._answering = threading.Event()
            self._answering.set()
        return self._answering

    def hang(self) -> None:
        """Accept every request from now on and answer none until ``release()``."""
        self.answering.clear()

    def release(self) -> None:
        """Answer again (requests held by ``hang()`` are answered now)."""
        self.answering.set()

    def __enter__(self) -> Self:
        answering = self.answering

        class Handler(self.handler_class()):  # type: ignore[misc]
            # an answer is written as its headers, then its body: with Nagle's algorithm
            # the body waits for the client's delayed acknowledgement of the headers, 40 ms
            # a request on Linux (the demo's 500 Spotify look-ups waited 23 s for it)
            disable_nagle_algorithm = True

            def handle_one_request(self) -> None:
                answering.wait()
                super().handle_one_request()

        self._server = _Server((self.host, self.port), Handler)
        self._server.daemon_threads = True  # a held request never blocks shutdown
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def root_url(self) -> str:
        assert self._server is not None, f"use {type(self).__name__} as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"
