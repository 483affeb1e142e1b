"""Fixtures of the full-stack tests: one snapshot of the backend's sources per session."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from labdeploy import snapshot_sources


@pytest.fixture(scope="session")
def sources() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="textbook-src-") as tmp:
        yield snapshot_sources(Path(tmp) / "src")
