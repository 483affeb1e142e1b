"""Helpers of the full-stack tests (test_single_host.py, test_four_hosts.py; make test-deploy).

One converge per topology, many checks on it: single host (every group, inventories/lab) and
four hosts (proxy, two app hosts, db+vector; tests/deploy/inventories/four). Needs the lab
(make lab) and the Qdrant stand-in artifact (make qdrant-artifact). Every deploy of a module
uses one snapshot of the backend's sources, so edits to backend/ during a run (shared checkout)
do not turn the second run into a new release.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    **os.environ,
    "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///run/textbook-lab/docker.sock"),
    "ANSIBLE_FORCE_COLOR": "0",
}


def playbook(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(
        ["ansible-playbook", *args], cwd=ROOT, env=ENV, text=True, capture_output=True, timeout=2400
    )
    print(
        f"ansible-playbook {' '.join(args)}: rc={result.returncode} "
        f"in {time.monotonic() - started:.0f}s"
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-6000:]}"
            f"\n{result.stderr[-2000:]}"
        )
    return result


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {'host': {'ok': .., 'changed': .., 'failed': ..}}."""
    return {
        m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        for m in re.finditer(r"^(\S+)\s+: (ok=.*)$", output, re.M)
    }


def changed(output: str) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in recap(output).items()}


def docker_exec(host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", host, *argv],
        env=ENV,
        text=True,
        capture_output=True,
        check=check,
        timeout=120,
    )


def snapshot_sources(dest: Path, broken: bool = False) -> Path:
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "backend",
        dest / "backend",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    if broken:
        with (dest / "backend/textbook/main.py").open("a") as main:
            main.write('\nraise RuntimeError("deliberately broken release (tests/deploy)")\n')
    return dest


def deploy(
    inventory: str, sources: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return playbook(
        "-i", inventory, "deploy.yml", "-e", f"backend_source_dir={sources}", *args, check=check
    )


def lab_hosts(platforms: str, inventory: str) -> Iterator[None]:
    playbook("-i", inventory, "lab/molecule/create.yml", "-e", f"@tests/deploy/{platforms}")
    try:
        yield
    finally:
        if not os.environ.get("TEXTBOOK_KEEP_LAB_HOSTS"):
            playbook(
                "-i",
                inventory,
                "lab/molecule/destroy.yml",
                "-e",
                f"@tests/deploy/{platforms}",
                check=False,
            )
