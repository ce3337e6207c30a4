"""Child processes of the schedulers (a Prefect server, a lite run): they die with their
parent, and a process group is stopped politely, then for good."""

from __future__ import annotations

import os
import signal
import subprocess


def die_with_parent() -> None:
    """In the child, before it runs: SIGTERM it when serve dies, SIGKILL included (Linux's
    PR_SET_PDEATHSIG), so a killed serve leaves no Prefect server behind."""
    import contextlib
    import ctypes

    # not Linux: serve's own stop() is all there is
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def stop_group(proc: subprocess.Popen[bytes], wait_s: float = 20) -> None:
    """SIGTERM a child's process group (started with ``start_new_session``), then SIGKILL
    after ``wait_s``."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
