# The pipeline image: `music-tracker serve` by default, any other subcommand on request
# (`docker compose run --rm pipeline music-tracker status`). Build context: the repository
# root. Dependencies come from deploy/wheels/ and deploy/wheels.txt (`make wheels` on the
# build host: pyproject's dependencies at the pinned versions of the README install,
# requirements/constraints.txt), so the build needs no package index and installs exactly
# the tested versions. One stage, three layers of weight: the runtime (Python, certificates,
# tini, time zones, its user), the dependencies' venv, the project. The wheelhouse is
# mounted into the steps that read it (`RUN --mount`: BuildKit, or podman/buildah), never
# copied into a layer, and the venv is never copied between stages: a build from empty
# storage writes the 676 MB venv once (docs/deployment.md).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates tini tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 music \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home music \
 && mkdir -p /data && chown 10001:10001 /data

# the dependencies, in a layer of their own: a change to the project's code or docs
# reinstalls only the project (seconds), not the whole pinned set. The requirement files and
# the wheelhouse's checksums (deploy/wheels.sha256, `make wheels`) are copied, not mounted:
# their contents key the layer's cache, since buildah does not key a cache on a mount's
# contents. uv, unpacked from its wheel for the step, makes the venv (no python3-venv) and
# installs the set in seconds where pip took a minute. The Prefect UI's files are prepared
# here too (ui_build/, ui_v2_build/ beside Prefect's code): the server would write them into
# the venv at its first start, which uid 10001 may not do (Prefect writes some of them
# owner-only: made readable to all)
ENV VIRTUAL_ENV=/opt/venv
COPY deploy/wheels.txt deploy/wheels.sha256 requirements/constraints.txt /opt/requirements/
RUN --mount=type=bind,source=deploy/wheels,target=/wheels \
    python3 -m zipfile -e /wheels/uv-*.whl /tmp/uv \
 && install -m 755 /tmp/uv/uv-*.data/scripts/uv /usr/local/bin/uv \
 && export UV_NO_CACHE=1 UV_OFFLINE=1 \
 && uv venv -q --python /usr/bin/python3 /opt/venv \
 && uv pip install -q --no-index --find-links /wheels --compile-bytecode \
      -c /opt/requirements/constraints.txt -r /opt/requirements/wheels.txt \
 && rm -rf /tmp/uv /usr/local/bin/uv \
 && PREFECT_HOME=/tmp/prefect /opt/venv/bin/python -c \
      "from prefect.server.api.server import create_ui_app; create_ui_app(ephemeral=False)" \
 && chmod -R a+rX /opt/venv/lib/python3*/site-packages/prefect/server/ui_*build \
 && rm -rf /tmp/prefect

# the project, editable: its dbt project and dashboards stay beside the code. The install
# adds only a few files to the venv (the .pth file naming /app/src, its dist-info, the
# music-tracker script), so this layer holds them and the project, not a new venv; uv
# compiled the dependencies' bytecode, compileall does the project's
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src src
COPY transform transform
COPY dashboards dashboards
RUN --mount=type=bind,source=deploy/wheels,target=/wheels \
    python3 -m zipfile -e /wheels/uv-*.whl /tmp/uv \
 && install -m 755 /tmp/uv/uv-*.data/scripts/uv /usr/local/bin/uv \
 && UV_NO_CACHE=1 UV_OFFLINE=1 uv pip install -q --no-index --no-build-isolation --no-deps -e . \
 && rm -rf /tmp/uv /usr/local/bin/uv \
 && /opt/venv/bin/python -m compileall -q /app/src \
 && test -x /opt/venv/bin/music-tracker

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MUSIC_TRACKER_DATA_DIR=/data \
    MUSIC_TRACKER_DBT_TARGET_DIR=/data/dbt/target
USER 10001:10001
# /data is the owner's folder, bind-mounted by compose; no VOLUME here, or every other
# container of this image (the Prefect server, `run --rm` commands) would leave an
# anonymous volume behind
# serve's liveness: its watchdog found the schedule running (a successful poll within three
# intervals, a refresh within two hours) and wrote so within three minutes; a serve silent
# for ten is stopped so that the restart policy starts it again
# (src/music_tracker/orchestration/healthcheck.py); other commands exit anyway
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
  CMD ["python3", "-m", "music_tracker.orchestration.healthcheck", "--stop-stuck"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["music-tracker", "serve"]
