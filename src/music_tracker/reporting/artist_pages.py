"""Artist pages: the Artist dashboard once per artist, for every artist worth a page, and
the index that finds them (a search box that works from disk, no server).

An artist has a page when they have at least ``MIN_PLAYS`` plays (the most played
``MAX_PAGES`` at most) or when any list of the report names them, so that every name in a
list is a link that works. Thousands of pages cannot each run the dashboard's queries (five
scans of the fact table per artist, about a minute at 350,000 plays), so the Artist
dashboard's cards are computed for all of them at once (``BATCH_SQL``, one query per card,
the chosen names as a list) and the rows split by artist. ``tests/test_report_pages.py``
checks that these rows equal the cards' own SQL run for single artists; a card the batch
does not know is run per artist, as the cards say.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import duckdb

from music_tracker.reporting.definitions import Card, Dashboard, bind
from music_tracker.reporting.front_page import NOT_AN_ARTIST
from music_tracker.reporting.layout import Context, esc, footer, head, nav

MIN_PLAYS = 10
MAX_PAGES = 3000
FOLDER = "artist"  # the Artist dashboard's slug: its pages live there
_NAME = "mt_artist"  # the batch queries' extra first column: whose row it is

# A list of names as one query parameter: DuckDB's Python client converts a list
# parameter item by item (trying to import pandas for each: 0.7 s for 3,000 names on a
# busy machine), a JSON text at once (5 ms). The names go in as ``names_param(names)``.
NAMES = "(select unnest(from_json($names, '[\"VARCHAR\"]')))"


def names_param(names: Iterable[str]) -> str:
    return json.dumps(list(names), ensure_ascii=False)


# One query per card of dashboards/07_artist.yml, for every chosen artist at once: the
# card's columns after the artist's name, its order within each artist.
_BATCH_SQL: dict[str, str] = {
    "facts": """
        with ranked as (
            select artist.artist_name, count(*) as plays, sum(fact.ms_played) as ms_played,
                   min(fact.date_sid) as first_listen, max(fact.date_sid) as last_listen,
                   row_number() over (
                       order by count(*) desc, sum(fact.ms_played) desc, artist.artist_name)
                       as plays_rank,
                   row_number() over (
                       order by sum(fact.ms_played) desc, count(*) desc, artist.artist_name)
                       as time_rank,
                   count(*) / sum(count(*)) over () as share
            from dw.fact_track_played as fact
            join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid
            where artist.artist_name is not null
            group by artist.artist_name
        )
        select ranked.artist_name as mt_artist, ranked.plays,
               round(ranked.ms_played / 3600000, 1) as hours,
               ranked.plays_rank, ranked.time_rank,
               round(100 * ranked.share, 2) as share_of_all_plays_pct,
               ranked.first_listen, ranked.last_listen,
               nullif(any_value(artist.country), 'Unknown') as country,
               nullif(any_value(artist.primary_genre), 'no genre defined') as primary_genre
        from ranked
        join dw.dim_artist as artist on artist.artist_name = ranked.artist_name
        where ranked.artist_name in {NAMES}
        group by all
    """,
    "plays_over_time": """
        select artist.artist_name as mt_artist,
               calendar.month_start_date as month, count(*) as plays
        from dw.fact_track_played as fact
        join dw.dim_date as calendar on calendar.date_sid = fact.date_sid
        join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid
        where artist.artist_name in {NAMES}
        group by artist.artist_name, calendar.month_start_date
        order by artist.artist_name, calendar.month_start_date
    """,
    # both orderings at once (the cards' rank filter bound to "both": ranking.py), each
    # artist's top 15 by plays and by time
    "top_tracks": """
        with counted as (
            select artist.artist_name, fact.track_sid, count(*) as plays,
                   sum(fact.ms_played) as ms_played
            from dw.fact_track_played as fact
            join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid
            where artist.artist_name in {NAMES}
            group by artist.artist_name, fact.track_sid
        ),
        named as (
            select counted.artist_name, track.track_name, sum(counted.plays) as plays,
                   sum(counted.ms_played) as ms_played
            from counted
            join dw.dim_track as track on track.track_sid = counted.track_sid
            group by counted.artist_name, track.track_name
        ),
        ranked as (
            select *,
                   row_number() over (partition by artist_name
                                      order by plays desc, ms_played desc, track_name)
                       as plays_rank,
                   row_number() over (partition by artist_name
                                      order by ms_played desc, plays desc, track_name)
                       as time_rank
            from named
        )
        select artist_name as mt_artist, track_name, plays,
               round(ms_played / 60000, 1) as minutes, plays as measure, plays_rank, time_rank
        from ranked
        where least(plays_rank, time_rank) <= 15
        order by artist_name, plays_rank
    """,
    "top_albums": """
        with counted as (
            select artist.artist_name, fact.album_sid, count(*) as plays,
                   sum(fact.ms_played) as ms_played
            from dw.fact_track_played as fact
            join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid
            where artist.artist_name in {NAMES}
            group by artist.artist_name, fact.album_sid
        ),
        named as (
            select counted.artist_name, album.album_name, sum(counted.plays) as plays,
                   sum(counted.ms_played) as ms_played
            from counted
            join dw.dim_album as album on album.album_sid = counted.album_sid
            where album.album_name is not null and album.album_name != '(no album)'
            group by counted.artist_name, album.album_name
        ),
        ranked as (
            select *,
                   row_number() over (partition by artist_name
                                      order by plays desc, ms_played desc, album_name)
                       as plays_rank,
                   row_number() over (partition by artist_name
                                      order by ms_played desc, plays desc, album_name)
                       as time_rank
            from named
        )
        select artist_name as mt_artist, album_name, plays,
               round(ms_played / 3600000, 1) as hours, plays as measure, plays_rank, time_rank
        from ranked
        where least(plays_rank, time_rank) <= 15
        order by artist_name, plays_rank
    """,
    "genres": """
        select distinct artist.artist_name as mt_artist, genre.genre
        from dw.fact_artist_genre as fact
        join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid
        join dw.dim_artist_genre as genre on genre.genre_sid = fact.genre_sid
        where artist.artist_name in {NAMES}
          and genre.genre != 'no genre defined'
        order by mt_artist, genre.genre
    """,
}


BATCH_SQL = {name: sql.replace("{NAMES}", NAMES) for name, sql in _BATCH_SQL.items()}


@dataclass(frozen=True)
class ArtistPage:
    name: str
    stem: str
    plays: int


def is_artist_dashboard(dashboard: Dashboard) -> bool:
    """The dashboard filtered by artist is the artist page."""
    return bool(dashboard.filters) and dashboard.filters[0].name == "artist"


def fold(text: str) -> str:
    """Lower case without accents: what the search box compares (Björk finds Bjork)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.casefold()).strip("-")[:60]


def stems(names: Iterable[str]) -> dict[str, str]:
    """A file name per artist, stable from one report to the next: the name's slug, with a
    short hash of the name where the slug is empty (other scripts) or shared."""
    slugs = {name: _slug(name) for name in names}
    counts: dict[str, int] = defaultdict(int)
    for slug in slugs.values():
        counts[slug] += 1
    result = {}
    for name, slug in slugs.items():
        if not slug or counts[slug] > 1 or slug == "index":
            digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
            slug = f"{slug}-{digest}" if slug else f"a-{digest}"
        result[name] = slug
    return result


def choose(con: duckdb.DuckDBPyConnection, listed: set[str]) -> list[ArtistPage]:
    """The artists that get a page, most played first: ``MIN_PLAYS`` plays or more (the
    ``MAX_PAGES`` most played), and every artist named in a list of the report."""
    rows = con.execute(
        "with counted as ("
        "  select artist.artist_name, count(*) as plays"
        "  from dw.fact_track_played as fact"
        "  join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
        "  where artist.artist_name is not null and artist.artist_name <> $unknown"
        "  group by artist.artist_name"
        "), ranked as ("
        "  select *, row_number() over (order by plays desc, artist_name) as plays_rank"
        "  from counted"
        ")"
        " select artist_name, plays from ranked"
        " where (plays >= $minimum and plays_rank <= $most)"
        f"    or artist_name in {NAMES}"
        " order by plays desc, artist_name",
        {
            "unknown": NOT_AN_ARTIST,
            "minimum": MIN_PLAYS,
            "most": MAX_PAGES,
            "names": names_param(sorted(listed)),
        },
    ).fetchall()
    files = stems(name for name, _ in rows)
    return [ArtistPage(name, files[name], int(plays)) for name, plays in rows]


def card_rows(
    con: duckdb.DuckDBPyConnection,
    dashboard: Dashboard,
    names: list[str],
    run_card: Callable[[duckdb.DuckDBPyConnection, Card, dict[str, Any]], Any],
) -> dict[str, dict[str, tuple[list[str], list[tuple[Any, ...]]]]]:
    """Per card name, per artist: the card's (columns, rows) for that artist."""
    flt = dashboard.filters[0].name
    result: dict[str, dict[str, tuple[list[str], list[tuple[Any, ...]]]]] = {}
    for card in dashboard.cards:
        if card.name in BATCH_SQL:
            cursor = con.execute(BATCH_SQL[card.name], {"names": names_param(names)})
            columns = [d[0] for d in cursor.description][1:]
            per_artist: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
            for row in cursor.fetchall():
                per_artist[row[0]].append(row[1:])
            result[card.name] = {name: (columns, per_artist.get(name, [])) for name in names}
        else:  # not batched: the card's own SQL, one artist at a time
            result[card.name] = {name: run_card(con, card, {flt: name}) for name in names}
    return result


def card_sql_for(card: Card, flt: str, name: str) -> tuple[str, dict[str, Any]]:
    """The card's own SQL for one artist (what the batch must agree with)."""
    return bind(card.sql, {flt: name})


def index_page(pages: list[ArtistPage], context: Context) -> str:
    """Every artist with a page, most played first, with a search box (``artists.js``;
    without JavaScript the whole list shows)."""
    items = "".join(
        f"<li data-key='{esc(fold(page.name))}'><a href='{esc(page.stem)}.html'>"
        f"{esc(page.name)}</a><span class='plays'>{page.plays:,} "
        f"{'play' if page.plays == 1 else 'plays'}</span></li>"
        for page in pages
    )
    return (
        head(
            "Artists",
            1,
            description="Every artist in the listening history.",
            scripts=["artists.js", "report.js"],
            drawn=True,
        )
        + nav(1)
        + "<header><h1>Artists</h1>"
        + f"<p>The {len(pages):,} artists with at least {MIN_PLAYS} plays or in a list of "
        + "this report, most played first.</p>"
        + "<label class='search' for='artist-search'>Find an artist</label>"
        + "<input type='search' id='artist-search' autocomplete='off' "
        + f"placeholder='Search {len(pages):,} artists'>"
        + "<p id='artist-count' class='muted' aria-live='polite'></p>"
        + "</header><main>"
        + f"<ol class='artist-list'>{items}</ol>"
        + "<p id='artist-none' class='empty' hidden>No artist with a page matches.</p>"
        + "</main>"
        + footer(context)
        + "</body></html>"
    )
