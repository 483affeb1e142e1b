"""The store on a Qdrant server (`QDRANT_URL`), through qdrant-client's REST client."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import httpx
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from textbook.core.config import Settings
from textbook.rag.sparse import SparseVec
from textbook.rag.store import (
    DENSE_VECTOR,
    INDEXED_FIELDS,
    SPARSE_VECTOR,
    ChunkStore,
    Layout,
    NewPoint,
    Query,
    passage,
)
from textbook.rag.types import Passage

__all__ = ["SCROLL_PAGE", "ServerStore"]

log = logging.getLogger(__name__)

SCROLL_PAGE = 4096
SERVER_TIMEOUT_SECONDS = 10
# Connection attempts retried (refused while Qdrant restarts: a config change, a key rotation),
# with httpcore's backoff (0, 0.5, 1, 2, 4, 8 s): a restart of up to ~15 s fails no request.
CONNECT_RETRIES = 6
# httpx retries only connection attempts. A read sent just as Qdrant stops (on a kept-alive
# connection it closes, or one its listener took but never served) ends without an answer:
# reads are idempotent, so they are sent again on a new connection, which the retries above
# carry through the restart.
READ_ATTEMPTS = 3
READ_RETRY_PAUSE_SECONDS = 0.2
_DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)

T = TypeVar("T")


def _sparse(vector: SparseVec) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


def _filter(module: str | None, chapter: str | None) -> models.Filter | None:
    conditions: list[models.Condition] = [
        models.FieldCondition(key=key, match=models.MatchValue(value=value))
        for key, value in (("module", module), ("chapter", chapter))
        if value
    ]
    return models.Filter(must=conditions) if conditions else None


def _dropped(exc: ResponseHandlingException) -> bool:
    """The request went out and the connection ended without an answer (not a timeout)."""
    return isinstance(exc.source, _DROPPED)


def read_again_if_dropped(call: Callable[[], T]) -> T:
    """`call()` (an idempotent read), sent again when Qdrant dropped its connection."""
    for attempt in range(1, READ_ATTEMPTS + 1):
        try:
            return call()
        except ResponseHandlingException as exc:
            if attempt == READ_ATTEMPTS or not _dropped(exc):
                raise
            log.warning(
                "qdrant closed the connection before answering a read (%s): sending it again",
                type(exc.source).__name__,
            )
            time.sleep(READ_RETRY_PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable")


class ServerStore(ChunkStore):
    engine = "qdrant server"

    def __init__(self, settings: Settings) -> None:
        assert settings.qdrant_url is not None
        # the client is thread-safe: no lock around its calls
        super().__init__(settings, contextlib.nullcontext())
        api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
        # No version probe at construction: startup must not block on a down server;
        # ready() reports reachability.
        self.client = QdrantClient(
            url=settings.qdrant_url,
            api_key=api_key,
            timeout=SERVER_TIMEOUT_SECONDS,
            check_compatibility=False,
            transport=httpx.HTTPTransport(retries=CONNECT_RETRIES),
        )

    def _read_layout(self) -> Layout | None:
        stats = self._stats()
        return stats[0] if stats else None

    def _stats(self) -> tuple[Layout, int] | None:
        # One request: the collection's vectors and its (approximate) point count.
        try:
            info = read_again_if_dropped(lambda: self.client.get_collection(self.collection))
        except UnexpectedResponse as exc:
            if exc.status_code == 404:
                return None
            raise
        params = info.config.params
        sparse = params.sparse_vectors or {}
        bm25 = sparse.get(SPARSE_VECTOR)
        vectors = params.vectors
        dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        layout = Layout(
            sparse_ok=bm25 is not None and bm25.modifier == models.Modifier.IDF,
            dense_size=dense.size if dense is not None else None,
        )
        return layout, int(info.points_count or 0)

    def _create(self, dense_size: int | None) -> None:
        vectors = (
            {DENSE_VECTOR: models.VectorParams(size=dense_size, distance=models.Distance.COSINE)}
            if dense_size
            else {}
        )
        self.client.create_collection(
            self.collection,
            vectors_config=vectors,
            sparse_vectors_config={
                SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
            },
        )

    def _drop(self) -> None:
        self.client.delete_collection(self.collection)

    def _ensure_indexes(self) -> None:
        schema = self.client.get_collection(self.collection).payload_schema or {}
        for field in INDEXED_FIELDS:
            if field not in schema:
                self.client.create_payload_index(
                    self.collection,
                    field_name=field,
                    field_schema=models.PayloadSchemaType.KEYWORD,
                    wait=True,
                )

    def _scan(self, chapters: Sequence[str] | None) -> Iterator[tuple[str, dict[str, object]]]:
        flt = (
            None
            if chapters is None
            else models.Filter(
                must=[
                    models.FieldCondition(key="chapter", match=models.MatchAny(any=list(chapters)))
                ]
            )
        )
        offset: Any = None
        while True:
            points, offset = self.client.scroll(
                self.collection,
                scroll_filter=flt,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=["chapter", "embedding_model"],
                with_vectors=False,
            )
            for point in points:
                yield str(point.id), dict(point.payload or {})
            if offset is None:
                return

    def _upsert(self, points: Sequence[NewPoint]) -> None:
        structs = []
        for point in points:
            vector: dict[str, Any] = {SPARSE_VECTOR: _sparse(point.sparse)}
            if point.dense is not None:
                vector[DENSE_VECTOR] = point.dense
            structs.append(models.PointStruct(id=point.id, vector=vector, payload=point.payload))
        self.client.upsert(self.collection, points=structs, wait=True)

    def _delete(self, ids: Sequence[str]) -> None:
        self.client.delete(
            self.collection, points_selector=models.PointIdsList(points=list(ids)), wait=True
        )

    def _query(self, query: Query) -> list[Passage]:
        flt = _filter(query.module, query.chapter)
        search: dict[str, Any]
        if query.dense is not None:
            prefetch = [
                models.Prefetch(
                    query=query.dense, using=DENSE_VECTOR, filter=flt, limit=query.depth
                )
            ]
            if query.sparse is not None:
                prefetch.append(
                    models.Prefetch(
                        query=_sparse(query.sparse),
                        using=SPARSE_VECTOR,
                        filter=flt,
                        limit=query.depth,
                    )
                )
            search = {"prefetch": prefetch, "query": models.FusionQuery(fusion=models.Fusion.RRF)}
        else:
            assert query.sparse is not None
            search = {"query": _sparse(query.sparse), "using": SPARSE_VECTOR}
        response = read_again_if_dropped(
            lambda: self.client.query_points(
                self.collection, query_filter=flt, limit=query.limit, with_payload=True, **search
            )
        )
        return [passage(str(p.id), p.score, p.payload or {}) for p in response.points]

    def _count(self) -> int:
        if not read_again_if_dropped(lambda: self.client.collection_exists(self.collection)):
            return 0
        return int(
            read_again_if_dropped(lambda: self.client.count(self.collection, exact=True)).count
        )

    def _close(self) -> None:
        self.client.close()
