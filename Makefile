# One Makefile drives everything. `make demo` and `make test` work on a fresh machine with
# Python 3.11: they create .venv and install the pinned requirements first.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on the build machines
# and in most container images) every command would otherwise compile dbt from source on each
# start, which costs about 2 s per `music-tracker` command here.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= ./data

.PHONY: setup demo test test-deep lint typecheck sqllint unit bench bench-import bench-transform bench-report bench-publish bench-orchestration bench-lite bench-scale bench-podcasts lock clean wheels image stack-test stack-soak soak-serve

$(STAMP): pyproject.toml requirements/constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps -r requirements/constraints.txt
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(BIN)/python -m compileall -q src
	@touch $(STAMP)

# The report's world map: Natural Earth's countries at 1:110m as TopoJSON, from the
# world-atlas package on the npm registry (pinned, checksum checked), fetched once at setup
# so that the report itself never fetches anything. Without npm the map draws a graticule.
WORLD := src/music_tracker/reporting/assets/countries-110m.json
WORLD_SHA256 := 2516c915867c7baf18ddec727aec46c315541a07cfb3d79a6559b05d5e94eee8

$(WORLD):
	@command -v npm >/dev/null || { echo "npm not found: the report's map will show no coastlines"; exit 0; }
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack --silent world-atlas@2.0.2 >/dev/null \
	  && tar xzf world-atlas-2.0.2.tgz package/countries-110m.json \
	  && echo "$(WORLD_SHA256)  package/countries-110m.json" | sha256sum -c --quiet \
	  && cp package/countries-110m.json $(CURDIR)/$(WORLD); rm -rf $$tmp

setup: $(STAMP) $(WORLD)

demo: $(STAMP) $(WORLD)
	$(BIN)/music-tracker demo --data-dir $(DATA_DIR)/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

sqllint: $(STAMP)
	cd transform && ../$(BIN)/sqlfluff lint models tests --processes 2

# five workers on the two cores: the others fill the time the stack test, the hung-run
# tests and Prefect's harness spend waiting (about 450 s of waiting in a 410 s run: with
# four, the cores stood idle 25 core-s, with five 11; docs/testing.md); the longest tests
# start each worker's share (tests/conftest.py); the ten slowest are printed on every run
unit: $(STAMP) $(WORLD)
	$(BIN)/pytest -n 5 --dist worksteal

# the three checks at once (mypy takes one core for about 18 s, sqlfluff two for 8), each
# printed whole when it ends; then the tests
test: $(STAMP)
	$(MAKE) -s -j3 --output-sync=target lint typecheck sqllint
	$(MAKE) -s unit

# The de-duplication's property suite, deep (not part of `make test`, which runs three):
# PROPERTY_SEEDS simulated histories of 120 plays, each imported in all 24 orders of its
# four sources, on two workers with one Polars thread each (the frames are small)
PROPERTY_SEEDS ?= 200
test-deep: $(STAMP)
	MUSIC_TRACKER_PROPERTY_SEEDS=$(PROPERTY_SEEDS) POLARS_MAX_THREADS=1 $(BIN)/pytest -n 2 \
	  --dist worksteal -p no:cacheprovider tests/test_dedupe_properties.py

bench: bench-import bench-transform bench-report bench-publish bench-orchestration

bench-podcasts: $(STAMP)
	$(BIN)/python bench/podcast_rule.py

bench-import: $(STAMP)
	$(BIN)/python bench/bench_import.py

bench-transform: $(STAMP)
	$(BIN)/python bench/bench_transform.py

bench-report: $(STAMP) $(WORLD)
	$(BIN)/python bench/bench_report.py

bench-publish: $(STAMP)
	$(BIN)/python bench/bench_publish.py

bench-orchestration: $(STAMP)
	$(BIN)/python bench/bench_orchestration.py

# the lite plan (1 GB VM): serve --lite's memory with a full rebuild, its idle CPU and a
# served day of 144 polls at 100 plays a day (about 40 minutes)
bench-lite: $(STAMP)
	$(BIN)/python bench/bench_lite.py

# every step at 350,000 and 10,000,000 plays beside its bare baseline, and its growth
# (about 17 minutes and 14 GB of disk here; the 10M history is generated once, 4 min)
bench-scale: $(STAMP) $(WORLD)
	$(BIN)/python bench/bench_scale.py

lock:
	uv pip compile requirements/requirements.in --python-version 3.11 --no-header \
	  --no-emit-package pandas --no-emit-package numpy -o requirements/constraints.txt

# The pipeline image's dependencies, downloaded on the host (a build needs no package
# index): the project's runtime requirements at the pinned versions, as wheels.
# The wheels are those of the image's Python (Debian 12: CPython 3.11, glibc 2.36), whatever
# runs the download: the VM's first boot runs it with Ubuntu 24.04's Python 3.12 and glibc
# 2.39, whose own tags would pick wheels the image cannot install. The folder is emptied
# first (an older uv's wheel would stay beside the new one), and deploy/wheels.sha256 lists
# what it holds: the image copies that list, so that any change to the wheelhouse rebuilds
# its dependency layer (buildah does not key a cached layer on a mounted folder's contents).
WHEELS := deploy/wheels
IMAGE_PYTHON := --python-version 3.11 --implementation cp --abi cp311
# the list is worked out when the wheels are made, not at every make's start
IMAGE_ARCH := $(shell uname -m)
IMAGE_PLATFORMS = $(foreach glibc,$(shell seq 36 -1 5),--platform manylinux_2_$(glibc)_$(IMAGE_ARCH)) --platform manylinux2014_$(IMAGE_ARCH)
wheels: $(STAMP)
	$(BIN)/python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\\n'.join(d['project']['dependencies'] + ['hatchling', 'editables', 'async-timeout']))" > $(WHEELS).txt
	rm -rf $(WHEELS).new
	$(BIN)/python -m pip download -q --only-binary=:all: $(IMAGE_PYTHON) $(IMAGE_PLATFORMS) -d $(WHEELS).new -c requirements/constraints.txt -r $(WHEELS).txt
	# async-timeout: needed by redis below Python 3.11.3 (Debian 12 has 3.11.2, so the host's
	# 3.11.7 would skip it); uv, the host's version: it installs the set inside the image
	$(BIN)/python -m pip download -q --only-binary=:all: $(IMAGE_PYTHON) $(IMAGE_PLATFORMS) --no-deps -d $(WHEELS).new uv==$$($(BIN)/uv --version | cut -d' ' -f2)
	# swapped in whole: a download that fails leaves the last wheelhouse and its checksums
	(cd $(WHEELS).new && sha256sum *.whl) > $(WHEELS).sha256.new
	rm -rf $(WHEELS) && mv $(WHEELS).new $(WHEELS) && mv $(WHEELS).sha256.new $(WHEELS).sha256

# The pipeline image, built with docker or podman (see docs/deployment.md); podman needs
# the docker format to keep the HEALTHCHECK
ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
image: wheels
	$(ENGINE) build $(if $(filter podman,$(ENGINE)),--format docker) -f deploy/pipeline.Dockerfile -t localhost/music-tracker:latest .

# The images built and the production stack run with podman (tests/test_stack.py; part of
# `make test` too): as root, with podman, runc and debootstrap installed
stack-test: $(STAMP)
	$(BIN)/pytest -n 0 -s tests/test_stack.py

# The stack test STACK_RUNS times in a row (10; not part of `make test`: about 4 minutes a
# run once the images are built); stops at the first failure, which prints its logs
STACK_RUNS ?= 10
stack-soak: $(STAMP)
	@for run in $$(seq 1 $(STACK_RUNS)); do \
	  echo "== stack test $$run of $(STACK_RUNS)"; \
	  CI=1 $(BIN)/pytest -n 0 -s -p no:cacheprovider tests/test_stack.py || exit 1; \
	done; echo "== $(STACK_RUNS) stack tests in a row passed"

# serve for an hour on a 6-second schedule against the fakes, a hang of 200 s injected
# every 7 minutes (Spotify, MusicBrainz, Metabase, a stuck writer): runs complete throughout
soak-serve: $(STAMP)
	$(BIN)/python bench/soak_serve.py

clean:
	rm -rf $(VENV) data transform/target transform/logs
