"""The only code that writes ``warehouse.duckdb``'s raw schema (dbt builds the rest).

DuckDB allows one read-write process per file; everything that writes goes through
:func:`connect`, and a whole import is one transaction (:func:`transaction`), so a failed
run leaves the warehouse exactly as it was. Our own writers take turns first by the writer
lock beside it (:mod:`music_tracker.lock`).

- ``schema``: the raw tables, their version and the migrations from older ones
- ``connection``: opening it (readers' and writers' turns, DuckDB's file lock, waited
  for; a damaged file told), transactions
- ``arrow``: frames between DuckDB and Polars without pyarrow; memory handed back
- ``rows``: what imports read and write
- ``contents``: what it holds (for ``status``), the transform record
"""

from __future__ import annotations

from music_tracker.warehouse.arrow import (
    ArrowStream,
    frame_of,
    release_freed_memory,
)
from music_tracker.warehouse.connection import (
    DEFAULT_MEMORY_LIMIT,
    FILE_WAIT_S,
    WarehouseBusy,
    busy_by_another_program,
    checkpoint,
    connect,
    damaged,
    drop_cached_blocks,
    open_warehouse,
    single_threaded,
    transaction,
    turn,
    uncached_files,
    wait_until_free,
)
from music_tracker.warehouse.contents import (
    CHANGE_LOGS,
    PLAY_TABLES,
    catalog_fingerprint,
    counted_other_plays,
    last_transform_fingerprint,
    record_transform,
    rows_imported_since_last_transform,
    since_last_build,
    stamped_since_last_transform,
    start_serving_build,
    status,
    stored_play_rows,
)
from music_tracker.warehouse.rows import (
    earlier_podcast_decisions,
    imported_file_hashes,
    insert_frame,
    insert_row,
    insert_staged,
    insert_staged_chosen,
    insert_staged_music,
    known_show_names,
    linked_rows,
    longest_stored_ms,
    old_account_files,
    record_run,
    replace_podcast_decisions,
    scrobbled_extended_rows,
    store_play_id_overrides,
    stored_keys,
    stored_old_account_rows,
    stored_other_keys,
    track_durations,
)
from music_tracker.warehouse.schema import (
    API_SOURCE_KEY_SQL,
    DDL,
    EFFECTIVE_PLAY_ID,
    LENGTH_COLUMNS,
    MATCH_COLUMNS,
    MUSIC_TABLES,
    OVERRIDES_JOIN,
    RAW_SCHEMA_VERSION,
    TIME_COLUMN,
    drop_primary_keys,
    has_raw_table,
    play_id_params,
    play_ids_query,
    rekey_api_plays,
)

__all__ = [
    "API_SOURCE_KEY_SQL",
    "CHANGE_LOGS",
    "DDL",
    "DEFAULT_MEMORY_LIMIT",
    "EFFECTIVE_PLAY_ID",
    "FILE_WAIT_S",
    "LENGTH_COLUMNS",
    "MATCH_COLUMNS",
    "MUSIC_TABLES",
    "OVERRIDES_JOIN",
    "PLAY_TABLES",
    "RAW_SCHEMA_VERSION",
    "TIME_COLUMN",
    "ArrowStream",
    "WarehouseBusy",
    "busy_by_another_program",
    "catalog_fingerprint",
    "checkpoint",
    "connect",
    "counted_other_plays",
    "damaged",
    "drop_cached_blocks",
    "drop_primary_keys",
    "earlier_podcast_decisions",
    "frame_of",
    "has_raw_table",
    "imported_file_hashes",
    "insert_frame",
    "insert_row",
    "insert_staged",
    "insert_staged_chosen",
    "insert_staged_music",
    "known_show_names",
    "last_transform_fingerprint",
    "linked_rows",
    "longest_stored_ms",
    "old_account_files",
    "open_warehouse",
    "play_id_params",
    "play_ids_query",
    "record_run",
    "record_transform",
    "rekey_api_plays",
    "release_freed_memory",
    "replace_podcast_decisions",
    "rows_imported_since_last_transform",
    "scrobbled_extended_rows",
    "since_last_build",
    "single_threaded",
    "stamped_since_last_transform",
    "start_serving_build",
    "status",
    "store_play_id_overrides",
    "stored_keys",
    "stored_old_account_rows",
    "stored_other_keys",
    "stored_play_rows",
    "track_durations",
    "transaction",
    "turn",
    "uncached_files",
    "wait_until_free",
]
