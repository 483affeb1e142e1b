#!/bin/sh
# Build the backend's wheel reproducibly on the control node (run by tasks/build.yml).
# usage: build-wheel.sh PYTHON SOURCE_DIR CACHE_DIR ; prints the wheel's path.
# The sources are copied first (no stale build/ or egg-info from the working tree), and
# SOURCE_DATE_EPOCH fixes zip timestamps, so the same sources give the same bytes and the
# release id (version + content hash) stays stable between runs.
set -eu
python=$1 src=$2 cache=$3
work="$cache/build"
rm -rf "$work" && mkdir -p "$work/src" "$work/out"
cp -R "$src/pyproject.toml" "$src/README.md" "$src/backend" "$work/src/"
find "$work/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/out" "$work/src" >&2
wheel=$(ls "$work/out"/*.whl)
mkdir -p "$cache/wheels"
cp "$wheel" "$cache/wheels/"
echo "$cache/wheels/$(basename "$wheel")"
