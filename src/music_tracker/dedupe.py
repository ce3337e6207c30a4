"""Play identity: the de-duplication rules (docs/deduplication.md), as Polars transforms.

Rule 1 (within a source) is a natural key per source, hashed into ``source_key``; a row
whose key is already stored, or repeated in the same batch, is a duplicate.

Rule 2 (across sources) puts a row into a play of a richer source when both name the same
track (Spotify id when both have one, else normalized artist + title) and their times fit
(``_feasible_pairs``):

* API vs a play: end times, seconds apart (both report the end of play);
* account data vs a play: end times, a minute apart (``endTime`` has minute precision);
* ListenBrainz vs a play: a listen with its end (our own exports) like an API or
  account-data row, one with only its start like a scrobble (``_listenbrainz_pairs``);
* Last.fm vs a play: the scrobble's start against the play's estimated start. An
  end-time source knows its start only as end minus ``ms_played`` (export rows) or minus
  the track's length (API rows); a pause makes the real start earlier (``Tolerances.pause``),
  an early stop makes the API's estimate too early. A play heard too briefly for Last.fm's
  own rule has no scrobble.

``regroup`` makes the result independent of import order: it matches a batch's whole
window (stored rows and new ones) again, source by source, richest first, as if the
sources had arrived in that order, and adopts that grouping wherever a new row lands.
Each play holds at most one row per source; competing rows are paired by a maximum
matching of least total distance (``_one_to_one``). A play keeps its ``play_id`` when rows
join it; when two stored plays turn out to be one, the survivor keeps its id and the other's
rows move to it (``Regrouped.overrides``, stored in ``raw.play_id_overrides``). The dbt
model then takes the richest row of each play: extended history > API > account data >
ListenBrainz > Last.fm.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import duckdb
import polars as pl

from music_tracker.connections import connect_duckdb
from music_tracker.warehouse.arrow import ArrowStream, frame_of

if TYPE_CHECKING:
    from music_tracker.settings import Settings

EXTENDED = "spotify_extended_history"
API = "spotify_api"
ACCOUNT = "spotify_account_data"
LASTFM = "lastfm"
LISTENBRAINZ = "listenbrainz"
# richest first; a ListenBrainz listen knows its start to the second (Last.fm's to the
# minute), and the listens Music Tracker exports also their end and time heard
SOURCE_RANK = {EXTENDED: 5, API: 4, ACCOUNT: 3, LISTENBRAINZ: 2, LASTFM: 1}

# the "linked rows" frame: every stored music row that belongs to a play
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
_HALF_MINUTE = timedelta(seconds=30)
# Last.fm scrobbles a track longer than 30 s once half of it (or 4 minutes) was heard, so
# no scrobbled play was heard for less than 15 s
_SCROBBLE_MIN_HEARD_MS = 15_000
_LASTFM_SHORTEST_TRACK_MS = 30_000
_TS_PRECISION = timedelta(seconds=2)
_LASTFM_ENOUGH_MS = 240_000
# an API row's start estimate (end minus the track's length) is too early when the track
# was stopped early; its scrobble then lies anywhere up to the end (less 15 s heard, plus
# the scrobbling device's clock)
_API_STOPPED_EARLY_SLACK = timedelta(seconds=15)


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


def linked_view(
    source: str, rows: pl.DataFrame, durations: pl.DataFrame | None = None
) -> pl.DataFrame:
    """A source's rows (with ``play_id``) reduced to the columns matching needs.

    ``start_at`` is compared with Last.fm's start only; it is null for a row heard too
    briefly for any scrobble (Last.fm's rule: half the track or 4 minutes, for a track
    over 30 s; 15 s when the track's length is unknown). ``durations`` (``track_id``,
    ``duration_ms``) are the track lengths known so far. Minute-precision
    times (account data's ``endTime``, Last.fm's date) stand for any second of their
    minute; they are compared at the minute's middle, so a play ending at 14:13:36 is
    nearer to "14:13" than to "14:14".
    """
    if source == LASTFM:
        end_at = pl.lit(None, pl.Datetime("us", "UTC"))
        start_at = pl.col("started_at") + _HALF_MINUTE
    elif source == LISTENBRAINZ:  # the end only when the listen says (Music Tracker's do)
        end_at = pl.col("played_at")
        start_at = pl.col("started_at")
    elif source == API:
        end_at = pl.col("played_at")
        start_at = pl.col("played_at") - pl.duration(milliseconds=pl.col("duration_ms"))
    elif source == ACCOUNT:
        end_at = pl.col("played_at") + _HALF_MINUTE
        start_at = end_at - pl.duration(milliseconds=pl.col("ms_played"))
    else:
        end_at = pl.col("played_at")
        start_at = pl.col("played_at") - pl.duration(milliseconds=pl.col("ms_played"))
    if source in (ACCOUNT, EXTENDED):
        # the start is only compared with Last.fm's: a play heard too briefly for any
        # scrobble has none to match
        if source == EXTENDED and durations is not None and durations.height:
            # the rows' order is kept: callers line the view up with their rows
            rows = rows.join(durations, on="track_id", how="left", maintain_order="left")
            length = pl.col("duration_ms")
            needed = (
                pl.when(length <= _LASTFM_SHORTEST_TRACK_MS)
                .then(None)  # Last.fm scrobbles no track this short
                .otherwise(pl.min_horizontal(length // 2, _LASTFM_ENOUGH_MS))
            )
            needed = pl.when(length.is_null()).then(_SCROBBLE_MIN_HEARD_MS).otherwise(needed)
        else:
            needed = pl.lit(_SCROBBLE_MIN_HEARD_MS)
        start_at = pl.when(pl.col("ms_played") >= needed).then(start_at)
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
    source: str,
    fresh: pl.DataFrame,
    linked: pl.DataFrame,
    tolerances: Tolerances,
    durations: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, int, int, int]:
    """Rule 2: give each fresh row of ``source`` a ``play_id``.

    ``linked`` holds the plays already formed by the sources richer than ``source``
    (``regroup`` calls this source by source, richest first). Returns the rows with
    ``play_id`` (null for rows that are not plays: 0 ms played), and the counts (linked to
    an existing play, new plays, not plays).
    """
    # a row without ms_played (a listen that does not say) is a play
    has_ms = "ms_played" in fresh.columns
    is_play = (pl.col("ms_played") > 0).fill_null(True) if has_ms else pl.lit(True)
    fresh = fresh.with_row_index("_row")
    plays = fresh.filter(is_play)
    view = linked_view(source, plays.with_columns(play_id=pl.lit("")), durations).with_columns(
        _row=plays["_row"]
    )
    taken = linked.filter(pl.col("source") == source)["play_id"].unique()
    # a play is represented by its richest row: its times are the best known; of a play the
    # export wrote twice, by its first row (the copy ends up to 44 s late), whatever order
    # the rows came in
    candidates = (
        linked.filter(~pl.col("play_id").is_in(taken.implode()))
        .with_columns(_rank=pl.col("source").replace_strict(SOURCE_RANK, return_dtype=pl.Int32))
        .sort("_rank", "play_id", "end_at", descending=[True, False, False], maintain_order=True)
        .unique(subset="play_id", keep="first", maintain_order=True)
    )
    pairs = _feasible_pairs(source, view, candidates, tolerances)
    matched = _one_to_one(pairs)
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
    """md5(source:source_key): stable across library versions, unlike Polars' hash. By
    DuckDB (``_hasher``): 0.021 s per 80,000 keys against 0.050 for ``hashlib`` a key at a
    time, a quarter of matching a part of a large import; the source as a parameter took
    twice as long (docs/benchmarks.md, "The play tables' compression named")."""
    if source not in SOURCE_RANK:  # a name of ours, never input: safe to write into SQL
        raise ValueError(f"not a music source: {source}")
    if plays["source_key"].null_count():  # every reader keys its rows (not null in raw)
        raise ValueError(f"{source} rows without a source_key")
    own_play_keys = ArrowStream(plays.select("_row", "source_key"))  # noqa: F841 (by name)
    return frame_of(
        _hasher().sql(
            f"select _row, md5('{source}:' || source_key) as _own_play_id from own_play_keys"
        )
    )


_local = threading.local()  # each thread's own in-memory DuckDB (``_hasher``)


def _hasher() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB, one thread: ``regroup`` runs beside an insert on the warehouse's
    connection, which it must not use (importers/parts.py)."""
    if getattr(_local, "con", None) is None:
        _local.con = connect_duckdb(config={"threads": 1})
    return cast(duckdb.DuckDBPyConnection, _local.con)


# a candidate pair: the fresh row, the play, its distance (microseconds), and the play's
# time and source, which order the pairs for ties (``_one_to_one``)
_NO_PAIRS = pl.Schema(
    {
        "_row": pl.UInt32(),
        "play_id": pl.String(),
        "_cost": pl.Int64(),
        "_t_play": pl.Datetime("us", "UTC"),
        "source": pl.String(),
    }
)


def _feasible_pairs(
    source: str, view: pl.DataFrame, candidates: pl.DataFrame, tol: Tolerances
) -> pl.DataFrame:
    """Every (fresh row, candidate play) the rules allow, with a cost (seconds apart).

    * API against a play: the end times, the same Spotify track, within ``tol.api``.
    * account data against a play: the end times (account data's at the middle of its
      minute), the same normalized artist and title, within ``tol.account``.
    * Last.fm against a play: the scrobble's start (the middle of its minute) against the
      play's estimated start (end minus the time heard, or minus the track's length for an
      API row), the same normalized artist and title. It may lie up to ``tol.lastfm`` after
      that estimate (the device's clock) and up to ``tol.pause`` more before it (a paused
      play started earlier than its end and time heard say). An API row's estimate is too
      early when the track was stopped early, so its scrobble may also lie up to the end
      plus 15 s. The cost is the distance to the estimate.
    * ListenBrainz against a play: ``_listenbrainz_pairs``.
    """
    if source == API:
        return _pairs(source, view, candidates, "end_at", "track_id", tol.api, tol.api)
    if source == ACCOUNT:
        return _pairs(source, view, candidates, "end_at", "name_key", tol.account, tol.account)
    if source == LASTFM:
        before, after = tol.lastfm + tol.pause, tol.lastfm
        return _pairs(source, view, candidates, "start_at", "name_key", before, after)
    if source == LISTENBRAINZ:
        return _listenbrainz_pairs(view, candidates, tol)
    # the richest source starts the plays
    return pl.DataFrame(schema=_NO_PAIRS)


def _listenbrainz_pairs(
    view: pl.DataFrame, candidates: pl.DataFrame, tol: Tolerances
) -> pl.DataFrame:
    """A listen that says its end (a Music Tracker export: ``ended_at``) is matched on the
    end like an API row (the same Spotify track, ``tol.api``) or like account data (the same
    names, ``tol.account``: the play may be account data's, at the middle of its minute);
    a listen that knows only its start (another scrobbler's) is matched like a scrobble,
    whose start is to the second rather than the minute. Of a listen's pairs with one
    play, the nearest counts."""
    with_end = view.filter(pl.col("end_at").is_not_null())
    start_only = view.filter(pl.col("end_at").is_null())
    source = LISTENBRAINZ
    pairs = pl.concat(
        [
            _pairs(source, with_end, candidates, "end_at", "track_id", tol.api, tol.api),
            _pairs(source, with_end, candidates, "end_at", "name_key", tol.account, tol.account),
            _pairs(
                source, start_only, candidates, "start_at", "name_key",
                tol.lastfm + tol.pause, tol.lastfm,
            ),
        ]
    )  # fmt: skip
    return pairs.sort("_row", "play_id", "_cost").unique(
        subset=["_row", "play_id"], keep="first", maintain_order=True
    )


def _pairs(
    source: str,
    view: pl.DataFrame,
    candidates: pl.DataFrame,
    on: str,
    key: str,
    before: timedelta,
    after: timedelta,
) -> pl.DataFrame:
    """The pairs of rows of ``view`` and ``candidates`` with the same ``key`` whose times
    ``on`` lie at most ``before`` earlier or ``after`` later than the play's."""
    left = view.select("_row", pl.col(key).alias("_key"), pl.col(on).alias("_t")).drop_nulls()
    right = candidates.select(
        "play_id", "source", "end_at", pl.col(key).alias("_key"), pl.col(on).alias("_t_play")
    ).filter(pl.col("_key").is_not_null() & pl.col("_t_play").is_not_null())
    if left.is_empty() or right.is_empty():
        return pl.DataFrame(schema=_NO_PAIRS)
    # bucket the times so that only rows of one track close in time are paired up
    width = int((before + after).total_seconds() * 1_000_000) + 1
    bucket = pl.col("_t").dt.epoch("us") // width
    spread = left.with_columns(_bucket=pl.concat_list(bucket - 1, bucket, bucket + 1)).explode(
        "_bucket"
    )
    right = right.with_columns(_bucket=pl.col("_t_play").dt.epoch("us") // width)
    pairs = spread.join(right, on=["_key", "_bucket"], how="inner")
    late = pl.col("_t") <= pl.col("_t_play") + after
    if source == LASTFM:
        late = late | (
            (pl.col("source") == API)
            & (pl.col("_t") - _HALF_MINUTE <= pl.col("end_at") + _API_STOPPED_EARLY_SLACK)
        )
    return (
        pairs.filter((pl.col("_t") >= pl.col("_t_play") - before) & late)
        .select(
            "_row",
            "play_id",
            _cost=(pl.col("_t") - pl.col("_t_play")).abs().dt.total_microseconds(),
            _t_play="_t_play",
            source="source",
        )
        .unique(subset=["_row", "play_id"])
        .cast(_NO_PAIRS)
    )


def _one_to_one(pairs: pl.DataFrame) -> pl.DataFrame:
    """(_row, play_id): as many pairs as can be kept, one-to-one, then the least distant.

    Most rows have one possible play and most plays one possible row: those pairs are kept
    as they are. Where rows compete (the same track played twice within minutes), the
    choice is a maximum matching of least total distance, so one paused play can never
    take the scrobble that only its neighbour could have had. Matchings that tie (two
    account-data rows of one minute, each as near to two plays of it) are decided by a
    total order of the pairs, never by set order: the row's (its time, then natural key:
    fresh rows come in that order), then the play's time, source and id. So every run
    decides alike, in any process, with any ``PYTHONHASHSEED``.
    """
    if pairs.is_empty():
        return pairs.select("_row", "play_id")
    pairs = pairs.with_columns(
        _row_options=pl.len().over("_row"), _play_options=pl.len().over("play_id")
    )
    simple = pairs.filter((pl.col("_row_options") == 1) & (pl.col("_play_options") == 1))
    contested = pairs.filter((pl.col("_row_options") > 1) | (pl.col("_play_options") > 1))
    chosen = [simple.select("_row", "play_id")]
    if contested.height:
        chosen.append(
            _best_matching(contested.sort("_row", "_t_play", "source", "play_id", nulls_last=True))
        )
    return pl.concat(chosen)


# larger than any distance in microseconds (a day): every weight stays positive
_COST_CEILING_US = 86_400_000_000


def _best_matching(pairs: pl.DataFrame) -> pl.DataFrame:
    """A maximum-cardinality, minimum-cost matching of ``pairs`` (networkx's blossom, on
    each connected group of competing rows; the groups are small), the one preferring the
    earliest pairs in ``pairs``' order among those that tie.

    The preference is in the weights, so that the best matching is unique and the search's
    own order (set order) cannot choose: in a group of n pairs, the pair at position i
    weighs (ceiling - distance) * 2**n + 2**(n-1-i). Distances are whole microseconds, so
    a microsecond less in total outweighs any preference, and no two sets of pairs have
    the same sum of preferences. networkx computes exactly with integer weights.
    """
    import networkx as nx

    graph: nx.Graph[tuple[str, object]] = nx.Graph()
    for order, (row, play_id, cost) in enumerate(
        pairs.select("_row", "play_id", "_cost").iter_rows()
    ):
        graph.add_edge(("row", row), ("play", play_id), cost=cost, order=order)
    rows: list[int] = []
    play_ids: list[str] = []
    for component in nx.connected_components(graph):
        edges = sorted(graph.subgraph(component).edges(data=True), key=lambda e: e[2]["order"])
        count = len(edges)
        weighted: nx.Graph[tuple[str, object]] = nx.Graph()
        for position, (a, b, data) in enumerate(edges):
            preference = 1 << (count - 1 - position)
            weight = ((_COST_CEILING_US - data["cost"]) << count) + preference
            weighted.add_edge(a, b, weight=weight)
        for a, b in nx.max_weight_matching(weighted, maxcardinality=True):
            row_node, play_node = (a, b) if a[0] == "row" else (b, a)
            rows.append(cast(int, row_node[1]))
            play_ids.append(cast(str, play_node[1]))
    return pl.DataFrame(
        {"_row": rows, "play_id": play_ids}, schema={"_row": pl.UInt32(), "play_id": pl.String()}
    )


@dataclass
class Regrouped:
    """The plays of a batch's window, recomputed as if every source had arrived richest first.

    ``assigned``: per source, the fresh rows (``_stage_row``) with their ``play_id`` (null
    for rows that are not plays). ``overrides``: stored rows whose play changes
    (``source``, ``source_key``, ``play_id``, ``previous_play_id``). Counts: fresh rows that
    joined a play of another source (``linked``) or are a copy of a play the export wrote
    twice (``written_twice``), plays that did not exist before
    (``new_plays``, per source of their richest fresh row), stored plays absorbed into
    another (``merged``), fresh rows that are not plays (``not_plays``, per source).
    """

    assigned: dict[str, pl.DataFrame]
    overrides: pl.DataFrame
    linked: int
    written_twice: int
    new_plays: dict[str, int]
    merged: int
    not_plays: dict[str, int]
    # the plays counted in ``new_plays`` (``play_id``, ``source``, ``_stage_row`` of the
    # row that counted them), and the stored plays counted in ``merged``: a large import's
    # later part can absorb a play an earlier part made (``importers/parts.py``)
    new_ids: pl.DataFrame = field(default_factory=pl.DataFrame)
    merged_ids: pl.Series = field(default_factory=lambda: pl.Series(dtype=pl.String))


_OVERRIDE_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "source_key": pl.String(),
        "play_id": pl.String(),
        "previous_play_id": pl.String(),
    }
)


def regroup(
    stored: dict[str, pl.DataFrame],
    fresh: dict[str, pl.DataFrame],
    tolerances: Tolerances,
    time_column: dict[str, str],
    durations: pl.DataFrame | None = None,
    *,
    everything: bool = False,
    revisit: pl.Series | None = None,
) -> Regrouped:
    """Rule 2 for a batch, independent of the order the sources arrived in.

    ``stored[source]``: the stored plays' rows around the batch's times (``play_id``,
    ``source_key`` and the matching columns); ``fresh[source]``: the batch's new rows
    (``_stage_row``, ``source_key``, matching columns), after rule 1. ``durations``
    (``track_id``, ``duration_ms``): the track lengths known, which tell a play too short
    for a scrobble.

    Every row of the window is matched again, source by source, richest first and in time
    order, exactly as if the sources had been imported in that order. That grouping is
    adopted for every group holding a fresh row, and for every stored play such a group
    touches (so a play is never left half in an old grouping and half in the new one).
    Elsewhere stored rows keep their plays. An adopted group keeps the id of the stored
    play that gives it most rows (then the richer row, then the smaller id): ids stay
    stable for survivors, and plays proven to be one by a later, richer row are merged into
    the survivor. A group with no stored play gets the id of its richest row, as before.
    With ``everything``, every group is adopted (``music-tracker rematch``: the whole
    history matched again under the current rules, with no fresh rows). ``revisit``: the
    stored plays adopted as if they held a fresh row (default: those holding a scrobble
    heard too briefly, ``_scrobbles_held_too_briefly``).
    """
    linked = pl.DataFrame(schema=LINKED_SCHEMA)
    parts: list[pl.DataFrame] = []
    fresh_twins = 0
    # the sources with rows in the window, richest first
    order = [
        source
        for source in sorted(set(stored) | set(fresh), key=SOURCE_RANK.__getitem__, reverse=True)
        if any(rows is not None and rows.height for rows in (stored.get(source), fresh.get(source)))
    ]
    for position, source in enumerate(order):
        rows = _window_rows(source, stored.get(source), fresh.get(source), time_column[source])
        if rows is None:
            continue
        twins = None
        if source == EXTENDED:
            rows, twins = _split_written_twice(rows)
        grouped, _, _, _ = assign_plays(source, rows, linked, tolerances, durations)
        del rows  # a full history is 350,000 rows: keep only narrow copies from here
        if twins is not None and twins.height:
            twins = twins.join(
                grouped.select(pl.col("source_key").alias("_first_key"), "play_id"),
                on="_first_key",
            ).drop("_first_key")
            fresh_twins = twins["_stage_row"].drop_nulls().len()
        chosen = [grouped] + ([twins] if twins is not None and twins.height else [])
        if position < len(order) - 1:  # a poorer source comes next and matches against it
            linked = pl.concat([linked, *(linked_view(source, f, durations) for f in chosen)])
        parts.extend(
            frame.select(
                pl.lit(source).alias("source"),
                "source_key",
                pl.col("_stage_row").cast(pl.UInt32),
                pl.col("_stored_id").cast(pl.String),
                pl.col("play_id").alias("_group"),
                pl.lit(SOURCE_RANK[source]).alias("_rank"),
            )
            for frame in chosen
        )
        del grouped, twins, chosen
    every = pl.concat(parts) if parts else _empty_window()
    if not everything and every["_stored_id"].null_count() == every.height:
        # nothing stored around the batch (a first import): every group is new and keeps
        # its own id; no adoption to work out
        every = every.with_columns(_final=pl.col("_group"))
    else:
        if revisit is None:
            revisit = _scrobbles_held_too_briefly(stored, durations)
        adopted = (
            every["_group"].drop_nulls().unique() if everything else _adopted_groups(every, revisit)
        )
        final = _final_ids(every.filter(pl.col("_group").is_in(adopted.implode())))
        every = every.join(final, on="_group", how="left")
    fresh_rows = every.filter(pl.col("_stage_row").is_not_null())
    assigned = {
        source: fresh_rows.filter(pl.col("source") == source).select(
            "_stage_row", pl.col("_final").alias("play_id")
        )
        for source in fresh
    }
    overrides = (
        every.filter(
            pl.col("_stored_id").is_not_null()
            & pl.col("_final").is_not_null()
            & (pl.col("_final") != pl.col("_stored_id"))
        )
        .select(
            "source",
            "source_key",
            pl.col("_final").alias("play_id"),
            pl.col("_stored_id").alias("previous_play_id"),
        )
        .cast(_OVERRIDE_SCHEMA)
    )
    in_adopted = every.filter(pl.col("_final").is_not_null())
    stored_ids = in_adopted["_stored_id"].drop_nulls().unique()
    merged_ids = stored_ids.filter(~stored_ids.is_in(in_adopted["_final"].implode()))
    new_groups = (
        in_adopted.filter(
            ~pl.col("_final").is_in(stored_ids.implode()) & pl.col("_stage_row").is_not_null()
        )
        .sort("_rank", descending=True)
        .unique(subset="_final", keep="first")
    )
    fresh_plays = fresh_rows.filter(pl.col("_final").is_not_null())
    return Regrouped(
        assigned=assigned,
        overrides=overrides,
        linked=fresh_plays.height - new_groups.height - fresh_twins,
        written_twice=fresh_twins,
        new_plays=dict(new_groups.group_by("source").len().iter_rows()),
        merged=merged_ids.len(),
        not_plays=dict(
            fresh_rows.filter(pl.col("_final").is_null()).group_by("source").len().iter_rows()
        ),
        new_ids=new_groups.select(pl.col("_final").alias("play_id"), "source", "_stage_row"),
        merged_ids=merged_ids,
    )


def _window_rows(
    source: str, stored: pl.DataFrame | None, fresh: pl.DataFrame | None, time_column: str
) -> pl.DataFrame | None:
    """Stored and fresh rows of one source in one frame, in a canonical order (time, key)."""
    frames = []
    if stored is not None and stored.height:
        frames.append(
            stored.rename({"play_id": "_stored_id"}).with_columns(
                _stage_row=pl.lit(None, pl.UInt32)
            )
        )
    if fresh is not None and fresh.height:
        frames.append(fresh.with_columns(_stored_id=pl.lit(None, pl.String)))
    if not frames:
        return None
    rows = pl.concat(
        [f.with_columns(pl.col("_stage_row").cast(pl.UInt32)) for f in frames],
        how="diagonal_relaxed",
    )
    return rows.sort(time_column, "source_key", nulls_last=True)


def _split_written_twice(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Extended-history rows that are one play written twice, apart from the first.

    Real exports hold rows of one track with the same ``ms_played`` to the millisecond
    whose ends are a second or a few apart: a 210,024 ms play ending at 22:16:08 and again
    at 22:16:11. Two real plays of one track cannot overlap (an account plays one stream at
    a time), so a row of one track and one ``ms_played`` that ends closer than that
    ``ms_played`` (less 2 s for ``ts``'s precision) after a play's first row is that play
    written again; it joins it (``_first_key``). The comparison is with the first row, not
    with the row before: a copy 3 s after a 76 s play and a repeat ending 76 s after the
    play are 73 s apart, yet the repeat is a play of its own.
    Returns (rows to match, twins with the ``source_key`` of their first row).
    """
    # the comparison runs on a narrow copy; the wide rows are only filtered once
    narrow = rows.select("track_id", "ms_played", "played_at", "source_key").with_row_index("_at")
    ordered = narrow.sort("track_id", "ms_played", "played_at", "source_key", nulls_last=True)
    same = (pl.col("track_id") == pl.col("track_id").shift(1)) & (
        pl.col("ms_played") == pl.col("ms_played").shift(1)
    )
    # ``ts`` is cut to the second: a play repeated straight after itself ends up to a
    # second less than its length after the first, so overlap needs more than that
    overlaps = (pl.col("played_at") - pl.col("played_at").shift(1)) + _TS_PRECISION < (
        pl.duration(milliseconds=pl.col("ms_played"))
    )
    # A row that does not overlap the row before it overlaps no earlier first row either
    # (those end earlier still): it starts a play. Only the rows after one that may be a
    # copy are decided one by one, against the first row of their play (a few in a
    # history; 12 pairs in the real export).
    marked = ordered.with_columns(
        _maybe=(same & overlaps & (pl.col("ms_played") > 0)).fill_null(False)
    ).with_columns(_run=(~pl.col("_maybe")).cum_sum())
    runs = marked.filter(pl.col("_maybe").any().over("_run"))
    first_of: dict[str, str] = {}
    first_key, first_end = "", None
    for key, end, ms, maybe in runs.select(
        "source_key", "played_at", "ms_played", "_maybe"
    ).iter_rows():
        if (
            maybe
            and first_end is not None
            and end - first_end + _TS_PRECISION < timedelta(milliseconds=ms)
        ):
            first_of[key] = first_key
        else:  # the start of a run, or a repeat after the copies of the play before it
            first_key, first_end = key, end
    if not first_of:
        return rows, rows.clear().with_columns(_first_key=pl.lit(None, pl.String))
    twin_at = marked.filter(pl.col("source_key").is_in(list(first_of)))["_at"]
    indexed = rows.with_row_index("_at")
    firsts = indexed.filter(~pl.col("_at").is_in(twin_at.implode())).drop("_at")
    twins = (
        indexed.filter(pl.col("_at").is_in(twin_at.implode()))
        .drop("_at")
        .with_columns(_first_key=pl.col("source_key").replace_strict(first_of))
    )
    return firsts, twins


def _empty_window() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "source": pl.String(),
            "source_key": pl.String(),
            "_stage_row": pl.UInt32(),
            "_stored_id": pl.String(),
            "_group": pl.String(),
            "_rank": pl.Int32(),
        }
    )


def _scrobbles_held_too_briefly(
    stored: dict[str, pl.DataFrame], durations: pl.DataFrame | None
) -> pl.Series:
    """Stored plays holding a scrobble that, by the track lengths known now, they were
    heard too briefly to have.

    A play's chance of a scrobble depends on its track's length (half of it heard), which
    is often learned after the play was matched: from an API row or the track's metadata,
    imported later. Until then a play heard for 18 s of a 39 s track could have been
    scrobbled, and may hold the scrobble of the next play of the track. These are matched
    again as if the length had been known from the start.
    """
    extended, lastfm = stored.get(EXTENDED), stored.get(LASTFM)
    if extended is None or lastfm is None or not extended.height or not lastfm.height:
        return pl.Series("play_id", [], pl.String)
    too_brief = too_brief_for_a_scrobble(extended, durations)["play_id"]
    return lastfm.filter(pl.col("play_id").is_in(too_brief.implode()))["play_id"].unique()


def too_brief_for_a_scrobble(rows: pl.DataFrame, durations: pl.DataFrame | None) -> pl.DataFrame:
    """The stored extended-history ``rows`` (``play_id``, ``played_at``, ``ms_played``,
    ``track_id``) heard too briefly for Last.fm to have scrobbled them, by the track
    lengths in ``durations``."""
    if "name_key" not in rows.columns:  # not read here; the view has a place for it
        rows = rows.with_columns(name_key=pl.lit(None, pl.String))
    view = linked_view(EXTENDED, rows, durations)
    return rows.filter(view["start_at"].is_null())


def _adopted_groups(every: pl.DataFrame, revisit: pl.Series) -> pl.Series:
    """Groups holding a fresh row or a row of a stored play in ``revisit``, closed over the
    stored plays they touch."""
    plays = every.filter(pl.col("_group").is_not_null())
    adopted = plays.filter(
        pl.col("_stage_row").is_not_null() | pl.col("_stored_id").is_in(revisit.implode())
    )["_group"].unique()
    # to the end of the chain, however long: a track on repeat with a scrobbling clock a
    # minute slow chains every play to the next, and a closure stopped after 20 rounds
    # left a scrobble of the chain as a play of its own (helper-55). Each round adds a
    # group or ends, so it ends.
    while True:
        touched = plays.filter(pl.col("_group").is_in(adopted.implode()))["_stored_id"]
        reached = plays.filter(pl.col("_stored_id").is_in(touched.drop_nulls().implode()))
        grown = pl.concat([adopted, reached["_group"]]).unique()
        if grown.len() == adopted.len():
            return adopted
        adopted = grown


def _final_ids(rows: pl.DataFrame) -> pl.DataFrame:
    """(_group, _final): each adopted group's id, one stored play id per group at most."""
    votes = (
        rows.filter(pl.col("_stored_id").is_not_null())
        .group_by("_group", "_stored_id")
        .agg(pl.len().alias("_rows"), pl.col("_rank").max().alias("_best"))
        .with_columns(_ids=pl.len().over("_group"), _groups=pl.len().over("_stored_id"))
    )
    schema = {"_group": pl.String(), "_final": pl.String()}
    # most groups hold the rows of one stored play that no other group holds: it keeps its
    # id (a whole history re-matched is 350,000 of these: no Python loop for them)
    plain = votes.filter((pl.col("_ids") == 1) & (pl.col("_groups") == 1)).select(
        "_group", _final=pl.col("_stored_id")
    )
    chosen: dict[str, str] = {}
    used: set[str] = set()
    contested = votes.filter((pl.col("_ids") > 1) | (pl.col("_groups") > 1)).sort(
        ["_rows", "_best", "_stored_id", "_group"], descending=[True, True, False, False]
    )
    for group, stored_id in contested.select("_group", "_stored_id").iter_rows():
        if group not in chosen and stored_id not in used:
            chosen[group] = stored_id
            used.add(stored_id)
    voted = pl.concat(
        [
            plain,
            pl.DataFrame({"_group": list(chosen), "_final": list(chosen.values())}, schema=schema),
        ]
    )
    # every other group keeps its own id (its richest row's), unless a stored play kept
    # that id above: a first import of 350,000 plays is all of this kind, so no Python loop
    taken = pl.concat([plain["_final"], pl.Series(list(used), dtype=pl.String)])
    rest = (
        rows.select("_group")
        .unique()
        .join(voted, on="_group", how="anti")
        .with_columns(_taken=pl.col("_group").is_in(taken.implode()))
    )
    split = rest.filter(pl.col("_taken"))["_group"].to_list()
    return pl.concat(
        [
            voted,
            rest.filter(~pl.col("_taken")).select("_group", _final=pl.col("_group")),
            pl.DataFrame({"_group": split, "_final": [_split_id(g) for g in split]}, schema=schema),
        ]
    )


def _split_id(group: str) -> str:
    """The id of a group split off a stored play whose id its richest row already gave."""
    return hashlib.md5(f"split:{group}".encode(), usedforsecurity=False).hexdigest()
