"""Full-stack: deploy.yml onto four lab hosts of this run's own (labdeploy.FOUR).

proxy, two app hosts (Debian 12, Ubuntu 24.04), db + vector. One converge, many checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import smoke  # tests/deploy/smoke.py (pytest puts this directory on sys.path)
from labdeploy import FOUR as TOPOLOGY
from labdeploy import deploy, docker_exec, lab_hosts

pytestmark = [pytest.mark.lab, pytest.mark.slow]

FOUR = TOPOLOGY.inventory
APP1, APP2, DATA = TOPOLOGY.host("app1"), TOPOLOGY.host("app2"), TOPOLOGY.host("data")


@pytest.fixture(scope="module")
def four(sources: Path) -> Iterator[str]:
    for _ in lab_hosts(TOPOLOGY):
        deploy(FOUR, sources)
        yield TOPOLOGY.host("proxy")


def access_lines(app: str) -> int:
    log = docker_exec(app, "journalctl", "-u", "textbook.service", "-o", "cat", "--no-pager").stdout
    paths = [json.loads(line).get("path") for line in log.splitlines() if line.startswith("{")]
    return paths.count("/api/v1/health")


def test_nginx_spreads_requests_over_both_app_hosts(four: str) -> None:
    stack = smoke.stack_for(four)
    before = {app: access_lines(app) for app in (APP1, APP2)}
    for _ in range(12):
        status, _, _ = stack.request("GET", "/api/v1/health")
        assert status == 200
    served = {app: access_lines(app) - count for app, count in before.items()}
    assert all(count > 0 for count in served.values()), served
    assert sum(served.values()) >= 12, served


def test_four_hosts_answer_with_citations_from_remote_db_and_vector(four: str) -> None:
    answer = smoke.ask_sample_question(smoke.stack_for(four))
    assert answer["mode"] == "extractive" and answer["citations"]
    for app in (APP1, APP2):
        env = docker_exec(app, "cat", "/etc/textbook/textbook.env").stdout
        database = r"^DATABASE_URL=postgresql\+psycopg2://textbook:.*@[0-9.]+:5432/"
        assert re.search(database, env, re.M)
        assert re.search(r"^QDRANT_URL=http://[0-9.]+:6333$", env, re.M)


def test_firewall_keeps_data_ports_from_the_proxy(four: str) -> None:
    probe = (
        "import socket,sys\n"
        "try:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
        "except OSError: print('closed')\nelse: print('open')\n"
    )

    def port(source: str, target: str, number: int) -> str:
        return docker_exec(source, "python3", "-c", probe, target, str(number)).stdout.strip()

    assert port(APP1, DATA, 5432) == "open"
    assert port(four, DATA, 5432) == "closed"
    assert port(four, DATA, 6333) == "closed"
    assert port(four, APP1, 8000) == "open"
