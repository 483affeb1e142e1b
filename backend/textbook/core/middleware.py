"""ASGI middleware: request id + access log + metrics + body size limit, trusted proxies.

These run on every request, /health included, so they stay cheap: plain ASGI callables
(no BaseHTTPMiddleware), the request's headers looked up in one dict built in C, request
ids made 256 at a time from one os.urandom() call, the request's body counted only when its
length is not known up front, and its access line and metrics handled in batches by
`RequestLog`. `bench/http_server.py` and `bench/http_instructions.py` measure their cost
against a bare FastAPI app.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Awaitable
from itertools import repeat
from time import perf_counter
from typing import Any

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from textbook.core.logging import RequestLog, request_id_var

error_log = logging.getLogger("textbook.error")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")  # fullmatch
UNIX_CLIENT = "unix:"
HTTP1 = ("1.0", "1.1")
REQUEST_ID_HEADER = b"x-request-id"
REQUEST_IDS_AT_ONCE = 256


class RequestIds:
    """Fresh request ids (32 hex digits, 128 random bits) with their response header, made
    REQUEST_IDS_AT_ONCE at a time from one os.urandom() call: one each costs a request more
    than taking one from the pool. A forked worker starts with an empty pool, so no two
    workers hand out the same ids."""

    def __init__(self) -> None:
        # The request layer pops from it directly (`pool.pop() if pool else refill()`).
        self.pool: list[tuple[str, tuple[bytes, bytes]]] = []
        os.register_at_fork(after_in_child=self.pool.clear)

    def refill(self) -> tuple[str, tuple[bytes, bytes]]:
        """Fill the pool; one id taken from it. One getrandom() call for all of them, and no
        Python loop per id: hex() cuts the bytes into ids, zip() pairs them with headers."""
        digits = os.urandom(16 * REQUEST_IDS_AT_ONCE).hex(" ", 16)
        headers = zip(repeat(REQUEST_ID_HEADER), digits.encode("ascii").split(b" "))
        self.pool.extend(zip(digits.split(" "), headers, strict=True))
        return self.pool.pop()

    def take(self) -> tuple[str, tuple[bytes, bytes]]:
        pool = self.pool
        return pool.pop() if pool else self.refill()


request_ids = RequestIds()  # one per process


async def send_json(
    send: Send, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Request id in and out, the request's record (access line and metrics, see RequestLog)
    and the request body limit (one layer for all of it: every layer costs a call per message).

    Bodies over `max_body_bytes` are refused by Content-Length up front and while streaming
    (chunked uploads carry no Content-Length). Unhandled errors become a 500 JSON body here,
    so they get the request id too: `textbook.main.TextbookAPI` puts this layer where
    Starlette's ServerErrorMiddleware would be.
    """

    def __init__(
        self,
        app: ASGIApp,
        request_log: RequestLog,
        max_body_bytes: int,
        trusted_proxies: list[str],
    ) -> None:
        self.app = app
        self.request_log = request_log
        self.limit = max_body_bytes
        self.proxies = TrustedProxies(trusted_proxies)
        self.unix_trusted = self.proxies.unix_trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One dict of the request's headers (built in C; the last of a repeated name wins, as in
        # uvicorn's proxy middleware) instead of a Python loop over them.
        headers = dict(scope["headers"])
        if (
            b"x-forwarded-for" in headers
            or b"x-forwarded-proto" in headers
            or (self.unix_trusted and not scope.get("client"))
        ):
            await self.proxies.apply(scope)
        given = headers.get(REQUEST_ID_HEADER)
        if given is not None and _REQUEST_ID.fullmatch(given):
            request_id, request_id_header = given.decode("ascii"), (REQUEST_ID_HEADER, given)
        else:
            ids = request_ids.pool  # request_ids.take(), inline: this runs on every request
            request_id, request_id_header = ids.pop() if ids else request_ids.refill()
        token = request_id_var.set(request_id)
        started = perf_counter()
        status_code = 0  # until the response starts

        def send_with_id(message: Message) -> Awaitable[None]:
            # A plain function handing back the server's awaitable: no coroutine of its own
            # per message (ASGI's send is any callable returning an awaitable).
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
                message["headers"] = [*message.get("headers", ()), request_id_header]
            return send(message)

        declared = headers.get(b"content-length")
        try:
            if declared is None:
                if b"transfer-encoding" in headers or scope.get("http_version") not in HTTP1:
                    # A body of unknown length: counted as it arrives. (HTTP/1 servers deliver
                    # exactly Content-Length bytes, and no body without it or Transfer-Encoding.)
                    receive = limited(receive, self.limit)
                await self.app(scope, receive, send_with_id)
            elif declared.isdigit() and int(declared) <= self.limit:
                await self.app(scope, receive, send_with_id)
            elif declared.isdigit():
                error = BodyTooLarge(self.limit)
                body, close = {"detail": error.detail}, {"connection": "close"}
                await send_json(send_with_id, error.status_code, body, close)
            else:
                await send_json(send_with_id, 400, {"detail": "Invalid Content-Length header"})
        except Exception:
            error_log.exception("unhandled error")
            if not status_code:
                await send_json(
                    send_with_id,
                    status.HTTP_500_INTERNAL_SERVER_ERROR,
                    {"detail": "Internal server error", "request_id": request_id},
                )
        finally:
            # What the access line and the metrics need, not the scope or its state: the
            # record waits for its batch, and what it holds on to is not freed until then.
            state = scope.get("state")
            self.request_log.record(
                (
                    scope["method"],
                    scope["path"],
                    scope.get("client"),
                    request_id,
                    state.get("user_id") if state else None,
                    status_code or 500,  # no response: the client went away, or it failed
                    started,
                    perf_counter(),
                )
            )
            request_id_var.reset(token)


def limited(receive: Receive, limit: int) -> Receive:
    """`receive`, raising BodyTooLarge once more than `limit` body bytes have arrived."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited_receive


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"Request body is larger than the limit of {limit} bytes",
        )


class TrustedProxies:
    """Client address and scheme from X-Forwarded-For/-Proto, only when the peer is a trusted
    proxy: uvicorn's ProxyHeadersMiddleware applied to the scope, plus a unix-socket peer
    (nginx on the same host) counting as trusted when "unix:" is listed."""

    def __init__(self, trusted_proxies: list[str]) -> None:
        self.unix_trusted = UNIX_CLIENT in trusted_proxies
        self._proxy = ProxyHeadersMiddleware(_scope_only, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]

    async def apply(self, scope: Scope) -> None:
        if self.unix_trusted and not scope.get("client"):
            scope["client"] = (UNIX_CLIENT, 0)
        await self._proxy(scope, _no_receive, _no_send)  # type: ignore[arg-type]


async def _scope_only(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind `TrustedProxies`' ProxyHeadersMiddleware: only its scope changes count."""


async def _no_receive() -> Message:
    raise RuntimeError("not used")


async def _no_send(message: Message) -> None:
    raise RuntimeError("not used")
