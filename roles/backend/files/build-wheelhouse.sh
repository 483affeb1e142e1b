#!/bin/sh
# Download every dependency of the backend's wheel as binary wheels for one target Python,
# once per dependency set, into a tarball the hosts install from offline (tasks/build.yml).
# usage: build-wheelhouse.sh PYTHON WHEEL CACHE_DIR PY_VERSION ARCH GLIBC_MINOR ; prints the tarball's path.
set -eu
python=$1 wheel=$2 cache=$3 pyver=$4 arch=$5 glibc=$6
# The dependency set: Requires-Dist lines of the wheel (extras excluded).
deps=$("$python" - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl:
    meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    lines = whl.read(meta).decode().splitlines()
print("\n".join(sorted(l for l in lines if l.startswith("Requires-Dist:") and "extra ==" not in l)))
PY
)
key=$(printf '%s\n%s %s %s\n' "$deps" "$pyver" "$arch" "$glibc" | sha256sum | cut -c1-16)
name="cp${pyver%%.*}${pyver#*.}-$arch-$key"
tarball="$cache/wheelhouse/$name.tar"
if [ ! -s "$tarball" ]; then
  dir="$cache/wheelhouse/$name"
  rm -rf "$dir" && mkdir -p "$dir"
  # manylinux_2_17 .. the target's glibc, plus the legacy alias: pip does not expand the range itself.
  platforms="--platform manylinux2014_$arch"
  m=17; while [ "$m" -le "$glibc" ]; do platforms="$platforms --platform manylinux_2_${m}_$arch"; m=$((m + 1)); done
  # shellcheck disable=SC2086
  "$python" -m pip download --quiet --only-binary=:all: --implementation cp --python-version "$pyver" \
    $platforms --dest "$dir" "$wheel" >&2
  rm -f "$dir/$(basename "$wheel")"
  (cd "$dir" && ls *.whl >WHEELHOUSE)
  tar -cf "$tarball.part" -C "$dir" . && mv "$tarball.part" "$tarball" && rm -rf "$dir"
fi
echo "$tarball"
