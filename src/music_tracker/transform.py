"""``music-tracker transform``: ``dbt build`` in-process on the warehouse.

dbt runs through its Python API (``dbtRunner``) in this process, with the warehouse path and
the model's settings handed over as environment variables that ``transform/profiles.yml``
and ``dbt_project.yml`` read. Progress comes from dbt's own events; a failure names the
failing model or test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from music_tracker.settings import Settings

PROJECT_DIR = Path(__file__).resolve().parents[2] / "transform"


class TransformError(Exception):
    """dbt failed: the message names each failing model or test."""


@dataclass
class TransformResult:
    """What a build did."""

    succeeded: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def _environment(settings: Settings) -> Iterator[None]:
    values = {
        "MUSIC_TRACKER_WAREHOUSE": str(settings.warehouse_path.resolve()),
        "MUSIC_TRACKER_TIMEZONE": settings.timezone,
        "MUSIC_TRACKER_STREAM_THRESHOLD_MS": str(settings.stream_threshold_ms),
        "MUSIC_TRACKER_DBT_MEMORY_LIMIT": settings.dbt_memory_limit,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_build(
    settings: Settings,
    *,
    full_refresh: bool = False,
    select: str | None = None,
    unit_tests: bool = False,
    on_node: Callable[[str, int], None] | None = None,
) -> TransformResult:
    """Run ``dbt build``; ``on_node(name, total)`` is called as each model or test finishes."""
    from dbt.cli.main import dbtRunner
    from dbt_common.events.base_types import EventMsg

    from music_tracker import warehouse

    if not settings.warehouse_path.exists():
        raise TransformError(
            f"no warehouse at {settings.warehouse_path}: run `music-tracker import` first"
        )
    # make sure the raw schema is current before dbt reads it
    with warehouse.connect(settings.warehouse_path):
        pass
    total = {"nodes": 0}

    def callback(event: EventMsg) -> None:
        name = event.info.name
        if name == "ConcurrencyLine":
            total["nodes"] = int(getattr(event.data, "node_count", 0))
        elif name == "NodeFinished" and on_node is not None:
            node = event.data.node_info
            on_node(node.node_name, total["nodes"])

    args = [
        "build",
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target-path",
        str(settings.data_dir.resolve() / "dbt" / "target"),
        "--log-path",
        str(settings.data_dir.resolve() / "dbt" / "logs"),
        "--quiet",
        "--no-use-colors",
    ]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    if not unit_tests:
        # unit tests pin logic, not data: `make test` runs them, scheduled builds skip them
        args += ["--exclude-resource-type", "unit_test"]
    with _environment(settings):
        try:
            outcome = dbtRunner(callbacks=[callback]).invoke(args)
        finally:
            _release_warehouse()
    return _summarize(outcome)


def _release_warehouse() -> None:
    """Close dbt-duckdb's cached database so this process can open the warehouse again.

    dbt-duckdb keeps one DuckDB instance per process (``DuckDBConnectionManager._ENV``) and
    its ``close_all_connections`` only forgets it; DuckDB refuses a second instance of the
    same file with another configuration, so it is closed here explicitly.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.factory import reset_adapters

    environment = DuckDBConnectionManager._ENV
    if environment is not None:
        environment.close()
    DuckDBConnectionManager.close_all_connections()  # type: ignore[no-untyped-call]
    reset_adapters()  # type: ignore[no-untyped-call]


def _summarize(outcome: Any) -> TransformResult:
    result = TransformResult()
    if outcome.exception is not None:
        raise TransformError(f"dbt could not run: {outcome.exception}")
    for node_result in getattr(outcome.result, "results", []) or []:
        status = str(node_result.status)
        result.seconds += float(node_result.execution_time or 0)
        if status in ("success", "pass"):
            result.succeeded += 1
        elif status == "skipped":
            result.skipped += 1
        else:
            node = node_result.node
            kind = node.resource_type
            lines = [line.strip() for line in (node_result.message or "").splitlines()]
            # dbt's first line repeats the node name; the cause follows it
            detail = " ".join(line for line in lines[:4] if line) or status
            result.failures.append(f"{kind} {node.name} ({node.original_file_path}): {detail}")
    if not outcome.success and not result.failures:
        result.failures.append("dbt reported a failure without a failing node; see the dbt log")
    if result.failures:
        raise TransformError("\n".join(result.failures))
    return result
