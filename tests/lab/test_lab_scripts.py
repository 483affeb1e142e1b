"""The lab's image cache and engine behave as docs/lab.md says (run by `make test-lab`)."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_IMAGE = ROOT / "lab" / "bin" / "build-image"
RECIPES = ROOT / "lab" / "images"
LAB_NETWORK = os.environ.get("LAB_NETWORK", "textbook-lab")  # as lab/bin/common.sh


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
def test_a_host_can_hold_a_fixed_address_on_the_lab_network() -> None:
    # The reboot drills keep a host's address across a restart: Docker allows a fixed address
    # only on a network made with an explicit subnet, which `make lab` gives it.
    fmt = "{{(index .IPAM.Config 0).Subnet}}"
    subnet = run("docker", "network", "inspect", "-f", fmt, LAB_NETWORK).stdout.strip()
    network = ipaddress.ip_network(subnet)
    address = str(network.network_address + network.num_addresses - 7)
    result = run(
        "docker", "run", "--rm", "--network", LAB_NETWORK, "--ip", address,
        "--entrypoint", "hostname", "textbook-lab/debian:12", "-I",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [address]


@pytest.mark.lab
def test_a_second_lab_up_does_not_wait_on_the_first_ones_daemons() -> None:
    # `make lab` holds lab/.../up.lock while it works; the engine and pebble it starts outlive
    # it and must not inherit that lock, or every later `make lab` (each role target) hangs.
    lock = Path(os.environ.get("LAB_RUN", "/run/textbook-lab")) / "up.lock"
    assert lock.exists(), "run `make lab` first"
    result = run("flock", "--nonblock", lock, "true")
    assert result.returncode == 0, f"{lock} is held: {run('fuser', lock).stdout}"


CLEAN_TESTS = ROOT / "lab" / "bin" / "clean-tests"
# A stand-in `docker` for clean-tests: the engine answers; `ps` lists $DOCKER_PS_RUN for a
# test-run filter and $DOCKER_PS_LABELS (the textbook-lab label of each container left) for
# --format; every call is appended to $DOCKER_CALLS.
FAKE_DOCKER = """#!/usr/bin/env bash
echo "$*" >>"$DOCKER_CALLS"
case "$1 $*" in
  version*) echo 20.10 ;;
  "ps "*label=textbook-lab.test-run*) printf '%s\\n' $DOCKER_PS_RUN ;;
  "ps "*--format*) printf '%s\\n' $DOCKER_PS_LABELS ;;
esac
"""


def clean_tests(tmp_path: Path, *args: str, run_ids: str, left: str) -> tuple[str, str]:
    """Runs lab/bin/clean-tests against the stand-in docker and a stand-in engine (a sleep
    whose pid is the engine's pidfile); returns (docker calls, whether the engine still runs)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    lab_run = tmp_path / "run"
    lab_run.mkdir()
    engine = subprocess.Popen(["sleep", "60"])
    # Reaped as soon as it ends, so the script's `kill -0` sees it gone (not a zombie).
    reaper = threading.Thread(target=engine.wait, daemon=True)
    reaper.start()
    (lab_run / "dockerd.pid").write_text(f"{engine.pid}\n")
    env = dict(
        os.environ,
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        LAB_RUN=str(lab_run),
        LAB_VAR=str(tmp_path / "var"),
        DOCKER_CALLS=str(tmp_path / "calls"),
        DOCKER_PS_RUN=run_ids,
        DOCKER_PS_LABELS=left,
    )
    try:
        result = run(CLEAN_TESTS, *args, env=env)
        assert result.returncode == 0, result.stderr
        reaper.join(timeout=1)
        engine_state = "running" if reaper.is_alive() else "stopped"
    finally:
        engine.kill()
        engine.wait()
    return (tmp_path / "calls").read_text(), engine_state


def test_clean_tests_removes_only_the_runs_hosts_and_keeps_the_engine_for_make_up(
    tmp_path: Path,
) -> None:
    calls, engine = clean_tests(
        tmp_path, "--run", "abc123", "--stop-idle-engine", run_ids="id1 id2", left="pebble host"
    )
    assert "ps -aq --filter label=textbook-lab.test-run=abc123" in calls
    assert "rm -f id1 id2" in calls
    assert "textbook-lab-pebble" not in calls  # pebble stays
    assert engine == "running"


def test_clean_tests_stops_an_idle_engine_only_when_asked(tmp_path: Path) -> None:
    calls, engine = clean_tests(tmp_path / "a", "--run", "r1", run_ids="", left="pebble")
    assert "rm -f" not in calls
    assert engine == "running"
    calls, engine = clean_tests(
        tmp_path / "b", "--run", "r1", "--stop-idle-engine", run_ids="", left="pebble"
    )
    assert "rm -f textbook-lab-pebble" in calls
    assert engine == "stopped"


def test_clean_tests_without_a_run_removes_every_test_runs_hosts(tmp_path: Path) -> None:
    calls, _ = clean_tests(tmp_path, run_ids="id9", left="")
    assert "ps -aq --filter label=textbook-lab.test-run\n" in calls
    assert "rm -f id9" in calls
