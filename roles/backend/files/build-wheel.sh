#!/bin/sh
# Build the backend's wheel reproducibly on the control node (run by tasks/build.yml).
# usage: build-wheel.sh PYTHON SOURCE_DIR CACHE_DIR ; prints the wheel's sha256 and path, as
# sha256sum does (the release id is made of the version and that hash).
# The sources are copied first (no stale build/ or egg-info from the working tree), and
# SOURCE_DATE_EPOCH fixes zip timestamps, so the same sources give the same bytes and the
# release id (version + content hash) stays stable between runs. Sources built before (same
# names, modes and contents) are not built again: a re-run with no change needs no build.
set -eu
python=$1 src=$2 cache=$3
sources() {
  find pyproject.toml README.md backend \( -name __pycache__ -o -name '*.egg-info' \) -prune -o -type f "$@"
}
key=$(cd "$src" && { sources -printf '%m %p\n' | LC_ALL=C sort; sources -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } |
  sha256sum | cut -c1-16)
built="$cache/wheels/$key"
for wheel in "$built"/*.whl; do
  if [ -s "$wheel" ]; then sha256sum "$wheel"; exit 0; fi
done
# A work directory of this build's own: deploys side by side may share the cache.
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/out"
cp -R "$src/pyproject.toml" "$src/README.md" "$src/backend" "$work/src/"
find "$work/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
# In the control node's own Python when it has what pyproject.toml's build-system asks
# (setuptools >= 70.1 builds wheels itself; the repository's deploy extra installs it): ~2 s less
# than the isolated build environment pip otherwise makes from the index for every build.
isolation=
if "$python" -c 'import sys, setuptools
sys.exit(tuple(int(part) for part in setuptools.__version__.split(".")[:2]) < (70, 1))' 2>/dev/null; then
  isolation=--no-build-isolation
fi
# shellcheck disable=SC2086 # $isolation is one option or none
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps $isolation --wheel-dir "$work/out" "$work/src" >&2
wheel=$(ls "$work/out"/*.whl)
# One directory per source key (every build's wheel has the same file name); written under
# another name first, so a build cut short never leaves a wheel that looks complete.
mkdir -p "$built"
cp "$wheel" "$built/$(basename "$wheel").part"
mv "$built/$(basename "$wheel").part" "$built/$(basename "$wheel")"
sha256sum "$built/$(basename "$wheel")"
