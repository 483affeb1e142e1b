"""Role backend (tasks/restart.yml), run by the host's Python as root: a release goes live, or
the service restarts onto new settings, without a pause. One JSON argument:

    {"service": "textbook", "handover": "textbook-handover" or "", "reexec": true/false,
     "python": "<current>/venv/bin/python", "timeout": 60,
     "candidate": "textbook-candidate@<id>.service" or "",
     "link": {"path": "<current>", "target": "<releases>/<id>"} or {},
     "health": {"socket": "/run/textbook/gunicorn.sock" or "", "url": "http://.../api/v1/health"},
     "log": {"path": "<base>/releases.log", "line": "live <id> previous <id>"} or {}}

In order: the candidate (which passed its gate) is told to stop, without waiting; `link` is
switched (atomic rename); the service serves the release `link` points at:
- reexec: when the running master was started through the launcher (its interpreter is
  `python`), it gets USR2: gunicorn starts a new master (the release `current` points at now)
  on the same socket beside the old workers; once a new worker's app has started it tells
  systemd the new master is the main process (READY=1 with MAINPID=), and the old master gets
  TERM (its workers finish what they accepted). The service does not restart.
- otherwise a restart: the hand-over instance (if any) starts on the socket first and serves
  while the service restarts, then stops.
Then the live service must answer 200 on `health` within `timeout`, and `log` gets its line
with the host's UTC time in front.

Prints what it did ("re-exec: main process A -> B" or "restart ..."); on failure one line saying
why and the service's last log lines on stderr, exit 1.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


class Failure(Exception):
    pass


def systemctl(*args: str) -> str:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise Failure(f"systemctl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def main_pid(service: str) -> int:
    return int(systemctl("show", "-p", "MainPID", "--value", f"{service}.service").strip() or 0)


def interpreter(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read().split(b"\0")[0].decode()
    except OSError:
        return ""


def children(pid: int) -> set[int]:
    """Live children (a zombie is a child that has exited)."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def reexec(service: str, python: str, timeout: float, pid_of=main_pid) -> str | None:
    """None when the running master was not started through the launcher (restart instead)."""
    main = pid_of(service)
    if main <= 0 or interpreter(main) != python:
        return None
    before = children(main)
    os.kill(main, signal.SIGUSR2)
    started: set[int] = set()  # the new master: a child of the old one until that stops
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = pid_of(service)
        if now > 0 and now != main:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main, signal.SIGTERM)
            return f"re-exec: main process {main} -> {now}"
        if not alive(main):
            raise Failure(f"the master {main} exited during its re-exec")
        new = children(main) - before
        if new:
            started |= new
        elif started:
            raise Failure(f"the new master (USR2 to {main}) exited before a worker was ready")
    for pid in started:  # still booting: it must not serve an unknown release later
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    raise Failure(f"no worker of a new master (USR2 to {main}) was ready within {timeout:g} s")


def restart(service: str, handover: str) -> str:
    systemctl("daemon-reload")
    systemctl("enable", "--now", "--quiet", f"{service}.socket")
    if handover:
        systemctl("start", f"{handover}.service")
    systemctl("restart", f"{service}.service")
    systemctl("enable", "--quiet", f"{service}.service")
    if handover:
        systemctl("stop", f"{handover}.service")
    return "restart" + (f" ({handover}.service served meanwhile)" if handover else "")


def switch_link(path: str, target: str) -> None:
    """`path` -> `target`, replaced in one rename (never missing, never half-written)."""
    temporary = f"{path}.switching"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, path)


def status(health: dict[str, str]) -> str:
    """The live service's answer on the health URL: its status code, or why there is none."""
    try:
        if health.get("socket"):
            connection = http.client.HTTPConnection("localhost", timeout=5)
            connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.sock.settimeout(5)
            connection.sock.connect(health["socket"])
            path = "/" + health["url"].split("/", 3)[3]
            connection.request("GET", path)
            return str(connection.getresponse().status)
        with urllib.request.urlopen(health["url"], timeout=5) as response:
            return str(response.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except urllib.error.URLError as error:
        return f"{type(error.reason).__name__}: {error.reason}"
    except (OSError, http.client.HTTPException) as error:
        return f"{type(error).__name__}: {error}"


def live_check(health: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (answer := status(health)) != "200":
        if time.monotonic() > deadline:
            raise Failure(f"the live service answered {answer} on {health['url']} ({timeout:g} s)")
        time.sleep(0.25)


def record(log: dict[str, str]) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(log["path"], "a") as lines:
        lines.write(f"{stamp} {log['line']}\n")
    os.chmod(log["path"], 0o644)


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    service, timeout = request["service"], float(request["timeout"])
    try:
        if request.get("candidate"):
            systemctl("stop", "--no-block", request["candidate"])
        if request.get("link"):
            switch_link(request["link"]["path"], request["link"]["target"])
        done = reexec(service, request["python"], timeout) if request["reexec"] else None
        print(done or restart(service, request["handover"]))
        live_check(request["health"], timeout)
        if request.get("log"):
            record(request["log"])
    except Failure as failure:
        log = subprocess.run(
            ["journalctl", "--no-pager", "-o", "cat", "-n", "20", "-u", f"{service}.service"],
            capture_output=True,
            text=True,
        ).stdout
        print(f"{failure}\n{log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
