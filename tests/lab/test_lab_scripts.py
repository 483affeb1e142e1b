"""The lab's image cache and engine behave as docs/lab.md says (run by `make test-lab`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_IMAGE = ROOT / "lab" / "bin" / "build-image"
RECIPES = ROOT / "lab" / "images"


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False, env=env
    )


def cache_key(recipe: Path) -> str:
    result = run(BUILD_IMAGE, recipe, "--hash")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_cache_key_is_the_recipe_content_not_its_file(tmp_path: Path) -> None:
    copy = tmp_path / "debian-12.recipe"
    shutil.copy(RECIPES / "debian-12.recipe", copy)
    assert cache_key(copy) == cache_key(RECIPES / "debian-12.recipe")


def test_changed_recipe_changes_the_cache_key(tmp_path: Path) -> None:
    changed = tmp_path / "debian-12.recipe"
    text = (RECIPES / "debian-12.recipe").read_text()
    changed.write_text(text.replace("PACKAGES=(", "PACKAGES=(less "))
    assert cache_key(changed) != cache_key(RECIPES / "debian-12.recipe")


def test_every_recipe_has_its_own_key() -> None:
    recipes = sorted(RECIPES.glob("*.recipe"))
    keys = {cache_key(r) for r in recipes}
    assert len(keys) == len(recipes)


def test_unreachable_archive_skips_the_image_with_a_message(tmp_path: Path) -> None:
    recipe = tmp_path / "unreachable.recipe"
    text = (RECIPES / "ubuntu-24.04.recipe").read_text()
    unreachable = "PROBE_URL=http://127.0.0.1:9/dists/noble/Release"
    lines = [unreachable if ln.startswith("PROBE_URL=") else ln for ln in text.splitlines()]
    recipe.write_text("\n".join(lines) + "\n")
    env = dict(os.environ, LAB_CACHE=str(tmp_path / "cache"))
    result = run(BUILD_IMAGE, recipe, env=env)
    assert result.returncode == 3, result.stderr
    assert "SKIP textbook-lab/ubuntu:24.04" in result.stderr
    assert not list((tmp_path / "cache" / "rootfs").glob("*.tar"))


@pytest.mark.lab
def test_warm_build_of_a_current_image_does_nothing() -> None:
    start = time.monotonic()
    result = run(BUILD_IMAGE, RECIPES / "debian-12.recipe")
    assert result.returncode == 0, result.stderr
    assert "is current" in result.stderr
    assert time.monotonic() - start < 15


@pytest.mark.lab
def test_lab_images_carry_the_container_metadata() -> None:
    fmt = "{{json .Config.Env}} {{.Config.StopSignal}} {{json .Config.Cmd}}"
    result = run("docker", "image", "inspect", "-f", fmt, "textbook-lab/debian:12")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith('"container=docker"] SIGRTMIN+3 ["/sbin/init"]')


@pytest.mark.lab
def test_a_second_lab_up_does_not_wait_on_the_first_ones_daemons() -> None:
    # `make lab` holds lab/.../up.lock while it works; the engine and pebble it starts outlive
    # it and must not inherit that lock, or every later `make lab` (each role target) hangs.
    lock = Path(os.environ.get("LAB_RUN", "/run/textbook-lab")) / "up.lock"
    assert lock.exists(), "run `make lab` first"
    result = run("flock", "--nonblock", lock, "true")
    assert result.returncode == 0, f"{lock} is held: {run('fuser', lock).stdout}"
