"""Run one fake as a service of its own: ``python -m music_tracker.fakes NAME``.

The tests start fakes inside their own process; the stack test (tests/test_stack.py) needs
them as containers beside the real ones, where Metabase, Spotify and MusicBrainz would be.
Each listens on every interface of its container until stopped (SIGTERM or Ctrl-C).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from music_tracker.fakes.server import LoopbackServer

app = typer.Typer(add_completion=False, no_args_is_help=True)


def _serve(fake: LoopbackServer, name: str, tick: threading.Event | None = None) -> None:
    stop = tick or threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake:
        print(f"fake {name} listening on port {fake.port}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


@app.command()
def metabase(
    port: int = 3000,
    spec: Annotated[
        Path | None, typer.Option(help="The Metabase OpenAPI subset to check requests against.")
    ] = None,
) -> None:
    """A fake Metabase (its serving copies at the paths the pipeline gives, as Metabase's)."""
    from music_tracker.fakes.metabase import FakeMetabase

    fake = FakeMetabase(spec=spec if spec and spec.is_file() else None, port=port)
    fake.host = "0.0.0.0"  # every interface of its container
    _serve(fake, "Metabase")


@app.command()
def spotify(
    port: int = 8080,
    refresh_token: Annotated[
        list[str] | None,
        typer.Option(help="A refresh token the fake accepts (the pipeline's own)."),
    ] = None,
    minutes_per_second: Annotated[
        float, typer.Option(help="Simulated listening time that passes every real second.")
    ] = 1.0,
    plays_per_day: float = 300.0,
    seed: int = 1,
) -> None:
    """A fake Spotify whose listener plays from now on, ``minutes_per_second`` at a time."""
    from music_tracker.fakes.spotify import FakeSpotify

    fake = FakeSpotify(
        seed=seed, start=datetime.now(UTC).replace(microsecond=0), plays_per_day=plays_per_day
    )
    fake.host = "0.0.0.0"
    fake.port = port
    fake.refresh_tokens.update(refresh_token or [])
    stop = threading.Event()

    def listen() -> None:
        warned = False
        while not stop.wait(1.0):
            fake.advance(timedelta(minutes=minutes_per_second))
            if not warned and fake.clock > datetime.now(UTC) + timedelta(hours=20):
                # the importer refuses plays more than a day ahead of now: every poll from
                # then on fails (the stack test's stall of 2026-12-02 was this)
                print(
                    "warning: the simulated clock is 20 hours ahead of real time; plays more "
                    "than a day ahead are refused by the importer (lower --minutes-per-second)",
                    flush=True,
                )
                warned = True

    threading.Thread(target=listen, daemon=True).start()
    _serve(fake, "Spotify", stop)


@app.command()
def musicbrainz(port: int = 8081) -> None:
    """A fake MusicBrainz that knows no artist (every lookup finds nothing)."""
    from music_tracker.fakes.musicbrainz import FakeMusicBrainz

    fake = FakeMusicBrainz([], min_interval_s=0.0)
    fake.host = "0.0.0.0"
    fake.port = port
    _serve(fake, "MusicBrainz")


if __name__ == "__main__":
    app()
