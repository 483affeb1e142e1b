"""Full-stack tests: deploy.yml onto lab hosts (make test-deploy).

One converge per topology, many checks on it: single host (every group) and four hosts
(proxy, two app hosts, db+vector). Needs the lab (make lab) and the Qdrant stand-in artifact.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import smoke  # tests/deploy/smoke.py (pytest puts this directory on sys.path)

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
       "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///run/textbook-lab/docker.sock"),
       "ANSIBLE_FORCE_COLOR": "0"}
SINGLE = "inventories/lab"
FOUR = "tests/deploy/inventories/four"

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def playbook(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ansible-playbook", *args], cwd=ROOT, env=ENV, text=True,
                            capture_output=True, timeout=1800)
    if check and result.returncode != 0:
        pytest.fail(f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-6000:]}"
                    f"\n{result.stderr[-2000:]}")
    return result


def recap_changed(output: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def lab_hosts(platforms: str, inventory: str) -> Iterator[None]:
    playbook("-i", inventory, "lab/molecule/create.yml", "-e", f"@tests/deploy/{platforms}")
    try:
        yield
    finally:
        playbook("-i", inventory, "lab/molecule/destroy.yml", "-e", f"@tests/deploy/{platforms}",
                 check=False)


@pytest.fixture(scope="module")
def single() -> Iterator[str]:
    for _ in lab_hosts("lab-single.yml", SINGLE):
        playbook("-i", SINGLE, "deploy.yml")
        yield "textbook-lab"


def test_https_certificate_from_pebble_and_health(single: str) -> None:
    stack = smoke.stack_for(single)  # verifies the chain against pebble's root
    status, headers, body = stack.request("GET", "/api/v1/health")
    assert status == 200, body
    assert "strict-transport-security" in headers


def test_register_login_ask_answers_with_citations(single: str) -> None:
    answer = smoke.ask_sample_question(smoke.stack_for(single))
    assert answer["mode"] == "extractive"
    assert answer["citations"]


def test_second_run_changes_nothing(single: str) -> None:
    result = playbook("-i", SINGLE, "deploy.yml")
    assert recap_changed(result.stdout) == {single: 0}, result.stdout[-4000:]


def test_check_diff_runs_clean_on_converged_host(single: str) -> None:
    result = playbook("-i", SINGLE, "deploy.yml", "--check", "--diff")
    assert recap_changed(result.stdout) == {single: 0}, result.stdout[-4000:]


def test_missing_vault_secret_fails_before_any_change(single: str) -> None:
    result = playbook("-i", SINGLE, "deploy.yml", "-e", "vault_textbook_qdrant_api_key=",
                      check=False)
    assert result.returncode != 0
    assert "vault_textbook_qdrant_api_key" in result.stdout
    assert recap_changed(result.stdout) == {single: 0}


def test_argument_specs_reject_wrong_choice_before_any_change(single: str) -> None:
    result = playbook("-i", SINGLE, "deploy.yml", "--tags", "backend", "-e",
                      "backend_mode=kubernetes", check=False)
    assert result.returncode != 0
    assert "backend_mode" in result.stdout
    assert recap_changed(result.stdout) == {single: 0}


@pytest.fixture(scope="module")
def four() -> Iterator[str]:
    for _ in lab_hosts("lab-four.yml", FOUR):
        playbook("-i", FOUR, "deploy.yml")
        yield "tl-proxy"


def test_nginx_spreads_requests_over_both_app_hosts(four: str) -> None:
    stack = smoke.stack_for(four)
    for _ in range(12):
        status, _, _ = stack.request("GET", "/api/v1/health")
        assert status == 200
    counts = {}
    for app in ("tl-app1", "tl-app2"):
        log = subprocess.run(["docker", "exec", app, "journalctl", "-u", "textbook.service",
                              "-o", "cat", "--no-pager"], env=ENV, text=True,
                             capture_output=True, check=True).stdout
        counts[app] = log.count('"path": "/api/v1/health"')
    assert all(count > 0 for count in counts.values()), counts
