"""ASGI middleware: request id + access log + metrics, body size limit, trusted proxies."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, status
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from textbook.core.logging import request_id_var
from textbook.core.metrics import Metrics

access_log = logging.getLogger("textbook.access")
error_log = logging.getLogger("textbook.error")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNIX_CLIENT = "unix:"


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        state: MutableMapping[str, Any] = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error")
            if not state["started"]:
                await send_json(
                    send_with_id,
                    status.HTTP_500_INTERNAL_SERVER_ERROR,
                    {"detail": "Internal server error", "request_id": request_id},
                )
        finally:
            seconds = time.perf_counter() - started
            template = self.templates(scope["path"])
            self.metrics.observe(scope["method"], template, state["status"], seconds)
            client = scope.get("client")
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": state["status"],
                    "duration_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None,
                    "user_id": scope["state"].get("user_id"),
                },
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
        declared = dict(scope["headers"]).get(b"content-length")
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


class TrustedProxyMiddleware:
    """uvicorn's ProxyHeadersMiddleware, plus: a unix-socket peer (nginx on the same host)
    counts as trusted when "unix:" is listed in TRUSTED_PROXIES."""

    def __init__(self, app: ASGIApp, trusted_proxies: list[str]) -> None:
        self.unix_trusted = UNIX_CLIENT in trusted_proxies
        self.inner: Any = ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unix_peer = scope["type"] in ("http", "websocket") and not scope.get("client")
        if unix_peer and self.unix_trusted:
            scope["client"] = (UNIX_CLIENT, 0)
        await self.inner(scope, receive, send)
