"""The request layer on a small Starlette app: trusted proxies (a unix-socket peer counts as a
proxy only when "unix:" is listed), the access line handed to logging when the response ends,
its fields, the signed-in user named once, metrics, the JSON 500, and the server's own cut of a
body at its Content-Length (the layer counts only chunked bodies)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Scope

from textbook.core.logging import configure_logging
from textbook.core.metrics import Metrics
from textbook.core.middleware import RequestMiddleware, set_user_id


class Templates:
    def template(self, path: str) -> str:
        return "/items/{id}" if path.startswith("/items/") else "unmatched"


seen: dict[str, Any] = {}


async def item(request: Request) -> JSONResponse:
    seen["client"] = request.client.host if request.client else None
    seen["scheme"] = request.url.scheme
    set_user_id(request.scope, "user-7")
    return JSONResponse({"ok": True})


async def broken(request: Request) -> JSONResponse:
    raise ZeroDivisionError("boom")


async def broken_after_start(request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b"part"
        raise ZeroDivisionError("late boom")

    return StreamingResponse(body())


def layer(
    trusted: list[str], metrics: Metrics | None = None, routes: list[Route] | None = None
) -> Starlette:
    """An app with the request layer as main.py adds it: a middleware, inside Starlette's
    ServerErrorMiddleware."""
    layer = Middleware(
        RequestMiddleware,
        metrics=metrics or Metrics(),
        routes=Templates(),
        max_body_bytes=1024,
        trusted_proxies=trusted,
    )
    default = [
        Route("/items/{id}", item),
        Route("/broken", broken),
        Route("/late", broken_after_start),
    ]
    return Starlette(routes=routes or default, middleware=[layer])


def call(
    app: Starlette, path: str, client: Any = ("127.0.0.1", 5000), **headers: str
) -> list[Message]:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()],
        "client": client,
        "server": ("testserver", 80),
    }
    sent: list[Message] = []

    bodies = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if bodies:
            return bodies.pop()
        await asyncio.Event().wait()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


class Lines:
    """The JSON lines the app's logging wrote."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def __call__(self, logger: str = "textbook.access") -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines()]
        return [line for line in lines if line["logger"] == logger]


@pytest.fixture
def lines() -> Iterator[Lines]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    yield Lines(stream)
    root.handlers, root.level = handlers, level


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
    seen.clear()
    call(layer(trusted), "/items/1", client, x_forwarded_for="203.0.113.9")
    assert seen["client"] == expected


def test_forwarded_proto_only_from_trusted_peers() -> None:
    call(layer(["127.0.0.1"]), "/items/1", ("127.0.0.1", 1), x_forwarded_proto="https")
    assert seen["scheme"] == "https"
    call(layer(["127.0.0.1"]), "/items/1", ("198.51.100.1", 1), x_forwarded_proto="https")
    assert seen["scheme"] == "http"


def test_one_json_access_line_with_the_requests_fields(lines: Lines) -> None:
    sent = call(layer(["127.0.0.1"]), "/items/42", x_request_id="req-9")
    assert dict(sent[0]["headers"])[b"x-request-id"] == b"req-9"
    [line] = lines()
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line | {"time": "t", "duration_ms": 0} == {
        "time": "t",
        "level": "INFO",
        "logger": "textbook.access",
        "message": "request",
        "request_id": "req-9",
        "method": "GET",
        "path": "/items/42",
        "route": "/items/{id}",
        "status": 200,
        "duration_ms": 0,
        "client": "127.0.0.1",
        "user_id": "user-7",  # set_user_id() in the app
    }


def test_a_new_request_id_for_each_request_without_a_valid_one(lines: Lines) -> None:
    app = layer([])
    given = ["", "bad id", "x" * 129, "a/b"]
    ids = [
        dict(call(app, "/items/1", x_request_id=g)[0]["headers"])[b"x-request-id"] for g in given
    ]
    ids.append(dict(call(app, "/items/1")[0]["headers"])[b"x-request-id"])
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(rb"[0-9a-f]{32}", i) for i in ids)
    assert [line["request_id"] for line in lines()] == [i.decode() for i in ids]


def test_the_access_line_is_handed_to_logging_when_the_response_ends(lines: Lines) -> None:
    """No batch, no timer: the line is in logging's hands before the request's call returns,
    and not before its response's last byte."""
    lines_before_end: list[int] = []

    async def slow_body() -> AsyncIterator[bytes]:
        yield b"a"
        lines_before_end.append(len(lines()))
        yield b"b"

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(slow_body())

    call(layer([], routes=[Route("/s", stream)]), "/s")
    assert lines_before_end == [0]
    assert len(lines()) == 1


def test_request_metrics_by_route_template_and_status() -> None:
    metrics = Metrics()
    app = layer([], metrics)
    for path in ("/items/1", "/items/2", "/nothing"):
        call(app, path)
    exposition = generate_latest(metrics.registry).decode()
    assert 'textbook_http_requests_total{method="GET",route="/items/{id}",status="200"} 2.0' in (
        exposition
    )
    assert 'textbook_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in (
        exposition
    )
    assert 'textbook_http_request_duration_seconds_count{method="GET",route="/items/{id}"} 2.0' in (
        exposition
    )


def test_unhandled_error_is_json_500_with_the_request_id_and_logged(lines: Lines) -> None:
    sent = call(layer([]), "/broken", x_request_id="r-5")
    assert sent[0]["status"] == 500
    assert dict(sent[0]["headers"])[b"x-request-id"] == b"r-5"
    assert sent[1]["body"] == b'{"detail":"Internal server error","request_id":"r-5"}'
    [error] = lines("textbook.error")
    assert error["request_id"] == "r-5" and "ZeroDivisionError: boom" in error["exc_info"]
    assert [line["status"] for line in lines()] == [500]


def test_an_error_after_the_response_started_sends_no_second_response(lines: Lines) -> None:
    sent = call(layer([]), "/late")
    assert [m["type"] for m in sent].count("http.response.start") == 1
    assert sent[0]["status"] == 200
    assert [line["status"] for line in lines()] == [200]
    assert "late boom" in lines("textbook.error")[0]["exc_info"]


def test_no_access_line_above_info(lines: Lines) -> None:
    logging.getLogger().setLevel(logging.WARNING)
    metrics = Metrics()
    assert call(layer([], metrics), "/items/1")[0]["status"] == 200
    assert lines() == []
    assert "textbook_http_requests_total" in generate_latest(metrics.registry).decode()


def test_the_server_cuts_a_body_at_its_content_length() -> None:
    """Why the layer counts only a chunked body (Transfer-Encoding) as it arrives: uvicorn
    hands the app no more than a body's declared Content-Length, whatever follows it."""
    lengths: list[int] = []

    async def echo(request: Request) -> JSONResponse:
        lengths.append(len(await request.body()))
        return JSONResponse({"ok": True})

    app = layer([], routes=[Route("/echo", echo, methods=["POST"])])  # a limit of 1024 bytes

    async def serve_one() -> bytes:
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_config=None))
        serving = asyncio.create_task(server.serve(sockets=[listening]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*listening.getsockname())
        writer.write(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
            + b"x" * 5000
        )
        response = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.should_exit = True
        await serving
        return response

    assert asyncio.run(serve_one()).startswith(b"HTTP/1.1 200")
    assert lengths == [10]
