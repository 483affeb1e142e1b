"""Print, as JSON, how ufw differs from what the role's variables ask for.

argv[1]: JSON of the role's inputs: {"ssh_port", "ssh_sources", "public_tcp_ports",
"internal_rules"} (the firewall_* variables of the same names), and optionally "packages"
(names) and "unit" (a systemd unit name).
Output: {"missing": [{"port", "proto", "src", "comment"}] - allow rules to add,
         "stale": [{"port", "proto", "src"}] - allow rules the variables no longer list,
         "active": bool, "incoming": str | null, "outgoing": str | null, "logging": str | null}
(policies and logging as `ufw status verbose` shows them; null while ufw is inactive or absent),
with "missing_packages": the given packages dpkg's status does not list installed, and
"unit_file_state": the unit's UnitFileState as `systemctl show` gives it ("enabled"; null
when unknown), when the inputs name them.
Only rules of the shape the role writes (allow, incoming, any destination, any source port)
are compared; anything else in ufw is left alone. One look instead of a ufw module call per
rule and setting: a converged host needs no change, so the role runs no ufw module.
"""

import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

RULE_FILES = (Path("/etc/ufw/user.rules"), Path("/etc/ufw/user6.rules"))
ANY = {"any", "0.0.0.0/0", "::/0"}


def norm_src(src: str) -> str:
    if src in ANY:
        return "any"
    net = ipaddress.ip_network(src, strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def wanted_rules(inputs: dict[str, Any]) -> dict[tuple[str, str, str], str | None]:
    """{(port, proto, source): comment} of every allow rule the variables ask for."""
    ssh_port = str(inputs["ssh_port"])
    wanted: dict[tuple[str, str, str], str | None] = {}
    for src in inputs["ssh_sources"] or ["any"]:
        wanted[(ssh_port, "tcp", norm_src(src))] = "ssh"
    for port in inputs["public_tcp_ports"]:
        wanted.setdefault((str(port), "tcp", "any"), "public")
    for rule in inputs["internal_rules"]:
        proto = rule.get("proto") or "tcp"
        for src in rule["sources"]:
            wanted.setdefault((str(rule["port"]), proto, norm_src(src)), rule.get("comment"))
    return wanted


def present_rules() -> list[tuple[str, str, str]]:
    """Allow rules of the role's shape in ufw's rule files, in file order."""
    present: list[tuple[str, str, str]] = []
    for path in RULE_FILES:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            if not line.startswith("### tuple ### "):
                continue
            fields = line.split()[3:]
            if len(fields) < 7:
                continue
            action, proto, dport, dst, sport, src, direction = fields[:7]
            if action != "allow" or direction != "in" or dst not in ANY or sport != "any":
                continue
            rule = (dport, proto, norm_src(src))
            if rule not in present:
                present.append(rule)
    return present


def ufw_status() -> str:
    try:
        return subprocess.run(
            ["/usr/sbin/ufw", "status", "verbose"], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:  # not installed yet (a first run under --check)
        return ""


def status(shown: str) -> dict[str, Any]:
    """Whether ufw is active, its default policies and logging level, from its status."""
    policies = re.search(r"^Default: (\w+) \(incoming\), (\w+) \(outgoing\)", shown, re.M)
    logging = re.search(r"^Logging: (?:on \((\w+)\)|(off))", shown, re.M)
    return {
        "active": re.search(r"^Status: active", shown, re.M) is not None,
        "incoming": policies.group(1) if policies else None,
        "outgoing": policies.group(2) if policies else None,
        "logging": (logging.group(1) or logging.group(2)) if logging else None,
    }


def installed_packages() -> set[str]:
    """Packages dpkg's status lists installed (what apt's state=present looks for)."""
    installed: set[str] = set()
    try:
        entries = Path("/var/lib/dpkg/status").read_text(errors="replace").split("\n\n")
    except OSError:
        return installed
    for entry in entries:
        lines = [line for line in entry.splitlines() if ": " in line and line[0] != " "]
        fields = dict(line.split(": ", 1) for line in lines)
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            installed.add(fields["Package"])
    return installed


def unit_file_state(unit: str) -> str | None:
    try:
        shown = subprocess.run(  # noqa: S603 - fixed argv, the unit name as an argument
            ["systemctl", "show", "--property=UnitFileState", "--value", unit],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None
    return (shown.stdout.strip() or None) if shown.returncode == 0 else None


def main(
    argv: list[str],
    read_status: Callable[[], str] = ufw_status,
    read_installed: Callable[[], set[str]] = installed_packages,
    read_unit: Callable[[str], str | None] = unit_file_state,
) -> None:
    inputs = json.loads(argv[0])
    wanted = wanted_rules(inputs)
    present = present_rules()
    missing = [
        {"port": port, "proto": proto, "src": src, "comment": comment}
        for (port, proto, src), comment in wanted.items()
        if (port, proto, src) not in present
    ]
    stale = [
        {"port": port, "proto": proto, "src": src}
        for port, proto, src in present
        if (port, proto, src) not in wanted
    ]
    host: dict[str, Any] = {}
    if "packages" in inputs:
        installed = read_installed()
        host["missing_packages"] = [name for name in inputs["packages"] if name not in installed]
    if "unit" in inputs:
        host["unit_file_state"] = read_unit(inputs["unit"])
    print(json.dumps({"missing": missing, "stale": stale, **status(read_status()), **host}))


if __name__ == "__main__":
    main(sys.argv[1:])
