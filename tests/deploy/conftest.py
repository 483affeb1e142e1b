"""Fixtures of the full-stack tests: one snapshot of the backend's sources per session, and the
single-host deploy shared by test_single_host.py and test_backup_restore.py."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labdeploy import SINGLE, deploy, lab_hosts, snapshot_sources


@pytest.fixture(scope="session")
def sources() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="textbook-src-") as tmp:
        yield snapshot_sources(Path(tmp) / "src")


@pytest.fixture(scope="session")
def single(sources: Path) -> Iterator[str]:
    """deploy.yml converged once on the run's single host (every group on one host). Its first
    converge applies the pending security updates as in production (the lab skips them on other
    hosts, inventories/lab): the host Lynis audits is patched."""
    for _ in lab_hosts(SINGLE):
        deploy(SINGLE.inventory, sources, "-e", '{"common_security_upgrade_on_first_run": true}')
        yield SINGLE.host("single")
