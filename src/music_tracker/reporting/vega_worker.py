"""The process that draws the report's pictures (pictures.py): Vega specs in, SVG out.

    python -m music_tracker.reporting.vega_worker

One JSON document per line on stdin, a Vega spec ready to draw; for each, one line on
stdout: ``{"svg": "..."}``, or ``{"error": "..."}`` when vl-convert cannot draw it. It
ends at the end of its input.

A process of its own, started by the report, that imports vl-convert and nothing else of
the project: a worker started by multiprocessing imports its parent's main module first,
which under `serve` is Prefect's engine (the refresh's picture process held 185-193 MB, of
which some 50 MB were imports it never used).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import vl_convert

    try:
        for line in sys.stdin:
            try:
                svg = vl_convert.vega_to_svg(json.loads(line), allowed_base_urls=[])
            except ValueError as exc:  # vl-convert's errors
                answer = {"error": str(exc)}
            else:
                answer = {"svg": svg}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):
        # Ctrl+C reaches the report's process too, which says what it left; or the report
        # ended: nothing to add
        sys.exit(1)


if __name__ == "__main__":
    main()
