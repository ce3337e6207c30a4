"""What provisioning reads from the serving copy itself: the columns each card returns,
the filters' defaults and values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from music_tracker.connections import connect_duckdb
from music_tracker.reporting.definitions import RANK_BY, Dashboard, bind


def open_copy(copy: Path, memory_limit: str) -> duckdb.DuckDBPyConnection:
    """The serving copy, read-only, as the default database of a fresh in-memory instance
    (a plain connect would share a process-wide instance with other settings), under the
    pipeline's memory cap (uncapped, DuckDB caches up to 80% of the machine's memory)."""
    con = connect_duckdb(config={"memory_limit": memory_limit})
    con.execute(f"attach '{str(copy).replace(chr(39), chr(39) * 2)}' as serving (read_only)")
    con.execute("use serving")
    return con


def result_columns(
    copy: Path, dashboards: list[Dashboard], memory_limit: str
) -> dict[tuple[str, str], list[str]]:
    """Per (dashboard, card): the names of the columns its SQL returns on the serving copy
    (no rows are read)."""
    found: dict[tuple[str, str], list[str]] = {}
    with open_copy(copy, memory_limit) as con:
        for dashboard in dashboards:
            for card in dashboard.cards:
                sql, params = bind(card.sql, {})
                cursor = con.execute(f"select * from ({sql}) limit 0", params)
                found[dashboard.slug, card.name] = [d[0] for d in cursor.description]
    return found


def filter_defaults(
    copy: Path, dashboards: list[Dashboard], memory_limit: str
) -> dict[str, dict[str, Any]]:
    """Per dashboard: the year a "current" filter starts on, the years a year filter with
    ``options_sql`` offers, and each text filter's values (the most relevant first), read
    from the serving copy; a rank filter's values and default, from its definition."""
    found: dict[str, dict[str, Any]] = {}
    with open_copy(copy, memory_limit) as con:
        newest = con.execute(
            "select max(year_num) from dw.dim_date"
            " where date_sid in (select date_sid from dw.fact_track_played)"
        ).fetchone()
        for dashboard in dashboards:
            values: dict[str, Any] = {}
            for flt in dashboard.filters:
                years: list[int] | None = None
                if flt.kind == "year" and flt.options_sql:  # the years it has data for
                    years = [int(y) for (y,) in con.execute(flt.options_query()).fetchall() if y]
                    values[f"{flt.name}:values"] = sorted(years, reverse=True)
                if flt.kind == "year" and flt.default == "current":
                    pool: list[int | None] = (
                        list(years) if years is not None else [newest[0] if newest else None]
                    )
                    current = max((y for y in pool if y is not None), default=None)
                    if current is not None:
                        values[flt.name] = current
                if flt.kind == "rank":  # plays or time listened, the filter's to start on
                    values[flt.name] = flt.default
                    values[f"{flt.name}:values"] = list(RANK_BY)
                if flt.kind == "text" and flt.options_sql:
                    query = f"select * from ({flt.options_query()}) limit 500"
                    rows = con.execute(query).fetchall()
                    values[f"{flt.name}:values"] = [str(r[0]) for r in rows if r[0] is not None]
            found[dashboard.slug] = values
    return found
