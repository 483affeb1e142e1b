"""The backup program on lab hosts, shared by test_backup_restore.py and test_four_hosts.py.

helper(host, *args)        backup_host_helper.py run on the host (digest, drop-collections)
digest(host) / status(host) / sets(host)
offsite_target(host)       a plain lab host made an SFTP target for a restic repository
offsite_settings(...)      the backup role's offsite inputs in a file (a throwaway password)
authorize(host, target)    the host's backup SSH key accepted by the target's restic user
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path
from typing import Any

from labdeploy import ENV, docker_exec

PROGRAM = "/usr/local/sbin/textbook-backup"
HELPER = Path(__file__).with_name("backup_host_helper.py").read_text()


def sh(host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return docker_exec(host, "bash", "-c", command, check=check)


def helper(host: str, *args: str) -> str:
    """backup_host_helper.py run on the host."""
    return subprocess.run(
        ["docker", "exec", "-i", host, "python3", "-", *args],
        input=HELPER,
        env=ENV,
        text=True,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout


def digest(host: str) -> dict[str, Any]:
    return dict(json.loads(helper(host, "digest")))


def status(host: str) -> dict[str, Any]:
    return dict(json.loads(docker_exec(host, PROGRAM, "status").stdout))


def sets(host: str) -> list[str]:
    return list(json.loads(docker_exec(host, PROGRAM, "list").stdout)["sets"])


def offsite_target(host: str) -> str:
    """`host` with a user of its own for the restic repository in /srv/restic."""
    sh(
        host,
        "systemctl is-system-running --wait >/dev/null; useradd -m restic && "
        "install -d -o restic -m 0700 /srv/restic && systemctl is-active ssh",
    )
    return host


def offsite_settings(target: str, path: Path) -> Path:
    """The role's offsite inputs, written to `path` (kept off command lines)."""
    path.write_text(
        json.dumps(
            {
                "backup_offsite_repository": f"sftp:restic@{target}:/srv/restic/textbook",
                "backup_offsite_password": secrets.token_urlsafe(24),
            }
        )
    )
    return path


def authorize(host: str, target: str) -> None:
    public_key = sh(host, "cat /root/.ssh/id_textbook_backup.pub").stdout.strip()
    sh(
        target,
        f"install -d -o restic -m 0700 ~restic/.ssh && echo '{public_key}' "
        ">> ~restic/.ssh/authorized_keys && chown restic ~restic/.ssh/authorized_keys",
    )
