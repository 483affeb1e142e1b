"""roles/backend's restart.py, the re-exec half (the restart half is systemctl calls, run on real
systemd hosts by tests/deploy): it tells a re-exec that took from one whose new master died,
and leaves a master it did not start through the launcher alone. The master here is a stand-in
process that answers USR2 the way gunicorn's does (a child that becomes the new master)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "roles/backend/files/restart.py"

# USR2: fork a child that lives `child_seconds` (the new master), like gunicorn's re-exec.
MASTER = """
import os, signal, sys, time
child_seconds = float(sys.argv[1])
def usr2(*_):
    if os.fork() == 0:
        time.sleep(child_seconds)
        os._exit(0)
signal.signal(signal.SIGUSR2, usr2)
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def restart() -> ModuleType:
    return load_script(SCRIPT, "restart")


def master(child_seconds: float) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", MASTER, str(child_seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    try:
        yield process
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def healthy() -> Iterator[subprocess.Popen[str]]:
    yield from master(60)


@pytest.fixture
def dying() -> Iterator[subprocess.Popen[str]]:
    yield from master(0.3)


def test_the_new_master_reporting_ready_ends_the_old_one(
    restart: ModuleType, healthy: subprocess.Popen[str]
) -> None:
    old = healthy.pid

    def main_pid(_service: str) -> int:
        """systemd's MainPID: the old master until the new one's worker said READY/MAINPID."""
        new = restart.children(old)
        return min(new) if new else old

    done = restart.reexec("textbook", sys.executable, 10, pid_of=main_pid)
    new = int(done.rpartition(" -> ")[2])
    assert done == f"re-exec: main process {old} -> {new}" and new != old
    assert healthy.wait(timeout=10) == -signal.SIGTERM  # the old master was told to stop
    os.kill(new, signal.SIGKILL)


def test_a_new_master_that_dies_fails_at_once_with_the_reason(
    restart: ModuleType, dying: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(restart.Failure, match="exited before a worker was ready"):
        restart.reexec("textbook", sys.executable, 30, pid_of=lambda _service: dying.pid)
    assert time.monotonic() - started < 10  # not the whole timeout
    assert dying.poll() is None  # the old master serves on


def test_no_new_master_within_the_timeout_fails_and_the_old_master_serves_on(
    restart: ModuleType, healthy: subprocess.Popen[str]
) -> None:
    with pytest.raises(restart.Failure, match="was ready within 1 s"):
        restart.reexec("textbook", sys.executable, 1, pid_of=lambda _service: healthy.pid)
    assert healthy.poll() is None


def test_a_master_not_started_through_the_launcher_is_left_to_a_restart(
    restart: ModuleType, healthy: subprocess.Popen[str]
) -> None:
    launcher_python = "/opt/textbook/current/venv/bin/python"
    assert restart.reexec("textbook", launcher_python, 5, pid_of=lambda _s: healthy.pid) is None
    assert restart.reexec("textbook", sys.executable, 5, pid_of=lambda _s: 0) is None
    assert healthy.poll() is None
