"""Health gate of a release candidate (tasks/release.yml, rollback.yml) or a compose slot
(tasks/compose.yml), run by the host's Python.

usage: health_gate.py URL unit|container NAME TIMEOUT_SECONDS
Polls URL (every 0.25 s: the host's own loopback) until it answers 200 (exit 0). Fails at once
when the systemd unit or the container NAME has exited (or the container restarted: a crashed
release keeps crashing), else after TIMEOUT_SECONDS; the message says what it last saw (e.g. the
503 body with per-component status). A unit started with --no-block is inactive until its start
job runs: that is not an exit.
"""

import subprocess
import sys
import time
import urllib.error
import urllib.request

url, kind, name, timeout = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])


def exited() -> str:
    """How the candidate ended, or "" while it runs."""
    if kind == "unit":
        shown = subprocess.run(  # noqa: S603 (fixed command, the role's own unit name)
            ["systemctl", "show", "--property=ActiveState,Job", name],  # noqa: S607 (host's PATH)
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        fields = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
        state, job = fields.get("ActiveState", ""), fields.get("Job", "")
        return state if state == "failed" or (state == "inactive" and not job) else ""
    fields = subprocess.run(  # noqa: S603 (fixed command, the role's own container name)
        ["docker", "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", name],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not fields or fields[0] in ("exited", "dead") or fields[1:] != ["0"]:
        return " restarts=".join(fields) or "gone"
    return ""


deadline = time.monotonic() + timeout
last = "no answer yet"
while time.monotonic() < deadline:
    if state := exited():
        sys.exit(
            f"candidate {name} is {state}: it exited before answering 200; last answer: {last}"
        )
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (host's own URL)
            if response.status == 200:
                print(f"{url}: 200")
                sys.exit(0)
            last = f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        last = f"HTTP {error.code} {error.read()[:400].decode(errors='replace')}"
    except OSError as error:
        last = str(error)
    time.sleep(0.25)
sys.exit(f"candidate {name} did not answer 200 on {url} within {timeout:.0f}s; last answer: {last}")
