"""Test-wide rules: `postgres` tests need TEST_DATABASE_URL (make test-backend sets it).

Without it they skip, except under CI=true, where skipping would hide a broken setup:
there they fail.
"""

from __future__ import annotations

import os

import pytest


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("postgres") is None or os.environ.get("TEST_DATABASE_URL"):
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but TEST_DATABASE_URL is not set: PostgreSQL tests cannot run")
    pytest.skip("TEST_DATABASE_URL is not set (run `make test-backend` for PostgreSQL)")
