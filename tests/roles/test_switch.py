"""roles/backend's switch.py: the re-exec (the restart is systemctl calls, run on real
systemd hosts by tests/deploy): it tells a re-exec that took from one whose new master died,
and leaves a master it did not start through the launcher alone. The master here is a stand-in
process that answers USR2 the way gunicorn's does (a child that becomes the new master)."""

from __future__ import annotations

import http.server
import os
import re
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "roles/backend/files/switch.py"

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
def switch() -> ModuleType:
    return load_script(SCRIPT, "switch")


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
    switch: ModuleType, healthy: subprocess.Popen[str]
) -> None:
    old = healthy.pid

    def main_pid(_service: str) -> int:
        """systemd's MainPID: the old master until the new one's worker said READY/MAINPID."""
        new = switch.children(old)
        return min(new) if new else old

    done = switch.reexec("textbook", sys.executable, 10, pid_of=main_pid)
    new = int(done.rpartition(" -> ")[2])
    assert done == f"re-exec: main process {old} -> {new}" and new != old
    assert healthy.wait(timeout=10) == -signal.SIGTERM  # the old master was told to stop
    os.kill(new, signal.SIGKILL)


def test_a_new_master_that_dies_fails_at_once_with_the_reason(
    switch: ModuleType, dying: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(switch.Failure, match="exited before a worker was ready"):
        switch.reexec("textbook", sys.executable, 30, pid_of=lambda _service: dying.pid)
    assert time.monotonic() - started < 10  # not the whole timeout
    assert dying.poll() is None  # the old master serves on


def test_no_new_master_within_the_timeout_fails_and_the_old_master_serves_on(
    switch: ModuleType, healthy: subprocess.Popen[str]
) -> None:
    with pytest.raises(switch.Failure, match="was ready within 1 s"):
        switch.reexec("textbook", sys.executable, 1, pid_of=lambda _service: healthy.pid)
    assert healthy.poll() is None


def test_a_master_not_started_through_the_launcher_is_left_to_a_restart(
    switch: ModuleType, healthy: subprocess.Popen[str]
) -> None:
    launcher_python = "/opt/textbook/current/venv/bin/python"
    assert switch.reexec("textbook", launcher_python, 5, pid_of=lambda _s: healthy.pid) is None
    assert switch.reexec("textbook", sys.executable, 5, pid_of=lambda _s: 0) is None
    assert healthy.poll() is None


def test_the_link_is_switched_in_one_rename(switch: ModuleType, tmp_path: Path) -> None:
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "releases/old")
    (tmp_path / "current.switching").symlink_to("left over by an interrupted run")
    switch.switch_link(str(current), str(tmp_path / "releases/new"))
    assert os.readlink(current) == str(tmp_path / "releases/new")
    assert not os.path.lexists(tmp_path / "current.switching")


class Health(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        self.send_response(self.answers.pop(0) if len(self.answers) > 1 else self.answers[0])
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def serving(server: socketserver.BaseServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_the_live_check_waits_for_200_on_the_unix_socket(
    switch: ModuleType, tmp_path: Path
) -> None:
    Health.answers = [503, 503, 200]
    server = UnixHTTPServer(str(tmp_path / "gunicorn.sock"), Health)
    health = {"socket": str(tmp_path / "gunicorn.sock"), "url": "http://localhost/api/v1/health"}
    for _ in serving(server):
        switch.live_check(health, 10)
        assert Health.answers == [200]


def test_a_live_service_that_never_answers_200_fails_saying_what_it_answered(
    switch: ModuleType,
) -> None:
    Health.answers = [503]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/health"
    for _ in serving(server):
        with pytest.raises(switch.Failure, match=f"answered 503 on {url} "):
            switch.live_check({"socket": "", "url": url}, 0.5)
    with pytest.raises(switch.Failure, match="answered ConnectionRefusedError"):
        switch.live_check({"socket": "", "url": url}, 0.3)


def test_the_release_log_gets_the_line_with_the_host_time(
    switch: ModuleType, tmp_path: Path
) -> None:
    log = tmp_path / "releases.log"
    log.write_text("2026-12-01T00:00:00Z live a previous -\n")
    switch.record({"path": str(log), "line": "live b previous a"})
    lines = log.read_text().splitlines()
    assert lines[0] == "2026-12-01T00:00:00Z live a previous -"
    assert re.fullmatch(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ live b previous a", lines[1])
    assert log.stat().st_mode & 0o777 == 0o644
