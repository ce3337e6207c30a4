"""Ctrl+C at any moment: one line saying what state things are in, and exit code 130.

SIGINT surfaces wherever the process happens to be: as ``KeyboardInterrupt`` in Python
code or a wait on another thread, as ``RuntimeError: Query interrupted`` (or
``duckdb.InterruptException``) from a DuckDB query, as a failed run from dbt, or as an
error a module made of one of those (a file "cannot be read"). Rather than teach each
module, the command line notes that the signal came (``received``) and, whatever error
then ends the command, prints the command's line instead (``report``, from
``music_tracker.__main__``).

Two moments are not interrupted. A commit is ``held``: DuckDB must not be stopped between
writing and returning, or an import that was stored could be reported as not. And once a
command's work is stored (``settle``, or the commit of a command that ``settles_on_commit``)
Ctrl+C no longer stops it: it prints what it did and exits 0, since "nothing was imported"
would then be untrue.

Only the command line installs the handler, in the main thread; elsewhere (the tests'
in-process runner, Prefect's worker threads) everything here does nothing.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import NoReturn

# what shells report for a process ended by SIGINT (128 + 2)
EXIT_INTERRUPTED = 130


# What a Ctrl+C leaves, per command, from the command's first moment (a command that can
# tell more from the state it left says so then: ``say``). Each is true at any moment.
LINES = {
    "import": "interrupted: nothing was imported; the warehouse is as it was",
    "rematch": "interrupted: nothing was changed; the warehouse is as it was",
    "transform": "interrupted: no play was changed; the star schema may be half built until"
    " `music-tracker transform` runs again",
    "publish": "interrupted: nothing was published; the serving copies are as they were",
    "backup": "interrupted: no backup was made; earlier backups are as they were",
    "enrich": "interrupted: the lookups stored so far are kept; `music-tracker enrich` goes"
    " on with the rest",
    "ingest": "interrupted: the plays stored so far are kept; the next `music-tracker ingest`"
    " catches up (no play is stored twice)",
    # a report is written beside the last one and swapped in whole (so is its --output copy)
    "report": "interrupted: the report (and its --output copy) is the last one written in"
    " full; `music-tracker report` writes a new one",
    # not "run it again with --replace": stopped before its checks, that could overwrite a
    # warehouse the restore had refused to touch
    "restore": "interrupted: the data folder may be partly restored (`music-tracker status`"
    " shows what it holds)",
    "metabase": "interrupted: Metabase may be partly updated: `music-tracker metabase"
    " provision` again makes it match dashboards/",
}


def line_for(argv: list[str]) -> str:
    """The line for the command these arguments run (its first word that is no option)."""
    command = next((arg for arg in argv if not arg.startswith("-")), "")
    if command in LINES:
        return LINES[command]
    return f"interrupted: `music-tracker {command}` stopped" if command else "interrupted"


class _State:
    installed = False
    received = False  # SIGINT arrived and is stopping the command
    holding = 0  # inside ``held``: SIGINT waits for its end
    pending = False
    settled = False  # the work is stored: SIGINT no longer stops the command
    settles_on_commit = False
    line: str | Callable[[], str] = "interrupted"


_state = _State()


def install(line: str | Callable[[], str]) -> None:
    """Handle SIGINT from now on (the command line's first step); ``line`` until the
    command says more (``say``)."""
    _state.installed = True
    _state.line = line
    signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _state.settled:
        return
    _state.received = True
    if _state.holding:
        _state.pending = True
        return
    raise KeyboardInterrupt


def received() -> bool:
    """Whether Ctrl+C is stopping the command (any error from here is its consequence)."""
    return _state.received and not _state.settled


def say(line: str | Callable[[], str]) -> None:
    """What to print if the command is interrupted from now on; a function is called then,
    to describe the state as it is at that moment."""
    _state.line = line


def settles_on_commit() -> None:
    """This command's work is done when a transaction commits (an import: one)."""
    _state.settles_on_commit = True


def settle() -> None:
    """The command's work is stored: what remains (printing it) is not interrupted."""
    if _state.installed:
        _state.settled = True


def _main_thread() -> bool:
    return _state.installed and threading.current_thread() is threading.main_thread()


@contextmanager
def held() -> Iterator[None]:
    """SIGINT inside waits for the end of the block, then stops the command there."""
    if not _main_thread():
        yield
        return
    _state.holding += 1
    try:
        yield
    finally:
        _state.holding -= 1
    if not _state.holding and _state.pending and not _state.settled:
        _state.pending = False
        raise KeyboardInterrupt


def committed() -> None:
    """A transaction committed (inside ``held``): the end of a command that settles on it."""
    if _state.settles_on_commit:
        settle()


def report() -> NoReturn:
    """Print the command's line and exit 130 (the command has unwound: its files and
    transactions are closed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl+C: still one line
    line = _state.line
    if callable(line):
        try:
            line = line()
        except Exception:  # the state could not be read: say no more than is known
            line = "interrupted"
    sys.stdout.flush()
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()
    # from here a Ctrl+C ends the process at once, silently (nothing is left to keep)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(EXIT_INTERRUPTED)
