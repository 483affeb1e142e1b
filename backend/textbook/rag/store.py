"""The Qdrant collection that holds the textbook's chunks: ingest, search, readiness.

Two deployment modes, chosen by the settings:

* server mode (`QDRANT_URL` set): `QdrantClient(url=..., api_key=...)`. This is the
  production mode; any number of API workers and the `textbook ingest` CLI share it.
* embedded/local mode (`QDRANT_URL` unset, `QDRANT_PATH` a directory): qdrant-client keeps
  the collection in-process and locks the directory. ONE process per directory: a second
  process (another gunicorn worker, or the CLI while the service runs) fails to open it.
  Embedded mode is therefore for development, tests and single-worker installs; run
  gunicorn with one worker there, and ingest through the running service or with it stopped.
  Local mode also ignores payload indexes and searches by brute force.

Every point has a sparse vector "bm25" (BM25 term weights, IDF applied by Qdrant via
`Modifier.IDF`) and, when an embeddings provider is configured, a dense vector "dense".
With both, search runs the Query API with two prefetches fused by Reciprocal Rank Fusion.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from textbook.core.config import Settings
from textbook.rag.chunking import Chunk, chunk_chapter
from textbook.rag.content import load_book
from textbook.rag.embeddings import Embedder, EmbeddingError, make_embedder
from textbook.rag.sparse import SparseVec, document_vector, query_vector
from textbook.rag.types import IngestReport, Passage

__all__ = ["DENSE_VECTOR", "INDEXED_FIELDS", "SPARSE_VECTOR", "StoreError", "VectorStore"]

log = logging.getLogger(__name__)

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
INDEXED_FIELDS = ("module", "chapter")
UPSERT_BATCH = 128
SCROLL_PAGE = 4096
FILTERED_SCROLL_MAX_CHAPTERS = 8
# Each branch of a hybrid query contributes this many candidates per requested result.
PREFETCH_FACTOR = 4
MIN_PREFETCH = 20
SERVER_TIMEOUT_SECONDS = 10
_ABSENT = object()


class StoreError(RuntimeError):
    """The vector store cannot serve: unreachable, or the collection is missing."""


@dataclass(frozen=True, slots=True)
class _Layout:
    """What the existing collection holds."""

    sparse_ok: bool  # "bm25" present with the IDF modifier
    dense_size: int | None  # size of "dense", None when the collection has none


def _sparse(vector: SparseVec) -> models.SparseVector:
    return models.SparseVector(indices=vector.indices, values=vector.values)


class VectorStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.collection = settings.qdrant_collection
        self.local = settings.qdrant_url is None
        if self.local:
            if settings.qdrant_path is None:
                raise StoreError("QDRANT_PATH is required when QDRANT_URL is not set")
            settings.qdrant_path.mkdir(parents=True, exist_ok=True)
            try:
                self.client = QdrantClient(path=str(settings.qdrant_path))
            except RuntimeError as exc:
                raise StoreError(
                    f"{exc} Embedded Qdrant serves one process per QDRANT_PATH: run a single "
                    "worker, or set QDRANT_URL to a Qdrant server.") from exc
        else:
            api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key \
                else None
            # No version probe at construction: startup must not block on a down server;
            # ready() reports reachability.
            self.client = QdrantClient(url=settings.qdrant_url, api_key=api_key,
                                       timeout=SERVER_TIMEOUT_SECONDS,
                                       check_compatibility=False)
        self.embedder: Embedder | None = make_embedder(settings)
        self.embedding_model: str | None = self.embedder.model if self.embedder else None
        # The local client is plain Python state; the server client is thread-safe.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.local else contextlib.nullcontext())
        self._layout: _Layout | None = None

    # --- collection ---------------------------------------------------------------------

    def _read_layout(self) -> _Layout | None:
        if not self.client.collection_exists(self.collection):
            return None
        params = self.client.get_collection(self.collection).config.params
        sparse = params.sparse_vectors or {}
        bm25 = sparse.get(SPARSE_VECTOR)
        vectors = params.vectors
        dense = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        return _Layout(sparse_ok=bm25 is not None and bm25.modifier == models.Modifier.IDF,
                       dense_size=dense.size if dense is not None else None)

    def _layout_cached(self) -> _Layout | None:
        if self._layout is None:
            self._layout = self._read_layout()
        return self._layout

    def _create(self, dense_size: int | None) -> None:
        vectors = ({DENSE_VECTOR: models.VectorParams(size=dense_size,
                                                      distance=models.Distance.COSINE)}
                   if dense_size else {})
        self.client.create_collection(
            self.collection, vectors_config=vectors,
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(
                modifier=models.Modifier.IDF)})
        log.info("created collection %s (dense=%s)", self.collection, dense_size)

    def _ensure_indexes(self) -> None:
        schema = self.client.get_collection(self.collection).payload_schema or {}
        with warnings.catch_warnings():
            # Local mode warns that payload indexes have no effect there; the server uses them.
            warnings.simplefilter("ignore", UserWarning)
            for field in INDEXED_FIELDS:
                if field not in schema:
                    self.client.create_payload_index(
                        self.collection, field_name=field,
                        field_schema=models.PayloadSchemaType.KEYWORD, wait=True)

    def ensure_collection(self, *, recreate_if_mismatched: bool = False) -> None:
        """Create the collection (and its payload indexes) when missing.

        With `recreate_if_mismatched`, a collection whose vectors do not match the settings
        (embeddings switched on or off, another vector size) is dropped and created again;
        ingest does this since it rewrites every chunk anyway. Without it a mismatch is kept
        and search uses whatever the collection holds.
        """
        with self._lock:
            self._layout = None
            layout = self._read_layout()
            wanted_dense = None
            if self.embedder is not None and (layout is None or recreate_if_mismatched):
                wanted_dense = self._dense_size()
            if layout is None:
                self._create(wanted_dense)
            elif recreate_if_mismatched and (not layout.sparse_ok
                                             or layout.dense_size != wanted_dense):
                log.warning("collection %s holds dense=%s, settings want dense=%s: recreating",
                            self.collection, layout.dense_size, wanted_dense)
                self.client.delete_collection(self.collection)
                self._create(wanted_dense)
            self._ensure_indexes()
            self._layout = self._read_layout()

    def _dense_size(self) -> int:
        assert self.embedder is not None
        try:
            return self.embedder.dimensions()
        except EmbeddingError as exc:
            raise StoreError(str(exc)) from exc

    # --- ingest -------------------------------------------------------------------------

    def _existing(self, chapters: Sequence[str], *,
                  every_chapter: bool = False) -> dict[str, dict[str, object]]:
        """For each chapter slug: its stored point ids and the embedding model of each;
        with `every_chapter`, also for each stored chapter that is not in `chapters`.

        One scroll. A few chapters are selected by a filter; many (or every chapter) are
        bucketed here from an unfiltered scroll, since local mode checks a filter against
        every point in Python (a per-chapter or many-valued filter turns quadratic).
        """
        found: dict[str, dict[str, object]] = {slug: {} for slug in chapters}
        flt = models.Filter(must=[models.FieldCondition(
            key="chapter", match=models.MatchAny(any=list(chapters)))]) \
            if len(chapters) <= FILTERED_SCROLL_MAX_CHAPTERS and not every_chapter else None
        offset: Any = None
        while True:
            points, offset = self.client.scroll(
                self.collection, scroll_filter=flt, limit=SCROLL_PAGE, offset=offset,
                with_payload=["chapter", "embedding_model"], with_vectors=False)
            for point in points:
                payload = point.payload or {}
                slug = str(payload.get("chapter"))
                bucket = found.setdefault(slug, {}) if every_chapter else found.get(slug)
                if bucket is not None:
                    bucket[str(point.id)] = payload.get("embedding_model")
            if offset is None:
                return found

    def _points(self, chunks: Sequence[Chunk]) -> list[models.PointStruct]:
        texts = [chunk.search_text for chunk in chunks]
        dense: list[list[float]] | None = None
        if self.embedder is not None:
            try:
                dense = self.embedder.embed(texts)
            except EmbeddingError as exc:
                raise StoreError(str(exc)) from exc
        points = []
        for position, chunk in enumerate(chunks):
            vector: dict[str, Any] = {SPARSE_VECTOR: _sparse(document_vector(texts[position]))}
            if dense is not None:
                vector[DENSE_VECTOR] = dense[position]
            payload = chunk.payload()
            payload["embedding_model"] = self.embedding_model
            points.append(models.PointStruct(id=chunk.id, vector=vector, payload=payload))
        return points

    def ingest(self, path: Path, progress: Callable[[str], None] | None = None) -> IngestReport:
        """Bring the collection in line with the chapters under `path`.

        Chunks whose id is already stored (with the current embedding model) are left alone;
        new ones are upserted; stored chunks of the ingested chapters that no longer exist
        are deleted. When `path` is a folder, it is the whole book: chapters stored but no
        longer in it are deleted too, unless a file was skipped (it may be one of them).
        A single file leaves the other chapters alone. Nothing is written when no chapter
        could be read (`report.chapters == 0`); files left out are in `report.skipped`.
        """
        started = time.perf_counter()
        book = load_book(path)
        report = IngestReport(chapters=len(book.chapters), skipped=book.skipped,
                              notes=book.notes)
        if not book.chapters:
            report.seconds = time.perf_counter() - started
            return report
        self.ensure_collection(recreate_if_mismatched=True)
        slugs = [chapter.slug for chapter in book.chapters]
        prune = path.is_dir() and not book.skipped
        with self._lock:
            stored = self._existing(slugs, every_chapter=prune)
        for chapter in book.chapters:
            chunks = chunk_chapter(chapter)
            existing = stored[chapter.slug]
            with self._lock:
                fresh = [c for c in chunks
                         if existing.get(c.id, _ABSENT) != self.embedding_model]
                for start in range(0, len(fresh), UPSERT_BATCH):
                    self.client.upsert(self.collection,
                                       points=self._points(fresh[start : start + UPSERT_BATCH]),
                                       wait=True)
                current = {c.id for c in chunks}
                gone: list[models.ExtendedPointId] = [i for i in existing if i not in current]
                if gone:  # after the upsert: a section is never briefly missing
                    self.client.delete(self.collection,
                                       points_selector=models.PointIdsList(points=gone),
                                       wait=True)
            report.chunks += len(chunks)
            report.added += len(fresh)
            report.unchanged += len(chunks) - len(fresh)
            report.deleted += len(gone)
            if progress is not None:
                progress(f"{chapter.slug}: {len(chunks)} chunks, {len(fresh)} added, "
                         f"{len(chunks) - len(fresh)} unchanged, {len(gone)} deleted")
        removed = sorted(stored.keys() - set(slugs)) if prune else []
        for slug in removed:  # after the book is written, as with sections above
            ids: list[models.ExtendedPointId] = list(stored[slug])
            with self._lock:
                self.client.delete(self.collection,
                                   points_selector=models.PointIdsList(points=ids), wait=True)
            report.deleted += len(ids)
            if progress is not None:
                progress(f"{slug}: no longer in {path}, {len(ids)} chunks deleted")
        report.seconds = time.perf_counter() - started
        return report

    # --- search -------------------------------------------------------------------------

    @staticmethod
    def _filter(module: str | None, chapter: str | None) -> models.Filter | None:
        conditions: list[models.Condition] = [
            models.FieldCondition(key=key, match=models.MatchValue(value=value))
            for key, value in (("module", module), ("chapter", chapter)) if value]
        return models.Filter(must=conditions) if conditions else None

    def _query_dense(self, query: str, layout: _Layout) -> list[float] | None:
        """The query's embedding when hybrid search is possible, else None (BM25 alone)."""
        if self.embedder is None or layout.dense_size is None:
            return None
        try:
            vector = self.embedder.embed_query(query)
        except EmbeddingError as exc:
            log.warning("hybrid search degraded to BM25: %s", exc)
            return None
        if len(vector) != layout.dense_size:
            log.warning("query embedding has %d dimensions, collection %d: BM25 only; "
                        "re-run ingest", len(vector), layout.dense_size)
            return None
        return vector

    def search(self, query: str, *, limit: int, module: str | None = None,
               chapter: str | None = None) -> list[Passage]:
        """The best `limit` passages for `query`, optionally within one module/chapter."""
        with self._lock:
            try:
                layout = self._layout_cached()
            except Exception as exc:
                raise StoreError(f"qdrant unreachable: {type(exc).__name__}: {exc}") from exc
            if layout is None:
                raise StoreError(f"collection {self.collection!r} is missing: run "
                                 "`textbook ingest`")
            flt = self._filter(module, chapter)
            sparse = query_vector(query)
            dense = self._query_dense(query, layout)
            try:
                if dense is not None:
                    depth = max(MIN_PREFETCH, limit * PREFETCH_FACTOR)
                    prefetch = [models.Prefetch(query=dense, using=DENSE_VECTOR, filter=flt,
                                                limit=depth)]
                    if sparse:
                        prefetch.append(models.Prefetch(query=_sparse(sparse),
                                                        using=SPARSE_VECTOR, filter=flt,
                                                        limit=depth))
                    response = self.client.query_points(
                        self.collection, prefetch=prefetch,
                        query=models.FusionQuery(fusion=models.Fusion.RRF),
                        query_filter=flt, limit=limit, with_payload=True)
                elif sparse:
                    response = self.client.query_points(
                        self.collection, query=_sparse(sparse), using=SPARSE_VECTOR,
                        query_filter=flt, limit=limit, with_payload=True)
                else:
                    return []  # only stopwords and no embeddings: nothing to match on
            except Exception as exc:
                self._layout = None  # the collection may have been recreated elsewhere
                raise StoreError(f"search failed: {type(exc).__name__}: {exc}") from exc
        return [self._passage(point) for point in response.points]

    @staticmethod
    def _passage(point: models.ScoredPoint) -> Passage:
        payload = point.payload or {}
        return Passage(chunk_id=str(point.id), module=str(payload.get("module", "")),
                       chapter=str(payload.get("chapter", "")),
                       chapter_title=str(payload.get("chapter_title", "")),
                       section=str(payload.get("section", "")),
                       anchor=str(payload.get("anchor", "")),
                       text=str(payload.get("text", "")), score=float(point.score))

    @property
    def hybrid(self) -> bool:
        """Whether searches fuse dense and sparse results (embeddings configured and stored)."""
        with self._lock:
            layout = self._layout_cached()
        return self.embedder is not None and layout is not None and layout.dense_size is not None

    # --- health -------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """(True, detail) when Qdrant answers and the collection holds chunks."""
        try:
            with self._lock:
                layout = self._read_layout()
                self._layout = layout
                points = self.client.count(self.collection, exact=False).count if layout \
                    else 0
        except Exception as exc:
            return False, f"qdrant unreachable: {type(exc).__name__}"
        if layout is None:
            return False, f"collection {self.collection!r} is missing: run `textbook ingest`"
        if points == 0:
            return False, f"collection {self.collection!r} is empty: run `textbook ingest`"
        mode = "hybrid" if self.embedder is not None and layout.dense_size else "bm25"
        detail = f"collection {self.collection!r}: {points} chunks, {mode} search"
        if self.embedder is not None and layout.dense_size is None:
            detail += " (embeddings configured but not stored: re-run `textbook ingest`)"
        return True, detail

    def count(self) -> int:
        with self._lock:
            if not self.client.collection_exists(self.collection):
                return 0
            return int(self.client.count(self.collection, exact=True).count)

    def chunk_ids(self) -> set[str]:
        """Every stored point id (tests and maintenance)."""
        ids: set[str] = set()
        offset: Any = None
        with self._lock:
            while True:
                points, offset = self.client.scroll(self.collection, limit=SCROLL_PAGE,
                                                    offset=offset, with_payload=False,
                                                    with_vectors=False)
                ids.update(str(point.id) for point in points)
                if offset is None:
                    return ids

    def close(self) -> None:
        with self._lock:
            self.client.close()
        if self.embedder is not None:
            self.embedder.close()
