"""Every DuckDB connection music-tracker opens, made in one place.

DuckDB draws a progress bar on the process's stdout for any query past 2 s (a large
import or report, a busy machine). stdout is the command's own: its summary, or the one
JSON document `--json` promises to machines. ``enable_progress_bar`` cannot be given to
``duckdb.connect`` (DuckDB refuses it as a global option), so it is set on each
connection here; cursors of the connection inherit it. dbt's connections get it from
transform/profiles.yml (``settings``).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

ConfigValue = str | bool | int | float | list[str]


def connect_duckdb(
    database: Path | str = ":memory:",
    *,
    read_only: bool = False,
    config: dict[str, ConfigValue] | None = None,
) -> duckdb.DuckDBPyConnection:
    """``duckdb.connect`` that never prints a progress bar."""
    con = duckdb.connect(str(database), read_only=read_only, config=config or {})
    try:
        con.execute("set enable_progress_bar = false")
    except BaseException:
        con.close()
        raise
    return con
