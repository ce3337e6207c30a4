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
from typing import BinaryIO, TextIO

# about 80,000 scrobbles or 25,000 listens a block
BLOCK_BYTES = 8 * 2**20
_QUOTE = ord('"')
# no record is longer (DuckDB's JSON reader refuses one over 16 MiB, its
# maximum_object_size): past that, what does not end is not read on for
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
        if not cut and len(block) > _LONGEST_RECORD:
            # no scrobble is this long (a quote left open): handed on for the reader's own
            # message, where reading on would hold the whole file
            cut = len(block)
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


def is_json_lines(path: Path) -> bool:
    """Whether the first record of ``path`` is a whole line of JSON (else its records
    run over several lines, as ``jq`` writes them, and cannot be cut at line breaks)."""
    with path.open("rb") as handle:
        while line := handle.readline(_LONGEST_RECORD):
            # an object that opens and closes on its line (not decoded: a line can be long)
            record = line.removeprefix(b"\xef\xbb\xbf").strip()
            if record:
                return record.startswith(b"{") and record.endswith(b"}")
    return False


def json_line_blocks(path: Path, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """JSON lines in blocks of about ``block_bytes`` that end with a line, each with the
    number of lines before it (a line break is never inside a JSON value)."""
    carry = b""
    lines_before = 0
    with path.open("rb") as handle:
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


class BrokenArray(ValueError):
    """A JSON array that cannot be split into records: ``record`` is the number (from 1) of
    the record where it breaks."""

    def __init__(self, record: int, reason: str) -> None:
        super().__init__(reason)
        self.record = record
        self.reason = reason


def json_array_blocks(path: Path, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """A JSON array of records (objects) as arrays of about ``block_bytes`` of them, each
    with the number of records before it. A record is copied as written; Python's decoder
    finds where it ends. Anything else, between records or after the array's end, raises
    :class:`BrokenArray`: nothing of the file is passed over."""
    # numbers kept as text: only where a record ends is wanted (and Python refuses an
    # integer of over 4,300 digits)
    decoder = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=str)
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as handle:
        text = _Text(handle)
        if text.next_char() != "[":
            raise BrokenArray(1, "the file does not start with a JSON array")
        text.pos += 1
        records: list[bytes] = []
        size = records_before = number = 0
        while True:
            char = text.next_char()
            if char == "]":
                text.pos += 1
                if text.next_char():
                    raise BrokenArray(number, "there is more after the array's end")
                yield _as_array(records), records_before
                return
            if number:
                if char != ",":
                    raise BrokenArray(number + 1, _MISSING.get(char, "no comma before it"))
                text.pos += 1
                char = text.next_char()
            if char != "{":
                raise BrokenArray(number + 1, _MISSING.get(char, "not a JSON object"))
            record = text.record(decoder, number + 1)
            number += 1
            records.append(record)
            size += len(record)
            if size >= block_bytes:
                yield _as_array(records), records_before
                records_before, records, size = number, [], 0


_MISSING = {
    "": "the array does not end: the file may be truncated",
    "]": "a comma with no record after it",
}
# a JSON array is decoded this many characters at a time
_READ_CHARS = 2**20
_BLANK = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, not Unicode's


class _Text:
    """A text file read a part at a time, with a position in what is held."""

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.text = ""
        self.pos = 0

    def _more(self) -> bool:
        more = self.handle.read(_READ_CHARS)
        if more:
            self.text, self.pos = self.text[self.pos :] + more, 0
        return bool(more)

    def next_char(self) -> str:
        """The next character that is not whitespace, "" at the end of the file."""
        while True:
            self.pos = _skip_blank(self.text, self.pos)
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def record(self, decoder: json.JSONDecoder, number: int) -> bytes:
        """The JSON value that starts here, as written, as UTF-8."""
        while True:
            try:
                _, end = decoder.raw_decode(self.text, self.pos)
            except json.JSONDecodeError as exc:
                # cut by the read, unless it is longer than any record can be
                if len(self.text) - self.pos < _LONGEST_RECORD and self._more():
                    continue
                raise BrokenArray(number, f"not JSON ({exc.msg})") from exc
            except RecursionError as exc:  # Python's decoder recurses: a thousand levels
                raise BrokenArray(number, "nested too deeply to be read") from exc
            record = self.text[self.pos : end]
            self.pos = end
            return record.encode("utf-8", errors="surrogateescape")


def _skip_blank(text: str, pos: int) -> int:
    found = _BLANK.match(text, pos)
    assert found is not None  # the pattern matches the empty string
    return found.end()


def _as_array(records: list[bytes]) -> bytes:
    return b"[" + b",\n".join(records) + b"]"
