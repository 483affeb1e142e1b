"""Full-stack: deploy.yml onto one lab host holding every group.

The host, its domain, inventory and lab secrets are this run's own (labdeploy.SINGLE), never
`make up`'s. One converge, many checks; runs beside test_four_hosts.py (make test-deploy). The
host is the session fixture `single` (conftest.py): test_backup_restore.py reuses it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import smoke  # tests/deploy/smoke.py (pytest puts this directory on sys.path)
from labdeploy import SINGLE as TOPOLOGY
from labdeploy import changed, deploy, docker_exec, playbook, recap, snapshot_sources

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SINGLE = TOPOLOGY.inventory


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
