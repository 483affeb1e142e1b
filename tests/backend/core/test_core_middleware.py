"""Trusted proxies: a unix-socket peer counts as a proxy only when "unix:" is listed.
Request ids: unique, in this process and across forked workers."""

from __future__ import annotations

import os
import re
from typing import Any

import anyio
import pytest

from textbook.core.middleware import (
    REQUEST_ID_HEADER,
    REQUEST_IDS_AT_ONCE,
    RequestIds,
    TrustedProxies,
    request_ids,
)


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


def test_request_ids_are_unique_hex_with_their_header() -> None:
    ids = RequestIds()
    taken = [ids.take() for _ in range(3 * REQUEST_IDS_AT_ONCE + 1)]  # several refills
    assert len({request_id for request_id, _ in taken}) == len(taken)
    for request_id, header in taken:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert header == (REQUEST_ID_HEADER, request_id.encode())


def test_a_forked_worker_never_hands_out_the_parents_ids() -> None:
    request_ids.take()  # the pool is full now; a fork must not inherit it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: send 10 ids to the parent
        try:
            os.write(write, "".join(request_ids.take()[0] for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    child_ids = {child[i : i + 32] for i in range(0, len(child), 32)}
    parent_ids = {request_ids.take()[0] for _ in range(REQUEST_IDS_AT_ONCE)}
    assert len(child_ids) == 10
    assert not child_ids & parent_ids
