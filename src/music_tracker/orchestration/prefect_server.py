"""The Prefect server (``prefect server start``), with its background worker polling less.

    python -m music_tracker.orchestration.prefect_server --host 127.0.0.1 --port 4200

Prefect 3.9's server runs its services (the scheduler, lease reclaiming, clean-ups) as
tasks of a `docket` worker over an in-process Redis stand-in. That worker asks for due
tasks every 250 ms and moves scheduled ones every 250 ms, whatever the services' own loops
are (5 s and slower here): measured idle, the trimmed server took 0.97 CPU-seconds a minute
(1.6% of a core) that way and 0.55-0.60 (0.9-1.0%) with both at 5 s. Prefect has no setting
for it, so this entry point sets the two worker arguments (`minimum_check_interval`,
`scheduling_resolution`) to the most frequent enabled service loop, at most 5 s, and then
runs Prefect's own CLI. Background work (service loops, clean-ups after state changes) can
start up to that much later; flow runs and their states go through the API, not the worker.

Used by ``music-tracker serve`` for the server it starts and by the compose file's
``prefect`` service.
"""

from __future__ import annotations

import inspect
import sys
from datetime import timedelta
from typing import Any

# at most this long between the worker's checks for due service runs
MAX_POLL_S = 5.0


def poll_seconds() -> float:
    """The most frequent enabled service loop of this server's settings, at most 5 s."""
    from prefect.settings import get_current_settings

    services = get_current_settings().server.services
    loops = [MAX_POLL_S, services.scheduler.recent_deployments_loop_seconds]
    for name in type(services).model_fields:
        service = getattr(services, name)
        if getattr(service, "enabled", False) is True and hasattr(service, "loop_seconds"):
            loops.append(float(service.loop_seconds))
    return max(0.1, min(loops))


def slow_down_the_worker(seconds: float) -> None:
    """Make every `docket.Worker` created from now on poll every ``seconds``."""
    from docket.worker import Worker

    parameters = inspect.signature(Worker.__init__).parameters
    for name in ("minimum_check_interval", "scheduling_resolution"):
        if name not in parameters:  # a docket release that renamed them: fail loudly
            raise RuntimeError(f"docket.Worker has no argument {name!r}; update prefect_server.py")
    original = Worker.__init__

    def polling_less(self: Worker, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("minimum_check_interval", timedelta(seconds=seconds))
        kwargs.setdefault("scheduling_resolution", timedelta(seconds=seconds))
        original(self, *args, **kwargs)

    Worker.__init__ = polling_less  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    """``prefect server start`` with the arguments given (host, port ...)."""
    from prefect.cli import app

    slow_down_the_worker(poll_seconds())
    # Prefect's CLI reads its arguments from sys.argv; the server runs in this process
    sys.argv = ["prefect", "server", "start", *(sys.argv[1:] if argv is None else argv)]
    app()


if __name__ == "__main__":
    main()
