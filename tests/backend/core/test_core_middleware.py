"""Trusted proxies: a unix-socket peer counts as a proxy only when "unix:" is listed."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from textbook.core.middleware import TrustedProxies


def _client_seen(trusted: list[str], client: Any, forwarded: bytes) -> Any:
    scope = {"type": "http", "client": client, "headers": [(b"x-forwarded-for", forwarded)]}

    async def call() -> None:
        await TrustedProxies(trusted).apply(scope)

    anyio.run(call)
    return scope["client"]


@pytest.mark.parametrize(
    ("trusted", "client", "expected"),
    [
        (["unix:"], None, "203.0.113.9"),
        (["127.0.0.1"], None, None),
        (["127.0.0.1"], ("127.0.0.1", 5000), "203.0.113.9"),
        (["10.0.0.0/8"], ("10.1.2.3", 5000), "203.0.113.9"),
        (["127.0.0.1"], ("198.51.100.1", 5000), "198.51.100.1"),
    ],
    ids=["unix-trusted", "unix-untrusted", "loopback", "network", "untrusted-peer"],
)
def test_forwarded_for_only_from_trusted_peers(
    trusted: list[str], client: Any, expected: str | None
) -> None:
    seen = _client_seen(trusted, client, b"203.0.113.9")
    assert (seen[0] if seen else None) == expected
