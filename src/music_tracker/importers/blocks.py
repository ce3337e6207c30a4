"""Split one large export file into blocks of whole records, so that it is read a block at
a time and an import holds one block's rows, never the file's.

Two sources write a whole account into one file: a Last.fm scrobble export (CSV) and a
ListenBrainz export in one file (our own ``listens.jsonl``, or ListenBrainz's older single
JSON array). Read whole, 1.28 million scrobbles held 650-820 MiB, and 350,000 listens did
not fit DuckDB's default cap of 128 MB (docs/benchmarks.md, "One large export file").

Each block is the records' own bytes, unchanged: natural keys computed from a block are
the keys computed from the whole file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# about 80,000 scrobbles or 25,000 listens a block
BLOCK_BYTES = 8 * 2**20
_QUOTE = ord('"')
_BETWEEN_RECORDS = re.compile(r"\s*,?\s*")
# DuckDB's JSON reader refuses a record over 16 MiB (its maximum_object_size): past that,
# what does not decode is not read on for, but handed on for DuckDB's message
_LONGEST_RECORD = 16 * 2**20


def csv_blocks(handle: BinaryIO, block_bytes: int) -> Iterator[bytes]:
    """``handle``'s bytes in blocks of about ``block_bytes`` that end where a record ends:
    at a line break outside quotes (an even number of ``"`` before it in the block, as
    Polars' own reader counts them; ``""`` in a quoted field is two). The last block is the
    rest of the file; an empty file is one empty block (read, and refused, as before)."""
    carry = b""
    data = handle.read(block_bytes)
    while True:
        ahead = handle.read(block_bytes) if data else b""
        block = carry + data
        if not ahead:
            yield block
            return
        cut = _last_record_end(block)
        carry = block[cut:]
        if cut:
            yield block[:cut]
        data = ahead


def _last_record_end(block: bytes) -> int:
    """The index just past the last line break in ``block`` outside quotes, 0 if none is
    (a record longer than the block, or one whose quote is still open: read on)."""
    end = block.rfind(b"\n")
    quotes = block.count(_QUOTE, 0, end) if end >= 0 else 0
    while end >= 0:
        if quotes % 2 == 0:
            return end + 1
        before = block.rfind(b"\n", 0, end)
        quotes -= block.count(_QUOTE, before + 1, end)
        end = before
    return 0


def is_json_array(path: Path) -> bool:
    """Whether ``path`` holds one JSON array (else JSON lines)."""
    with path.open("rb") as handle:
        return handle.read(1024).removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")


def json_line_blocks(handle: BinaryIO, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """JSON lines in blocks of about ``block_bytes`` that end with a line, each with the
    number of lines before it (a line break is never inside a JSON value)."""
    carry = b""
    lines_before = 0
    data = handle.read(block_bytes)
    while True:
        ahead = handle.read(block_bytes) if data else b""
        block = carry + data
        if not ahead:
            yield block, lines_before
            return
        cut = block.rfind(b"\n") + 1
        carry = block[cut:]
        if cut:
            yield block[:cut], lines_before
            lines_before += block.count(b"\n", 0, cut)
        data = ahead


def json_array_blocks(path: Path, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """A JSON array of records as arrays of about ``block_bytes`` of them, each with the
    number of records before it. A record is copied as written (Python's decoder finds
    where it ends). What cannot be decoded is handed on as the rest of the array, for the
    reader to refuse with its own message."""
    decoder = json.JSONDecoder()
    records_before = 0
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        text = handle.read(block_bytes)
        start = text.find("[") + 1
        while True:
            records: list[str] = []
            size = 0
            while size < block_bytes:
                at = _after_separator(text, start)
                if at == len(text) and (more := handle.read(block_bytes)):
                    text, start = text[start:] + more, 0
                    continue
                if text.startswith("]", at):
                    yield _as_array(records), records_before
                    return
                try:
                    if not text.startswith("{", at):
                        raise json.JSONDecodeError("not a record", text, at)
                    _, end = decoder.raw_decode(text, at)
                except json.JSONDecodeError:
                    # a record cut by the read, unless it is longer than any record can be
                    cut = text.startswith("{", at) and len(text) - at < _LONGEST_RECORD
                    if cut and (more := handle.read(block_bytes)):
                        text, start = text[start:] + more, 0
                        continue
                    # not JSON: the rest, for the reader's own message
                    yield (
                        _as_array([*records, text[at:].rstrip().removesuffix("]")]),
                        records_before,
                    )
                    return
                records.append(text[at:end])
                size += end - at
                start = end
            yield _as_array(records), records_before
            records_before += len(records)


def _after_separator(text: str, start: int) -> int:
    """Where the next record starts: past whitespace and one comma from ``start``."""
    found = _BETWEEN_RECORDS.match(text, start)
    assert found is not None  # the pattern matches the empty string
    return found.end()


def _as_array(records: list[str]) -> bytes:
    return ("[" + ",\n".join(records) + "]").encode("utf-8", errors="surrogateescape")
