"""``music-tracker report --serve``: the report on 127.0.0.1, compressed as the deployed
proxy serves it (Caddy's ``encode``)."""

from __future__ import annotations

import functools
import gzip
import io
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar


def serve(folder: Path, port: int) -> None:
    """Serve the report on 127.0.0.1 until interrupted (Ctrl+C), compressed as the deployed
    proxy serves it (Caddy's ``encode``): Vega's 580 kB of JavaScript travel as 200."""
    handler = functools.partial(_CompressingHandler, directory=str(folder))
    with ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        server.serve_forever()


class _CompressingHandler(SimpleHTTPRequestHandler):
    """Text files gzip-compressed for clients that accept it (each once per version)."""

    # headers and body go out as two writes; without this the body waits for the browser's
    # delayed acknowledgement (40 ms on Linux) of the headers
    disable_nagle_algorithm = True
    _TEXT = (".html", ".js", ".css", ".json", ".svg")
    _cache: ClassVar[dict[tuple[str, float], bytes]] = {}

    def send_head(self) -> Any:
        path = Path(self.translate_path(self.path))
        if path.is_dir() and self.path.split("?")[0].endswith("/"):
            path = path / "index.html"
        accepts = "gzip" in self.headers.get("Accept-Encoding", "")
        if not accepts or path.suffix not in self._TEXT or not path.is_file():
            return super().send_head()  # and folders without their "/": the redirect
        stat = path.stat()
        key = (str(path), stat.st_mtime)
        body = self._cache.get(key)
        if body is None:
            body = gzip.compress(path.read_bytes(), compresslevel=6)
            self._cache[key] = body
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", self.date_time_string(int(stat.st_mtime)))
        self.send_header("Vary", "Accept-Encoding")
        self.end_headers()
        return io.BytesIO(body)
