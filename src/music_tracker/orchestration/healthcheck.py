"""The pipeline container's healthcheck: is `serve` alive and its schedule running?

``python -m music_tracker.orchestration.healthcheck [DATA_DIR]`` exits 0 when serve's
watchdog wrote ``state/health.json`` recently and found the schedule healthy, 1 otherwise,
printing why (Docker shows it in ``docker inspect``). It reads one small file and imports
nothing of the project's dependencies: it runs every minute on a small VM.

Stale means the watchdog has not written for three of its intervals (at least 3 minutes):
``serve`` itself is stuck or gone. Docker marks an unhealthy container but does not restart
it, so with ``--stop-stuck`` (the image's HEALTHCHECK) a ``serve`` whose watchdog has been
silent for ten intervals (at least 10 minutes) is killed: the container ends and its
``restart: unless-stopped`` starts it again. An unhealthy schedule whose watchdog still
runs (Spotify down, say) is only reported: a restart would not help it, and ``serve``
stops itself when its runner no longer starts runs.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path


def verdict(
    data_dir: Path, now: float | None = None, *, stop_stuck: bool = False
) -> tuple[bool, str]:
    path = data_dir / "state" / "health.json"
    try:
        health = json.loads(path.read_text(encoding="utf-8"))
        checked = datetime.fromisoformat(health["checked_at"]).timestamp()
        interval = float(health.get("check_interval_s", 60))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return False, f"no health written by serve's watchdog ({path}: {exc})"
    age = (now if now is not None else time.time()) - checked
    if age > max(180.0, 3 * interval):
        why = f"serve's watchdog has not checked for {age / 60:.0f} minutes ({path})"
        if stop_stuck and age > max(600.0, 10 * interval):
            why += "; " + _stop(health.get("pid"), checked)
        return False, why
    if not health.get("healthy"):
        return False, "; ".join(health.get("reasons") or ["unhealthy"])
    return True, "healthy"


def _stop(pid: object, checked: float) -> str:
    """Kill the stuck ``serve``: only a process whose command line is serve's and that was
    already running when health.json was written (a pid from an earlier container or boot
    can belong to another process now, even to a new serve)."""
    if not isinstance(pid, int):
        return "its process is unknown"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"serve" not in command:
            return f"process {pid} is not serve"
        if _started_at(pid) > checked:
            return f"process {pid} started after that: not the serve that wrote it"
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, StopIteration) as exc:
        return f"could not stop process {pid}: {exc}"
    return f"stopped serve (process {pid}) to be restarted"


def _started_at(pid: int) -> float:
    """When process ``pid`` started, in seconds since the epoch (Linux's /proc)."""
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    stop_stuck = "--stop-stuck" in argv
    args = [arg for arg in argv if arg != "--stop-stuck"]
    data_dir = Path(args[0] if args else os.environ.get("MUSIC_TRACKER_DATA_DIR", "./data"))
    healthy, why = verdict(data_dir, stop_stuck=stop_stuck)
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
