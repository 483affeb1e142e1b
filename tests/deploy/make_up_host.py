"""The `make up` host beside the deploy tests (make test-deploy, tests/deploy/run).

    make_up_host.py prepare STATE   before the single-host tests: when there is no `make up` host,
                                    `make up`, then an extra release onto it (a changed copy of
                                    the backend); a host the user left is used as found. Writes
                                    what the host holds to STATE (JSON).
    make_up_host.py remove STATE    after the checks: `make down` if `prepare` made the host.

test_make_up_host_survives.py compares the host with STATE after the run and its cleanup.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import smoke
from labdeploy import ENV, ROOT, deploy, docker_exec, snapshot_sources

HOST = "textbook-lab"  # lab/molecule/up-host.yml
INVENTORY = "inventories/lab"


def exists(host: str = HOST) -> bool:
    found = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"name=^{host}$"],
        env=ENV,
        text=True,
        capture_output=True,
        check=True,
    )
    return bool(found.stdout.strip())


def observe(host: str = HOST) -> dict[str, Any]:
    """What the host is and holds: container id, running, labels, releases, current, health."""
    inspect = subprocess.run(
        ["docker", "inspect", "-f", "{{json .}}", host],
        env=ENV,
        text=True,
        capture_output=True,
        check=True,
    )
    container = json.loads(inspect.stdout)
    releases = docker_exec(host, "ls", "/opt/textbook/releases", check=False).stdout.split()
    current = docker_exec(host, "readlink", "/opt/textbook/current", check=False).stdout.strip()
    try:
        health: int | str = smoke.stack_for(host).request("GET", "/api/v1/health")[0]
    except OSError as error:
        health = f"no answer: {error}"
    return {
        "id": container["Id"],
        "running": container["State"]["Running"],
        "labels": container["Config"]["Labels"] or {},
        "releases": releases,
        "current": current,
        "health": health,
    }


def make(target: str) -> None:
    # `make up` never labels its host as a test run's, whoever calls it (mk/deploy.mk).
    env = {k: v for k, v in ENV.items() if k != "TEXTBOOK_TEST_RUN"}
    print(f"== make {target}", flush=True)
    subprocess.run(["make", "--no-print-directory", target], cwd=ROOT, env=env, check=True)


def prepare(state: Path) -> None:
    created = not exists()
    # Written first, so `remove` takes down a host this made even when a later step fails.
    state.write_text(json.dumps({"created": created, "before": None}))
    if created:
        make("up")
        with tempfile.TemporaryDirectory(prefix="textbook-extra-") as tmp:
            sources = snapshot_sources(Path(tmp) / "src")
            with (sources / "backend/textbook/__init__.py").open("a") as init:
                init.write("# an extra release of the `make up` host (tests/deploy)\n")
            deploy(INVENTORY, sources, "--tags", "backend")
    else:
        print(f"== a `make up` host ({HOST}) is there: the run leaves it as found", flush=True)
    before = observe()
    if created and len(before["releases"]) != 2:
        raise SystemExit(f"expected 2 releases on {HOST} after the extra one: {before}")
    state.write_text(json.dumps({"created": created, "before": before}, indent=1))
    print(f"== {HOST}: {before}", flush=True)


def remove(state: Path) -> None:
    if json.loads(state.read_text())["created"]:
        make("down")
    state.unlink()


if __name__ == "__main__":
    commands = {"prepare": prepare, "remove": remove}
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {Path(sys.argv[0]).name} prepare|remove STATE")
    os.chdir(ROOT)
    commands[sys.argv[1]](Path(sys.argv[2]))
