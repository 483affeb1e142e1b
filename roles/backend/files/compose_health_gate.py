"""Health gate of a compose slot (tasks/compose.yml), run by the host's Python.

usage: compose_health_gate.py URL CONTAINER TIMEOUT_SECONDS
Polls URL until it answers 200 (exit 0). Fails at once when CONTAINER has exited or restarted
(a crashed release keeps crashing), else after TIMEOUT_SECONDS; the message says what it last
saw (e.g. the 503 body with per-component status).
"""

import subprocess
import sys
import time
import urllib.error
import urllib.request

url, container, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + timeout
last = "no answer yet"
while time.monotonic() < deadline:
    state = subprocess.run(
        ["docker", "inspect", "-f", "{{.State.Status}} {{.RestartCount}}", container],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if not state or state[0] in ("exited", "dead") or state[1:] != ["0"]:
        sys.exit(
            f"candidate {container} is {' restarts='.join(state) or 'gone'}: it exited before"
            f" answering 200; last answer: {last}"
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
    time.sleep(2)
sys.exit(
    f"candidate {container} did not answer 200 on {url} within {timeout:.0f}s; last answer: {last}"
)
