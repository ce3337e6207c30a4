"""Podcast episodes hidden in old account data, told apart without a podcast file.

Account-data files before 2023 (``StreamingHistoryN.json``) list music and podcast
episodes alike: the show as "artist", the episode as "track", no flag, no track length. A
show is found by what listening to episodes looks like, title by title:

* **a song is heard again in full**: two plays of a title of a minute or more, each within
  2 s of its longest play, are two full plays of one track. An episode is heard through
  once, so a title heard twice in full is music (in the real 2024 account export, 983
  of the 1,235 music titles with two plays of a minute or more are, and none of the 74
  such episodes);
* **an episode is long**: a title not heard twice in full and heard for 10 minutes or more
  in all is an *episode-like* title: one long play, or sittings of one episode resumed
  where they stopped (several plays of a minute or more, of different lengths, over a few
  days), summing to about the episode's length;
* **a show is many episodes of one "artist"**: an artist with at least 2 episode-like
  titles, whose time is mostly (3/4 or more) in episode-like titles, hardly at all (under
  5%) in titles heard twice in full, and not much (under 30%) in sittings a month or more
  after a title's first one (an episode is finished within weeks, now and then later;
  sleep sounds to a timer come back night after night), is a show when the episodes also
  look like episodes in one of these ways: at least 2 titles heard over several sittings;
  at least 2 titles with a play of 15 minutes or more, heard on 2 days or more and less
  than half the time back to back with another title of the artist (an album of long
  classical works played through is); or at least half its titles numbered or dated like
  episodes ("Ep 20", "#163 - ...", "Session 344:", "180. ...", "March 4, 2024"; not
  "Symphony No. 5", "Op. 27 No. 2" or "Part 1"), on the same terms.
* **a bulletin**: short numbered or dated episodes (a daily news bulletin of 5 minutes)
  make a show when at least 3 titles, on 3 days or more, are numbered or dated, none is
  heard twice in full, and there are at most 2 titles a day it was heard on (a live
  album's dated tracks are played through in one evening).
* **one episode of a show sampled once**: an artist whose only episode-like title has a
  play of 15 minutes or more, heard on 1 or 2 days, 3/4 of its time, nothing heard twice
  in full, is a show, unless that play lasted over 3 hours (someone asleep to a sound
  bath, not an episode).

Measured by ``bench/podcast_rule.py`` (``make bench-podcasts``; docs/deduplication.md):

* the real 2024 account export, its podcast file mixed back into its music as an old
  export has them: 92.0% of the podcast time found (73.8 of 80.2 h; the shows missed
  were sampled for minutes), no music taken ("at most 3 plays a title", the rule before,
  took a 3.5-hour sound bath: 0.60% of the music);
* the real 2026 extended history written as an old export (a weekly numbered show heard
  over several sittings, 29 rows of 10 titles): 100% of 10.0 h found, no music taken;
* the simulated legacy history (``music_tracker.simulation.legacy``, seeds 26-35): 100%
  of the podcast time found, at most 0.26% of the music taken (a brown-noise track heard
  on two nights to a sleep timer: one episode in two sittings, to all appearances). "At
  most 3 plays a title" found 16-32% and took 0.4-2.4% of the music there.

Music of an episode's shape (issue 26's review, docs/deduplication.md): a title is
resumed only if its sittings are not a full play and a restart (the longest first, 80% or
more of the time) nor a piece come back to after other titles over 7 days later; the
several-sittings rule checks back-to-back playing too; long plays on 2 days need at most
1/4 of the titles come back to; an artist with half its titles named like music ("Live
at", "DJ Mix", "Symphony", "Remaster", ...) is no show by evidence; a bulletin's titles
are under 15 minutes, 3/4 of its time, each on 1 or 2 days. Before/after on the review's
scenarios: Mahler 1.17-1.82% of the music taken -> 0, DJ mixes 5.39% and 0.82% -> 0,
ambient 0.72% -> 0, post-rock 0.69% -> 0, dated live tracks 4.63% -> 0; the real exports
and seeds 26-28 unchanged (92.0%, 100% found, 0.00% taken). An artist with half its titles
"Episode N", "Ep. N" or "#N" may be heard back to back (a show binged: 0% -> 100% found),
and "03-02-2019" is a date (an hourly bulletin: 0% -> 100%). Still taken: one 17-minute
song heard once (0.07%, a sampled episode's shape) and 30 guided meditations heard once a
day (2.83%, an unnumbered daily show's shape). Imported in parts, the rows stored before
count too, a decision carried over says so (``BY_EARLIER_IMPORT``), and a row stored as
music stays music (importers/staging.py).

The owner corrects either way with ``MUSIC_TRACKER_PODCAST_SHOWS`` (always shows) and
``MUSIC_TRACKER_NOT_PODCASTS`` (never), and `status` lists every show decided and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import polars as pl

SITTING_MS = 60_000
FULL_PLAY_SLACK_MS = 2_000
EPISODE_MS = 10 * 60_000
LONG_PLAY_MS = 15 * 60_000
LONGEST_EPISODE_SITTING_MS = 3 * 3_600_000
ONE_EPISODE_MAX_DAYS = 2
BULLETIN_MAX_MS = 15 * 60_000
RESTART_SHARE = 0.8
RESUME_SPAN = timedelta(days=7)
EPISODE_SPAN = timedelta(days=30)
MIN_EPISODE_SHARE = 0.75
MAX_REPEATED_SHARE = 0.05
MAX_LATE_SHARE = 0.3
_EPISODE_TITLE = (
    r"(?i)(\bep(isode)?\.?\s*#?\d+|^#\d+|\s#\d+\b|\bsession \d+|^\d+\.\s|^\d+\s*[-:|]\s"
    r"|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2},? \d{4}\b"
    r"|\b\d{1,2}/\d{1,2}/\d{2,4}\b|\b\d{4}-\d{2}-\d{2}\b|\b\d{2}-\d{2}-\d{4}\b)"
)

# words of music titles, not of episodes: a live recording, a DJ mix, a classical work
_MUSIC_TITLE = (
    r"(?i)(\blive (at|from|in)\b|\(live\b|- live\b|\bremaster|\bremix|\b(dj|continuous)"
    r" mix\b|\(mixed\)|\bmixed by\b|\bsymphon|\bconcerto\b|\bsonata\b|\bop\. ?\d|\bbwv\b"
    r"|\bmovement\b|\bfeat\. )"
)
_EPISODE_MARK = r"(?i)(\bep(isode)?\.?\s*#?\d+|^#\d+|\s#\d+\b)"

BY_PODCAST_FILE = "named in a podcast file"
BY_SETTING = "MUSIC_TRACKER_PODCAST_SHOWS"
BY_EARLIER_IMPORT = "decided at an earlier import: "


@dataclass(frozen=True)
class PodcastRules:
    """The owner's corrections: names that are always shows, and never."""

    shows: frozenset[str] = field(default_factory=frozenset)
    not_shows: frozenset[str] = field(default_factory=frozenset)


def _runs(distinct: pl.DataFrame) -> pl.DataFrame:
    """Per (``artist_name``, ``track_name``), in how many runs its sittings lie (``runs``):
    the artist's sittings in time order, a run ending where another of its titles is heard.
    An episode resumed is finished before the next is begun, mostly; a song or a movement
    restarted weeks later comes after others of the artist."""
    sittings = distinct.filter(pl.col("ms_played") >= SITTING_MS).sort("played_at", "ms_played")
    return (
        sittings.with_columns(
            run=(pl.col("track_name") != pl.col("track_name").shift(1))
            .fill_null(True)
            .cum_sum()
            .over("artist_name", order_by="played_at")
        )
        .group_by("artist_name", "track_name")
        .agg(
            runs=pl.col("run").n_unique(),
            span=pl.col("played_at").max() - pl.col("played_at").min(),
            # the longest sitting came first: a full play, then a restart
            longest_first=pl.col("ms_played").arg_max() == 0,
        )
    )


def title_evidence(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per (``artist_name``, ``track_name``) of ``rows`` (``artist_name``,
    ``track_name``, ``ms_played``, ``played_at``): how it was heard."""
    ms = pl.col("ms_played")
    longest = ms.max()
    # a row in two files (overlapping exports imported together) is one play, not a
    # title heard twice in full
    distinct = rows.unique(["played_at", "artist_name", "track_name", "ms_played"])
    return (
        distinct.group_by("artist_name", "track_name")
        .agg(
            plays=pl.len(),
            total_ms=ms.sum(),
            longest_ms=longest,
            sittings=(ms >= SITTING_MS).sum(),
            full_plays=((ms >= SITTING_MS) & (ms >= longest - FULL_PLAY_SLACK_MS)).sum(),
            days=pl.col("played_at").dt.date().n_unique(),
            # heard again more than EPISODE_SPAN after its first sitting: an episode is
            # finished within weeks now and then, sleep sounds come back night after night
            late_ms=ms.filter(
                (ms >= SITTING_MS)
                & (
                    pl.col("played_at")
                    > pl.col("played_at").filter(ms >= SITTING_MS).min() + EPISODE_SPAN
                )
            ).sum(),
        )
        .join(_runs(distinct), on=["artist_name", "track_name"], how="left")
        .with_columns(
            heard_twice_in_full=pl.col("full_plays") >= 2,
            numbered=pl.col("track_name").str.contains(_EPISODE_TITLE).fill_null(False),
            episode_marked=pl.col("track_name").str.contains(_EPISODE_MARK).fill_null(False),
            music_titled=(
                pl.col("track_name").str.contains(_MUSIC_TITLE)
                & ~pl.col("track_name").str.contains(_EPISODE_MARK)
            ).fill_null(False),
        )
        .with_columns(
            episode_like=~pl.col("heard_twice_in_full") & (pl.col("total_ms") >= EPISODE_MS),
        )
        .with_columns(
            # heard again after other titles of the artist and over a week later: a piece
            # come back to, not an episode resumed (an episode's sittings are days apart, or
            # with no other episode begun between them)
            revisited=pl.col("episode_like")
            & (pl.col("runs").fill_null(0) >= 2)
            & (pl.col("span") > RESUME_SPAN),
            # a full play and a restart of a few minutes: the longest play first and most of
            # the time
            restarted=pl.col("longest_first").fill_null(False)
            & (pl.col("longest_ms") >= RESTART_SHARE * pl.col("total_ms")),
        )
        .with_columns(
            resumed=pl.col("episode_like")
            & (pl.col("sittings") >= 2)
            & ~pl.col("revisited")
            & ~pl.col("restarted"),
            long=pl.col("episode_like") & (pl.col("longest_ms") >= LONG_PLAY_MS),
            short_numbered=pl.col("numbered") & (pl.col("longest_ms") < BULLETIN_MAX_MS),
        )
    )


def _played_through(rows: pl.DataFrame) -> pl.DataFrame:
    """Per artist, the time of its plays heard back to back with another of its titles
    (``through_ms``): an album played through. One play starts within 2 minutes of the
    other's end, both a minute or more, nothing between them."""
    ms = pl.col("ms_played")
    ordered = rows.unique(["played_at", "artist_name", "track_name", "ms_played"]).sort(
        "played_at", "ms_played"
    )
    started = pl.col("played_at") - pl.duration(milliseconds=ms)
    after_another = (
        (pl.col("artist_name") == pl.col("artist_name").shift(1))
        & (pl.col("track_name") != pl.col("track_name").shift(1))
        & (ms >= SITTING_MS)
        & (ms.shift(1) >= SITTING_MS)
        & ((started - pl.col("played_at").shift(1)).abs() <= pl.duration(minutes=2))
    ).fill_null(False)
    return (
        ordered.with_columns(after_another=after_another)
        .with_columns(
            through=pl.col("after_another") | pl.col("after_another").shift(-1).fill_null(False)
        )
        .group_by("artist_name")
        .agg(through_ms=ms.filter(pl.col("through")).sum())
    )


def artist_evidence(rows: pl.DataFrame) -> pl.DataFrame:
    """One row per ``artist_name``: its titles' evidence summed (see the module's rule)."""
    titles = title_evidence(rows)
    per_artist = titles.group_by("artist_name").agg(
        plays=pl.col("plays").sum(),
        titles=pl.len(),
        total_ms=pl.col("total_ms").sum(),
        episode_titles=pl.col("episode_like").sum(),
        episode_ms=pl.col("total_ms").filter(pl.col("episode_like")).sum(),
        repeated_ms=pl.col("total_ms").filter(pl.col("heard_twice_in_full")).sum(),
        repeated_titles=pl.col("heard_twice_in_full").sum(),
        late_ms=pl.col("late_ms").sum(),
        resumed_titles=pl.col("resumed").sum(),
        long_titles=pl.col("long").sum(),
        numbered_titles=pl.col("numbered").sum(),
        numbered_ms=pl.col("total_ms").filter(pl.col("numbered")).sum(),
        short_numbered_titles=pl.col("short_numbered").sum(),
        music_titled=pl.col("music_titled").sum(),
        episode_marked_titles=pl.col("episode_marked").sum(),
        revisited_titles=pl.col("revisited").sum(),
        numbered_days_max=pl.col("days").filter(pl.col("numbered")).max(),
        longest_ms=pl.col("longest_ms").max(),
        episode_days=pl.col("days").filter(pl.col("episode_like")).max(),
    )
    days = rows.group_by("artist_name").agg(days=pl.col("played_at").dt.date().n_unique())
    return per_artist.join(days, on="artist_name").join(
        _played_through(rows), on="artist_name", how="left"
    )


def _reasons() -> list[tuple[pl.Expr, str, list[str]]]:
    """The ways an artist's titles are episodes of a show: (condition, reason, its
    numbers), the first that holds is the reason given."""
    col = pl.col
    # most titles named like music (a live recording, a DJ mix, a symphony): not a show
    music_named = col("music_titled") * 2 >= col("titles")
    not_played_through = col("through_ms") * 2 < col("total_ms")
    episodes_dominate = (
        (col("episode_titles") >= 2)
        & (col("episode_ms") >= MIN_EPISODE_SHARE * col("total_ms"))
        & (col("repeated_ms") <= MAX_REPEATED_SHARE * col("total_ms"))
        & (col("late_ms") <= MAX_LATE_SHARE * col("total_ms"))
        & ~music_named
    )
    numbered = col("numbered_titles") * 2 >= col("titles")
    # long pieces come back to weeks later (ambient, post-rock) are not episodes heard once
    few_revisited = col("revisited_titles") * 4 <= col("episode_titles")
    return [
        (
            # not back to back either: a symphony played through with a movement resumed
            episodes_dominate & (col("resumed_titles") >= 2) & not_played_through,
            "episodes: {} titles heard over several sittings, {} of {} titles episode-long,"
            " {} heard twice in full",
            ["resumed_titles", "episode_titles", "titles", "repeated_titles"],
        ),
        (
            # on two days at least, mostly not back to back: not an album of long works
            # played through
            episodes_dominate
            & (col("long_titles") >= 2)
            & (col("days") >= 2)
            & not_played_through
            & few_revisited,
            "episodes: {} titles with a play of 15 minutes or more, {} of {} titles"
            " episode-long, {} heard twice in full",
            ["long_titles", "episode_titles", "titles", "repeated_titles"],
        ),
        (
            # back to back too when titled "Episode 12", "Ep. 3", "#163": a show binged
            episodes_dominate
            & numbered
            & (col("days") >= 2)
            & (not_played_through | (col("episode_marked_titles") * 2 >= col("titles"))),
            "episodes: {} of {} titles numbered or dated like episodes, {} episode-long,"
            " {} heard twice in full",
            ["numbered_titles", "titles", "episode_titles", "repeated_titles"],
        ),
        (
            # a bulletin: a short new episode a day or so, each heard on its day, most of
            # the artist's time; not a live album's dated tracks played through in an
            # evening, nor live recordings of songs heard now and then
            (col("short_numbered_titles") * 4 >= 3 * col("titles"))
            & (col("numbered_ms") >= MIN_EPISODE_SHARE * col("total_ms"))
            & (col("numbered_titles") >= 3)
            & (col("days") >= 3)
            & (col("titles") <= 2 * col("days"))
            & (col("numbered_days_max") <= ONE_EPISODE_MAX_DAYS)
            & (col("repeated_titles") == 0)
            & not_played_through
            & ~music_named,
            "episodes: {} of {} titles numbered or dated like episodes, under 15 minutes,"
            " heard on {} days, none heard twice in full",
            ["numbered_titles", "titles", "days"],
        ),
        (
            # one episode of a show sampled once; a single play of over 3 hours is
            # someone asleep to sound, and a title heard on more days is heard again
            (col("long_titles") == 1)
            & (col("episode_titles") == 1)
            & (col("repeated_titles") == 0)
            & (col("episode_ms") >= MIN_EPISODE_SHARE * col("total_ms"))
            & (col("episode_days") <= ONE_EPISODE_MAX_DAYS)
            & (col("longest_ms") <= LONGEST_EPISODE_SITTING_MS)
            & ~music_named,
            "an episode: one title of {} with a play of 15 minutes or more, heard on {} days,"
            " none heard twice in full",
            ["titles", "episode_days"],
        ),
    ]


def _reason() -> pl.Expr:
    """Why an artist's titles are episodes of a show, or null when they are not."""
    return pl.coalesce(
        pl.when(condition).then(pl.format(template, *numbers))
        for condition, template, numbers in _reasons()
    )


def decide_shows(
    rows: pl.DataFrame,
    known_shows: pl.Series,
    rules: PodcastRules,
    earlier: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Which "artists" of old account-data ``rows`` (``artist_name``, ``track_name``,
    ``ms_played``, ``played_at``) are podcast shows: (``show_name``, ``reason``,
    ``plays``). ``known_shows`` are named by podcast files; ``earlier`` (``show_name``,
    ``reason``) were decided at earlier imports and stay shows (their episodes were moved),
    said so with the reason given then."""
    if earlier is None:
        earlier = pl.DataFrame(schema={"show_name": pl.String, "reason": pl.String})
    carried = pl.lit(BY_EARLIER_IMPORT) + pl.col("earlier_reason").str.strip_prefix(
        BY_EARLIER_IMPORT
    )
    reason = (
        pl.when(pl.col("artist_name").is_in(list(rules.not_shows)))
        .then(None)
        .when(pl.col("artist_name").is_in(list(rules.shows)))
        .then(pl.lit(BY_SETTING))
        .when(pl.col("artist_name").is_in(known_shows.implode()))
        .then(pl.lit(BY_PODCAST_FILE))
        .when(pl.col("earlier_reason").is_not_null())
        .then(carried)
        .otherwise(_reason())
    )
    return (
        artist_evidence(rows)
        .join(
            earlier.select("show_name", earlier_reason="reason").unique("show_name"),
            left_on="artist_name",
            right_on="show_name",
            how="left",
        )
        .with_columns(reason=reason)
        .filter(pl.col("reason").is_not_null())
        .select(pl.col("artist_name").alias("show_name"), "reason", "plays")
        .sort("show_name")
    )
