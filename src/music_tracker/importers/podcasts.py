"""Podcast episodes hidden in old account data, told apart without a podcast file.

Account-data files before 2023 (``StreamingHistoryN.json``) list music and podcast
episodes alike: the show as "artist", the episode as "track", no flag. A show is found by
what listening to a podcast looks like:

* the listener rarely hears an episode more than a few times (at most 3 plays a title on
  average: the music the owner likes is played again and again), across at least 2 titles;
* and either a play lasted 15 minutes or more (an episode; a song almost never), or at
  least half the titles are numbered like episodes ("Ep 20", "#163 - ...", "Session 344:",
  "180. ...") and a play lasted 3 minutes or more.

Measured on the real 2024 account export in ../shared/data (its podcast file mixed back
into its music, as an old export has them): 23 of 84 shows, 471 of 597 episode plays and
94% of the podcast listening time are found; the shows missed are ones heard for a few
seconds. One music artist is taken for a show: a 3.5-hour "sound bath" heard twice. The
owner corrects either way with ``MUSIC_TRACKER_PODCAST_SHOWS`` (always shows) and
``MUSIC_TRACKER_NOT_PODCASTS`` (never), and `status` lists every show decided and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

LONG_PLAY_MS = 15 * 60_000
NUMBERED_PLAY_MS = 3 * 60_000
MAX_PLAYS_PER_TITLE = 3.0
_EPISODE_TITLE = (
    r"(?i)(\bep(isode)?\.?\s*#?\d+|^#\d+|\bsession \d+|^\d+\.\s|\bpart \d+|^\d+\s*[-:|]\s)"
)

BY_PODCAST_FILE = "named in a podcast file"
BY_SETTING = "MUSIC_TRACKER_PODCAST_SHOWS"
BY_LONG_PLAYS = "episodes: plays of 15 minutes or more, titles heard a few times"
BY_NUMBERED_TITLES = "episodes: numbered titles, titles heard a few times"


@dataclass(frozen=True)
class PodcastRules:
    """The owner's corrections: names that are always shows, and never."""

    shows: frozenset[str] = field(default_factory=frozenset)
    not_shows: frozenset[str] = field(default_factory=frozenset)


def decide_shows(rows: pl.DataFrame, known_shows: pl.Series, rules: PodcastRules) -> pl.DataFrame:
    """Which "artists" of old account-data ``rows`` (``artist_name``, ``track_name``,
    ``ms_played``) are podcast shows: (``show_name``, ``reason``, ``plays``)."""
    numbered = pl.col("track_name").str.contains(_EPISODE_TITLE).fill_null(False)
    per_artist = rows.group_by("artist_name").agg(
        plays=pl.len(),
        titles=pl.col("track_name").n_unique(),
        longest=pl.col("ms_played").max(),
        numbered=pl.col("track_name").filter(numbered).n_unique(),
    )
    heard_like_episodes = (pl.col("titles") >= 2) & (
        pl.col("plays") / pl.col("titles") <= MAX_PLAYS_PER_TITLE
    )
    reason = (
        pl.when(pl.col("artist_name").is_in(list(rules.not_shows)))
        .then(None)
        .when(pl.col("artist_name").is_in(list(rules.shows)))
        .then(pl.lit(BY_SETTING))
        .when(pl.col("artist_name").is_in(known_shows.implode()))
        .then(pl.lit(BY_PODCAST_FILE))
        .when(heard_like_episodes & (pl.col("longest") >= LONG_PLAY_MS))
        .then(pl.lit(BY_LONG_PLAYS))
        .when(
            heard_like_episodes
            & (pl.col("numbered") * 2 >= pl.col("titles"))
            & (pl.col("longest") >= NUMBERED_PLAY_MS)
        )
        .then(pl.lit(BY_NUMBERED_TITLES))
    )
    return (
        per_artist.with_columns(reason=reason)
        .filter(pl.col("reason").is_not_null())
        .select(pl.col("artist_name").alias("show_name"), "reason", "plays")
        .sort("show_name")
    )
