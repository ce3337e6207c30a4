#!/usr/bin/env bash
# Build the pipeline image from deploy/pipeline.Dockerfile (unchanged) and run
# `music-tracker demo` inside it as its non-root user; check what it wrote.
# Usage: deploy/image-test.sh   (docker or podman; `make image-test`)
set -euo pipefail
cd "$(dirname "$0")/.."
# docker when its daemon answers, else podman (a docker CLI without an engine is common)
if [ -z "${ENGINE:-}" ]; then
  if docker info >/dev/null 2>&1; then ENGINE=docker; else ENGINE=podman; fi
fi
engine=$ENGINE
image=localhost/music-tracker:latest
make wheels
"$engine" build -q -f deploy/pipeline.Dockerfile -t "$image" .
[ "$("$engine" run --rm "$image" id -u)" = 10001 ] || { echo "the image does not run as uid 10001"; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
chmod 0777 "$out"
started=$(date +%s)
"$engine" run --rm -v "$out:/data" "$image" music-tracker demo --data-dir /data/demo
test -f "$out/demo/report/index.html"
test -s "$out/demo/public-links.json"
ls "$out"/demo/serving/dw-*.duckdb >/dev/null
echo "image-test: the demo ran in $image as uid 10001 in $(($(date +%s) - started)) s"
