"""Backups, the restore drill and the status table on the single-host deploy (roles/backup,
playbooks/backup.yml, restore.yml, status.yml).

Runs in the same pytest session as test_single_host.py, on its host (the `single` fixture of
conftest.py): tests/deploy/run passes both files to one pytest. The drill: users,
conversations and ingested chunks -> backup -> data destroyed -> restore -> identical row
counts, table checksums, point counts and payloads.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import backups
import pytest
import smoke
from backups import PROGRAM, digest, helper, sets, sh, status
from labdeploy import ENV, ROOT, Topology, docker_exec, lab_hosts, playbook
from labdeploy import SINGLE as TOPOLOGY

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SINGLE = TOPOLOGY.inventory


def converge_backup(*extra: str) -> None:
    playbook("-i", SINGLE, "deploy.yml", "--tags", "backup", *extra)


@pytest.fixture(scope="module")
def host(single: str) -> Iterator[str]:
    """The single host with data of every kind: a user with a conversation, ingested chunks.
    A failed deploy of an earlier module keeps its deploy lock (docs/deploy.md): removed here."""
    docker_exec(single, "rm", "-f", "/run/lock/textbook-deploy.lock")
    smoke.ask_sample_question(smoke.stack_for(single))
    yield single


def test_restore_drill_brings_back_identical_data(host: str) -> None:
    stack = smoke.stack_for(host)
    before = digest(host)
    assert before["rows"]["users"] >= 1 and before["rows"]["chat_messages"] >= 2, before
    assert all(count > 0 for count in before["points"].values()), before
    playbook("-i", SINGLE, "playbooks/backup.yml")
    chosen = status(host)["last_backup"]["set"]
    manifest = json.loads(sh(host, f"cat /var/backups/textbook/{chosen}/manifest.json").stdout)
    assert manifest["rows"] == before["rows"] and manifest["points"] == before["points"]
    assert (
        manifest["release"]
        == Path(docker_exec(host, "readlink", "/opt/textbook/current").stdout.strip()).name
    )
    assert manifest["alembic_revision"]

    # Destroy: every table emptied, every collection deleted.
    tables = ", ".join(f'public."{t}"' for t in before["rows"] if t != "alembic_version")
    sh(host, f"runuser -u postgres -- psql -X -q -d textbook -c 'TRUNCATE {tables} CASCADE'")
    helper(host, "drop-collections")
    destroyed = digest(host)
    assert destroyed["points"] == {} and destroyed["rows"]["users"] == 0

    # Restore in the background; meanwhile Nginx answers 503 with Retry-After and JSON.
    restore = subprocess.Popen(
        ["ansible-playbook", "-i", SINGLE, "playbooks/restore.yml", "-e", f"restore_set={chosen}"],
        cwd=ROOT,
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    maintenance: tuple[int, dict[str, str], bytes] | None = None
    while restore.poll() is None:
        answer = stack.request("GET", "/api/v1/health")
        if answer[0] == 503 and "retry-after" in answer[1]:
            maintenance = answer
        time.sleep(0.5)
    output = restore.stdout.read() if restore.stdout else ""
    assert restore.returncode == 0, output[-6000:]
    assert maintenance is not None, "no 503 with Retry-After seen during the restore"
    assert maintenance[1]["content-type"].startswith("application/json")
    assert maintenance[1]["retry-after"] == "120"
    assert "maintenance" in json.loads(maintenance[2])["detail"]

    after = digest(host)
    assert after == before
    assert stack.request("GET", "/api/v1/health")[0] == 200
    safety = [s for s in sets(host) if s.endswith("-prerestore")]
    assert safety and safety[-1] in output
    safety_manifest = sh(host, f"cat /var/backups/textbook/{safety[-1]}/manifest.json").stdout
    assert json.loads(safety_manifest)["rows"]["users"] == 0  # what the restore overwrote
    # It ran under the deploy lock, released at the end, and is on record.
    audit = sh(host, "cat /var/log/textbook/audit.log").stdout
    assert "action=restore event=start" in audit and "action=restore event=done" in audit, audit
    assert sh(host, "test -e /run/lock/textbook-deploy.lock", check=False).returncode != 0


def test_restore_refuses_a_set_whose_checksum_differs_before_touching_anything(host: str) -> None:
    good = status(host)["last_good_backup"]["set"]
    bad = good[:16] + "-tampered"
    sets_before = sets(host)
    sh(host, f"cp -a /var/backups/textbook/{good} /var/backups/textbook/{bad}")
    try:
        sh(
            host,
            f"printf x | dd of=/var/backups/textbook/{bad}/postgresql.dump bs=1 seek=100 "
            "conv=notrunc status=none",
        )
        result = playbook(
            "-i", SINGLE, "playbooks/restore.yml", "-e", f"restore_set={bad}", check=False
        )
        assert result.returncode != 0
        assert "postgresql.dump does not match its manifest checksum" in result.stdout
        assert "Nginx answers 503" not in result.stdout  # stopped before maintenance
        safety_sets = [s for s in sets(host) if s.endswith("-prerestore")]
        assert safety_sets == [s for s in sets_before if s.endswith("-prerestore")]
        assert smoke.stack_for(host).request("GET", "/api/v1/health")[0] == 200
    finally:
        sh(host, f"rm -rf /var/backups/textbook/{bad}")


def test_weekly_restore_test_restores_compares_and_drops_its_scratch_copies(host: str) -> None:
    latest = [s for s in sets(host) if "-" not in s][-1]
    sh(
        host,
        f"TEXTBOOK_BACKUP_STDIO_JOURNAL=1 systemd-cat -t textbook-backup {PROGRAM} restore-test",
    )  # the command line of the cron entry
    record = status(host)["last_restore_test"]
    assert record["ok"] and record["set"] == latest, record
    manifest = json.loads(sh(host, f"cat /var/backups/textbook/{latest}/manifest.json").stdout)
    assert record["rows"] == manifest["rows"] and record["points"] == manifest["points"]
    databases = sh(host, "runuser -u postgres -- psql -X -At -c 'SELECT datname FROM pg_database'")
    assert "textbook_restoretest" not in databases.stdout.split()
    assert [c for c in digest(host)["points"] if c.endswith("_restoretest")] == []
    journal = sh(host, "journalctl -t textbook-backup -p info --no-pager -o cat").stdout
    assert "restore-test ok: " in journal


def test_full_backup_target_fails_loudly_and_the_site_keeps_serving(host: str) -> None:
    alternative = "/etc/textbook-backup/full-target.json"
    sh(host, "mkdir -p /mnt/full-target && mount -t tmpfs -o size=64k tmpfs /mnt/full-target")
    try:
        settings = helper(
            host,
            "config",
            'backup_dir="/mnt/full-target/sets"',
            'status_file="/mnt/full-target/status.json"',
            "min_free_mb=0",
        )
        sh(host, f"cat > {alternative} <<'EOF'\n{settings}EOF")
        since = sh(host, "date +%s").stdout.strip()
        run = sh(host, f"TEXTBOOK_BACKUP_CONFIG={alternative} {PROGRAM} backup", check=False)
        assert run.returncode == 1
        assert "backup FAILED" in run.stderr and "No space left on device" in run.stderr
        errors = sh(host, f"journalctl -t textbook-backup -p err --since @{since} -o cat").stdout
        assert "backup FAILED" in errors
        record = json.loads(sh(host, "cat /mnt/full-target/status.json").stdout)["last_backup"]
        assert record["ok"] is False and "No space left" in record["error"]
        left = sh(host, "ls -A /mnt/full-target/sets").stdout.split()
        assert left == [".lock"]  # no partial set
        assert smoke.stack_for(host).request("GET", "/api/v1/health")[0] == 200
    finally:
        sh(host, f"umount /mnt/full-target; rm -f {alternative}", check=False)


def test_status_table_reports_every_part_and_fails_when_one_is_unhealthy(host: str) -> None:
    result = playbook("-i", SINGLE, "playbooks/status.yml")
    release = Path(docker_exec(host, "readlink", "/opt/textbook/current").stdout.strip()).name
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith(f'"{host} |'))
    for part in (
        "nginx.service=active",
        "textbook.service=active",
        "postgresql.service=active",
        "qdrant.service=active",
        "cron.service=active",
        release,
        "| 200 |",
        "| ok",
    ):
        assert part in row, row
    assert "every host is healthy" in result.stdout
    stale = playbook(
        "-i",
        SINGLE,
        "playbooks/status.yml",
        "-e",
        "status_min_disk_free_percent=100",
        check=False,
    )
    assert stale.returncode != 0
    assert re.search(rf"unhealthy: {host}: disk [0-9.]+% free", stale.stdout), stale.stdout[-3000:]


def test_scheduled_backup_fires_by_itself_and_retention_prunes(host: str) -> None:
    """Cron every minute, retention of one hourly set: a set written on demand first is pruned
    by the next scheduled run, which logs to the journal. (The next test converges the default
    schedule again.)"""
    converge_backup(
        "-e",
        '{"backup_cron_schedule": "* * * * *", "backup_keep_hourly": 1, "backup_keep_daily": 0, '
        '"backup_keep_weekly": 0, "backup_keep_monthly": 0}',
    )
    result = playbook("-i", SINGLE, "playbooks/backup.yml")
    on_demand = status(host)["last_backup"]["set"]
    assert on_demand in result.stdout
    for word in ('"bytes"', '"rows"', '"points"', '"seconds"', '"alembic_revision"'):
        assert word in result.stdout, result.stdout[-3000:]
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and status(host)["last_backup"]["set"] == on_demand:
        time.sleep(5)
    last = status(host)["last_backup"]
    assert last["ok"] and last["set"] != on_demand, last
    assert on_demand in last["pruned"]
    assert on_demand not in sets(host)
    journal = sh(host, "journalctl -t textbook-backup --no-pager -o cat").stdout
    assert 'backup ok: {"alembic_revision"' in journal and last["set"] in journal


OFFSITE = Topology(
    "offsite",
    images={"offsite": "textbook-lab/debian:12"},
    groups={"offsite": ["offsite"]},
    proxy="offsite",
)


@pytest.fixture(scope="module")
def offsite(host: str) -> Iterator[str]:
    """A fifth lab host: an SFTP target with a user of its own for the restic repository."""
    for _ in lab_hosts(OFFSITE):
        yield backups.offsite_target(OFFSITE.host("offsite"))


def test_offsite_copy_is_encrypted_and_restores_after_local_sets_are_lost(
    host: str, offsite: str, tmp_path: Path
) -> None:
    settings = backups.offsite_settings(offsite, tmp_path / "offsite.json")
    converge_backup("-e", f"@{settings}")  # and the default schedule again
    cron = sh(host, "cat /etc/cron.d/textbook-backup").stdout
    assert f"17 * * * * root systemd-cat -t textbook-backup {PROGRAM} backup" in cron
    assert f"43 4 * * 0 root systemd-cat -t textbook-backup {PROGRAM} restore-test" in cron
    backups.authorize(host, offsite)
    before = digest(host)
    email = sh(
        host, "runuser -u postgres -- psql -X -At -d textbook -c 'SELECT email FROM users LIMIT 1'"
    ).stdout.strip()
    result = playbook("-i", SINGLE, "playbooks/backup.yml")
    pushed = status(host)["last_backup"]
    assert pushed["ok"] and pushed["offsite"]["sets"][-1] == pushed["set"], pushed
    assert '"offsite"' in result.stdout
    # The repository holds no plaintext: neither the user's email nor a chapter's text.
    assert email and sh(offsite, f"grep -rlF '{email}' /srv/restic", check=False).stdout == ""
    assert sh(offsite, "grep -rlF 'ROS 2' /srv/restic", check=False).stdout == ""

    # Local sets lost, data destroyed: the offsite copy brings everything back.
    sh(host, "rm -rf /var/backups/textbook/*")
    tables = ", ".join(f'public."{t}"' for t in before["rows"] if t != "alembic_version")
    sh(host, f"runuser -u postgres -- psql -X -q -d textbook -c 'TRUNCATE {tables} CASCADE'")
    helper(host, "drop-collections")
    restored = playbook("-i", SINGLE, "playbooks/restore.yml", "-e", "restore_from=offsite")
    assert pushed["set"] in restored.stdout
    assert digest(host) == before
    assert smoke.stack_for(host).request("GET", "/api/v1/health")[0] == 200
