"""The embedded store (`QDRANT_URL` unset): Qdrant Edge, Qdrant's engine in this process.

The collection is one Edge shard in `QDRANT_PATH/edge/<collection>`. One process per
`QDRANT_PATH`: the store holds an exclusive lock on `QDRANT_PATH/edge/.lock` for as long as it
is open, and refuses to open when another process holds it. The lock is ours, taken before
the shard is touched: Edge's own WAL lock refuses a second opener, but only after that opener
has already touched the shard's files, which broke the first process's next flush
(qdrant-edge-py 0.9.0; tests/backend/rag/test_rag_edge.py).
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import qdrant_edge as edge

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
    StoreError,
    passage,
)
from textbook.rag.types import IngestReport, Passage

__all__ = ["SCROLL_PAGE", "EdgeStore", "shard_path"]

log = logging.getLogger(__name__)

SCROLL_PAGE = 4096
# Reciprocal Rank Fusion's k, as the Qdrant server's Fusion.RRF uses by default.
RRF_K = 2


def shard_path(settings: Settings) -> Path:
    assert settings.qdrant_path is not None
    return settings.qdrant_path / "edge" / settings.qdrant_collection


def _sparse(vector: SparseVec) -> edge.SparseVector:
    return edge.SparseVector(indices=vector.indices, values=vector.values)


def _filter(module: str | None, chapter: str | None) -> edge.Filter | None:
    conditions: list[Any] = [
        edge.FieldCondition(key=key, match=edge.MatchValue(value))
        for key, value in (("module", module), ("chapter", chapter))
        if value
    ]
    return edge.Filter(must=conditions) if conditions else None


def _lock_directory(directory: Path) -> IO[bytes]:
    """An exclusive lock on `directory` held while the returned file stays open."""
    handle = open(directory / ".lock", "ab")  # noqa: SIM115 - held open for the store's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise StoreError(
            f"{directory} is in use by another process. Embedded Qdrant (Qdrant Edge) serves "
            "one process per QDRANT_PATH: run a single worker, stop the service to ingest, "
            "or set QDRANT_URL to a Qdrant server."
        ) from exc
    return handle


class EdgeStore(ChunkStore):
    engine = "qdrant edge"

    def __init__(self, settings: Settings) -> None:
        if settings.qdrant_path is None:
            raise StoreError("QDRANT_PATH is required when QDRANT_URL is not set")
        # One lock for everything: ingest may drop and create the shard under a search.
        super().__init__(settings, threading.RLock())
        self.path = shard_path(settings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file: IO[bytes] | None = _lock_directory(self.path.parent)
        self.shard: edge.EdgeShard | None = None
        try:
            if (self.path / "edge_config.json").exists():
                self.shard = edge.EdgeShard.load(str(self.path))
        except Exception as exc:
            self._release()
            raise StoreError(f"cannot open the Qdrant Edge shard {self.path}: {exc}") from exc

    def _release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file drops the flock
            self._lock_file = None

    def _open(self) -> edge.EdgeShard:
        if self.shard is None:
            raise StoreError(f"collection {self.collection!r} is missing: run `textbook ingest`")
        return self.shard

    def _read_layout(self) -> Layout | None:
        if self.shard is None:
            return None
        # The shard's own record of its vectors (written by EdgeShard.create).
        config = json.loads((self.path / "edge_config.json").read_text(encoding="utf-8"))
        bm25 = (config.get("sparse_vectors") or {}).get(SPARSE_VECTOR)
        dense = (config.get("vectors") or {}).get(DENSE_VECTOR)
        return Layout(
            sparse_ok=bm25 is not None and bm25.get("modifier") == "idf",
            dense_size=int(dense["size"]) if dense else None,
        )

    def _create(self, dense_size: int | None) -> None:
        vectors = (
            {DENSE_VECTOR: edge.EdgeVectorParams(size=dense_size, distance=edge.Distance.Cosine)}
            if dense_size
            else None
        )
        self.shard = edge.EdgeShard.create(
            str(self.path),
            edge.EdgeConfig(
                vectors=vectors,
                sparse_vectors={
                    SPARSE_VECTOR: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)
                },
            ),
        )

    def _drop(self) -> None:
        if self.shard is not None:
            self.shard.close()
            self.shard = None
        shutil.rmtree(self.path, ignore_errors=True)

    def _ensure_indexes(self) -> None:
        shard = self._open()
        schema = shard.info().payload_schema
        for field in INDEXED_FIELDS:
            if field not in schema:
                shard.update(
                    edge.UpdateOperation.create_field_index(field, edge.PayloadSchemaType.Keyword)
                )

    def _scan(self, chapters: Sequence[str] | None) -> Iterator[tuple[str, dict[str, object]]]:
        shard = self._open()
        flt = (
            None
            if chapters is None
            else edge.Filter(
                must=[edge.FieldCondition(key="chapter", match=edge.MatchAny(list(chapters)))]
            )
        )
        offset: Any = None
        while True:
            records, offset = shard.scroll(
                edge.ScrollRequest(
                    offset=offset,
                    limit=SCROLL_PAGE,
                    filter=flt,
                    with_payload=["chapter", "embedding_model"],
                    with_vector=False,
                )
            )
            for record in records:
                yield str(record.id), dict(record.payload or {})
            if offset is None:
                return

    def _upsert(self, points: Sequence[NewPoint]) -> None:
        batch = []
        for point in points:
            vector: dict[str, Any] = {SPARSE_VECTOR: _sparse(point.sparse)}
            if point.dense is not None:
                vector[DENSE_VECTOR] = point.dense
            batch.append(edge.Point(id=point.id, vector=vector, payload=point.payload))
        self._open().update(edge.UpdateOperation.upsert_points(batch))

    def _delete(self, ids: Sequence[str]) -> None:
        self._open().update(edge.UpdateOperation.delete_points(list(ids)))

    def ingest(self, path: Path, progress: Callable[[str], None] | None = None) -> IngestReport:
        report = super().ingest(path, progress)
        if not (report.added or report.deleted):
            return report  # nothing written (or no chapter read: maybe no shard at all)
        with self._guard:
            shard = self._open()
        # Edge runs no optimizer in the background (the server does): merge segments, drop
        # deleted points and build indexes now. Searches go on meanwhile (Edge is
        # thread-safe and releases the GIL), so the store's lock is not held.
        try:
            shard.optimize()
        except Exception as exc:  # the data is in; a later ingest optimizes again
            log.warning("Qdrant Edge optimize after ingest failed: %s", exc)
        with self._guard:
            self._open().flush()  # on disk now, not only in the WAL
        return report

    def _query(self, query: Query) -> list[Passage]:
        flt = _filter(query.module, query.chapter)
        if query.dense is not None:
            prefetches = [
                edge.Prefetch(
                    limit=query.depth,
                    filter=flt,
                    query=edge.Query.Nearest(query.dense, using=DENSE_VECTOR),
                )
            ]
            if query.sparse is not None:
                prefetches.append(
                    edge.Prefetch(
                        limit=query.depth,
                        filter=flt,
                        query=edge.Query.Nearest(_sparse(query.sparse), using=SPARSE_VECTOR),
                    )
                )
            # the 0.9.0 stub leaves Fusion.Rrf out of the query types the engine takes
            fusion: Any = edge.Fusion.Rrf(k=RRF_K)
            request = edge.QueryRequest(
                limit=query.limit,
                prefetches=prefetches,
                query=fusion,
                filter=flt,
                with_payload=True,
            )
        else:
            assert query.sparse is not None
            request = edge.QueryRequest(
                limit=query.limit,
                filter=flt,
                with_payload=True,
                query=edge.Query.Nearest(_sparse(query.sparse), using=SPARSE_VECTOR),
            )
        return [passage(str(p.id), p.score, p.payload or {}) for p in self._open().query(request)]

    def _count(self) -> int:
        if self.shard is None:
            return 0
        return int(self.shard.count(edge.CountRequest(exact=True)))

    def _close(self) -> None:
        try:
            if self.shard is not None:
                self.shard.flush()
                self.shard.close()
                self.shard = None
        finally:
            self._release()
