"""A `make up` host survives the deploy tests and `make test`'s cleanup (issue: make test
never depends on, or destroys, what make up left running).

tests/deploy/run (make test-deploy) runs this last: make_up_host.py prepare gave the single-host
tests a `make up` host with an extra release (or the user's own), the single- and four-host
tests passed or failed beside it, and `lab/bin/clean-tests --run <run> --stop-idle-engine`
(what `make test` ends with) ran. STATE (TEXTBOOK_MAKE_UP_STATE) is what the host held before.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from labdeploy import ENV, ROOT, RUN
from make_up_host import HOST, exists, observe

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def state() -> dict[str, Any]:
    path = os.environ.get("TEXTBOOK_MAKE_UP_STATE")
    if not path or not Path(path).is_file():
        pytest.fail(
            "no state of the `make up` host: run through tests/deploy/run (make test-deploy)"
        )
    recorded = dict(json.loads(Path(path).read_text()))
    if recorded["before"] is None:
        pytest.fail(f"make_up_host.py prepare did not finish (see single_host.log): {recorded}")
    return recorded


def test_make_up_host_held_an_extra_release_before_the_run(state: dict[str, Any]) -> None:
    if not state["created"]:
        pytest.skip(f"{HOST} was the user's `make up` host: used as found")
    assert len(state["before"]["releases"]) == 2
    assert Path(state["before"]["current"]).name in state["before"]["releases"]
    assert state["before"]["health"] == 200


def test_make_up_host_is_the_same_container_with_the_same_releases(state: dict[str, Any]) -> None:
    assert exists(HOST), f"{HOST} is gone"
    after = observe(HOST)
    before = state["before"]
    assert after["id"] == before["id"]
    assert after["running"] is True
    assert "textbook-lab.test-run" not in after["labels"]
    assert after["releases"] == before["releases"]
    assert after["current"] == before["current"]
    assert after["health"] == before["health"]


def test_lab_engine_stays_up_while_the_make_up_host_runs() -> None:
    status = subprocess.run(
        [ROOT / "lab/bin/engine", "status"], env=ENV, text=True, capture_output=True
    )
    assert status.returncode == 0, status.stdout + status.stderr


def test_the_run_left_no_host_of_its_own() -> None:
    if os.environ.get("TEXTBOOK_KEEP_LAB_HOSTS"):
        pytest.skip("TEXTBOOK_KEEP_LAB_HOSTS keeps them")
    left = subprocess.run(
        [
            "docker",
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            f"label=textbook-lab.test-run={RUN}",
        ],
        env=ENV,
        text=True,
        capture_output=True,
        check=True,
    )
    assert left.stdout.split() == []
