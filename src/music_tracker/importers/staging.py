"""The rows of one import, staged in Parquet files until the run commits.

Polars reads, narrows and de-duplicates here; the warehouse package does every write to the
warehouse (``store_*`` call it inside the import's transaction).
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import duckdb
import polars as pl

from music_tracker import warehouse

# a non-music row's natural key in raw.other_plays (rule 1)
_OTHER_KEY = ["source", "content_type", "source_key"]
# music rows per UTC day and source (``Staging._day_weights``)
_BY_DAY = {"day": pl.Datetime("us", "UTC"), "source": pl.String(), "rows": pl.Int64()}
# the day of a music row without a time (none reaches staging: readers refuse them)
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _longest_ms(frame: pl.DataFrame) -> int:
    """The longest play ``frame``'s music rows tell, in milliseconds (0: none)."""
    lengths = [pl.col(c).cast(pl.Int64) for c in warehouse.LENGTH_COLUMNS if c in frame]
    if "started_at" in frame and "played_at" in frame:  # a listen: its start and its end
        lengths.append((pl.col("played_at") - pl.col("started_at")).dt.total_milliseconds())
    if not lengths or frame.is_empty():
        return 0
    longest = frame.select(pl.max_horizontal(lengths).max()).item()
    return max(int(longest or 0), 0)


@dataclass
class OtherStored:
    """Counts from storing non-music rows: the plays they add as the star schema counts
    them (``warehouse.counted_other_plays``), rows of plays another source already holds,
    rows with no time heard (kept in raw, not plays)."""

    new_by_type: dict[str, int]
    repeated_in_input: int
    already_stored: int
    same_play_from_other_source: int = 0
    not_plays: int = 0


class Staging:
    """Rows read in this run, held in Parquet files until the run commits.

    Each file is staged as it is read, so a run holds one file's frame in memory plus the
    narrow columns that matching needs, never the whole history. Every staged row gets a
    run-wide ``_stage_row`` number in read order ("first seen" means lowest number).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path) -> None:
        self.con = con
        self.folder = folder
        self.music_sources: list[str] = []
        # each music source's staged files by the UTC day of their rows, with row counts
        self._by_day: dict[str, list[tuple[datetime, str, int]]] = {}
        # after plan_parts: each music source's staged files, per part (time slice), and
        # each part's times [start, end) (None: open)
        self._parts_files: dict[str, list[list[str]]] = {}
        self._part_bounds: list[tuple[datetime | None, datetime | None]] = [(None, None)]
        self._schemas: dict[str, dict[str, pl.DataType]] = {}
        self._rows = 0
        self._files_written = 0
        # the longest play any stored or staged music row tells (ms played, the track's
        # length, or the span from its start to its end), in milliseconds: ``parts``
        # widens the stored rows it reads by it
        self.longest_ms = warehouse.longest_stored_ms(con)
        self._moved_podcasts: pl.DataFrame | None = None
        self.podcast_decisions: pl.DataFrame | None = None
        self._api_lengths: pl.DataFrame | None = None  # ``api_lengths``, once all is staged

    def _write(self, kind: str, frame: pl.DataFrame, **constants: Any) -> None:
        frame = frame.with_columns(
            _stage_row=pl.int_range(self._rows, self._rows + frame.height, dtype=pl.Int64),
            **{k: pl.lit(v) for k, v in constants.items()},
        )
        self._rows += frame.height
        self._files_written += 1
        target = self.folder / kind
        target.mkdir(exist_ok=True)
        path = target / f"{self._files_written:06d}.parquet"
        self._write_file(frame, path)
        if kind not in warehouse.TIME_COLUMN:
            return
        # music rows: the days each file holds, so that a large import's parts (whole
        # days) are the files holding them, read with a filter on time, never a second
        # pass over the rows (one file per month was 285 files at 350,000 plays and made
        # the import 0.5-0.7 s slower)
        self._schemas.setdefault(kind, dict(frame.schema))
        self.longest_ms = max(self.longest_ms, _longest_ms(frame))
        day = pl.col(warehouse.TIME_COLUMN[kind]).dt.truncate("1d").fill_null(_NO_TIME)
        for start, rows in frame.group_by(day.alias("_day")).len().sort("_day").iter_rows():
            self._by_day.setdefault(kind, []).append((start, str(path), rows))

    @staticmethod
    def _write_file(frame: pl.DataFrame, path: Path) -> None:
        try:
            # uncompressed, without statistics: staged files live for one run and are read
            # whole. A file of 16,000 rows: written in 7.6 ms of CPU against 11.1 with lz4
            # and statistics, read back by DuckDB in 10.2 against 10.7, 1.96 MiB against
            # 1.49 (zstd took 1.6x lz4's CPU)
            frame.write_parquet(path, compression="uncompressed", statistics=False)
        except pl.exceptions.PolarsError as exc:
            # Polars reports a full disk as a damaged Parquet stream ("Invalid thrift")
            if shutil.disk_usage(path.parent).free < frame.estimated_size():
                raise OSError(errno.ENOSPC, "No space left on device", str(path)) from exc
            raise

    def _files(self, kind: str) -> list[str]:
        """The staged Parquet files of ``kind``, listed, never a glob: a data folder may
        have ``[``, ``*`` or ``?`` in its path, which Polars and DuckDB would expand."""
        return sorted(str(path) for path in (self.folder / kind).iterdir())

    def _scan(self, kind: str) -> pl.LazyFrame:
        """Every staged file of ``kind``."""
        return pl.scan_parquet(self._files(kind), glob=False)

    def _has(self, kind: str) -> bool:
        return (self.folder / kind).is_dir()

    def add(self, source: str, parsed: Any, file_sha256: str) -> None:
        """Stage one file's rows (``readers.Parsed``)."""
        if parsed.music.height:
            if source not in self.music_sources:
                self.music_sources.append(source)
            self._write(source, parsed.music, file_sha256=file_sha256)
        if parsed.other.height:
            self._write("other", parsed.other, file_sha256=file_sha256)
        if parsed.set_aside.height:
            self._write(
                "set_aside", parsed.set_aside, file_sha256=file_sha256, source=parsed.format.value
            )

    def known_show_names(self, stored_old_files: list[str]) -> pl.Series:
        """Podcast shows named by podcast data, stored or staged in this run (not the
        episodes moved out of stored old account-data files, ``stored_old_files``)."""
        shows = warehouse.known_show_names(self.con, stored_old_files)
        if self._has("other"):
            staged = self._scan("other")
            shows = pl.concat(
                [shows, staged.filter(pl.col("content_type") == "podcast").collect()["show_name"]]
            )
        return shows.unique()

    def old_account_rows(self, file_hashes: list[str], stored_files: list[str]) -> pl.DataFrame:
        """The staged rows of old-format account-data files (music and episodes mixed),
        and the stored rows of the old-format files imported before (``stored_files``):
        a history imported a year at a time is decided on as a whole."""
        stored = warehouse.stored_old_account_rows(self.con, stored_files)
        if not file_hashes or "spotify_account_data" not in self.music_sources:
            return stored
        staged = (
            self._scan("spotify_account_data")
            .filter(pl.col("file_sha256").is_in(file_hashes))
            .select("artist_name", "track_name", "ms_played", "played_at")
            .collect()
        )
        return pl.concat([staged, stored.cast(staged.schema)]) if stored.height else staged

    def move_old_account_podcasts(self, file_hashes: list[str], shows: pl.DataFrame) -> None:
        """Old account data lists podcast episodes as "artist" = show, "track" = episode:
        the rows of old-format files whose "artist" is one of ``shows`` (``show_name``,
        ``reason``, ``plays``: importers/podcasts.py decided) go to other plays. A row an
        earlier import stored as music (overlapping downloads) stays music: one play is
        never both."""
        if not file_hashes or not shows.height:
            return
        moved = (
            self._scan("spotify_account_data")
            .filter(
                pl.col("file_sha256").is_in(file_hashes)
                & pl.col("artist_name").is_in(shows["show_name"].implode())
            )
            .collect()
        )
        if moved.height:
            as_music = warehouse.stored_keys(self.con, "spotify_account_data", moved)
            moved = moved.filter(~pl.col("source_key").is_in(as_music.implode()))
        if moved.height:
            self._moved_podcasts = moved
            self.podcast_decisions = shows

    def plan_parts(self, max_rows: int) -> int:
        """Split the staged music rows into parts by time, to be matched and stored one
        after the other (``match_columns``, ``store_music``), and return how many.

        A part is a run of whole UTC days holding at most ``max_rows`` rows of one source
        or fewer of several (``_day_weights``; a day over it is a part of its own), so
        memory is bounded by the part, not by the history or its density. Parts were whole
        months once: three sources at 4,000 rows a day made every month a part of 124,000
        rows whatever ``max_rows`` said, and matching them peaked at 426-431 MiB.
        A part reads the staged files holding any of its days, filtered on time.
        """
        days = self._day_weights()
        if days.is_empty() or float(days["weight"].sum()) <= max_rows:
            self._parts_files = {source: [self._files(source)] for source in self.music_sources}
            self._part_bounds = [(None, None)]
            return 1
        starts: list[datetime] = []
        in_part = 0.0
        for day, weight in days.iter_rows():
            if not starts or in_part + weight > max_rows:
                starts.append(day)
                in_part = 0.0
            in_part += weight
        bounds = pl.Series("start", starts, dtype=days["day"].dtype)
        for source in self.music_sources:
            staged = self._by_day[source]
            index = bounds.search_sorted(pl.Series([m for m, _, _ in staged]), side="right") - 1
            parts: list[list[str]] = [[] for _ in starts]
            for part, (_, path, _) in zip(index, staged, strict=True):
                if path not in parts[part][-1:]:  # a file's days are listed in order
                    parts[part].append(path)
            self._parts_files[source] = parts
        ends: list[datetime | None] = [*starts[1:], None]
        self._part_bounds = [(None, ends[0]), *zip(starts[1:], ends[1:], strict=True)]
        return len(starts)

    def _day_weights(self) -> pl.DataFrame:
        """Staged music rows per UTC day, weighed by what matching them holds (``day``,
        ``weight``), in time order.

        A row of a day that several sources tell is matched against the others' rows of
        it: at 120,000 rows a part, the first 1.5 million plays of the 10M benchmark
        peaked at 380 MiB as extended history alone, 406 with account data beside it, 426
        with Last.fm as well. So a day's rows count (sources + 1) / 2 times each: one
        source 1, two 1.5, three 2 (parts of 60,000 such rows: 370 MiB). The rows stored
        before of a staged day are matched again with it, and count as its staged rows do:
        1 million plays as one Last.fm file imported onto the same plays' extended
        history, in parts of 80,000 staged rows, peaked at 403 MiB (docs/benchmarks.md,
        "Parts weighed by the rows stored before").
        """
        staged = [
            (day, source, rows)
            for source in self.music_sources
            for day, _, rows in self._by_day[source]
        ]
        frame = pl.DataFrame(staged, schema=_BY_DAY, orient="row")
        if frame.is_empty():
            return frame.select("day", weight=pl.col("rows").cast(pl.Float64))
        first, last = cast(datetime, frame["day"].min()), cast(datetime, frame["day"].max())
        stored = pl.DataFrame(
            warehouse.stored_rows_by_day(self.con, first, last + timedelta(days=1)),
            schema=_BY_DAY,
            orient="row",
        ).join(frame.select("day").unique(), on="day", how="semi")
        return (
            pl.concat([frame, stored])
            .group_by("day")
            .agg(weight=pl.col("rows").sum() * (pl.col("source").n_unique() + 1) / 2)
            .sort("day")
        )

    @property
    def parts(self) -> int:
        """How many parts ``plan_parts`` made (1 before it runs)."""
        return len(self._part_bounds)

    def part_start(self, part: int) -> datetime | None:
        """The first instant of ``part`` (None: the first part, which has no lower bound)."""
        return self._part_bounds[part][0]

    def has_rows(self, source: str, part: int) -> bool:
        """Whether ``part`` may hold staged rows of ``source`` (a file of its days)."""
        return source in self._parts_files and bool(self._parts_files[source][part])

    def api_lengths(self) -> pl.DataFrame | None:
        """The track lengths the staged API rows tell (``track_id``, ``duration_ms``),
        the first told of each track; None without API rows. Every part's matching knows
        them from the start, as an import in one part does (``importers/parts.py``)."""
        if "spotify_api" not in self.music_sources:
            return None
        if self._api_lengths is None:  # read once, not for every part
            self._api_lengths = (
                self._scan("spotify_api")
                .select("_stage_row", "track_id", "duration_ms")
                .drop_nulls()
                .sort("_stage_row")
                .unique("track_id", keep="first", maintain_order=True)
                .drop("_stage_row")
                .collect()
            )
        return self._api_lengths

    def match_columns(self, source: str, part: int = 0) -> pl.DataFrame:
        """The staged rows of ``source`` in ``part``, in read order, narrowed to what
        matching needs."""
        columns = ["_stage_row", "source_key", *warehouse.MATCH_COLUMNS[source]]
        files = self._parts_files[source][part]
        if not files:  # nothing of this source in this part's days
            return pl.DataFrame(schema={c: self._schemas[source][c] for c in columns})
        time = pl.col(warehouse.TIME_COLUMN[source])
        start, end = self._part_bounds[part]
        frame = pl.scan_parquet(files, glob=False)
        if start is not None:
            frame = frame.filter(time >= start)
        if end is not None:
            frame = frame.filter(time < end)
        frame = frame.select(columns)
        if source == "spotify_account_data" and self._moved_podcasts is not None:
            frame = frame.join(
                self._moved_podcasts.lazy().select("_stage_row"), on="_stage_row", how="anti"
            )
        return frame.sort("_stage_row").collect()

    def store_music(
        self, source: str, assigned: pl.DataFrame, now: datetime, part: int = 0
    ) -> None:
        """Insert the staged rows of ``part`` chosen in ``assigned`` (``_stage_row``,
        ``play_id``). The part's files may hold rows of other parts too: the join on
        ``assigned`` leaves them to their own part."""
        files = self._parts_files[source][part]
        if files and assigned.height:
            warehouse.insert_staged_music(self.con, source, files, assigned, now)

    def store_other(self, now: datetime) -> OtherStored:
        """Insert new podcast, audiobook and video rows (rule 1 within each source).

        Rule 1 is decided on the keys alone (``_OTHER_KEY``, ``_stage_row``, ``ms_played``);
        the rows it keeps are then inserted from the staged files. Holding every staged row
        whole instead took the import at 10 million plays (1.1 million other rows) from
        about 270 MB to 547 MB at its end.
        """
        narrow = ["_stage_row", *_OTHER_KEY, "ms_played"]
        frames: list[pl.LazyFrame] = []
        if self._has("other"):
            frames.append(self._scan("other").select(narrow))
        moved = None
        if self._moved_podcasts is not None:
            moved = self._moved_podcasts.select(
                "_stage_row",
                "source_key",
                pl.lit("spotify_account_data").alias("source"),
                pl.lit("podcast").alias("content_type"),
                "played_at",
                "ms_played",
                pl.col("artist_name").alias("show_name"),
                pl.col("track_name").alias("item_name"),
                "file_sha256",
                "file_row",
            )
            frames.append(moved.select(narrow).lazy())
        if not frames:
            return OtherStored({}, 0, 0)
        staged = pl.concat(frames, how="diagonal_relaxed")
        staged_rows = staged.select(pl.len()).collect().item()
        # each key's first staged row, found without a sorted copy of every staged row:
        # sorted, then made unique, the rows were held three times over at the import's
        # end (the peak of a 10-million-play import, 397-408 MB)
        first = pl.col("_stage_row") == pl.col("_stage_row").min().over(_OTHER_KEY)
        unique = staged.filter(first).collect()
        unique_rows = unique.height
        stored = warehouse.stored_other_keys(self.con, unique.select(_OTHER_KEY))
        fresh = unique.join(stored, on=_OTHER_KEY, how="anti")
        del unique, stored
        fresh_rows = fresh.height
        not_plays = fresh.filter(pl.col("ms_played") <= 0).height
        chosen = fresh.select("_stage_row")
        del fresh
        before = warehouse.counted_other_plays(self.con)
        if self._has("other"):
            # what the look-up of stored keys and the count freed, before the insert reads
            # every staged file
            warehouse.release_freed_memory()
            warehouse.insert_staged_chosen(
                self.con, "raw.other_plays", self._files("other"), chosen, now
            )
            # reading 625 staged files (10 million plays) left about 100 MB freed in
            # DuckDB's allocator, which the count below stacked on (394 MB)
            warehouse.release_freed_memory()
        if moved is not None:
            moved = moved.join(chosen, on="_stage_row", how="semi").drop("_stage_row")
            warehouse.insert_frame(self.con, "raw.other_plays", moved, imported_at=now)
        after = warehouse.counted_other_plays(self.con)
        # a play counts once: a row of a play another source holds adds none (a Spotify
        # row arriving after our own ListenBrainz listen of it takes the listen's place)
        new_by_type = {
            kind: after[kind] - before.get(kind, 0)
            for kind in after
            if after[kind] > before.get(kind, 0)
        }
        return OtherStored(
            new_by_type,
            staged_rows - unique_rows,
            unique_rows - fresh_rows,
            same_play_from_other_source=fresh_rows - not_plays - sum(new_by_type.values()),
            not_plays=not_plays,
        )

    def store_podcast_decisions(self, now: datetime) -> None:
        if self.podcast_decisions is not None:
            warehouse.replace_podcast_decisions(self.con, self.podcast_decisions, now)

    def store_set_aside(self, now: datetime) -> None:
        if self._has("set_aside"):
            warehouse.insert_staged(self.con, "raw.set_aside_rows", self._files("set_aside"), now)
