"""ASGI middleware: request id + access log + metrics, body size limit, trusted proxies.

These run on every request, /health included, so they stay cheap: plain ASGI callables
(no BaseHTTPMiddleware), header lookups by scanning the raw list, per-path route templates
memoised, and the access line built only when INFO is enabled. `bench/http.py` measures
their cost against a bare FastAPI app.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from typing import Any

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from textbook.core.logging import request_id_var
from textbook.core.metrics import Metrics

access_log = logging.getLogger("textbook.access")
error_log = logging.getLogger("textbook.error")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNIX_CLIENT = "unix:"
# Memoised route templates per request path; capped, as paths are chosen by clients.
TEMPLATE_CACHE_SIZE = 4096
ACCESS_FUNC = "RequestContextMiddleware"


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a (lower-case) request header, without building a dict."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def send_json(
    send: Send, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Request id in and out, one JSON access-log line and metrics per request.

    Unhandled errors become a 500 JSON body here, so they get the request id too.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, templates: Callable[[str], str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates
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
        incoming = header(scope, b"x-request-id")
        request_id = incoming.decode("latin-1") if incoming else ""
        if not _REQUEST_ID.match(request_id):
            request_id = os.urandom(16).hex()
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
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

        try:
            await self.app(scope, receive, send_with_id)
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
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                extra = {
                    "method": method,
                    "path": path,
                    "route": template,
                    "status": status_code,
                    "duration_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None,
                    "user_id": scope["state"].get("user_id"),
                }
                # What access_log.info() does, minus the stack walk for the caller's line.
                access_log.handle(
                    access_log.makeRecord(
                        access_log.name,
                        logging.INFO,
                        __file__,
                        0,
                        "request",
                        (),
                        None,
                        ACCESS_FUNC,
                        extra,
                    )
                )
            request_id_var.reset(token)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"Request body is larger than the limit of {limit} bytes",
        )


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit: by Content-Length up front, and while streaming
    (chunked uploads carry no Content-Length)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await send_json(send, 400, {"detail": "Invalid Content-Length header"})
                return
            if int(declared) > self.limit:
                error = BodyTooLarge(self.limit)
                await send_json(
                    send, error.status_code, {"detail": error.detail}, {"connection": "close"}
                )
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)


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
