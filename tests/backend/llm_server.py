"""A local OpenAI-compatible server for tests: chat completions (plain and streaming)
and embeddings, on loopback, recording every request it receives."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

EMBEDDING_DIMENSIONS = 64


@dataclass
class Behaviour:
    reply: str = "Nodes talk over topics [1]."
    status: int = 200  # anything else: an error response
    delay: float = 0.0  # seconds before answering (timeouts)
    chunk_delay: float = 0.0  # seconds between streamed chunks (heartbeats)
    fail_mid_stream: bool = False


@dataclass
class FakeOpenAI:
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.requests.clear()

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def prompt_text(self, index: int = -1) -> str:
        """All message contents of one recorded chat request, joined."""
        messages = self.chat_requests[index]["body"]["messages"]
        return "\n".join(str(m.get("content", "")) for m in messages)


def embed(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest() * 2
    return [(b - 128) / 128 for b in digest[:EMBEDDING_DIMENSIONS]]


def build_app(state: FakeOpenAI) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await request.json()
        state.requests.append(
            {"path": request.url.path, "body": body, "auth": request.headers.get("authorization")}
        )
        behaviour = state.behaviour
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.status != 200:
            return JSONResponse(
                {"error": {"message": "upstream exploded", "type": "server_error"}},
                status_code=behaviour.status,
            )
        created = int(time.time())
        if body.get("stream"):
            return StreamingResponse(
                _chunks(behaviour, body["model"], created), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": created,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": behaviour.reply},
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> JSONResponse:
        body = await request.json()
        state.requests.append(
            {"path": request.url.path, "body": body, "auth": request.headers.get("authorization")}
        )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return JSONResponse(
            {
                "object": "list",
                "model": body["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": embed(str(t))}
                    for i, t in enumerate(inputs)
                ],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )

    return app


async def _chunks(behaviour: Behaviour, model: str, created: int) -> AsyncIterator[bytes]:
    words = behaviour.reply.split(" ")
    for i, word in enumerate(words):
        if behaviour.chunk_delay:
            await asyncio.sleep(behaviour.chunk_delay)
        if behaviour.fail_mid_stream and i == len(words) // 2:
            raise RuntimeError("connection dropped mid-stream")
        delta = {"content": word if i == 0 else " " + word}
        if i == 0:
            delta["role"] = "assistant"
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    final = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
    }
    yield f"data: {json.dumps(final)}\n\n".encode()
    yield b"data: [DONE]\n\n"


class ServerThread:
    """uvicorn in a daemon thread on 127.0.0.1 and a free port."""

    def __init__(self, app: Any, **options: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                access_log=False,
                lifespan="on",
                **options,  # e.g. ssl_certfile, ssl_keyfile
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        scheme = "https" if self.server.config.ssl_certfile else "http"
        return f"{scheme}://127.0.0.1:{self.port}"
