"""Print, as JSON, the ufw allow rules that the role's variables no longer ask for.

argv[1]: JSON of the role's inputs: {"ssh_port", "ssh_sources", "public_tcp_ports",
"internal_rules"} (the firewall_* variables of the same names). Only rules of the shape the
role writes (allow, incoming, any destination, any source port) are considered; anything else
in ufw is left alone.
Output: JSON list of {"port", "proto", "src"} to delete.
"""

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

RULE_FILES = (Path("/etc/ufw/user.rules"), Path("/etc/ufw/user6.rules"))
ANY = {"any", "0.0.0.0/0", "::/0"}


def norm_src(src: str) -> str:
    if src in ANY:
        return "any"
    net = ipaddress.ip_network(src, strict=False)
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def wanted_rules(inputs: dict[str, Any]) -> set[tuple[str, str, str]]:
    ssh_port = str(inputs["ssh_port"])
    wanted = {(ssh_port, "tcp", norm_src(src)) for src in inputs["ssh_sources"] or ["any"]}
    wanted |= {(str(port), "tcp", "any") for port in inputs["public_tcp_ports"]}
    for rule in inputs["internal_rules"]:
        proto = rule.get("proto") or "tcp"
        wanted |= {(str(rule["port"]), proto, norm_src(src)) for src in rule["sources"]}
    return wanted


def main() -> None:
    wanted = wanted_rules(json.loads(sys.argv[1]))
    stale: list[dict[str, str]] = []
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
            rule = {"port": dport, "proto": proto, "src": norm_src(src)}
            if (dport, proto, rule["src"]) not in wanted and rule not in stale:
                stale.append(rule)
    print(json.dumps(stale))


if __name__ == "__main__":
    main()
