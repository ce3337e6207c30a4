"""The charts a phone shows first, drawn as SVG when the report is written.

Vega in the reader's browser costs a phone's main thread a second or more: its runtime
starting, then each chart's parse and first render (Lighthouse's mobile total blocking
time on Overview, Listening clock and Places was all Vega's). The first charts of a
dashboard page, those a phone shows on its first screen, are drawn here instead, by
vl-convert (Vega itself, in the same version as the page's), at a phone's width, and
written into the page: the page loads no chart library until the reader scrolls to a
chart drawn live, or points at one of these (report.js then draws it live, for its
tooltips). They show without JavaScript too.

The pictures keep report.css's colours: an SVG attribute can name a CSS variable
(``fill="var(--c1)"``) and the page resolves it, light or dark. Only a heatmap's ramp is
computed (a colour between two): it is drawn between two stand-in colours that nothing
else uses and each cell's share of the way is written back as
``color-mix(in srgb, var(--seq-high) 40%, var(--seq-low))``, the same straight mix in
RGB that the live chart's scale makes (charts.py asks Vega for "rgb" interpolation). The
font is measured as a wide sans-serif and written as the page's. The map's countries, a file
of the site, are a stand-in picture while drawing, then named by their address.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import select
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from music_tracker import files
from music_tracker.reporting.charts import by_width

logger = logging.getLogger(__name__)

# the width a picture is drawn at: a phone's card, less its padding (390 px wide: 340;
# 412: 362); the page scales it to its card, as an SVG with a viewBox
WIDTH_PX = 360
VERSION = 3  # of the pictures, in their cached files' names
_LOW, _HIGH = "#ff0000", "#ff00ff"  # stand-ins for --seq-low and --seq-high
_RAMP = re.compile(r"rgb\(255, 0, (\d+)\)")
_BLANK = "data:image/gif;base64,R0lGODlhAQABAAAAACw="  # a stand-in for the map's countries
_FONT = "var(--font)"
# Text is measured (where labels go, which ones are left out as too close) in a wide
# sans-serif, DejaVu Sans: the system font of Linux desktops, wider than a phone's
# (Roboto, San Francisco), so a label measured here fits in any of them. Without it on
# the machine that writes the report, vl-convert's fallback is wider still.
_MEASURED = "DejaVu Sans"


def _prepared(spec: dict[str, Any], rows: list[dict[str, Any]], world: str) -> dict[str, Any]:
    """The card's Vega spec, ready for vl-convert: its rows, a fixed width, stand-ins."""
    text = json.dumps(spec)
    text = text.replace("var(--seq-low)", _LOW).replace("var(--seq-high)", _HIGH)
    text = text.replace(_FONT, _MEASURED).replace(world, _BLANK)
    ready: dict[str, Any] = json.loads(text)
    for data in ready.get("data", []):
        if data.get("name") == "rows":
            # a NUL in a name (an export can hold one) aborts vl-convert's text measuring
            data["values"] = [
                {k: v.replace("\0", "") if isinstance(v, str) else v for k, v in row.items()}
                for row in rows
            ]
    signals = [s for s in ready.get("signals", []) if s.get("name") != "width"]
    ready["signals"] = [*signals, {"name": "width", "value": WIDTH_PX}]
    # as wide as drawn, as tall as it needs: a legend of four lines on a phone's width
    # sits above the plot instead of off the picture's top (the page's card grows with
    # it; a chart drawn live fits its height instead)
    autosize = ready.get("autosize")
    if isinstance(autosize, dict) and autosize.get("type") == "fit":
        ready["autosize"] = {**autosize, "type": "fit-x"}
    # a legend's columns follow the chart's width (charts.LEGEND), which the one pass
    # vl-convert makes reads before the axes take their room: at a phone's width, one
    for legend in ready.get("legends", []):
        if isinstance(legend.get("columns"), dict):
            legend["columns"] = 1
    if "width" in ready and not isinstance(ready["width"], dict):
        ready["width"] = WIDTH_PX  # a Vega spec of our own (the treemap)
    return by_width(ready)


def _mix(match: re.Match[str]) -> str:
    share = int(match.group(1)) / 255 * 100
    return f"color-mix(in srgb, var(--seq-high) {share:.1f}%, var(--seq-low))"


def _restored(svg: str, world: str) -> str:
    svg = _RAMP.sub(_mix, svg)
    svg = svg.replace(f'"{_LOW}"', '"var(--seq-low)"').replace(f'"{_HIGH}"', '"var(--seq-high)"')
    svg = svg.replace(f'font-family="{_MEASURED}"', f'font-family="{_FONT}"')
    svg = svg.replace(_BLANK, world)
    # sized by the page (report.css), its proportions kept by the viewBox
    return svg.replace('class="marks"', 'class="marks pre"', 1)


# how long one picture may take (they take 40-100 ms; a chart of 20 MB of rows, 1.2 s):
# a process that has not answered by then is stopped and the chart drawn live
ANSWER_TIMEOUT_S = 60.0
# a process that ended is started again for the next picture this many times in a report;
# after that the report's remaining charts are drawn live
RESTARTS = 1


class _Ended(ValueError):
    """The picture process ended or was stopped (told once, by ``_Worker``)."""


class _Worker:
    """vega_worker.py in a process of its own, asked one picture at a time (from one
    thread: ``Pictures``' pool has one)."""

    def __init__(self, timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        self._process: subprocess.Popen[str] | None = None
        self._timeout_s = timeout_s
        self._ended = 0

    def draw(self, spec: dict[str, Any], rows: list[dict[str, Any]], world: str) -> str:
        """The chart as an SVG document (a string), drawn with nothing fetched; ValueError
        when vl-convert cannot draw it, ``_Ended`` when the process ended or hung."""
        if self._ended > RESTARTS:
            raise _Ended("the picture process is not started again in this report")
        if self._process is None:
            # -P: not the current directory first on the module path, where a json.py of
            # the owner's would be imported instead
            self._process = subprocess.Popen(
                [sys.executable, "-P", "-m", "music_tracker.reporting.vega_worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            )
        process = self._process
        assert process.stdin is not None and process.stdout is not None
        ready = json.dumps(_prepared(spec, rows, world), default=str)
        line = ""
        try:
            process.stdin.write(ready + "\n")
            process.stdin.flush()
            # one question, one line of answer: nothing is left in the pipe's buffer
            # between pictures, so the descriptor says when the answer starts
            if select.select([process.stdout], [], [], self._timeout_s)[0]:
                line = process.stdout.readline()
        except OSError as exc:  # the pipe closed: the process ended
            logger.debug("the picture process's pipe: %s", exc)
        if not line:
            self._end(process)
            raise _Ended("the picture process ended")
        answer = json.loads(line)
        if "error" in answer:
            raise ValueError(answer["error"])
        return _restored(answer["svg"], world)

    def _end(self, process: subprocess.Popen[str]) -> None:
        """Stop a process that ended or hung, and say so once."""
        hung = process.poll() is None
        self.close(wait_s=0)
        self._ended += 1
        then = (
            "the next chart starts it again"
            if self._ended <= RESTARTS
            else "this report's remaining charts are drawn live"
        )
        how = (
            f"did not answer within {self._timeout_s:.0f} s and was stopped"
            if hung
            else f"ended (exit code {process.returncode})"
        )
        logger.warning("the picture process %s; %s", how, then)

    def close(self, wait_s: float = 10) -> None:
        """End the process: its end of input, then a kill after ``wait_s``."""
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # already ended: its pipe is broken
                process.stdin.close()  # its end of input: it exits
        try:
            process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


class Pictures:
    """Charts drawn in a process of their own (vega_worker.py) while the report runs its
    queries and writes its pages, and kept in the report's cache beside report/ (by spec,
    rows and this module's version).

    A picture costs 40-100 ms of CPU (vl-convert reads the machine's fonts again for each
    text it measures), and a report of 20 years has some 300 to draw the first time.
    The pages of the current periods (all time, the rolling ones, this year), which change
    with every new play, get theirs in every report (``take`` waits for them). Those of
    the years before, which do not change, are drawn when the process has nothing else to
    do, newest first: a page whose picture is not ready when it is written draws its
    charts live, as before, and gets the picture kept meanwhile in a later report. So a
    first report at 350,000 plays costs the current pictures only.

    ``ask`` as soon as a page's rows are known, ``later`` once every page has asked,
    ``take`` when the page is written."""

    def __init__(self, cache: Path, world: str, answer_timeout_s: float = ANSWER_TIMEOUT_S) -> None:
        import importlib.metadata

        version = importlib.metadata.version("vl-convert-python")
        self._cache = cache / f"pictures-{version}-{VERSION}"
        self._world = world
        self._pool: ThreadPoolExecutor | None = None
        self._worker = _Worker(answer_timeout_s)
        self._waiting: dict[str, Future[str]] = {}
        self._current: set[str] = set()  # keys ``take`` waits for
        self._queued: dict[str, tuple[int, dict[str, Any], list[dict[str, Any]]]] = {}
        self.drawn = 0

    def _file(self, key: str) -> Path:
        return self._cache / f"{key}.svg"

    def _start(self, key: str, spec: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        if self._pool is None:
            # one thread that hands the pictures to the worker process one at a time
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="pictures")
        self._waiting[key] = self._pool.submit(self._worker.draw, spec, rows, self._world)

    def ask(self, spec: dict[str, Any], rows: list[dict[str, Any]], age: int = 0) -> str:
        """Draw the chart unless it is kept: at once for a current period (``age`` 0),
        else in ``later``, ``age`` years old. Its key for ``take``."""
        text = json.dumps([spec, rows], sort_keys=True, separators=(",", ":"), default=str)
        key = hashlib.sha256(text.encode()).hexdigest()[:24]
        if age == 0:
            self._current.add(key)
            self._queued.pop(key, None)
        if key in self._waiting or self._file(key).exists():
            return key
        if age == 0:
            self._start(key, spec, rows)
        elif key not in self._queued:
            self._queued[key] = (age, spec, rows)
        return key

    def later(self) -> None:
        """Queue the pictures of past years, newest first, behind the current ones."""
        for key, (_, spec, rows) in sorted(self._queued.items(), key=lambda item: item[1][0]):
            self._start(key, spec, rows)
        self._queued.clear()

    def take(self, key: str) -> str | None:
        """The picture; None when vl-convert could not draw it, or (a past year's) it is
        not drawn yet: the page then draws the chart live."""
        job = self._waiting.get(key)
        if job is None or (key not in self._current and not job.done()):
            kept = self._file(key)
            return kept.read_text(encoding="utf-8") if kept.exists() else None
        del self._waiting[key]
        return self._kept(key, job)

    def _kept(self, key: str, job: Future[str]) -> str | None:
        try:
            svg = job.result()
        except _Ended:  # told once by the worker
            return None
        except ValueError as exc:  # vl-convert's errors
            logger.warning("a chart could not be drawn ahead: %s", exc)
            return None
        files.write_text(self._file(key), svg)
        self.drawn += 1
        return svg

    def __enter__(self) -> Pictures:
        return self

    def __exit__(self, *_: object) -> None:
        """Stop drawing; keep what was drawn for the next report."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._worker.close()
        for key, job in self._waiting.items():
            # drawn meanwhile and not taken (a past year's): kept for the next report; one
            # that failed is not told (it draws live, and is asked again next time)
            if job.done() and not job.cancelled() and job.exception() is None:
                self._kept(key, job)
        self._waiting.clear()
