"""Helpers shared by the retrieval tests (imported as `rag_helpers`; fixtures live in
conftest.py): fixture paths, a loopback OpenAI-compatible embeddings server, call spies, and
looks into either engine's storage (what it stored, its indexes, the queries it ran)."""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import qdrant_edge as edge
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from qdrant_client import models

from textbook.core.config import Settings
from textbook.rag.sparse import terms
from textbook.rag.store import ChunkStore
from textbook.rag.store_edge import EdgeStore
from textbook.rag.store_server import ServerStore

FIXTURE_CHAPTERS = Path(__file__).parent / "fixtures" / "chapters"
STANDIN_API_KEY = "rag-test-key-not-a-secret-0123456789"
# A Docusaurus docs folder as sites keep it: categories, MDX, a page that cannot be read.
FIXTURE_DOCUSAURUS = Path(__file__).parent / "fixtures" / "docusaurus"


# --- a local OpenAI-compatible embeddings server ------------------------------------------

EMBED_FAIL_MARKER = "EMBED-FAIL"
DEFAULT_FAKE_DIMENSIONS = 64


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """Deterministic hashed bag-of-words vector, L2-normalised (texts sharing words are close)."""
    vector = [0.0] * dimensions
    for term in terms(text):
        vector[term % dimensions] += 1.0
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
        server.requests.append(
            {
                "model": body.get("model"),
                "count": len(inputs),
                "dimensions": body.get("dimensions"),
                "encoding_format": body.get("encoding_format"),
            }
        )
        if any(EMBED_FAIL_MARKER in text for text in inputs):
            return JSONResponse(
                {"error": {"message": "boom", "type": "server_error"}}, status_code=500
            )
        dimensions = int(body.get("dimensions") or DEFAULT_FAKE_DIMENSIONS)
        data = []
        for index, text in enumerate(inputs):
            vector = fake_embedding(text, dimensions)
            encoded: object = vector
            if body.get("encoding_format") == "base64":
                encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )

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


# --- looking into either engine -------------------------------------------------------------


def stored_point(store: ChunkStore, point_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(named vectors, payload) of one stored point, as the engine holds them."""
    if isinstance(store, EdgeStore):
        assert store.shard is not None
        record = store.shard.retrieve([point_id], with_payload=True, with_vector=True)[0]
    else:
        assert isinstance(store, ServerStore)
        record = store.client.retrieve(
            store.collection, [point_id], with_vectors=True, with_payload=True
        )[0]
    assert isinstance(record.vector, dict)
    return dict(record.vector), dict(record.payload or {})


def keyword_indexes(store: ChunkStore) -> set[str]:
    """The payload fields the engine reports a keyword index on."""
    if isinstance(store, EdgeStore):
        assert store.shard is not None
        return {
            field
            for field, info in store.shard.info().payload_schema.items()
            if info.data_type == edge.PayloadSchemaType.Keyword
        }
    assert isinstance(store, ServerStore)
    schema = store.client.get_collection(store.collection).payload_schema or {}
    return {
        field
        for field, info in schema.items()
        if info.data_type == models.PayloadSchemaType.KEYWORD
    }


@dataclass
class EngineQuery:
    """One query as the engine received it."""

    fusion: str | None  # "rrf" when prefetches are fused
    using: list[str]  # the vectors searched (one per prefetch, or the single one)
    filtered: list[bool]  # per prefetch (or the single query): whether it has a filter


class _RecordingShard:
    def __init__(self, shard: edge.EdgeShard, queries: list[EngineQuery]) -> None:
        self._shard = shard
        self._queries = queries

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shard, name)

    def query(self, request: edge.QueryRequest) -> Any:
        if request.prefetches:
            self._queries.append(
                EngineQuery(
                    fusion="rrf" if isinstance(request.query, edge.Fusion.Rrf) else None,
                    using=[_edge_using(p.query) for p in request.prefetches],
                    filtered=[p.filter is not None for p in request.prefetches],
                )
            )
        else:
            self._queries.append(
                EngineQuery(
                    fusion=None,
                    using=[_edge_using(request.query)],
                    filtered=[request.filter is not None],
                )
            )
        return self._shard.query(request)


def _edge_using(query: Any) -> str:
    # Query.Nearest(vector, using=...) prints as Nearest(..., using: Some("bm25")) or similar;
    # the name is the one quoted word in its repr that is a vector name.
    text = repr(query)
    return next(name for name in ("dense", "bm25") if f'"{name}"' in text)


def record_queries(store: ChunkStore) -> list[EngineQuery]:
    """Record the queries the engine runs from now on (search still runs them)."""
    queries: list[EngineQuery] = []
    if isinstance(store, EdgeStore):
        assert store.shard is not None
        store.shard = _RecordingShard(store.shard, queries)  # type: ignore[assignment]
        return queries
    assert isinstance(store, ServerStore)
    original = store.client.query_points

    def recording(*args: Any, **kwargs: Any) -> Any:
        prefetch = kwargs.get("prefetch")
        if prefetch:
            fusion = kwargs["query"]
            queries.append(
                EngineQuery(
                    fusion="rrf"
                    if isinstance(fusion, models.FusionQuery) and fusion.fusion == models.Fusion.RRF
                    else None,
                    using=[p.using for p in prefetch],
                    filtered=[p.filter is not None for p in prefetch],
                )
            )
        else:
            queries.append(
                EngineQuery(
                    fusion=None,
                    using=[kwargs["using"]],
                    filtered=[kwargs.get("query_filter") is not None],
                )
            )
        return original(*args, **kwargs)

    store.client.query_points = recording  # type: ignore[method-assign]
    return queries


def server_settings(settings: Settings, url: str, collection: str) -> Settings:
    """`settings` pointed at the stand-in, in a collection of the test's own."""
    return settings.model_copy(
        update={
            "qdrant_url": url,
            "qdrant_path": None,
            "qdrant_collection": re.sub(r"\W", "_", collection)[:60],
            "qdrant_api_key": SecretStr(STANDIN_API_KEY),
        }
    )


def settings_on_engine(
    engine: str, base: Settings, request: pytest.FixtureRequest, prefix: str
) -> Iterator[Settings]:
    """`base` for the engine under test; on the server, a collection of the test's own,
    dropped after it."""
    if engine == "edge":
        yield base
        return
    url = request.getfixturevalue("qdrant_url")
    settings = server_settings(base, url, f"{prefix}_{request.node.name}")
    yield settings
    httpx.delete(
        f"{url}/collections/{settings.qdrant_collection}",
        headers={"api-key": STANDIN_API_KEY},
        timeout=10,
    )
