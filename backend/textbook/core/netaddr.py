"""Address allow-lists (METRICS_ALLOWED_NETWORKS): networks, addresses and "unix:"."""

from __future__ import annotations

import ipaddress

from textbook.core.middleware import UNIX_CLIENT as UNIX_PEER


class AddressList:
    def __init__(self, entries: list[str]) -> None:
        self.unix = UNIX_PEER in entries
        self.networks = [ipaddress.ip_network(e, strict=False) for e in entries if e != UNIX_PEER]

    def allows(self, host: str | None) -> bool:
        if host == UNIX_PEER:
            return self.unix
        try:
            address = ipaddress.ip_address(host or "")
        except ValueError:  # no peer, or a name (test clients)
            return False
        return any(address in network for network in self.networks)
