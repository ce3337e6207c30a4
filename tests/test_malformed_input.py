"""Malformed exports (property-based): mutated rows and files, built from the real exports,
never make the importer crash with a traceback. Either the file is refused with a message
that names it (and the row, where one row is to blame) and nothing is stored, or every row
it read is stored or set aside with a reason.

More examples: MUSIC_TRACKER_FUZZ_EXAMPLES=500 pytest tests/test_malformed_input.py
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ACCOUNT_DIR, EXTENDED_DIR, load_rows
from music_tracker.importers.errors import ImportInputError
from music_tracker.importers.run import run_import
from music_tracker.settings import Settings

EXAMPLES = int(os.environ.get("MUSIC_TRACKER_FUZZ_EXAMPLES", "25"))
SAMPLE_ROWS = 8


def _real_rows() -> dict[str, list[Any]]:
    """A few real rows of each format (Last.fm's from the real plays: no export of it here)."""
    extended = [
        row
        for row in load_rows(EXTENDED_DIR / "Streaming_History_Audio_2023_3.json")[:200]
        if row.get("spotify_track_uri")
    ][:SAMPLE_ROWS]
    account = load_rows(ACCOUNT_DIR / "StreamingHistory_music_0.json")[:SAMPLE_ROWS]
    lastfm = [
        [
            row["master_metadata_album_artist_name"],
            row["master_metadata_album_album_name"],
            row["master_metadata_track_name"],
            datetime.fromisoformat(row["ts"]).strftime("%d %b %Y %H:%M"),
        ]
        for row in extended
    ]
    return {"extended": extended, "account": account, "lastfm": lastfm}


REAL = _real_rows()
NAMES = {
    "extended": "Streaming_History_Audio_2023_3.json",
    "account": "StreamingHistory_music_0.json",
    "lastfm": "scrobbles.csv",
}

JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.just("x" * 300_000),  # a huge string
    st.just("2023-02-30T25:61:00Z"),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def mutated_rows(draw: st.DrawFn, kind: str) -> list[Any]:
    """The real rows with some fields changed, removed or added, or rows replaced."""
    rows: list[Any] = [dict(row) if isinstance(row, dict) else list(row) for row in REAL[kind]]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(rows) - 1))
        row = rows[index]
        action = draw(st.sampled_from(["change", "remove", "add", "replace", "duplicate"]))
        if action == "replace":
            rows[index] = draw(JSON_VALUES)
        elif action == "duplicate":
            rows.append(row)
        elif isinstance(row, dict) and row:
            field = draw(st.sampled_from(sorted(row)))
            if action == "change":
                row[field] = draw(JSON_VALUES)
            elif action == "remove":
                del row[field]
            else:
                row[draw(st.text(min_size=1, max_size=10))] = draw(JSON_VALUES)
        elif isinstance(row, list) and row:
            position = draw(st.integers(min_value=0, max_value=len(row) - 1))
            if action == "change":
                row[position] = str(draw(JSON_VALUES))
            elif action == "remove":
                del row[position]
            else:
                row.append(draw(st.text(max_size=10)))
    return rows


def _text(kind: str, rows: list[Any]) -> str:
    if kind == "lastfm":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for row in rows:
            writer.writerow(row if isinstance(row, list) else [json.dumps(row)])
        return out.getvalue()
    return json.dumps(rows, ensure_ascii=False, indent=2)


@st.composite
def malformed_files(draw: st.DrawFn, kind: str) -> bytes:
    """A file of mutated rows, then maybe damaged as a whole: truncated, in another
    encoding, with bytes changed."""
    text = _text(kind, draw(mutated_rows(kind)))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    damage = draw(st.sampled_from(["none", "truncate", "bytes"]))
    if damage == "truncate" and data:
        data = data[: draw(st.integers(min_value=0, max_value=len(data) - 1))]
    elif damage == "bytes" and data:
        at = draw(st.integers(min_value=0, max_value=len(data) - 1))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at + 1 :]
    return data


def _stored_rows(data_dir: Path) -> int:
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        tables = (
            "spotify_extended_history",
            "spotify_account_data",
            "lastfm_scrobbles",
            "spotify_api_plays",
            "other_plays",
            "set_aside_rows",
        )
        return sum(
            con.sql(f"select count(*) from raw.{table}").fetchone()[0]  # type: ignore[index]
            for table in tables
        )


def _check(data: bytes, kind: str, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / NAMES[kind]
    path.write_bytes(data)
    data_dir = folder / "data"
    try:
        summary = run_import(Settings(data_dir=data_dir), [path])
    except ImportInputError as exc:
        assert str(path) in str(exc)  # the file is named
        assert not (data_dir / "warehouse.duckdb").exists()  # nothing stored, nothing left
        return
    # accepted: every row read is stored (music, other content) or set aside with a reason,
    # apart from rows repeated within the file
    assert _stored_rows(data_dir) + summary.duplicates_in_input == summary.rows_read


def _fuzz(kind: str) -> Any:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same examples in every run of the suite
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(data=malformed_files(kind))
    def test(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
        _check(data, kind, tmp_path_factory.mktemp(kind))

    return test


test_malformed_extended_history = _fuzz("extended")
test_malformed_account_data = _fuzz("account")
test_malformed_lastfm_export = _fuzz("lastfm")


def test_the_unmutated_rows_import_whole(tmp_path: Path) -> None:
    """The baseline the mutations start from is importable, so the fuzzing reaches the
    row checks and not only the file checks."""
    for kind in REAL:
        _check(_text(kind, REAL[kind]).encode(), kind, tmp_path / kind)
