"""Health gate of a release candidate (tasks/release.yml), run by the host's Python.

usage: health_gate.py URL UNIT TIMEOUT_SECONDS
Polls URL until it answers 200 (exit 0). Fails at once when UNIT has exited (no point waiting
for a crashed release), else after TIMEOUT_SECONDS; the message says what it last saw (e.g.
the 503 body with per-component status).
"""

import subprocess
import sys
import time
import urllib.error
import urllib.request

url, unit, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + timeout
last = "no answer yet"
while time.monotonic() < deadline:
    state = subprocess.run(
        ["systemctl", "is-active", unit], capture_output=True, text=True, check=False
    ).stdout.strip()
    if state in ("failed", "inactive"):
        sys.exit(
            f"candidate {unit} is {state}: it exited before answering 200; last answer: {last}"
        )
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback URL)
            if response.status == 200:
                print(f"{url}: 200")
                sys.exit(0)
            last = f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        last = f"HTTP {error.code} {error.read()[:400].decode(errors='replace')}"
    except OSError as error:
        last = str(error)
    time.sleep(2)
sys.exit(f"candidate {unit} did not answer 200 on {url} within {timeout:.0f}s; last answer: {last}")
