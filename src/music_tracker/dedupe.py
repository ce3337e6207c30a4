"""Play identity: the de-duplication rules of DESIGN.md, as Polars transforms.

Rule 1 (within a source) is a natural key per source, hashed into ``source_key``; a row
whose key is already stored, or repeated in the same batch, is a duplicate.

Rule 2 (across sources) links a new row to an existing play of another source when both
name the same track (Spotify id when both have one, else normalized artist + title) and
their times agree within the pair's tolerance:

* extended history vs API: end times, seconds apart (both report the end of play);
* account data vs anything: end times, a minute apart (``endTime`` has minute precision);
* Last.fm vs anything: start times (a scrobble's timestamp is the start of play).

An end-time source knows its start only as an estimate: end minus ``ms_played`` (export
rows) or minus the track's length (API rows). A pause makes the real start earlier than
that (the end is later while the time heard is not), an early stop makes the API's
estimate too early. So a Last.fm scrobble still unmatched after the rule above matches an
end-time row when its start lies inside the play's possible window: from the estimated
start minus ``Tolerances.pause`` up to the end minus 30 s (Last.fm scrobbles nothing
shorter), nearest to the estimated start first. Both directions of import use the same
window, so the result does not depend on which source arrived first.

Each play holds at most one row per source, and matching is one-to-one, nearest first, so
a track played twice in a row stays two plays. A row that matches nothing starts a new
play whose ``play_id`` is derived from its own source and key; the id never changes after,
even when a richer source joins the play later (the dbt model then takes the richest row:
extended history > API > account data > Last.fm).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from music_tracker.settings import Settings

EXTENDED = "spotify_extended_history"
API = "spotify_api"
ACCOUNT = "spotify_account_data"
LASTFM = "lastfm"
SOURCE_RANK = {EXTENDED: 4, API: 3, ACCOUNT: 2, LASTFM: 1}

# Columns of the "linked rows" frame: every stored music row that belongs to a play.
LINKED_SCHEMA = pl.Schema(
    {
        "play_id": pl.String(),
        "source": pl.String(),
        "end_at": pl.Datetime("us", "UTC"),
        "start_at": pl.Datetime("us", "UTC"),
        "track_id": pl.String(),
        "name_key": pl.String(),
    }
)
_MAX_ROUNDS = 20
_HALF_MINUTE = timedelta(seconds=30)


@dataclass(frozen=True)
class Tolerances:
    """How far apart two sources' times may be for the same play, per pair kind."""

    api: timedelta = timedelta(seconds=10)
    account: timedelta = timedelta(seconds=60)
    lastfm: timedelta = timedelta(seconds=90)
    # how long a play may have been paused: a Last.fm start this much before an end-time
    # row's estimated start still belongs to it (when nothing nearer claimed either)
    pause: timedelta = timedelta(minutes=15)


def tolerances_from(settings: Settings) -> Tolerances:
    """The tolerances the owner configured (every import and every poll uses them)."""
    return Tolerances(
        api=timedelta(seconds=settings.match_tolerance_api_s),
        account=timedelta(seconds=settings.match_tolerance_account_s),
        lastfm=timedelta(seconds=settings.match_tolerance_lastfm_s),
        pause=timedelta(seconds=settings.match_pause_s),
    )


@dataclass
class BatchResult:
    """A source's new rows with their ``play_id`` and what happened to the rest."""

    rows: pl.DataFrame
    duplicates_in_batch: int
    already_stored: int
    linked_to_existing: int
    new_plays: int
    not_plays: int


def drop_known(batch: pl.DataFrame, stored_keys: pl.Series) -> tuple[pl.DataFrame, int, int]:
    """Rule 1: drop rows repeated in the batch or stored; return (rows, in_batch, stored)."""
    unique = batch.unique(subset="source_key", keep="first", maintain_order=True)
    fresh = unique.filter(~pl.col("source_key").is_in(stored_keys.implode()))
    return fresh, batch.height - unique.height, unique.height - fresh.height


def linked_view(source: str, rows: pl.DataFrame) -> pl.DataFrame:
    """A source's rows (with ``play_id``) reduced to the columns matching needs.

    Minute-precision times (account data's ``endTime``, Last.fm's date) stand for any
    second of their minute; they are compared at the minute's middle, so a play ending
    at 14:13:36 is nearer to "14:13" than to "14:14".
    """
    if source == LASTFM:
        end_at = pl.lit(None, pl.Datetime("us", "UTC"))
        start_at = pl.col("started_at") + _HALF_MINUTE
    elif source == API:
        end_at = pl.col("played_at")
        start_at = pl.col("played_at") - pl.duration(milliseconds=pl.col("duration_ms"))
    elif source == ACCOUNT:
        end_at = pl.col("played_at") + _HALF_MINUTE
        start_at = end_at - pl.duration(milliseconds=pl.col("ms_played"))
    else:
        end_at = pl.col("played_at")
        start_at = pl.col("played_at") - pl.duration(milliseconds=pl.col("ms_played"))
    track_id = pl.col("track_id") if "track_id" in rows.columns else pl.lit(None, pl.String)
    return (
        rows.filter(pl.col("play_id").is_not_null())
        .select(
            "play_id",
            pl.lit(source).alias("source"),
            end_at.alias("end_at"),
            start_at.alias("start_at"),
            track_id.alias("track_id"),
            "name_key",
        )
        .cast(LINKED_SCHEMA)
    )


def assign_plays(
    source: str, fresh: pl.DataFrame, linked: pl.DataFrame, tolerances: Tolerances
) -> tuple[pl.DataFrame, int, int, int]:
    """Rule 2: give each fresh row of ``source`` a ``play_id``.

    ``linked`` holds the stored (and earlier in this run) rows of every source. Returns the
    rows with ``play_id`` (null for rows that are not plays: 0 ms played), and the counts
    (linked to an existing play, new plays, not plays).
    """
    is_play = pl.col("ms_played") > 0 if "ms_played" in fresh.columns else pl.lit(True)
    fresh = fresh.with_row_index("_row")
    plays = fresh.filter(is_play)
    view = linked_view(source, plays.with_columns(play_id=pl.lit("")))
    view = view.with_columns(_row=plays["_row"])
    taken = linked.filter(pl.col("source") == source)["play_id"].unique()
    candidates = linked.filter(
        (pl.col("source") != source) & ~pl.col("play_id").is_in(taken.implode())
    )
    links: list[pl.DataFrame] = []
    pending = view
    for other in sorted(SOURCE_RANK, key=SOURCE_RANK.__getitem__, reverse=True):
        if other == source:
            continue
        on, key, tolerance = _pair_rule(source, other, tolerances)
        found = _match_one_to_one(
            pending, candidates.filter(pl.col("source") == other), on, key, tolerance
        )
        if found.height:
            links.append(found)
            pending = pending.join(found, on="_row", how="anti")
            candidates = candidates.join(found, on="play_id", how="anti")
    if candidates.height and pending.height and tolerances.pause > timedelta(0):
        found = _match_pause_window(source, pending, candidates, tolerances.pause)
        if found.height:
            links.append(found)
    matched = (
        pl.concat(links)
        if links
        else pl.DataFrame(schema={"_row": pl.UInt32(), "play_id": pl.String()})
    )
    own_ids = _own_play_ids(source, plays)
    result = (
        fresh.join(matched, on="_row", how="left")
        .join(own_ids, on="_row", how="left")
        .with_columns(
            play_id=pl.when(is_play).then(pl.coalesce("play_id", "_own_play_id")),
        )
        .drop("_row", "_own_play_id")
    )
    not_plays = fresh.height - plays.height
    return result, matched.height, plays.height - matched.height, not_plays


def _own_play_ids(source: str, plays: pl.DataFrame) -> pl.DataFrame:
    """md5(source:source_key): stable across library versions, unlike Polars' hash."""
    ids = [
        hashlib.md5(f"{source}:{key}".encode(), usedforsecurity=False).hexdigest()
        for key in plays["source_key"]
    ]
    return pl.DataFrame({"_row": plays["_row"], "_own_play_id": ids})


def _pair_rule(a: str, b: str, tol: Tolerances) -> tuple[str, str, timedelta]:
    pair = {a, b}
    if LASTFM in pair:
        return "start_at", "name_key", tol.lastfm
    if ACCOUNT in pair:
        return "end_at", "name_key", tol.account
    return "end_at", "track_id", tol.api


def _match_one_to_one(
    pending: pl.DataFrame, candidates: pl.DataFrame, on: str, key: str, tolerance: timedelta
) -> pl.DataFrame:
    """Pair rows with candidates by ``key`` within ``tolerance`` on ``on``, nearest first."""
    left = pending.select("_row", pl.col(key).alias("_key"), pl.col(on).alias("_t")).drop_nulls()
    right = candidates.select(
        "play_id", pl.col(key).alias("_key"), pl.col(on).alias("_t")
    ).drop_nulls()
    found: list[pl.DataFrame] = []
    for _ in range(_MAX_ROUNDS):
        if left.is_empty() or right.is_empty():
            break
        nearest = (
            left.sort("_t")
            .join_asof(
                right.sort("_t").with_columns(_t_right=pl.col("_t")),
                on="_t",
                by="_key",
                strategy="nearest",
                tolerance=tolerance,
                check_sortedness=False,
            )
            .filter(pl.col("play_id").is_not_null())
            .with_columns(_distance=(pl.col("_t") - pl.col("_t_right")).abs())
            .sort("_distance", "_row")
            .unique(subset="play_id", keep="first", maintain_order=True)
            .select("_row", "play_id")
        )
        if nearest.is_empty():
            break
        found.append(nearest)
        left = left.join(nearest, on="_row", how="anti")
        right = right.join(nearest, on="play_id", how="anti")
    if not found:
        return pl.DataFrame(schema={"_row": pl.UInt32(), "play_id": pl.String()})
    return pl.concat(found)


_END_TIME_SOURCES = (EXTENDED, API, ACCOUNT)
_SHORTEST_SCROBBLE = timedelta(seconds=30)


def _match_pause_window(
    source: str, pending: pl.DataFrame, candidates: pl.DataFrame, pause: timedelta
) -> pl.DataFrame:
    """The second pass for Last.fm against end-time rows (see the module's docstring).

    ``pending`` rows of ``source`` are still unmatched; ``candidates`` are the other
    sources' unclaimed rows. Returns (_row, play_id) pairs, one-to-one, nearest first."""
    if source == LASTFM:
        scrobbles = pending.select("_row", "name_key", s=pl.col("start_at") - _HALF_MINUTE)
        plays = candidates.filter(pl.col("source").is_in(_END_TIME_SOURCES)).select(
            "play_id", "name_key", "start_at", "end_at"
        )
        pairs = scrobbles.join(plays, on="name_key", how="inner")
    elif source in _END_TIME_SOURCES:
        plays = pending.select("_row", "name_key", "start_at", "end_at")
        scrobbles = candidates.filter(pl.col("source") == LASTFM).select(
            "play_id", "name_key", s=pl.col("start_at") - _HALF_MINUTE
        )
        pairs = plays.join(scrobbles, on="name_key", how="inner")
    else:
        return pl.DataFrame(schema={"_row": pl.UInt32(), "play_id": pl.String()})
    # a scrobble's minute stands for any of its seconds: [minute, minute + 59 s]
    pairs = pairs.filter(
        (pl.col("s") + timedelta(seconds=59) >= pl.col("start_at") - pause)
        & (pl.col("s") <= pl.col("end_at") - _SHORTEST_SCROBBLE)
    ).with_columns(_distance=(pl.col("s") + _HALF_MINUTE - pl.col("start_at")).abs())
    found: list[pl.DataFrame] = []
    for _ in range(_MAX_ROUNDS):
        if pairs.is_empty():
            break
        best = (
            pairs.sort("_distance", "_row", "play_id")
            .unique(subset="_row", keep="first", maintain_order=True)
            .unique(subset="play_id", keep="first", maintain_order=True)
            .select("_row", "play_id")
        )
        found.append(best)
        pairs = pairs.join(best, on="_row", how="anti").join(best, on="play_id", how="anti")
    if not found:
        return pl.DataFrame(schema={"_row": pl.UInt32(), "play_id": pl.String()})
    return pl.concat(found)
