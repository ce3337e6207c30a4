# The pipeline image: `music-tracker serve` by default, any other subcommand on request
# (`docker compose run --rm pipeline music-tracker status`). Build context: the repository
# root. Dependencies come from deploy/wheels/ and deploy/wheels.txt (`make wheels` on the
# build host: pyproject's dependencies at the pinned versions of the README install,
# requirements/constraints.txt), so the build needs no package index and installs exactly
# the tested versions.

# runtime: what the running image holds (Python, certificates, tini, time zones, its user)
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates tini tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 music \
 && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home music \
 && mkdir -p /data && chown 10001:10001 /data

# build: the same base, no second apt-get. uv, unpacked from its wheel in the wheelhouse,
# makes the venv (no python3-venv needed) and installs the pinned set in seconds where pip
# took a minute.
FROM runtime AS build
WORKDIR /app
# the dependencies first, in a layer of their own: a change to the project's code or docs
# reinstalls only the project (seconds), not the whole pinned set. The Prefect UI's files
# are prepared here too (ui_build/, ui_v2_build/ beside Prefect's code): the server would
# write them into the venv at its first start, which uid 10001 may not do (Prefect writes
# some of them owner-only: made readable to all)
COPY deploy/wheels /wheels
COPY deploy/wheels.txt requirements/constraints.txt requirements/
ENV VIRTUAL_ENV=/opt/venv UV_NO_CACHE=1 UV_OFFLINE=1
RUN python3 -m zipfile -e /wheels/uv-*.whl /tmp/uv \
 && install -m 755 /tmp/uv/uv-*.data/scripts/uv /usr/local/bin/uv \
 && rm -rf /tmp/uv \
 && uv venv -q --python /usr/bin/python3 /opt/venv \
 && uv pip install -q --no-index --find-links /wheels --compile-bytecode \
      -c requirements/constraints.txt -r requirements/wheels.txt \
 && PREFECT_HOME=/tmp/prefect /opt/venv/bin/python -c \
      "from prefect.server.api.server import create_ui_app; create_ui_app(ephemeral=False)" \
 && chmod -R a+rX /opt/venv/lib/python3*/site-packages/prefect/server/ui_*build \
 && rm -rf /tmp/prefect

# project: the project itself in editable form, in a stage of its own: its dbt project and
# dashboards stay beside the code; uv compiled the bytecode of the dependencies, compileall
# does the project's. What the install adds to the venv (the .pth file naming /app/src,
# its dist-info, the music-tracker script) is gathered in /venv-project, so that the final
# image takes the dependencies' venv as one layer that a change to the code leaves as it
# was (before, the install wrote into it and every build copied all 676 MB again)
FROM build AS project
COPY pyproject.toml README.md ./
COPY src src
COPY transform transform
COPY dashboards dashboards
RUN touch /tmp/before-install \
 && uv pip install -q --no-index --find-links /wheels --no-build-isolation --no-deps -e . \
 && /opt/venv/bin/python -m compileall -q /app/src
# the folders cp makes take the venv's modes (the final COPY sets them on the venv's own);
# the script and the .pth file naming /app/src must be among the files found
WORKDIR /opt/venv
RUN mkdir -m 755 /venv-project \
 && find . -cnewer /tmp/before-install ! -type d -exec cp -a --parents {} /venv-project/ \; \
 && chmod -R go+rX /venv-project \
 && test -x /venv-project/bin/music-tracker \
 && test -n "$(find /venv-project -name '*.pth')"

FROM runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=project /venv-project/ /opt/venv/
COPY --from=project /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MUSIC_TRACKER_DATA_DIR=/data \
    MUSIC_TRACKER_DBT_TARGET_DIR=/data/dbt/target
WORKDIR /app
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
