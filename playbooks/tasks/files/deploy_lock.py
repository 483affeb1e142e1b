"""The deploy lock of a host and its audit lines (playbooks/tasks/lock-acquire.yml,
lock-release.yml), run by the host's Python: one call at each end of a run.

usage: deploy_lock.py REQUEST_JSON
REQUEST_JSON: {"action": "acquire"|"release", "path": lock file, "holder": {"run": token,
"action", "by", "since"}, "break": bool, "event": audit event of a release ("done"/"failed"),
"audit": {"log": file, "release_link": the `current` symlink, "logrotate": {"path", "content"}}}.

acquire takes the lock when it is free or already this run's; when another run holds it, prints
that holder as JSON and exits 3, unless "break" is true (then it takes it over, and the break is
an audit line). Then it writes the "start" audit line. release writes the event's audit line,
then removes the lock only when this run holds it. A guard file's flock makes each step atomic.

An audit line ("<UTC time> action=.. event=.. by=.. run=.. release=<live release>") is appended
to the audit log (created 0640 root:adm in a 0750 root:adm directory) and sent to the journal
(`logger -t textbook-audit -p auth.notice`). The logrotate entry is written when it differs.
The printed JSON's "changed" lists what was created or rewritten besides the log lines (the
task reports changed only then: a second run is changed=0).
"""

import contextlib
import fcntl
import grp
import json
import os
import subprocess
import sys
import time

request = json.loads(sys.argv[1])
action, path, holder = request["action"], request["path"], request["holder"]
audit = request["audit"]
changed: list[str] = []


def release_name() -> str:
    try:
        return os.path.basename(os.readlink(audit["release_link"])) or "-"
    except OSError:
        return "-"


def audit_line(event: str) -> None:
    line = (
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} action={holder['action']}"
        f" event={event} by={holder['by']} run={holder['run']} release={release_name()}"
    )
    log = audit["log"]
    adm = grp.getgrnam("adm").gr_gid
    directory = os.path.dirname(log)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    state = os.stat(directory)
    if (state.st_mode & 0o7777, state.st_uid, state.st_gid) != (0o750, 0, adm):
        os.chown(directory, 0, adm)
        os.chmod(directory, 0o750)  # noqa: S103 - root and adm only, as the log's readers
        changed.append(directory)
    fresh = not os.path.exists(log)
    with open(log, "a", encoding="utf-8") as handle:
        if fresh:
            os.fchown(handle.fileno(), 0, adm)
            os.fchmod(handle.fileno(), 0o640)
        handle.write(line + "\n")
    subprocess.run(  # noqa: S603 - fixed argv; the line is one argument
        ["logger", "-t", "textbook-audit", "-p", "auth.notice", line],  # noqa: S607
        check=True,
    )


def logrotate_entry() -> None:
    wanted = audit["logrotate"]
    try:
        with open(wanted["path"], encoding="utf-8") as handle:
            if handle.read() == wanted["content"]:
                return
    except FileNotFoundError:
        pass
    with open(wanted["path"] + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(wanted["content"])
        os.fchmod(handle.fileno(), 0o644)
    os.replace(wanted["path"] + ".tmp", wanted["path"])
    changed.append(wanted["path"])


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
        if other and not request.get("break"):
            print(json.dumps(other))
            sys.exit(3)
        with open(path + ".tmp", "w") as lock:
            json.dump(holder, lock)
        os.replace(path + ".tmp", path)
        logrotate_entry()
        if other:
            audit_line(
                f"broke-lock held-by={str(other.get('by')).replace(' ', '_')}"
                f" held-action={other.get('action')} held-since={other.get('since')}"
            )
        audit_line("start")
        print(json.dumps({"acquired": True, "broke": other, "changed": changed}))
    elif action == "release":
        audit_line(request["event"])
        if current and not other:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        print(json.dumps({"released": not other, "held_by": other, "changed": changed}))
    else:
        sys.exit(f"unknown action {action!r}: acquire or release")
