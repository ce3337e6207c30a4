"""Where a name in a list leads: every artist, track and album to its artist's page."""

from __future__ import annotations

from typing import Any

import duckdb

from music_tracker.reporting import artist_pages
from music_tracker.reporting.definitions import Card

# result columns whose values name an artist, a track ("artist - track") or an album
# ("artist - album"): each value links to its artist's page. A card's ``artist_column``
# (the column that links to the Artist dashboard in Metabase) is an artist's whatever its
# name.
LINKED = {"artist_name": "artist", "artist": "artist", "track": "track", "album": "album"}
# bar charts of these (names of artists, tracks, albums) are ranked lists in HTML: the
# names are links and wrap on a phone instead of being cut off
RANKED = {*LINKED, "track_name", "album_name"}


class Links:
    """Where a name in a list leads: every artist, track and album to its artist's page.

    A card's column says what its values are (``LINKED``); tracks ("artist - track") and
    albums ("artist - album") are looked up to their artist in the star schema, all at
    once, when every card has run."""

    def __init__(self) -> None:
        self.wanted: dict[str, set[str]] = {"track": set(), "album": set()}
        self.listed: set[str] = set()
        self.artist_of: dict[str, dict[str, str]] = {"track": {}, "album": {}}
        self.stems: dict[str, str] = {}

    def collect(self, card: Card, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
        kinds = linked(card, columns)
        for i, column in enumerate(columns):
            kind = kinds.get(column)
            if kind is None:
                continue
            values = {row[i] for row in rows if isinstance(row[i], str)}
            if kind == "artist":
                self.listed |= values
            else:
                self.wanted[kind] |= values

    def resolve(self, con: duckdb.DuckDBPyConnection) -> None:
        """Tracks and albums to their artists (plays decide when a name has several)."""
        for kind, dimension, key, column in (
            ("track", "dim_track", "track_sid", "artist_track"),
            ("album", "dim_album", "album_sid", "artist_album"),
        ):
            if not self.wanted[kind]:
                continue
            rows = con.execute(
                f"select entity.{column}, artist.artist_name, count(*) as plays"
                f" from dw.fact_track_played as fact"
                f" join dw.{dimension} as entity on entity.{key} = fact.{key}"
                f" join dw.dim_artist as artist on artist.artist_sid = fact.artist_sid"
                f" where entity.{column} in {artist_pages.NAMES}"
                f"   and artist.artist_name is not null"
                f" group by all order by plays, artist.artist_name desc",
                {"names": artist_pages.names_param(sorted(self.wanted[kind]))},
            ).fetchall()
            self.artist_of[kind] = {name: artist for name, artist, _ in rows}
            self.listed |= set(self.artist_of[kind].values())

    def href(self, column: str, value: Any, depth: int = 1) -> str | None:
        """The page of the artist behind a value of ``column`` (a column of ``LINKED``, or
        its kind: artist, track, album); None when it has none."""
        kind = LINKED.get(column)
        if kind is None or not isinstance(value, str):
            return None
        artist = value if kind == "artist" else self.artist_of[kind].get(value)
        stem = self.stems.get(artist) if artist else None
        return f"{'../' * depth}{artist_pages.FOLDER}/{stem}.html" if stem else None

    def for_card(
        self, card: Card, columns: list[str], rows: list[tuple[Any, ...]]
    ) -> dict[str, Any]:
        """Per linked column, each row's page (or null)."""
        links = {}
        for column, kind in linked(card, columns).items():
            i = columns.index(column)
            hrefs = [self.href(kind, row[i]) for row in rows]
            if any(hrefs):
                links[column] = hrefs
        return links


def linked(card: Card, columns: list[str]) -> dict[str, str]:
    """The card's columns that name an artist, a track or an album: by name
    (``LINKED``), and the card's ``artist_column`` whatever its name."""
    kinds = {column: LINKED[column] for column in columns if column in LINKED}
    if card.artist_column in columns:
        kinds[card.artist_column] = "artist"
    return kinds
