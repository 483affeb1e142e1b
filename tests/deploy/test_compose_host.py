"""Full-stack, compose mode: deploy.yml with backend_mode: compose onto one Ubuntu 24.04 lab host
holding every group (labdeploy.COMPOSE): Docker from the distribution (Compose v2), the backend
image built on the host, the Qdrant LAB STAND-IN image, PostgreSQL from its role, Nginx + pebble.

One converge, then (in this order): HTTPS and an answer, the containers as configured, a second
run changing nothing, an app-only update under load with no failed request, a release failing
its gate with the previous one still serving, the day-2 playbooks made for systemd mode refusing
before any change, a reboot bringing everything back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import smoke  # tests/deploy/smoke.py (pytest puts this directory on sys.path)
from labdeploy import COMPOSE as TOPOLOGY
from labdeploy import (
    changed,
    deploy,
    docker_exec,
    lab_hosts,
    playbook,
    reboot,
    recap,
    snapshot_sources,
)
from load import CountingLoad

pytestmark = [pytest.mark.lab, pytest.mark.slow]

INVENTORY = TOPOLOGY.inventory


@pytest.fixture(scope="module")
def host(sources: Path) -> Iterator[str]:
    for _ in lab_hosts(TOPOLOGY):
        started = time.monotonic()
        deploy(INVENTORY, sources)
        print(f"compose: first deploy in {time.monotonic() - started:.0f}s")
        yield TOPOLOGY.host("compose")


def state(host: str) -> dict[str, str]:
    return dict(json.loads(docker_exec(host, "cat", "/opt/textbook/compose/state.json").stdout))


def inspect(host: str, container: str, template: str) -> str:
    return docker_exec(host, "docker", "inspect", "-f", template, container).stdout.strip()


def running(host: str) -> set[str]:
    names = docker_exec(host, "docker", "ps", "--format", "{{.Names}}").stdout.split()
    return set(names)


def new_release(tmp_path: Path, name: str, broken: bool = False) -> Path:
    """Sources whose wheel differs from the deployed one (a new release id)."""
    sources = snapshot_sources(tmp_path / name, broken=broken)
    with (sources / "backend/textbook/main.py").open("a") as main:
        main.write(f"\n# release {name} (tests/deploy/test_compose_host.py)\n")
    return sources


def test_https_from_pebble_and_answer_with_citations(host: str) -> None:
    stack = smoke.stack_for(host)
    status, headers, body = stack.request("GET", "/api/v1/health")
    assert status == 200, body
    assert "strict-transport-security" in headers
    domain = stack.domain
    issuer = docker_exec(
        host,
        "openssl",
        "x509",
        "-noout",
        "-issuer",
        "-in",
        f"/etc/letsencrypt/live/{domain}/cert.pem",
    ).stdout
    assert "Pebble" in issuer, issuer
    answer = smoke.ask_sample_question(stack)
    assert answer["citations"]


def test_containers_run_unprivileged_read_only_logging_to_the_journal(host: str) -> None:
    live = f"textbook-backend-{state(host)['live']}"
    assert {live, "textbook-qdrant"} <= running(host)
    assert inspect(host, live, "{{.Config.User}}") == "textbook"
    assert inspect(host, live, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    assert inspect(host, live, "{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped"
    assert (
        inspect(host, "textbook-qdrant", "{{.HostConfig.RestartPolicy.Name}}") == "unless-stopped"
    )
    for container in (live, "textbook-qdrant"):
        assert inspect(host, container, "{{.HostConfig.LogConfig.Type}}") == "journald"
    assert inspect(host, live, "{{.State.Health.Status}}") == "healthy"
    # Qdrant's image is the lab stand-in, and it requires the API key.
    assert "labstandin" in inspect(host, "textbook-qdrant", "{{.Config.Image}}")
    journal = docker_exec(host, "journalctl", "CONTAINER_NAME=textbook-qdrant", "-o", "cat").stdout
    assert "LAB STAND-IN, NOT QDRANT" in journal and "api key required" in journal
    # Gunicorn's access lines of the live slot are in the journal too.
    journal = docker_exec(host, "journalctl", f"CONTAINER_NAME={live}", "-o", "cat").stdout
    assert "/api/v1/health" in journal


def test_second_run_changes_nothing(host: str, sources: Path) -> None:
    result = deploy(INVENTORY, sources)
    assert changed(result.stdout) == {host: 0}, result.stdout[-4000:]


def test_app_only_update_fails_no_request(host: str, tmp_path: Path) -> None:
    before = state(host)
    update = new_release(tmp_path, "update")
    # Bounded, and longer than any update here: the load must run through the switch.
    with CountingLoad(smoke.stack_for(host), rate=20, max_seconds=2400) as load:
        time.sleep(2)  # the load runs before, during and after the switch
        started = time.monotonic()
        deploy(INVENTORY, update, "--tags", "backend")
        took = time.monotonic() - started
        time.sleep(2)
    print(f"compose: app-only update in {took:.0f}s under load: {load.result.summary()}")
    after = state(host)
    assert after["live"] != before["live"]
    assert after[after["live"]] != before[before["live"]]
    assert f"textbook-backend-{before['live']}" not in running(host)
    assert load.result.total > 0
    ran = max(sample.started for sample in load.result.samples)
    assert ran > took, f"the load stopped after {ran:.0f}s, before the update ended ({took:.0f}s)"
    assert load.result.failed == 0, load.result.summary()


def test_release_failing_its_gate_leaves_previous_release_serving(
    host: str, tmp_path: Path
) -> None:
    before = state(host)
    broken = new_release(tmp_path, "broken", broken=True)
    result = deploy(INVENTORY, broken, "--tags", "backend", check=False)
    assert result.returncode != 0
    assert "did not go live" in result.stdout, result.stdout[-4000:]
    assert "deliberately broken release" in result.stdout
    assert f"live release unchanged: {before[before['live']]}" in result.stdout
    assert state(host) == before
    idle = "green" if before["live"] == "blue" else "blue"
    assert f"textbook-backend-{idle}" not in running(host)
    assert f"textbook-backend-{before['live']}" in running(host)
    status, _, body = smoke.stack_for(host).request("GET", "/api/v1/health")
    assert status == 200, body


@pytest.mark.parametrize("name", ["rollback", "restore", "backup", "rotate"])
def test_day2_playbooks_of_systemd_mode_refuse_before_any_change(host: str, name: str) -> None:
    before = state(host)
    result = playbook("-i", INVENTORY, f"playbooks/{name}.yml", check=False)
    assert result.returncode != 0
    assert f"{name}.yml works on systemd-mode deployments" in result.stdout, result.stdout[-3000:]
    assert "Nothing was changed" in result.stdout
    assert all(counts["changed"] == 0 for counts in recap(result.stdout).values()), result.stdout
    assert state(host) == before


def test_reboot_brings_everything_back(host: str) -> None:
    live = f"textbook-backend-{state(host)['live']}"
    boot = reboot(host)
    failed = docker_exec(host, "systemctl", "--failed", "--no-legend", check=False).stdout
    assert boot == "running", f"{boot!r}; failed units: {failed}"
    deadline = time.monotonic() + 240
    status, body = 0, b""
    while time.monotonic() < deadline:
        try:
            status, _, body = smoke.stack_for(host).request("GET", "/api/v1/health")
        except OSError as error:
            body = str(error).encode()
        if status == 200:
            break
        time.sleep(3)
    assert status == 200, body
    assert {live, "textbook-qdrant"} <= running(host)
    assert smoke.ask_sample_question(smoke.stack_for(host))["citations"]
