"""ASGI middleware: request id + access log + metrics + body size limit, trusted proxies.

These run on every request, /health included, so they stay cheap: plain ASGI callables
(no BaseHTTPMiddleware), one pass over the raw header list, per-path route templates and
metric children memoised, request ids from the process's PRNG (no syscall; request ids are
correlation ids, not secrets), and the access line written by `AccessLog`'s direct path.
`bench/http_server.py` measures their cost against a bare FastAPI app.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from random import getrandbits
from typing import Any

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from textbook.core.logging import AccessLog, request_id_var
from textbook.core.metrics import Metrics

error_log = logging.getLogger("textbook.error")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNIX_CLIENT = "unix:"
# Memoised route templates per request path; capped, as paths are chosen by clients.
TEMPLATE_CACHE_SIZE = 4096


async def send_json(
    send: Send, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Request id in and out, one JSON access-log line and metrics per request, and the
    request body limit (one layer for all of it: every layer costs a call per message).

    Bodies over `max_body_bytes` are refused by Content-Length up front and while streaming
    (chunked uploads carry no Content-Length). Unhandled errors become a 500 JSON body here,
    so they get the request id too.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        templates: Callable[[str], str],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
        self.limit = max_body_bytes
        self.access = AccessLog()
        self._template_of: dict[str, str] = {}

    def template(self, path: str) -> str:
        template = self._template_of.get(path)
        if template is None:
            template = self.templates(path)
            if len(self._template_of) < TEMPLATE_CACHE_SIZE:
                self._template_of[path] = template
        return template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ""
        declared = None
        for key, value in scope["headers"]:  # the first of each, as before the merge
            if key == b"x-request-id" and not request_id:
                request_id = value.decode("latin-1")
            elif key == b"content-length" and declared is None:
                declared = value
        if not request_id or not _REQUEST_ID.match(request_id):
            request_id = f"{getrandbits(128):032x}"
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
        if "state" in scope:
            scope["state"]["request_id"] = request_id
        else:
            scope["state"] = {"request_id": request_id}
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                status_code = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), request_id_header]
            await send(message)

        limit = self.limit
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            if declared is not None and not declared.isdigit():
                await send_json(send_with_id, 400, {"detail": "Invalid Content-Length header"})
            elif declared is not None and int(declared) > limit:
                error = BodyTooLarge(limit)
                body, close = {"detail": error.detail}, {"connection": "close"}
                await send_json(send_with_id, error.status_code, body, close)
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error")
            if not response_started:
                await send_json(
                    send_with_id,
                    status.HTTP_500_INTERNAL_SERVER_ERROR,
                    {"detail": "Internal server error", "request_id": request_id},
                )
        finally:
            seconds = time.perf_counter() - started
            method, path = scope["method"], scope["path"]
            template = self.template(path)
            self.metrics.observe(method, template, status_code, seconds)
            if self.access.enabled():
                client = scope.get("client")
                self.access.write(
                    request_id,
                    method,
                    path,
                    template,
                    status_code,
                    round(seconds * 1000, 2),
                    client[0] if client else None,
                    scope["state"].get("user_id"),
                )
            request_id_var.reset(token)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"Request body is larger than the limit of {limit} bytes",
        )


class TrustedProxyMiddleware(ProxyHeadersMiddleware):
    """uvicorn's ProxyHeadersMiddleware, plus: a unix-socket peer (nginx on the same host)
    counts as trusted when "unix:" is listed in TRUSTED_PROXIES."""

    def __init__(self, app: ASGIApp, trusted_proxies: list[str]) -> None:
        super().__init__(app, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]
        self.unix_trusted = UNIX_CLIENT in trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if self.unix_trusted and not scope.get("client") and scope["type"] in ("http", "websocket"):
            scope["client"] = (UNIX_CLIENT, 0)
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]
