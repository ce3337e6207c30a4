#!/usr/bin/env bash
# The base image the Dockerfiles name (debian:bookworm-slim), for a machine that reaches no
# container registry: Debian 12 bootstrapped from Debian's own packages and imported into
# podman under the name a pull would give it. Elsewhere `docker build` pulls the real one.
# Needs root, debootstrap and podman; does nothing when the image is already there.
set -euo pipefail
name=docker.io/library/debian:bookworm-slim
if podman image exists "$name"; then
  echo "$name: present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap not found: apt-get install debootstrap"; exit 1; }
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
echo "$name: bootstrapping Debian 12 (about a minute)"
debootstrap --variant=minbase bookworm "$tree" >/dev/null
# the slim image's habits: no documentation, an empty apt cache
rm -rf "$tree"/usr/share/doc/* "$tree"/usr/share/man/* "$tree"/var/cache/apt/archives/*.deb
tar -C "$tree" -c . | podman import -q --change 'CMD ["bash"]' - "$name" >/dev/null
echo "$name: built from Debian's packages"
