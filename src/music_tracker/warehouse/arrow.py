"""Frames between DuckDB and Polars without pyarrow, and memory handed back after big steps."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:  # Polars is imported where rows are written, not by readers (transform)
    import polars as pl


# NO_PYARROW: frames cross between DuckDB and Polars through the Arrow C stream interface
# (``frame_of``, ``ArrowStream``), never through pyarrow, which is not installed: loading
# and using it cost an import 40-60 MB of its memory (measured at 350,000 plays). DuckDB
# scans a Polars frame itself only through pyarrow, so every frame it reads is wrapped.


def frame_of(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query's result as a Polars frame (NO_PYARROW). The caller builds ``relation``
    (``con.sql``) itself: DuckDB finds frames read by name among the caller's variables."""
    import polars as pl

    return pl.DataFrame(relation)


class ArrowStream:
    """A Polars frame as DuckDB scans it, by variable name or ``con.register`` (NO_PYARROW)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.frame.__arrow_c_stream__(requested_schema)


def release_freed_memory() -> None:
    """Hand back to the system the memory DuckDB has freed but still holds.

    DuckDB's Linux builds allocate through their own jemalloc, which keeps freed pages for
    reuse: after an import has read its files, and after it has inserted a part, that is
    100-150 MB the next step would stack on (measured at 350,000 plays: the import's peak
    went from 400-430 MB to about 360 MB). Purging at those points costs milliseconds,
    where returning every free at once (``DUCKDB_JE_MALLOC_CONF=dirty_decay_ms:0``) made
    the import 25-35% slower. A build without that allocator (macOS, ARM) has nothing to
    purge: this does nothing there.
    """
    mallctl = _duckdb_mallctl()
    if mallctl is not None:
        # MALLCTL_ARENAS_ALL (4096): every arena; jemalloc's documented "arena.<i>.purge"
        mallctl(b"arena.4096.purge", None, None, None, 0)


@functools.cache
def _duckdb_mallctl() -> Any:
    import ctypes

    try:
        import _duckdb  # DuckDB's compiled module, which `import duckdb` has loaded

        library = ctypes.CDLL(_duckdb.__file__)
        mallctl = library.duckdb_je_mallctl
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    mallctl.argtypes = [
        ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
    ]  # fmt: skip
    mallctl.restype = ctypes.c_int
    return mallctl
