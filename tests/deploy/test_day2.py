"""Day-2 operations on the single-host deploy: the deploy lock and audit lines, a failed release
that migrated the database, an update and operator rollbacks across a schema change, each
counted for failed requests under load through Nginx (tests/deploy/load.py).

Runs after test_single_host.py on the same host, in the same pytest session (tests/deploy/run);
alone, the session fixture `single` builds and deploys it. The tests run in order: each starts from
the state the one before left.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import rotation
import smoke
from labdeploy import ENV, ROOT, SINGLE, changed, deploy, docker_exec, playbook, snapshot_sources
from load import CountingLoad

from textbook.core.migrate import head_revision

pytestmark = [pytest.mark.lab, pytest.mark.slow]

INVENTORY = SINGLE.inventory
LOCK = "/run/lock/textbook-deploy.lock"
AUDIT = "/var/log/textbook/audit.log"
PROBE = "0003_day2_probe"
MIGRATION = f'''"""Test-only (tests/deploy/test_day2.py): a table added, as expand steps do."""

import sqlalchemy as sa
from alembic import op

revision = "{PROBE}"
down_revision = "{head_revision()}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("day2_probe", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("day2_probe")
'''


def with_migration(dest: Path, broken: bool = False) -> Path:
    sources = snapshot_sources(dest, broken=broken)
    (sources / f"backend/textbook/migrations/versions/{PROBE}.py").write_text(MIGRATION)
    return sources


@pytest.fixture(scope="module")
def host(single: str) -> str:
    """The session's single host (conftest.py), deployed once and shared with
    test_single_host.py, whose last deploy fails on purpose: that run keeps its lock, removed
    here (test_a_kept_lock_is_broken_on_purpose... breaks one for real)."""
    docker_exec(single, "rm", "-f", LOCK)
    return single


@pytest.fixture(scope="module")
def update_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return with_migration(tmp_path_factory.mktemp("update") / "src")


def sh(host: str, command: str) -> str:
    return docker_exec(host, "bash", "-c", command).stdout


def live(host: str) -> str:
    return Path(sh(host, "readlink /opt/textbook/current").strip()).name


def service(host: str, prop: str) -> str:
    return sh(host, f"systemctl show -p {prop} --value textbook.service").strip()


def schema(host: str) -> str:
    """The database's revision as the live release reports it (`textbook check`)."""
    return sh(
        host,
        "cd /var/lib/textbook && TEXTBOOK_ENV_FILE=/etc/textbook/textbook.env "
        "runuser -u textbook -- /opt/textbook/current/venv/bin/textbook check || true",
    )


def health(host: str) -> int:
    status, _, _ = smoke.stack_for(host).request("GET", "/api/v1/health")
    return status


def counting(host: str) -> CountingLoad:
    """Liveness through Nginx at 8 requests a second: under Nginx's 10 r/s per client address
    (a 429 would count as a failure) and outside the backend's per-address API limit."""
    return CountingLoad(smoke.stack_for(host), "/health", rate=8.0)


def rollback(*extra: str) -> subprocess.CompletedProcess[str]:
    return playbook("-i", INVENTORY, "playbooks/rollback.yml", *extra, check=False)


def test_a_second_run_fails_fast_naming_who_holds_the_lock_and_since_when(
    host: str, sources: Path
) -> None:
    before = live(host)
    first = subprocess.Popen(
        [
            *("ansible-playbook", "-i", INVENTORY, "deploy.yml", "--tags", "backend"),
            *("-e", f"backend_source_dir={sources}"),
        ],
        cwd=ROOT,
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 600
        while docker_exec(host, "test", "-f", LOCK, check=False).returncode != 0:
            assert first.poll() is None, "the first deploy ended before taking the lock"
            assert time.monotonic() < deadline
            time.sleep(1)
        second = rollback()
    finally:
        out, _ = first.communicate(timeout=2400)
    assert first.returncode == 0, out[-4000:]
    assert second.returncode != 0
    assert "the deploy lock (/run/lock/textbook-deploy.lock) is held by" in second.stdout
    assert "(deploy) since 20" in second.stdout and "rollback refused" in second.stdout
    assert "The backend goes back to the chosen release" not in second.stdout  # failed fast
    assert live(host) == before
    assert docker_exec(host, "test", "-e", LOCK, check=False).returncode != 0  # released


def test_release_that_migrates_then_fails_its_gate_leaves_previous_release_serving(
    host: str, tmp_path: Path
) -> None:
    before = live(host)
    broken = with_migration(tmp_path / "broken", broken=True)
    with counting(host) as load:
        result = deploy(INVENTORY, broken, "--tags", "backend", check=False)
    print(f"app-only update (--tags backend) failing its gate under load: {load.result.summary()}")
    assert result.returncode != 0
    assert load.result.failed == 0, load.result.summary()
    assert "deliberately broken release" in result.stdout, result.stdout[-4000:]
    downgrade = (
        r"to the previous release's revision by the failed release's scripts\] \*+\nchanged:"
    )
    assert re.search(downgrade, result.stdout), result.stdout[-4000:]
    assert live(host) == before
    assert f"schema at head ({head_revision()})" in schema(host)
    assert health(host) == 200
    # A failed deploy keeps its lock, naming itself.
    assert '"action": "deploy"' in sh(host, f"cat {LOCK}")


def test_a_kept_lock_is_broken_on_purpose_and_the_update_fails_no_request(
    host: str, update_sources: Path
) -> None:
    refused = deploy(INVENTORY, update_sources, check=False)
    assert refused.returncode != 0
    assert "textbook_lock_break=true" in refused.stdout
    before = live(host)
    invocation, master = service(host, "InvocationID"), service(host, "MainPID")
    since = int(time.time())
    with counting(host) as load:
        deploy(INVENTORY, update_sources, "-e", "textbook_lock_break=true")
    print(f"deploy.yml with a new release and a migration under load: {load.result.summary()}")
    assert load.result.total > 0
    assert load.result.failed == 0, load.result.summary()
    assert live(host) != before
    # The new release went live by a re-exec of the service's master (tasks/restart.yml): the
    # service did not restart (same invocation), systemd follows a new master whose workers run
    # the new release, the old master is gone, and the hand-over instance was not needed.
    assert service(host, "InvocationID") == invocation
    new_master = service(host, "MainPID")
    assert new_master not in (master, "0")
    assert sh(host, f"cat /proc/{new_master}/comm").strip() == "gunicorn"
    workers = sh(host, f"pgrep -P {new_master}").split()
    assert workers
    maps = sh(host, f"cat /proc/{workers[0]}/maps")
    assert f"/releases/{live(host)}/" in maps and f"/releases/{before}/" not in maps
    deadline = time.monotonic() + 60  # the old master's workers finish what they accepted
    while docker_exec(host, "kill", "-0", master, check=False).returncode == 0:
        assert time.monotonic() < deadline, f"the old master {master} is still running"
        time.sleep(0.5)
    handover = sh(host, f"journalctl -u textbook-handover.service --since @{since} -o cat")
    assert '"path":' not in handover, handover[-2000:]
    assert f"schema at head ({PROBE})" in schema(host)
    audit = sh(host, f"cat {AUDIT}")
    assert "action=deploy event=broke-lock held-by=" in audit
    assert "action=deploy event=done by=" in audit and f"release={live(host)}" in audit


def test_rollback_across_a_schema_change_refuses_unless_asked_to_downgrade(host: str) -> None:
    before = live(host)
    result = rollback()
    assert result.returncode != 0
    assert "refusing to roll back to" in result.stdout
    assert f"the database is at {PROBE}" in result.stdout
    assert "-e backend_rollback_downgrade=true" in result.stdout
    assert live(host) == before
    assert f"schema at head ({PROBE})" in schema(host)
    assert docker_exec(host, "test", "-e", LOCK, check=False).returncode != 0
    assert "action=rollback event=failed" in sh(host, f"cat {AUDIT}")


def test_rollback_with_downgrade_serves_the_previous_release_and_fails_no_request(
    host: str,
) -> None:
    newer = live(host)
    with counting(host) as load:
        result = rollback("-e", "backend_rollback_downgrade=true")
    print(f"rollback.yml with a schema downgrade under load: {load.result.summary()}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load.result.total > 0
    assert load.result.failed == 0, load.result.summary()
    assert live(host) != newer
    assert f"schema at head ({head_revision()})" in schema(host)
    assert health(host) == 200
    assert f"previous {newer} schema downgrade" in sh(host, "cat /opt/textbook/releases.log")


def test_rollback_to_a_named_kept_release_migrates_it_forward(host: str) -> None:
    newer = sh(host, "ls -t /opt/textbook/releases | head -1").strip()
    with counting(host) as load:
        result = rollback("-e", f"backend_rollback_to={newer}")
    print(f"rollback.yml to a named release (schema upgrade) under load: {load.result.summary()}")
    assert result.returncode == 0, result.stdout[-4000:]
    assert load.result.failed == 0, load.result.summary()
    assert live(host) == newer
    assert f"schema at head ({PROBE})" in schema(host)
    missing = rollback("-e", "backend_rollback_to=0.0.0-nosuchrelease")
    assert missing.returncode != 0
    assert "release 0.0.0-nosuchrelease is not kept; kept: " in missing.stdout


def test_every_action_is_an_audit_line_in_the_log_and_the_journal(host: str) -> None:
    journal = sh(host, "journalctl -q -o cat -t textbook-audit")
    for action in ("deploy", "rollback"):
        for event in ("start", "done"):
            assert f"action={action} event={event} by=" in journal, journal[-3000:]
    assert "action=rollback event=failed" in journal  # the refused and the missing target
    last_done = sh(host, f"grep 'event=done' {AUDIT} | tail -1")
    assert "action=rollback event=done" in last_done and f"release={live(host)}" in last_done


def test_signing_key_rotation_keeps_issued_tokens_valid_and_fails_no_request(
    host: str, update_sources: Path
) -> None:
    """The lab's secret store (the inventory's lab-secrets directory; production: the vault)
    gets a new signing key and keeps the old one as the previous key; the next deploy.yml
    installs both, and a token signed before still works."""
    stack = smoke.stack_for(host)
    email, form, issued_before = smoke.signed_in_user(stack, "rotate")
    store = SINGLE.directory / "lab-secrets"
    old = (store / "secret_key").read_text().strip()
    for name, value in (("secret_key_previous", old), ("secret_key", secrets.token_hex(32))):
        (store / name).write_text(value + "\n")
        (store / name).chmod(0o600)
    invocation = service(host, "InvocationID")
    since = int(time.time())
    with counting(host) as load:
        deploy(INVENTORY, update_sources)
    print(f"deploy.yml rotating the signing key under load: {load.result.summary()}")
    assert load.result.failed == 0, load.result.summary()
    # New settings and no new release: the handler restarted textbook.service (a new
    # invocation), a hand-over instance serving on its socket meanwhile, stopped again.
    assert service(host, "InvocationID") != invocation
    handover = sh(host, f"journalctl -u textbook-handover.service --since @{since} -o cat")
    assert '"path":"/health"' in handover, handover[-2000:]
    assert sh(host, "systemctl is-active textbook-handover.service || true").strip() == "inactive"
    status, me = stack.json("GET", "/api/v1/users/me", token=issued_before)
    assert status == 200 and me["email"] == email
    status, body = stack.json("POST", "/api/v1/auth/login", form=form)
    assert stack.json("GET", "/api/v1/users/me", token=body["access_token"])[0] == 200
    env = sh(host, "cat /etc/textbook/textbook.env").splitlines()
    new = (store / "secret_key").read_text().strip()
    installed = f"SECRET_KEY={new}" in env and f"SECRET_KEY_PREVIOUS={old}" in env
    assert installed  # a bool, so a failure prints no secret


def test_nginx_and_audit_logs_rotate_and_the_journal_is_bounded(host: str) -> None:
    rotations = sh(host, "logrotate --debug /etc/logrotate.conf 2>&1")
    assert "/var/log/nginx/*.log" in rotations
    assert AUDIT in rotations
    sh(host, "logrotate --force /etc/logrotate.d/nginx /etc/logrotate.d/textbook-audit")
    for rotated in ("/var/log/nginx/access.log.1", f"{AUDIT}.1"):
        assert docker_exec(host, "test", "-s", rotated, check=False).returncode == 0, rotated
    assert health(host) == 200  # Nginx reopened its logs and writes the new access.log
    assert "GET /api/v1/health" in sh(host, "cat /var/log/nginx/access.log")
    # The backend logs to the journal, which journald keeps within the common role's limits.
    journald = sh(host, "systemd-analyze cat-config systemd/journald.conf")
    assert re.search(r"^SystemMaxUse=\S+", journald, re.M), journald


def rotate(*extra: str) -> subprocess.CompletedProcess[str]:
    return rotation.rotate(SINGLE, *extra)


def test_rotation_of_every_credential_fails_no_request_and_a_second_run_changes_nothing(
    host: str,
) -> None:
    """A too short key is refused before the lock; then every credential rotates under load
    (rotation.rotate_every_credential says what it checks), the play writes its audit lines, a
    second run changes nothing and the next deploy would template the same values."""
    env_before = sh(host, "sha256sum /etc/textbook/textbook.env")
    short = rotate("-e", "vault_textbook_qdrant_api_key=too-short")
    assert short.returncode != 0
    assert "'vault_textbook_qdrant_api_key' is too short" in short.stdout, short.stdout[-3000:]
    assert "action=rotate" not in sh(host, f"cat {AUDIT}")  # refused before the lock
    assert sh(host, "sha256sum /etc/textbook/textbook.env") == env_before

    rotation.rotate_every_credential(SINGLE, [host])
    audit = sh(host, f"cat {AUDIT}")
    assert "action=rotate event=start by=" in audit and "action=rotate event=done by=" in audit

    again = rotate()
    assert again.returncode == 0, again.stdout[-4000:]
    assert changed(again.stdout) == {host: 0}, again.stdout[-4000:]
    # What deploy.yml would template from the store is what is installed.
    would = playbook(
        *("-i", INVENTORY, "deploy.yml", "--check", "--diff"),
        *("--tags", "backend_config,qdrant_config,postgresql_users,backup_config"),
    )
    assert changed(would.stdout) == {host: 0}, would.stdout[-4000:]
