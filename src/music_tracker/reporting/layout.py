"""The frame every page of the static report shares: head, navigation and footer.

Scripts are deferred (nothing blocks the first paint), the favicon is a file of the site
(no request for a missing /favicon.ico) and the colours follow the reader's light or dark
setting (``report.css``).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Context:
    """What every page says about the numbers: the stream rule and the time zone."""

    timezone: str
    stream_threshold_ms: int
    built_at: str


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def head(
    title: str,
    depth: int,
    *,
    description: str = "",
    scripts: Iterable[str] = (),
    drawn: bool = False,
) -> str:
    """The document up to ``<body>``; ``scripts`` are asset names, loaded deferred.

    ``drawn``: the page is complete as written (no charts to draw): its body carries
    ``data-rendered`` at once, as report.js sets it on pages with charts."""
    up = "../" * depth
    loads = "".join(f"<script defer src='{up}assets/{name}'></script>" for name in scripts)
    meta = f"<meta name='description' content='{esc(description)}'>" if description else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='color-scheme' content='light dark'>"
        f"<title>{esc(title)} - Music Tracker</title>{meta}"
        f"<link rel='icon' href='{up}assets/favicon.svg' type='image/svg+xml'>"
        f"<link rel='stylesheet' href='{up}assets/report.css'>{loads}</head>"
        + ("<body data-rendered='0'>" if drawn else "<body>")
    )


def nav(depth: int) -> str:
    """The links back: the front page and the artist index."""
    up = "../" * depth
    return (
        "<nav class='top'><a href='" + up + "index.html'>Music Tracker</a>"
        "<a href='" + up + "artist/index.html'>Artists</a>"
        "<a href='" + up + "year-in-review/index.html'>Year in review</a></nav>"
    )


def footer(context: Context) -> str:
    seconds = context.stream_threshold_ms / 1000
    return (
        f"<footer>A play is every listen of a music track with time played; a stream is a "
        f"play of at least {seconds:g} s (Spotify's rule). Dates and hours are local to "
        f"{esc(context.timezone)}. Masked artists show their public names. "
        f"Built {esc(context.built_at)} by Music Tracker.</footer>"
    )


def data_script(element_id: str, payload: str) -> str:
    """JSON for the page's script, inert until read (``</`` escaped by the caller)."""
    return f"<script type='application/json' id='{element_id}'>{payload}</script>"
