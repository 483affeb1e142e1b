"""The request layer: trusted proxy headers, request id, body size limit, the JSON 500, and
each request's access line and metrics."""

from __future__ import annotations

import logging
import re
import secrets
from time import perf_counter

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from textbook.core.logging import FIELDS, request_id_var
from textbook.core.metrics import Metrics, RouteTemplates

access_log = logging.getLogger("textbook.access")
error_log = logging.getLogger("textbook.error")
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a caller's X-Request-ID, kept if it fits
UNIX_CLIENT = "unix:"  # in TRUSTED_PROXIES: a peer on a unix socket (nginx on the same host)
USER_ID = "user_id"  # the signed-in user's id in scope["state"]: set_user_id() writes it


def set_user_id(scope: Scope, user_id: str) -> None:
    """Name the signed-in user in the request's access line (api/deps.py calls it)."""
    scope.setdefault("state", {})[USER_ID] = user_id


class RequestMiddleware:
    """Outermost layer. Bodies over `max_body_bytes` get a 413, by Content-Length up front or
    counted as they arrive (chunked uploads carry no Content-Length). X-Forwarded-For/-Proto
    count only from `trusted_proxies` (uvicorn's ProxyHeadersMiddleware)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        routes: RouteTemplates,
        max_body_bytes: int,
        trusted_proxies: list[str],
    ) -> None:
        self.app = ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies)  # type: ignore[arg-type]
        self.metrics = metrics
        self.routes = routes
        self.limit = max_body_bytes
        self.unix_trusted = UNIX_CLIENT in trusted_proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # type: ignore[arg-type]
            return
        if self.unix_trusted and not scope.get("client"):
            scope["client"] = (UNIX_CLIENT, 0)
        given = declared = None
        chunked = False
        # The first of each, as starlette's Headers.get, in one pass (cheaper: docs/bench.md).
        for name, value in scope["headers"]:
            if name == b"x-request-id" and given is None:
                given = value.decode("latin-1")
            elif name == b"content-length" and declared is None:
                declared = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        request_id = given if given and REQUEST_ID.fullmatch(given) else secrets.token_hex(16)
        token = request_id_var.set(request_id)
        started = perf_counter()
        status = 0  # until the response starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if declared is not None and not declared.isdigit():
                response = JSONResponse({"detail": "Invalid Content-Length header"}, 400)
                await response(scope, receive, send_with_id)
            elif declared is not None and int(declared) > self.limit:
                error = BodyTooLarge(self.limit)
                response = JSONResponse({"detail": error.detail}, 413, {"connection": "close"})
                await response(scope, receive, send_with_id)
            else:
                # The server stops a body at its Content-Length; one without (chunked) is counted.
                receive = self.limited(receive) if chunked else receive
                await self.app(scope, receive, send_with_id)  # type: ignore[arg-type]
        except Exception:
            error_log.exception("unhandled error")
            if not status:  # no response yet
                body = {"detail": "Internal server error", "request_id": request_id}
                await JSONResponse(body, 500)(scope, receive, send_with_id)
        finally:
            seconds = perf_counter() - started
            status = status or 500  # no response: it failed, or the client went away
            route = self.routes.template(scope["path"])
            self.metrics.observe_request(scope["method"], route, status, seconds)
            client = scope.get("client")
            fields = {
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 2),
                "client": client[0] if client else None,
                "user_id": scope.get("state", {}).get(USER_ID),
            }
            # One dict, not seven `extra=` keys: logging copies one attribute (docs/bench.md).
            access_log.info("request", extra={FIELDS: fields})
            request_id_var.reset(token)

    def limited(self, receive: Receive) -> Receive:
        """`receive`, raising BodyTooLarge once more than the limit has arrived."""
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        return limited_receive


class BodyTooLarge(HTTPException):
    """Raised in the app's body reading; the HTTP error handler answers it with a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than the limit of {limit} bytes")
