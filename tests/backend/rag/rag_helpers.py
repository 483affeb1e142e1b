"""Helpers shared by the retrieval tests (imported as `rag_helpers`; fixtures live in
conftest.py): fixture paths, a loopback OpenAI-compatible embeddings server, call spies."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from textbook.rag.sparse import tokenize

FIXTURE_CHAPTERS = Path(__file__).parent / "fixtures" / "chapters"
# A Docusaurus docs folder as sites keep it: categories, MDX, a page that cannot be read.
FIXTURE_DOCUSAURUS = Path(__file__).parent / "fixtures" / "docusaurus"


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


def embeddings_app(server: FakeEmbeddingsServer) -> FastAPI:
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


def spy_calls(target: object, method: str) -> list[dict[str, Any]]:
    """Wrap `target.method` to record each call's keyword arguments, still calling it."""
    calls: list[dict[str, Any]] = []
    original = getattr(target, method)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return original(*args, **kwargs)

    setattr(target, method, recording)
    return calls
