"""roles/backend/files/build-wheel.sh: a wheel is built once per state of the sources.

The script's Python is a stand-in that records each build and writes a wheel named after the
sources' package version, so the tests see when the script builds and when it reuses a wheel.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "roles/backend/files/build-wheel.sh"

FAKE_PYTHON = """#!/bin/sh
# As the script calls it: PYTHON -c CHECK (exit status: whether setuptools >= 70.1 is there,
# $HAS_SETUPTOOLS here), then PYTHON -m pip wheel --quiet --no-deps [--no-build-isolation]
# --wheel-dir DIR SRC
if [ "$1" = -c ]; then exit "${HAS_SETUPTOOLS:-1}"; fi
echo "build $*" >>"$BUILDS"
while [ "$1" != --wheel-dir ]; do shift; done
dir=$2 src=$3
version=$(sed -n 's/^version = "\\(.*\\)"/\\1/p' "$src/pyproject.toml")
cat "$src"/backend/pkg/*.py >"$dir/pkg-$version-py3-none-any.whl"
"""


def sources(root: Path) -> Path:
    (root / "backend/pkg").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "pkg"\nversion = "1.0"\n')
    (root / "README.md").write_text("pkg\n")
    (root / "backend/pkg/__init__.py").write_text("VALUE = 1\n")
    return root


def build(tmp_path: Path, src: Path, has_setuptools: bool = False) -> tuple[Path, int]:
    """The wheel's path (the script prints its sha256 first, checked here), and how many builds
    the stand-in Python has run so far."""
    python = tmp_path / "python"
    if not python.exists():
        python.write_text(FAKE_PYTHON)
        python.chmod(0o755)
    builds = tmp_path / "builds"
    done = subprocess.run(
        [str(SCRIPT), str(python), str(src), str(tmp_path / "cache")],
        env={
            "PATH": "/usr/bin:/bin",
            "BUILDS": str(builds),
            "HAS_SETUPTOOLS": "0" if has_setuptools else "1",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    checksum, path = done.stdout.strip().split("  ", 1)
    assert checksum == hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return Path(path), len(builds.read_text().splitlines())


def test_unchanged_sources_reuse_their_wheel_without_a_build(tmp_path: Path) -> None:
    src = sources(tmp_path / "src")
    first, builds = build(tmp_path, src)
    assert builds == 1
    assert first.read_text() == "VALUE = 1\n"
    (src / "backend/pkg/__pycache__").mkdir()  # bytecode of a local run is not a change
    (src / "backend/pkg/__pycache__/x.pyc").write_bytes(b"\0")
    again, builds = build(tmp_path, src)
    assert (again, builds) == (first, 1)
    assert not list((tmp_path / "cache").glob("build*"))  # no work directory left behind


def test_a_changed_file_or_mode_builds_a_new_wheel(tmp_path: Path) -> None:
    src = sources(tmp_path / "src")
    first, _ = build(tmp_path, src)
    (src / "backend/pkg/__init__.py").write_text("VALUE = 2\n")
    changed, builds = build(tmp_path, src)
    assert builds == 2
    assert changed != first
    assert changed.read_text() == "VALUE = 2\n"
    (src / "backend/pkg/__init__.py").chmod(0o755)
    _, builds = build(tmp_path, src)
    assert builds == 3
    (src / "backend/pkg/__init__.py").chmod(0o644)  # back to a state built before
    (src / "backend/pkg/__init__.py").write_text("VALUE = 1\n")
    back, builds = build(tmp_path, src)
    assert (back, builds) == (first, 3)


def test_the_build_uses_the_control_node_s_setuptools_when_it_has_a_recent_one(
    tmp_path: Path,
) -> None:
    old = sources(tmp_path / "old")
    build(tmp_path, old)
    recent = sources(tmp_path / "recent")
    (recent / "README.md").write_text("another state of the sources\n")
    build(tmp_path, recent, has_setuptools=True)
    first, second = (tmp_path / "builds").read_text().splitlines()
    assert "--no-build-isolation" not in first  # pip's isolated environment, from the index
    assert "--no-build-isolation" in second
