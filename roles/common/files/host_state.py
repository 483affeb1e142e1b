"""What a role's files, packages, units and accounts look like on the host, in one call.

Argument: JSON {"paths": [...], "packages": [...], "lines": {path: [regexp, ...]},
"units": [...], "contents": [...], "sha256": [...], "listings": [...], "users": [...],
"groups": [...], "login": {"files": [...], "regexp": str}}; every key is optional. Prints JSON
{"paths": {path: state}, "missing_packages": [...], "lines": {path: {regexp: line}},
"units": {unit: state}, "contents": {path: text}, "sha256": {path: hex},
"listings": {directory: [name, ...]}, "users": {name: user}, "groups": {name: group},
"login": login}:
a path's state is "<kind> <mode> <owner> <group>", kind being the file's sha1 (Ansible's
checksum), "directory", "link:<target>" or "other"; a missing path is "-". A package is missing
unless dpkg's status lists it installed. A regexp's line is the last line of the file it
matches, with its line ending (the line lineinfile would replace), or null. A unit's state is
"<UnitFileState> <ActiveState>" as `systemctl show` gives them ("enabled active"). A content is
the file's text as UTF-8 (what slurp and b64decode give), a sha256 the file's hex digest (both
follow links; null when the file cannot be read). A listing is the sorted names in a directory
(null when it cannot be listed). A user is {"uid", "gid", "home", "shell",
"groups"} as passwd and the group database list it ("groups": the supplementary groups, sorted),
a group {"gid", "members"}; one that does not exist is null. "login" is {"user", "home", "key"}:
the user this run connected as, when Ansible's become through sudo made it root (SUDO_USER, with
Ansible's BECOME-SUCCESS marker in SUDO_COMMAND; else all null and the tasks ask as before), that
user's home and whether any of the given files under the home has a line the regexp matches
(what grep -sqE of the same pattern and files tells).
The role's write tasks compare against this and are skipped where the host already holds what
they would write, and apt runs only for missing packages: a converged host costs one module call
here, not one or two per file or account. Copies in other roles are the same file
(roles/common/files/host_state.py).
"""

import grp
import hashlib
import json
import os
import pwd
import re
import stat
import subprocess
import sys
from typing import Any


def path_state(path: str) -> str:
    try:
        st = os.lstat(path)
    except OSError:
        return "-"
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as handle:
            kind = hashlib.sha1(handle.read()).hexdigest()  # noqa: S324 - Ansible's checksum
    elif stat.S_ISDIR(st.st_mode):
        kind = "directory"
    elif stat.S_ISLNK(st.st_mode):
        kind = "link:" + os.readlink(path)
    else:
        kind = "other"
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{kind} {stat.S_IMODE(st.st_mode):04o} {owner} {group}"


def installed_packages() -> set[str]:
    installed = set()
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as status:
        for entry in status.read().split("\n\n"):
            lines = [line for line in entry.splitlines() if ": " in line and line[0] != " "]
            fields = dict(line.split(": ", 1) for line in lines)
            if fields.get("Status", "").endswith(" installed") and "Package" in fields:
                installed.add(fields["Package"])
    return installed


def last_matches(path: str, regexps: list[str]) -> dict[str, str | None]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            lines = handle.read().splitlines(keepends=True)
    except OSError:
        lines = []
    found: dict[str, str | None] = {}
    for regexp in regexps:
        pattern = re.compile(regexp)
        found[regexp] = next((line for line in reversed(lines) if pattern.search(line)), None)
    return found


def unit_states(units: list[str]) -> dict[str, str]:
    if not units:
        return {}
    shown = subprocess.run(  # noqa: S603 - fixed argv, unit names as arguments
        ["systemctl", "show", "--property=UnitFileState,ActiveState", *units],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    blocks = [
        dict(line.split("=", 1) for line in block.splitlines()) for block in shown.split("\n\n")
    ]
    if len(blocks) != len(units):
        return {}  # an answer per unit or none: the tasks then run
    return {
        unit: f"{block.get('UnitFileState') or '-'} {block.get('ActiveState') or '-'}"
        for unit, block in zip(units, blocks, strict=True)
    }


def file_text(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        return None


def listing(path: str) -> list[str] | None:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None


def group_state(name: str) -> dict[str, Any] | None:
    try:
        entry = grp.getgrnam(name)
    except KeyError:
        return None
    return {"gid": entry.gr_gid, "members": sorted(entry.gr_mem)}


def user_state(name: str) -> dict[str, Any] | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return {
        "uid": entry.pw_uid,
        "gid": entry.pw_gid,
        "home": entry.pw_dir,
        "shell": entry.pw_shell,
        "groups": sorted(g.gr_name for g in grp.getgrall() if name in g.gr_mem),
    }


def login_state(files: list[str], regexp: str) -> dict[str, Any]:
    # Ansible's own sudo (become) ran this: its command carries Ansible's BECOME-SUCCESS marker.
    become = "BECOME-SUCCESS-" in os.environ.get("SUDO_COMMAND", "")
    user = os.environ.get("SUDO_USER") if become and os.geteuid() == 0 else None
    try:
        home = pwd.getpwnam(user).pw_dir if user else None
    except KeyError:
        home = None
    if not user or home is None:
        return {"user": None, "home": None, "key": None}
    pattern = re.compile(regexp.encode())
    key = False
    for name in files:
        try:
            with open(os.path.join(home, name), "rb") as handle:
                lines = handle.read().split(b"\n")
        except OSError:
            continue
        key = key or any(pattern.search(line) for line in lines)
    return {"user": user, "home": home, "key": key}


def main() -> None:
    wanted = json.loads(sys.argv[1])
    packages = wanted.get("packages", [])
    installed = installed_packages() if packages else set()
    print(
        json.dumps(
            {
                "paths": {path: path_state(path) for path in wanted.get("paths", [])},
                "missing_packages": [name for name in packages if name not in installed],
                "lines": {
                    path: last_matches(path, regexps)
                    for path, regexps in wanted.get("lines", {}).items()
                },
                "units": unit_states(wanted.get("units", [])),
                "contents": {path: file_text(path) for path in wanted.get("contents", [])},
                "sha256": {path: file_sha256(path) for path in wanted.get("sha256", [])},
                "listings": {path: listing(path) for path in wanted.get("listings", [])},
                "users": {name: user_state(name) for name in wanted.get("users", [])},
                "groups": {name: group_state(name) for name in wanted.get("groups", [])},
                **(
                    {"login": login_state(wanted["login"]["files"], wanted["login"]["regexp"])}
                    if "login" in wanted
                    else {}
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
