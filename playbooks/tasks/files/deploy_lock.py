"""The deploy lock of a host (playbooks/tasks/lock-acquire.yml, lock-release.yml), run by the
host's Python.

usage: deploy_lock.py acquire|release PATH HOLDER_JSON [break]
HOLDER_JSON names the run: {"run": token, "action", "by", "since"}. acquire takes the lock when
it is free or already this run's; when another run holds it, prints that holder as JSON and
exits 3, unless `break` is given (then it takes it over and prints whom it broke). release
removes the lock only when this run holds it. A guard file's flock makes each step atomic.
"""

import contextlib
import fcntl
import json
import os
import sys

action, path, holder = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
force = sys.argv[4:] == ["break"]
os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
with open(path + ".guard", "a") as guard:
    fcntl.flock(guard, fcntl.LOCK_EX)
    try:
        with open(path) as lock:
            current = json.load(lock)
    except FileNotFoundError:
        current = None
    except ValueError:
        current = {"run": "?", "action": "?", "by": "unreadable lock file", "since": "?"}
    other = current if current and current.get("run") != holder["run"] else None
    if action == "acquire":
        if other and not force:
            print(json.dumps(other))
            sys.exit(3)
        with open(path + ".tmp", "w") as lock:
            json.dump(holder, lock)
        os.replace(path + ".tmp", path)
        print(json.dumps({"acquired": True, "broke": other}))
    elif action == "release":
        if current and not other:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        print(json.dumps({"released": not other, "held_by": other}))
    else:
        sys.exit(f"unknown action {action!r}: acquire or release")
