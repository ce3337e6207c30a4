"""The public links' files, and HTML snippets that put each public Metabase dashboard on
the owner's own pages.

``metabase provision`` writes ``embeds/<slug>.html`` beside ``public-links.json``: an
``<iframe>`` of the dashboard's public link, sized to the dashboard's grid, titled for
screen readers, lazy-loaded, with the appearance parameters Metabase reads from a public
link's fragment: ``bordered=false`` and ``titled=false`` (the owner's page gives the
frame and the heading). Paste one into any page; ``embeds/index.html`` shows them all, as
a preview and a list of what to copy.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from music_tracker import files
from music_tracker.settings import Settings

LINKS_JSON = "public-links.json"
LINKS_CADDY = "public-links.caddy"
EMBEDS_DIR = "embeds"
# the links and snippets are public, for the owner to copy into a site and for Caddy (its
# own user) to read: readable by all, whatever the umask
PUBLIC = 0o644
APPEARANCE = "bordered=false&titled=false"
# Metabase draws a dashboard's grid rows about 40 px high (with their gaps), below a header
# with the filters; a frame this tall shows the whole dashboard without its own scrollbar
ROW_PX = 40
HEADER_PX = 120


def snippet(title: str, url: str, grid_rows: int) -> str:
    height = HEADER_PX + ROW_PX * max(grid_rows, 4)
    return (
        f'<iframe src="{html.escape(f"{url}#{APPEARANCE}")}" title="{html.escape(title)}" '
        f'width="100%" height="{height}" loading="lazy" '
        'style="border: 0; max-width: 100%" allowtransparency></iframe>\n'
    )


def write_embeds(
    data_dir: Path, links: dict[str, dict[str, str]], grid_rows: dict[str, int]
) -> Path:
    """One snippet per public dashboard (snippets of dashboards gone are removed), and an
    index."""
    folder = data_dir / EMBEDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # public, as its snippets are
    items = []
    for slug, link in sorted(links.items()):
        code = snippet(link["title"], link["url"], grid_rows.get(slug, 12))
        files.write_text(folder / f"{slug}.html", code, mode=PUBLIC)
        items.append(
            f"<h2>{html.escape(link['title'])}</h2>\n<pre><code>{html.escape(code)}</code></pre>\n"
            + code
        )
    for stale in folder.glob("*.html"):
        if stale.stem not in links and stale.name != "index.html":
            stale.unlink()
    files.write_text(
        folder / "index.html",
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Music Tracker: Metabase dashboards to embed</title></head><body>\n"
        "<h1>Dashboards to embed</h1>\n<p>Copy a snippet into a page of your site.</p>\n"
        + "\n".join(items)
        + "</body></html>\n",
        mode=PUBLIC,
    )
    return folder


def write_links(settings: Settings, links: dict[str, dict[str, str]]) -> Path:
    """``public-links.json`` (for people and scripts) and ``public-links.caddy`` (redirects
    from ``/dashboards/<slug>`` to the public page, imported by the proxy's Caddyfile)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    target = settings.data_dir / LINKS_JSON
    files.write_text(target, json.dumps(links, indent=2, ensure_ascii=False) + "\n", mode=PUBLIC)
    lines = ["# written by `music-tracker metabase provision`; do not edit"]
    lines += [
        f"redir /dashboards/{slug} /public/dashboard/{link['uuid']} 302"
        for slug, link in links.items()
    ]
    # replaced by a rename: Caddy never reads it half written
    files.write_text(settings.data_dir / LINKS_CADDY, "\n".join(lines) + "\n", mode=PUBLIC)
    return target
