"""``music-tracker report --serve``: the report on 127.0.0.1, compressed as the deployed
proxy serves it (Caddy's ``encode``)."""

from __future__ import annotations

import contextlib
import email.utils
import functools
import gzip
import io
from datetime import UTC
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar


class PortTaken(Exception):
    """The port for ``--serve`` cannot be had."""


def open_server(folder: Path, port: int) -> ThreadingHTTPServer:
    """A server of ``folder`` on 127.0.0.1:``port``, bound but not yet answering
    (PortTaken when it cannot be): bound before the report is built, so that a port in use
    is told at once and the address is printed once it answers."""
    handler = functools.partial(_CompressingHandler, directory=str(folder))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise PortTaken(f"cannot serve on 127.0.0.1:{port} ({exc}): choose --port") from None


def serve(server: ThreadingHTTPServer) -> None:
    """Answer until interrupted (Ctrl+C, which ends it as asked), compressed as the deployed
    proxy serves it (Caddy's ``encode``): Vega's 580 kB of JavaScript travel as 200."""
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


class _CompressingHandler(SimpleHTTPRequestHandler):
    """Text files gzip-compressed for clients that accept it (each once per version), and
    not sent again to a client that has this version (``If-Modified-Since``), as the plain
    files are not."""

    # headers and body go out as two writes; without this the body waits for the browser's
    # delayed acknowledgement (40 ms on Linux) of the headers
    disable_nagle_algorithm = True
    _TEXT = (".html", ".js", ".css", ".json", ".svg")
    _cache: ClassVar[dict[str, tuple[float, bytes]]] = {}  # path: its time, compressed

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.is_dir() and self.path.split("?")[0].endswith("/"):
            path = path / "index.html"
        accepts = "gzip" in self.headers.get("Accept-Encoding", "")
        if not accepts or path.suffix not in self._TEXT or not path.is_file():
            return super().send_head()  # and folders without their "/": the redirect
        stat = path.stat()
        if self._unchanged_since(int(stat.st_mtime)):
            self.send_response(HTTPStatus.NOT_MODIFIED)
            self.send_header("Vary", "Accept-Encoding")
            self.end_headers()
            return None
        cached = self._cache.get(str(path))
        if cached is None or cached[0] != stat.st_mtime:  # the version before is dropped
            cached = (stat.st_mtime, gzip.compress(path.read_bytes(), compresslevel=6))
            self._cache[str(path)] = cached
        body = cached[1]
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        return io.BytesIO(body)

    def _unchanged_since(self, modified: int) -> bool:
        """Whether the request's ``If-Modified-Since`` is this version's time or later (as
        the plain files' answers decide it; no ``If-None-Match``, as they send no ETag)."""
        since = self.headers.get("If-Modified-Since")
        if since is None or "If-None-Match" in self.headers:
            return False
        try:
            told = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        if told.tzinfo is None:  # the obsolete form without a zone is UTC
            told = told.replace(tzinfo=UTC)
        return told.timestamp() >= modified
