"""``music-tracker`` (and ``python -m music_tracker``): the command line, with Ctrl+C handled
from its first moment (``music_tracker.interrupts``), before the slow imports."""

from __future__ import annotations

import sys

from music_tracker import interrupts
from music_tracker.lock import EXIT_DAMAGED, DataFolderError, WarehouseDamaged


def main() -> None:
    interrupts.install(interrupts.line_for(sys.argv[1:]))
    try:
        from music_tracker.cli import app

        app()  # typer's standalone mode: ends in SystemExit
    except SystemExit as exc:
        if exc.code not in (0, None) and interrupts.received():
            interrupts.report()
        raise
    except DataFolderError as exc:  # any command, wherever it first writes the folder
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except WarehouseDamaged as exc:  # any command, wherever it first opens the warehouse
        if interrupts.received():
            interrupts.report()
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_DAMAGED) from None
    except BaseException:
        if interrupts.received():
            interrupts.report()
        raise


if __name__ == "__main__":
    main()
