"""A Last.fm export, one file for a whole account, read a block of records at a time
(importers/lastfm.py): the blocks give the rows one block gives, numbered as in the file,
and a bad record in a late block fails the import as a bad file always did."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import polars.testing
import pytest

from conftest import EXTENDED_DIR, Cli, cli_json, extended_plays, query
from music_tracker.importers import blocks, lastfm
from music_tracker.importers.errors import ImportInputError


def _scrobble_lines() -> list[list[str]]:
    """The real extended history's plays as Last.fm scrobbles (start of play, to the
    minute), with what CSV quoting allows: commas, quotes and line breaks in names."""
    rows = []
    for play in extended_plays(
        *sorted(EXTENDED_DIR.glob("Streaming_History_Audio_*.json"))
    ).values():
        end = datetime.strptime(play["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        start = end - timedelta(milliseconds=play["ms_played"])
        rows.append(
            [
                play["master_metadata_album_artist_name"],
                play["master_metadata_album_album_name"] or "",
                play["master_metadata_track_name"],
                start.strftime("%d %b %Y %H:%M"),
            ]
        )
    rows[3][2] = 'Blue Monday "12 Version"'
    rows[5][0] = "Crosby, Stills & Nash"
    rows[1500][2] = "A title\nover two lines"
    rows[8][1] = '""'
    return rows


def _write(path: Path, rows: list[list[str]], *, header: bool = True, crlf: bool = False) -> Path:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n" if crlf else "\n")
    if header:
        writer.writerow(["artist", "album", "track", "date"])
    writer.writerows(rows)
    # no line break after the last record, as some exporters write it
    path.write_bytes(text.getvalue().rstrip("\r\n").encode())
    return path


def test_blocks_give_the_rows_of_one_block(tmp_path: Path) -> None:
    rows = _scrobble_lines()
    with duckdb.connect() as con:
        for crlf in (False, True):
            path = _write(tmp_path / f"scrobbles-{crlf}.csv", rows, crlf=crlf)
            size = path.stat().st_size
            (whole,) = lastfm.read_scrobbles(con, path, path.name, block_bytes=size + 1)
            assert whole.rows_read == len(rows)
            assert whole.music["file_row"].to_list() == list(range(2, len(rows) + 2))
            assert whole.music["track_name"][1500] == "A title\nover two lines"
            assert whole.music["track_name"][3] == 'Blue Monday "12 Version"'
            # a first block that ends inside the quoted line break
            inside = path.read_bytes().index(b"A title\nover") + 12
            for block_bytes in (inside, 2048, size // 3):
                blocks = list(lastfm.read_scrobbles(con, path, path.name, block_bytes=block_bytes))
                assert len(blocks) > 1
                assert sum(b.rows_read for b in blocks) == whole.rows_read
                polars.testing.assert_frame_equal(pl.concat(b.music for b in blocks), whole.music)


def test_a_bad_record_in_a_late_block_is_named_by_its_row(tmp_path: Path) -> None:
    rows = _scrobble_lines()
    rows[900][3] = "31 Feb 2019 10:00"
    path = _write(tmp_path / "scrobbles.csv", rows)
    with duckdb.connect() as con, pytest.raises(ImportInputError) as caught:
        for _ in lastfm.read_scrobbles(con, path, path.name, block_bytes=4096):
            pass
    assert caught.value.row == 902  # the header is row 1
    assert "31 Feb 2019" in str(caught.value)


def test_an_import_failing_in_a_late_block_names_that_file_first(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blocks before the bad one were staged; nothing is stored, and of two bad files
    the Last.fm export, first in order, is the one named (a later file parses on the other
    thread meanwhile)."""
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    rows = _scrobble_lines()
    good = _write(tmp_path / "good.csv", rows[:300])
    stored = cli_json(cli, "import", str(good))["new_plays"]
    before = cli_json(cli, "status")
    rows[1200][0] = ""
    (tmp_path / "bad").mkdir()
    bad = _write(tmp_path / "bad" / "scrobbles.csv", rows)
    later = tmp_path / "bad" / "Streaming_History_Audio_2019.json"
    text = (EXTENDED_DIR / "Streaming_History_Audio_2018.json").read_text()
    later.write_text(text[: len(text) // 2])
    result = cli("import", str(bad), str(later), expect=1)
    output = " ".join(result.output.split())
    assert "scrobbles.csv" in output and later.name not in output, output
    assert "a scrobble without artist or track" in output and "1202" in output, output
    assert cli_json(cli, "status") == before
    assert query(data_dir, "select count(*) from raw.lastfm_scrobbles") == [(stored,)]


def test_a_whole_export_imports_in_blocks(
    cli: Cli, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI: in blocks of 4 KiB the plays, keys and rows are those of one block."""
    rows = _scrobble_lines()
    path = _write(tmp_path / "scrobbles.csv", rows)
    columns = "source_key, play_id, started_at, track_name, artist_name, album_name, file_row"
    whole = cli_json(cli, "import", str(path), "--data-dir", str(tmp_path / "whole"))
    expected = query(tmp_path / "whole", f"select {columns} from raw.lastfm_scrobbles order by all")
    monkeypatch.setattr(blocks, "BLOCK_BYTES", 4096)
    in_blocks = cli_json(cli, "import", str(path))
    assert in_blocks["new_plays"] == whole["new_plays"] > 1000
    assert in_blocks["rows_read"] == whole["rows_read"] == len(rows)
    assert query(data_dir, f"select {columns} from raw.lastfm_scrobbles order by all") == expected


def test_a_short_last_block_and_an_open_quote_are_refused_within_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A last block of one line of three fields says where its block starts; a quote never
    closed is not read on for past the longest record (it held the whole file,
    quadratically)."""
    rows = _scrobble_lines()[:300]
    path = _write(tmp_path / "scrobbles.csv", rows, header=False)
    good = path.read_bytes() + b"\n"
    path.write_bytes(good + b"A,B,C\n")
    with duckdb.connect() as con, pytest.raises(ImportInputError) as caught:
        for _ in lastfm.read_scrobbles(con, path, path.name, block_bytes=len(good)):
            pass
    assert "at row 301 or after it" in str(caught.value)  # the block's first row
    monkeypatch.setattr(blocks, "_LONGEST_RECORD", 4096)
    open_quote = good.replace(b"\n", b'\n"', 1)
    path.write_bytes(open_quote)
    with path.open("rb") as handle:
        pieces = list(blocks.csv_blocks(handle, 1024))
    assert b"".join(pieces) == open_quote
    assert max(len(piece) for piece in pieces) <= 4096 + 1024
    with duckdb.connect() as con, pytest.raises(ImportInputError):
        for _ in lastfm.read_scrobbles(con, path, path.name, block_bytes=1024):
            pass


def test_a_quote_left_open_is_refused_not_merged(tmp_path: Path) -> None:
    """A stray quote made one album of the hundred scrobbles up to the next quote, and the
    import went on (before blocks too): refused now, naming the row of the quote."""
    lines = [
        f"Artist {i},Album {i},Track {i},{10 + i % 18} Nov 2016 10:{i % 60:02}" for i in range(300)
    ]
    lines[99] = lines[99].replace(",", ',"', 1)  # Artist 99,"Album 99,...
    lines[199] = lines[199].replace(",Track", '",Track', 1)  # ...Album 199",Track 199
    path = tmp_path / "scrobbles.csv"
    path.write_text("\n".join(lines) + "\n")
    with duckdb.connect() as con, pytest.raises(ImportInputError) as caught:
        for _ in lastfm.read_scrobbles(con, path, path.name):
            pass
    assert caught.value.row == 100
    assert "a quote opened in this row runs over the rows after it" in str(caught.value)
