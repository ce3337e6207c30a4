"""Soak: `serve` for an hour on a 6-second schedule against the fakes, with injected hangs.

    python bench/soak_serve.py [--minutes 60] [--interval-s 6] [--hang-every-s 420]
                               [--hang-for-s 200] [--data-dir DIR]

What it shows (issue 32): runs complete throughout, whatever hangs. Every
``--hang-every-s`` one outside service stops answering for ``--hang-for-s`` (accepts the
connection, never replies), in turn: Spotify, MusicBrainz, Metabase, and a writer that
holds the warehouse's lock from a stopped process. The HTTP timeout is left at its default
(20 s), the run time limit at 3 minutes and the watchdog checks every 5 s, so a hang is
got out of by the client's timeouts or, failing those, by the watchdog (a hung Metabase is
waited for up to MUSIC_TRACKER_METABASE_WAIT_S, 300 s: those runs are stopped at their
limit). A limit of 1 minute was too short on a busy machine: builds took longer, were
killed, and a killed build makes the next one a full rebuild. Every minute it prints
the runs that completed, failed and crashed in that minute, the longest gap between two
successful polls so far, and the schedule's health; at the end, the totals and the webhook
messages. It fails (exit 1) when a minute outside a hang (and its recovery) had no
successful poll, or the schedule stayed unhealthy after the last hang ended.

The warehouse is the real extended-history export imported and built in DIR (a temporary
folder by default); serve starts its own Prefect server there.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MUSIC_TRACKER_SHARED", REPO.parent / "shared"))
CLI = str(Path(sys.executable).with_name("music-tracker"))
sys.path.insert(0, str(REPO / "src"))

from music_tracker.fakes.metabase import FakeMetabase  # noqa: E402
from music_tracker.fakes.musicbrainz import FakeMusicBrainz  # noqa: E402
from music_tracker.fakes.spotify import FakeSpotify  # noqa: E402
from music_tracker.fakes.webhook import FakeWebhook  # noqa: E402
from music_tracker.sources.spotify import auth  # noqa: E402


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runs(api: str, since: datetime) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{api}/flow_runs/filter",
        json={
            "flow_runs": {
                "end_time": {"after_": since.isoformat()},
                "state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}},
            },
            "limit": 200,
        },
        timeout=10,
    )
    answer.raise_for_status()
    return list(answer.json())


def _json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):  # not written yet
        return {}


def _hold_lock(data_dir: Path) -> subprocess.Popen[bytes]:
    """A writer that takes the lock and is then stopped (SIGSTOP): alive, never done."""
    code = (
        "import sys, time; from pathlib import Path\n"
        "from music_tracker.lock import writer_lock\n"
        "with writer_lock(Path(sys.argv[1]), 'a stuck writer (soak)', wait_s=600):\n"
        "    print('held', flush=True); time.sleep(3600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.send_signal(signal.SIGSTOP)
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--interval-s", type=float, default=6)
    parser.add_argument("--hang-every-s", type=float, default=420)
    parser.add_argument("--hang-for-s", type=float, default=200)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="soak-serve-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MUSIC_TRACKER_", "PREFECT_"))}
    env = {**base, "MUSIC_TRACKER_DATA_DIR": str(data_dir)}
    if not (data_dir / "warehouse.duckdb").exists():
        print(f"importing and building the real export in {data_dir}", flush=True)
        _run([CLI, "import", str(SHARED / "data" / "spotify" / "extended_history_2026")], env)
        _run([CLI, "transform"], env)

    spotify = FakeSpotify(seed=5, plays_per_day=300, start=datetime.now(UTC) - timedelta(days=2))
    musicbrainz = FakeMusicBrainz([], min_interval_s=0.01)
    with (
        FakeWebhook() as hook,
        spotify,
        musicbrainz,
        FakeMetabase(path_map={"/serving": str(data_dir / "serving")}) as metabase,
    ):
        access, refresh = spotify.grant_tokens()
        now = datetime.now(UTC)
        auth.TokenStore(data_dir / "state").save(
            auth.Token(access, refresh, now + timedelta(hours=1), now)
        )
        port = _free_port()
        env |= {
            "MUSIC_TRACKER_SPOTIFY_CLIENT_ID": "soak",
            "MUSIC_TRACKER_SPOTIFY_API_BASE": spotify.api_base,
            "MUSIC_TRACKER_SPOTIFY_ACCOUNTS_BASE": spotify.accounts_base,
            "MUSIC_TRACKER_SPOTIFY_REQUESTS_PER_RUN": "10",
            "MUSIC_TRACKER_MUSICBRAINZ_BASE": f"{musicbrainz.root_url}/ws/2",
            "MUSIC_TRACKER_MUSICBRAINZ_MIN_INTERVAL_S": "0.01",
            "MUSIC_TRACKER_ENRICH_ARTISTS_PER_RUN": "3",
            "MUSIC_TRACKER_CONTACT": "soak@example.org",
            "MUSIC_TRACKER_METABASE_URL": metabase.root_url,
            "MUSIC_TRACKER_METABASE_SITE_URL": "https://music.example.com",
            "MUSIC_TRACKER_METABASE_ADMIN_EMAIL": "owner@example.org",
            "MUSIC_TRACKER_METABASE_ADMIN_PASSWORD": "a-long-Passw0rd-for-soak",
            "MUSIC_TRACKER_NOTIFY_WEBHOOK_URL": hook.url,
            "MUSIC_TRACKER_INGEST_INTERVAL_MINUTES": str(args.interval_s / 60),
            "MUSIC_TRACKER_TRANSFORM_MIN_INTERVAL_MINUTES": "1",
            "MUSIC_TRACKER_REFRESH_CRON": "* * * * *",
            "MUSIC_TRACKER_RUN_TIMEOUT_MINUTES": "3",
            "MUSIC_TRACKER_WATCHDOG_INTERVAL_S": "5",
            "MUSIC_TRACKER_WRITER_WAIT_S": "20",
            "MUSIC_TRACKER_TASK_RETRY_DELAY_S": "2",
            "MUSIC_TRACKER_PREFECT_PORT": str(port),
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
            "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        }
        _run([CLI, "publish"], env)
        _run([CLI, "metabase", "provision"], env)
        log_path = data_dir / "soak-serve.log"
        print(f"serve on a {args.interval_s:g} s schedule; its log: {log_path}", flush=True)
        serve = subprocess.Popen(
            [CLI, "serve"], env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT
        )
        api = f"http://127.0.0.1:{port}/api"
        stop = threading.Event()

        def listen() -> None:  # a minute of listening every second
            while not stop.wait(1.0):
                spotify.advance(timedelta(minutes=1))

        threading.Thread(target=listen, daemon=True).start()
        kinds = ["spotify", "musicbrainz", "metabase", "writer lock"]
        started = time.monotonic()
        end = started + args.minutes * 60
        next_hang, hang_ends, hung, holder = started + args.hang_every_s, 0.0, "", None
        minute_start = datetime.now(UTC)
        totals = {"COMPLETED": 0, "FAILED": 0, "CRASHED": 0}
        polls_seen: list[datetime] = []
        bad_minutes: list[str] = []
        recovery_s = 4 * 60  # after a hang: its run's time limit (3 minutes) and a poll
        last_hang_end = 0.0
        try:
            while time.monotonic() < end:
                time.sleep(1)
                if serve.poll() is not None:
                    print(f"serve exited with {serve.returncode}", flush=True)
                    return 1
                clock = time.monotonic()
                if not hung and clock >= next_hang:
                    hung = kinds[int((clock - started) // args.hang_every_s - 1) % len(kinds)]
                    print(f"{datetime.now(UTC):%H:%M:%S} hang: {hung}", flush=True)
                    if hung == "writer lock":
                        holder = _hold_lock(data_dir)
                    else:
                        {"spotify": spotify, "musicbrainz": musicbrainz, "metabase": metabase}[
                            hung
                        ].hang()
                    hang_ends = clock + args.hang_for_s
                elif hung and clock >= hang_ends:
                    print(f"{datetime.now(UTC):%H:%M:%S} released: {hung}", flush=True)
                    if holder is not None:
                        holder.kill()  # the kernel frees its lock
                        holder.wait()
                        holder = None
                    for fake in (spotify, musicbrainz, metabase):
                        fake.release()
                    hung, last_hang_end = "", clock
                    next_hang = clock + args.hang_every_s - args.hang_for_s
                if datetime.now(UTC) - minute_start >= timedelta(minutes=1):
                    runs = _runs(api, minute_start)
                    counts = {k: sum(r["state_type"] == k for r in runs) for k in totals}
                    for key, value in counts.items():
                        totals[key] += value
                    flows = _json(data_dir / "state" / "flows.json")
                    last_poll = flows.get("ingest", {}).get("last_poll")
                    if last_poll:
                        polls_seen.append(datetime.fromisoformat(last_poll))
                    health = _json(data_dir / "state" / "health.json")
                    polled = bool(last_poll) and datetime.fromisoformat(last_poll) >= minute_start
                    quiet = not hung and clock - last_hang_end > recovery_s
                    line = (
                        f"{datetime.now(UTC):%H:%M:%S} minute: {counts['COMPLETED']} completed, "
                        f"{counts['FAILED']} failed, {counts['CRASHED']} crashed; polled: "
                        f"{'yes' if polled else 'no'}; healthy: {health.get('healthy')}"
                        + (f" (hang: {hung})" if hung else "")
                    )
                    print(line, flush=True)
                    if quiet and not polled:
                        bad_minutes.append(line)
                    minute_start = datetime.now(UTC)
        finally:
            stop.set()
            if holder is not None:
                holder.kill()
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=120)
            except subprocess.TimeoutExpired:
                serve.kill()
        health = _json(data_dir / "state" / "health.json")
        print(
            f"\n{args.minutes:g} minutes: {totals['COMPLETED']} runs completed, "
            f"{totals['FAILED']} failed, {totals['CRASHED']} crashed (stopped at their limit); "
            f"serve exited {serve.returncode}; healthy at the end: {health.get('healthy')}"
        )
        print("messages:")
        for at, text in zip(hook.times, hook.texts, strict=True):
            print(f"  {at:%H:%M:%S} {text[:300]}")
        if bad_minutes:
            print("minutes without a poll outside a hang:")
            for line in bad_minutes:
                print(f"  {line}")
        return 0 if not bad_minutes and health.get("healthy") and serve.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
