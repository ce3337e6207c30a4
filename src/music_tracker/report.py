"""``music-tracker report``: every dashboard as a static HTML site in the data folder's
``report/``, for the command and for the pipeline's report step alike; and its copy into
a folder of another site (``--output``), swapped in whole.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from music_tracker import interrupts
from music_tracker.lock import report_lock
from music_tracker.reporting.definitions import load_dashboards
from music_tracker.reporting.static_site import Context, build_report
from music_tracker.settings import Settings

REPORT_MARK = "assets/report.js"  # a folder holding this is a report written here


class OutputRefused(Exception):
    """The folder named for the copy is one the copy would wrongly replace."""


class CopyFailed(Exception):
    """The report was written, but its copy (``--output``) could not be; the copy that was
    there stays."""


def report(
    settings: Settings,
    *,
    on_page: Callable[[str], None] | None = None,
    wait_s: float | None = None,
    copy_to: Path | None = None,
) -> dict[str, Any]:
    """Render the dashboards into ``report/``, then copy it to ``copy_to`` when given,
    holding the report's lock (one report at a time per data folder: ReportBusy after
    ``wait_s``, the commands' ``lock_wait_s`` unless given). DefinitionError for a bad
    definition, ReportError when the warehouse cannot give what they need, CopyFailed."""
    wait_s = settings.lock_wait_s if wait_s is None else wait_s
    with report_lock(settings.data_dir, "report", wait_s=wait_s):
        context = Context(  # its time once the report is ours to write (a wait is minutes)
            timezone=settings.timezone,
            stream_threshold_ms=settings.stream_threshold_ms,
            built_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
        summary = build_report(
            settings.warehouse_path,
            settings.report_dir,
            context,
            dashboards=load_dashboards(),
            on_page=on_page,
            memory_limit=settings.duckdb_memory_limit,
        ).as_dict()
        if copy_to is not None:
            try:
                summary["copied_to"] = str(copy_report(settings.report_dir, copy_to))
            except OSError as exc:
                raise CopyFailed(f"cannot copy the report to {copy_to}: {exc}") from exc
    return summary


def check_output(output: Path, settings: Settings) -> None:
    """Refuse a folder the copy would wrongly replace: one holding other files (the
    owner's site), or the data folder's own report."""
    data, report_dir = settings.data_dir.resolve(), settings.report_dir.resolve()
    for folder in (data, report_dir):
        # replacing the output would take the data folder (or the report) with it
        if output == folder or folder.is_relative_to(output) or output.is_relative_to(folder):
            raise OutputRefused(
                f"--output {output} holds or lies inside the data folder ({data}): the copy "
                "replaces its folder as a whole; choose a folder outside it"
            )
    if output.exists() and (not output.is_dir() or (
        any(output.iterdir()) and not (output / REPORT_MARK).is_file()
    )):  # fmt: skip
        raise OutputRefused(
            f"--output {output} holds files that are not a report written by music-tracker, "
            "and the copy replaces the folder as a whole: choose a new or empty folder "
            f"(e.g. {output / 'music'})"
        )


def copy_report(report_dir: Path, output: Path) -> Path:
    """The finished report copied beside ``output``, then swapped in by renames;
    OSError when it cannot be (the copy that was there stays)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    # names of our own beside it: a folder of the owner's is never taken for a leftover
    scratch = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    partial, old = scratch / "new", scratch / "old"
    try:
        shutil.copytree(report_dir, partial)
        with interrupts.held():  # a Ctrl+C waits for both renames
            if output.exists():
                output.rename(old)
            partial.rename(output)
    except BaseException:  # a failure or Ctrl+C: the copy that was there stays
        if old.exists() and not output.exists():
            old.rename(output)
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    return output
