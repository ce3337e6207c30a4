"""Run a command in a child process and report its wall time, CPU time and peak resident
memory. CPU time (user + system) varies less than wall time on a machine others share."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass


@dataclass
class Measurement:
    label: str
    seconds: float
    peak_mb: float
    cpu_seconds: float = 0.0


def measure(label: str, command: list[str]) -> Measurement:
    """Run ``command`` in a fresh child (so ru_maxrss is its own) and time it."""
    wrapper = (
        "import resource, subprocess, sys, time;"
        "t = time.perf_counter();"
        "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode;"
        "e = time.perf_counter() - t;"
        "u = resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(f'{e} {u.ru_maxrss} {u.ru_utime + u.ru_stime}');"
        "sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{label} failed:\n{done.stderr}")
    seconds, peak_kb, cpu = done.stdout.split()
    return Measurement(label, float(seconds), int(peak_kb) / 1024, float(cpu))


def report(rows: list[Measurement]) -> None:
    print(f"{'step':<44} {'wall s':>8} {'cpu s':>8} {'peak MiB':>8}")
    for row in rows:
        print(f"{row.label:<44} {row.seconds:>8.2f} {row.cpu_seconds:>8.2f} {row.peak_mb:>8.0f}")
