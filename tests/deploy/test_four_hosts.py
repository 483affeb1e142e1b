"""Full-stack: deploy.yml onto four lab hosts of this run's own (labdeploy.FOUR).

proxy (Debian 12), two app hosts (Ubuntu 22.04, Ubuntu 24.04), db + vector (Ubuntu 22.04).
One converge, many checks; the last ones run day-2 playbooks across the hosts: rotate.yml,
then a backup of the data host restored from the offsite repository onto a fresh host (a lost
data host's drill).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import backups
import e2e
import pytest
import rotation
import smoke  # tests/deploy/smoke.py (pytest puts this directory on sys.path)
from labdeploy import FOUR as TOPOLOGY
from labdeploy import Topology, changed, deploy, docker_exec, lab_hosts, one_host, playbook

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


def test_port_scan_from_other_lab_hosts_finds_only_the_ports_each_peer_needs(four: str) -> None:
    """Every TCP port scanned (e2e.port_scan, reports/e2e/portscan-four.json): the proxy shows
    SSH, HTTP and HTTPS; an app host's backend port only to the proxy; PostgreSQL and Qdrant
    only to the app hosts."""
    scans = e2e.port_scan(
        "portscan-four",
        {
            "proxy from app1": (APP1, four),
            "app1 from proxy": (four, APP1),
            "app1 from data": (DATA, APP1),
            "data from proxy": (four, DATA),
            "data from app1": (APP1, DATA),
        },
    )
    print(json.dumps(scans))
    reachable = {label: set(scan["open"]) - {22} for label, scan in scans.items()}
    assert reachable == {
        "proxy from app1": {80, 443},
        "app1 from proxy": {8000},
        "app1 from data": set(),
        "data from proxy": set(),
        "data from app1": {5432, 6333},
    }, scans


def test_rotation_across_four_hosts_fails_no_request_and_a_second_run_changes_nothing(
    four: str,
) -> None:
    """rotate.yml with the database and Qdrant on another host than both backends
    (rotation.rotate_every_credential says what is checked)."""
    rotation.rotate_every_credential(TOPOLOGY, [APP1, APP2])
    again = rotation.rotate(TOPOLOGY)
    assert again.returncode == 0, again.stdout[-4000:]
    assert set(changed(again.stdout).values()) == {0}, again.stdout[-4000:]


FRESH = one_host("fresh")
RESTIC = Topology(
    "restic",
    images={"restic": "textbook-lab/debian:12"},
    groups={"offsite": ["restic"]},
    proxy="restic",
)


def test_data_host_backup_restores_from_offsite_onto_a_fresh_host(
    four: str, sources: Path, tmp_path: Path
) -> None:
    """The data host's sets go to a restic repository on another host; a host that never held
    the data is deployed with deploy.yml and the same offsite settings, pushes a set of its own
    (which must not prune the data host's), and restore.yml brings the data host's latest set
    from the repository: identical rows, checksums, points and payloads, and a user of the four
    hosts signs in there. (After the rotation above: the backups use the rotated credentials.)
    The set restored is read just before the restore: the data host's hourly schedule may
    replace an earlier one meanwhile (retention keeps the newest set of each hour)."""
    stack = smoke.stack_for(four)
    email, form, _ = smoke.signed_in_user(stack, "moved")
    for _ in lab_hosts(RESTIC):
        target = backups.offsite_target(RESTIC.host("restic"))
        settings = backups.offsite_settings(target, tmp_path / "offsite.json")
        playbook("-i", FOUR, "deploy.yml", "--tags", "backup", "-e", f"@{settings}")
        backups.authorize(DATA, target)
        for _ in lab_hosts(FRESH):
            fresh = FRESH.host("fresh")
            deploy(FRESH.inventory, sources, "-e", f"@{settings}")
            backups.authorize(fresh, target)
            before = backups.digest(DATA)
            assert backups.digest(fresh) != before  # its own empty users, its own ingest
            playbook("-i", FOUR, "playbooks/backup.yml")
            assert backups.status(DATA)["last_backup"]["ok"]
            playbook("-i", FRESH.inventory, "playbooks/backup.yml")
            own = backups.status(fresh)["last_backup"]
            chosen = backups.status(DATA)["last_backup"]["set"]
            assert own["ok"] and chosen in own["offsite"]["sets"], own  # not pruned by it
            restored = playbook(
                *("-i", FRESH.inventory, "playbooks/restore.yml"),
                *("-e", "restore_from=offsite", "-e", f"restore_set={chosen}"),
            )
            assert chosen in restored.stdout
            assert backups.digest(fresh) == before
            moved = smoke.stack_for(fresh)
            status, body = moved.json("POST", "/api/v1/auth/login", form=form)
            assert status == 200, body
            status, me = moved.json("GET", "/api/v1/users/me", token=body["access_token"])
            assert status == 200 and me["email"] == email
            assert smoke.ask_sample_question(moved)["citations"]
