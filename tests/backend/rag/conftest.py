"""Fixtures for the retrieval tests: fixture chapters copied to tmp_path, local-mode settings."""

from __future__ import annotations

import base64
import math
import shutil
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from textbook.core.config import Settings
from textbook.rag.sparse import tokenize

FIXTURE_CHAPTERS = Path(__file__).parent / "fixtures" / "chapters"


@pytest.fixture
def chapters_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture chapters (ingest tests edit them)."""
    target = tmp_path / "chapters"
    shutil.copytree(FIXTURE_CHAPTERS, target)
    return target


@pytest.fixture
def sparse_settings(tmp_path: Path, chapters_dir: Path) -> Settings:
    """Qdrant local mode under tmp_path, no embeddings provider: the sparse-only path."""
    return Settings(_env_file=None, qdrant_url=None, qdrant_path=tmp_path / "qdrant",
                    qdrant_collection="test_textbook", content_path=chapters_dir,
                    embedding_provider="none", llm_provider="none")


@pytest.fixture
def fixture_chapters() -> Path:
    """The read-only fixture chapter directory."""
    return FIXTURE_CHAPTERS


# --- a local OpenAI-compatible embeddings server ------------------------------------------

EMBED_FAIL_MARKER = "EMBED-FAIL"
DEFAULT_FAKE_DIMENSIONS = 64


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """Deterministic hashed bag-of-words vector, L2-normalised (texts sharing words are close)."""
    vector = [0.0] * dimensions
    for word in tokenize(text):
        vector[zlib.crc32(word.encode()) % dimensions] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


@dataclass
class FakeEmbeddingsServer:
    base_url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def _embeddings_app(server: FakeEmbeddingsServer) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(body: dict[str, Any]) -> JSONResponse:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        server.requests.append({"model": body.get("model"), "count": len(inputs),
                                "dimensions": body.get("dimensions"),
                                "encoding_format": body.get("encoding_format")})
        if any(EMBED_FAIL_MARKER in text for text in inputs):
            return JSONResponse({"error": {"message": "boom", "type": "server_error"}},
                                status_code=500)
        dimensions = int(body.get("dimensions") or DEFAULT_FAKE_DIMENSIONS)
        data = []
        for index, text in enumerate(inputs):
            vector = fake_embedding(text, dimensions)
            encoded: object = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return JSONResponse({"object": "list", "data": data, "model": body.get("model"),
                             "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    return app


@pytest.fixture(scope="session")
def embeddings_server() -> Iterator[FakeEmbeddingsServer]:
    """An OpenAI-compatible /v1/embeddings on a random loopback port, for the whole session."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fake = FakeEmbeddingsServer(base_url=f"http://127.0.0.1:{port}/v1")
    server = uvicorn.Server(uvicorn.Config(_embeddings_app(fake), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake embeddings server did not start")
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def hybrid_settings(tmp_path: Path, chapters_dir: Path, embeddings_server: FakeEmbeddingsServer,
                    monkeypatch: pytest.MonkeyPatch) -> Settings:
    """OpenAI embeddings configured the way production does it: through the environment."""
    for name in ("EMBEDDING_PROVIDER", "LLM_PROVIDER", "EMBEDDING_MODEL", "EMBEDDING_DIMENSIONS",
                 "GEMINI_API_KEY", "QDRANT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", embeddings_server.base_url)
    embeddings_server.requests.clear()
    return Settings(_env_file=None, qdrant_path=tmp_path / "qdrant",
                    qdrant_collection="test_textbook", content_path=chapters_dir,
                    llm_max_retries=0, llm_timeout_seconds=10)


def spy_calls(target: object, method: str) -> list[dict[str, Any]]:
    """Wrap `target.method` to record each call's keyword arguments, still calling it."""
    calls: list[dict[str, Any]] = []
    original = getattr(target, method)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    setattr(target, method, recording)
    return calls
