"""What a role's files, directories and packages look like on the host, in one call.

Argument: JSON {"paths": [...], "packages": [...], "lines": {path: [regexp, ...]},
"units": [...]}. Prints JSON {"paths": {path: state}, "missing_packages": [...],
"lines": {path: {regexp: line}}, "units": {unit: state}}:
a path's state is "<kind> <mode> <owner> <group>", kind being the file's sha1 (Ansible's
checksum), "directory", "link:<target>" or "other"; a missing path is "-". A package is missing
unless dpkg's status lists it installed. A regexp's line is the last line of the file it
matches, with its line ending (the line lineinfile would replace), or null. A unit's state is
"<UnitFileState> <ActiveState>" as `systemctl show` gives them ("enabled active"). The role's write
tasks compare against this and are skipped where the host already holds what they would write,
and apt runs only for missing packages: a converged host costs one module call here, not one or
two per file. Copies in other roles are the same file (roles/common/files/host_state.py).
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
            }
        )
    )


if __name__ == "__main__":
    main()
