"""Full-stack: deploy.yml onto one lab host holding every group.

The host, its domain, inventory and lab secrets are this run's own (labdeploy.SINGLE), never
`make up`'s. One converge, many checks; runs beside test_four_hosts.py (make test-deploy).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import e2e
import pytest
import smoke  # tests/deploy/smoke.py (pytest puts this directory on sys.path)
from labdeploy import (
    ENV,
    changed,
    deploy,
    docker_exec,
    lab_hosts,
    playbook,
    recap,
    snapshot_sources,
)
from labdeploy import SINGLE as TOPOLOGY

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SINGLE = TOPOLOGY.inventory


@pytest.fixture(scope="module")
def single(sources: Path) -> Iterator[str]:
    for _ in lab_hosts(TOPOLOGY):
        deploy(SINGLE, sources)
        yield TOPOLOGY.host("single")


def test_https_certificate_from_pebble_and_health(single: str) -> None:
    stack = smoke.stack_for(single)  # the TLS handshake verifies the chain against pebble's root
    status, headers, body = stack.request("GET", "/api/v1/health")
    assert status == 200, body
    assert "strict-transport-security" in headers
    issuer = docker_exec(
        single,
        "openssl",
        "x509",
        "-noout",
        "-issuer",
        "-in",
        f"/etc/letsencrypt/live/{stack.domain}/cert.pem",
    ).stdout
    assert "Pebble" in issuer, issuer


def test_register_login_ask_answers_with_citations(single: str) -> None:
    answer = smoke.ask_sample_question(smoke.stack_for(single))
    assert answer["mode"] == "extractive"
    assert answer["citations"]


def test_metrics_are_not_served_to_the_public_through_nginx(single: str) -> None:
    """No monitoring address in the lab inventory: the test client (the control node) is public."""
    stack = smoke.stack_for(single)
    for path in ("/metrics", "/metrics/", "/%6detrics"):
        status, _, body = stack.request("GET", path)
        assert status == 403, (path, status, body[:200])


def test_unsupported_methods_get_405_with_allow_from_nginx(single: str) -> None:
    stack = smoke.stack_for(single)
    for method in ("TRACE", "PUT", "PROPFIND"):
        status, headers, _ = stack.request(method, "/api/v1/health")
        assert (status, headers.get("allow")) == (405, "GET, HEAD, POST, DELETE, OPTIONS"), method


def test_gunicorn_socket_is_for_nginx_only(single: str) -> None:
    sock = docker_exec(single, "stat", "-c", "%U:%G %a", "/run/textbook/gunicorn.sock").stdout
    assert sock.split() == ["textbook:www-data", "660"]


def test_backend_behind_unix_socket_trusts_the_proxy(single: str) -> None:
    env = docker_exec(single, "cat", "/etc/textbook/textbook.env").stdout
    assert re.search(r"^TRUSTED_PROXIES=.*unix:", env, re.M)


def test_several_workers_share_their_metrics(single: str) -> None:
    """The unit as deployed (ProtectSystem=strict, PrivateTmp) run with three workers through a
    runtime drop-in, removed afterwards: gunicorn's master makes the shared metrics directory
    in the unit's private /tmp, and /metrics, whichever worker answers, counts every request."""
    dropin = "/run/systemd/system/textbook.service.d"
    unit = "systemctl daemon-reload && systemctl restart textbook"
    curl = "curl -sf --unix-socket /run/textbook/gunicorn.sock http://textbook"
    line = 'textbook_http_requests_total{method="GET",route="/health",status="200"}'

    def sh(command: str) -> str:
        return docker_exec(single, "bash", "-c", command).stdout

    def health_counts() -> set[str]:
        scrapes = sh(f"for i in 1 2 3 4 5 6; do {curl}/metrics; done")
        return {row.split()[-1] for row in scrapes.splitlines() if row.startswith(line)}

    sh(
        f"mkdir -p {dropin} && printf '[Service]\\nEnvironment=WEB_CONCURRENCY=3\\n' "
        f"> {dropin}/workers.conf && {unit}"
    )
    try:
        sh(f"for i in $(seq 60); do {curl}/health >/dev/null && exit 0; sleep 0.5; done; exit 1")
        main = sh("systemctl show -p MainPID --value textbook").strip()
        assert sh(f"pgrep -c -P {main}").strip() == "3"
        metrics_dir = f"/proc/{main}/root/tmp/textbook-metrics-*"
        before = health_counts()
        assert len(before) == 1
        sent = 0
        while sent < 300:  # new connections until more than one worker has served some
            sh(f"for i in $(seq 20); do {curl}/health >/dev/null; done")
            sent += 20
            if int(sh(f"ls {metrics_dir} | grep -c '^counter_' || true").strip()) >= 2:
                break
        assert int(sh(f"ls {metrics_dir} | grep -c '^counter_' || true").strip()) >= 2
        assert health_counts() == {f"{float(before.pop()) + sent}"}
    finally:
        sh(f"rm -rf {dropin} && {unit}")
        sh(f"for i in $(seq 60); do {curl}/health >/dev/null && exit 0; sleep 0.5; done; exit 1")


def test_second_run_changes_nothing(single: str, sources: Path) -> None:
    result = deploy(SINGLE, sources)
    assert changed(result.stdout) == {single: 0}, result.stdout[-4000:]


def test_check_diff_runs_clean_on_converged_host(single: str, sources: Path) -> None:
    # Runs without errors, and predicts no change on a converged host.
    result = deploy(SINGLE, sources, "--check", "--diff")
    assert recap(result.stdout)[single]["failed"] == 0, result.stdout[-4000:]
    assert recap(result.stdout)[single]["unreachable"] == 0
    assert changed(result.stdout) == {single: 0}, result.stdout[-6000:]


def test_missing_vault_secret_fails_before_any_change(single: str, sources: Path) -> None:
    result = deploy(SINGLE, sources, "-e", "vault_textbook_qdrant_api_key=", check=False)
    assert result.returncode != 0
    assert "vault secret 'vault_textbook_qdrant_api_key' is missing or empty" in result.stdout
    assert "TASK [common" not in result.stdout
    assert changed(result.stdout) == {single: 0}


def test_argument_specs_reject_wrong_type_and_choice_before_any_change(
    single: str, sources: Path
) -> None:
    result = deploy(
        SINGLE,
        sources,
        "-e",
        "backend_mode=kubernetes",
        "-e",
        '{"backend_keep_releases": "five"}',
        check=False,
    )
    assert result.returncode != 0
    assert "backend_mode must be one of: systemd, compose, got: kubernetes" in result.stdout
    assert "backend_keep_releases" in result.stdout and "to an int" in result.stdout
    assert "TASK [common" not in result.stdout
    assert changed(result.stdout) == {single: 0}


def test_release_failing_its_health_gate_leaves_previous_release_serving(
    single: str, tmp_path: Path
) -> None:
    before = docker_exec(single, "readlink", "/opt/textbook/current").stdout.strip()
    releases_before = docker_exec(single, "ls", "/opt/textbook/releases").stdout.split()
    assert Path(before).name in releases_before
    broken = snapshot_sources(tmp_path / "broken", broken=True)
    result = playbook(
        "-i",
        SINGLE,
        "deploy.yml",
        "--tags",
        "backend",
        "-e",
        f"backend_source_dir={broken}",
        check=False,
    )
    assert result.returncode != 0
    assert "did not go live" in result.stdout, result.stdout[-4000:]
    assert "deliberately broken release" in result.stdout
    assert f"live release unchanged: {Path(before).name}" in result.stdout
    after = docker_exec(single, "readlink", "/opt/textbook/current").stdout.strip()
    assert after == before
    releases = docker_exec(single, "ls", "/opt/textbook/releases").stdout.split()
    assert releases == releases_before  # the failed release's directory is gone
    failed = docker_exec(single, "systemctl", "list-units", "--failed", "--plain", "--no-legend")
    assert failed.stdout.strip() == "", failed.stdout
    status, _, body = smoke.stack_for(single).request("GET", "/api/v1/health")
    assert status == 200, body


# The single-host part of `make e2e` (tests/deploy/e2e.py): measurements written as JSON under
# reports/e2e/, asserted where the issue sets a goal. Last in this module: the reboot drill
# restarts the host.


def test_e2e_tls_is_mozilla_intermediate_with_hsts(single: str) -> None:
    """Pebble (the lab's Let's Encrypt) issues 5-year certificates, Let's Encrypt 90-day ones:
    the lifespan item is the one deviation the lab may show, every other item must pass."""
    result = e2e.tls_scan(smoke.stack_for(single))
    issues = [i for i in result["compliance_report"] if "maximum_certificate_lifespan" not in i]
    assert issues == [], result["compliance_report"]
    assert result["protocols_accepted"] == {
        "ssl_2_0": False,
        "ssl_3_0": False,
        "tls_1_0": False,
        "tls_1_1": False,
        "tls_1_2": True,
        "tls_1_3": True,
    }
    assert result["hsts"] and result["hsts"]["max_age"] >= 31536000, result["hsts"]


def test_e2e_network_facing_units_are_sandboxed(single: str) -> None:
    """Every unit that listens (gunicorn behind textbook.socket counted as textbook.service):
    ours at most 2.0, Nginx and PostgreSQL at most 5.0. ssh.service (Debian's unit, 9.6) is
    reported, not asserted: docs/deploy.md says why."""
    units = e2e.exposures(single, extra_units=("textbook.service",))["units"]
    assert {"nginx.service", "textbook.service", "qdrant.service", "ssh.service"} <= set(units)
    assert any(unit.startswith("postgresql@") for unit in units), units
    exposure = {unit: values["exposure"] for unit, values in units.items()}
    assert exposure["textbook.service"] <= 2.0 and exposure["qdrant.service"] <= 2.0, exposure
    assert all(level <= 5.0 for unit, level in exposure.items() if unit != "ssh.service"), exposure


def test_e2e_lynis_audit_is_recorded(single: str) -> None:
    result = e2e.lynis(single)
    assert result["hardening_index"] > 0, result


@pytest.mark.parametrize(
    ("drill", "command"),
    [
        ("gunicorn-master-sigkill", "kill -KILL $(systemctl show -p MainPID --value textbook)"),
        ("postgresql-restart", "systemctl restart 'postgresql@*'"),
        ("qdrant-restart", "systemctl restart qdrant"),
    ],
)
def test_e2e_fault_drill_recovers_by_itself(single: str, drill: str, command: str) -> None:
    result = e2e.drill(
        smoke.stack_for(single), drill, lambda: docker_exec(single, "bash", "-c", command)
    )
    assert result["seconds_until_healthy"] < 120, result


def test_e2e_host_reboot_drill_recovers_by_itself(single: str) -> None:
    """The lab's reboot: the container restarts and systemd boots it again."""
    result = e2e.drill(
        smoke.stack_for(single),
        "host-reboot",
        lambda: subprocess.run(["docker", "restart", single], env=ENV, check=True, timeout=300),
    )
    assert result["seconds_until_healthy"] < 240, result
