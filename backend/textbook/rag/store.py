"""The textbook's chunks in Qdrant: the `Store` the API uses, and opening it.

Two engines, chosen by the settings, behind the one `Store` protocol:

* `QDRANT_URL` set: a Qdrant server through qdrant-client (`textbook.rag.store_server`). This is
  the production mode; any number of API workers and the `textbook ingest` CLI share it.
* `QDRANT_URL` unset: Qdrant Edge, Qdrant's engine as an in-process library
  (`textbook.rag.store_edge`), in `QDRANT_PATH/edge/<collection>`. ONE process per path: the
  store locks it, and a second process (another gunicorn worker, or the CLI while the
  service runs) gets a StoreError. For development, tests and single-worker installs.

Every point has a sparse vector "bm25" (BM25 term weights, IDF applied by the engine) and,
when an embeddings provider is configured, a dense vector "dense". With both, search runs two
prefetches (dense, bm25) fused by Reciprocal Rank Fusion.

`ChunkStore` holds what both engines share (ingest bookkeeping, the hybrid decision,
readiness); each engine supplies the few primitive operations it declares abstract.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from textbook.core.config import Settings
from textbook.core.readiness import Component, failure_cause
from textbook.rag.chunking import Chunk, chunk_chapter
from textbook.rag.content import load_book
from textbook.rag.embeddings import Embedder, EmbeddingError, make_embedder
from textbook.rag.sparse import SparseVec, encoder_for
from textbook.rag.types import IngestReport, Passage

__all__ = [
    "DENSE_VECTOR",
    "INDEXED_FIELDS",
    "SPARSE_VECTOR",
    "ChunkStore",
    "Layout",
    "Store",
    "StoreError",
    "check_store",
    "make_store",
    "open_store",
]

log = logging.getLogger(__name__)

SPARSE_VECTOR = "bm25"
DENSE_VECTOR = "dense"
INDEXED_FIELDS = ("module", "chapter")
UPSERT_BATCH = 128
# Each branch of a hybrid query contributes this many candidates per requested result.
PREFETCH_FACTOR = 4
MIN_PREFETCH = 20
_ABSENT = object()


class StoreError(RuntimeError):
    """The vector store cannot serve: unreachable, locked, or the collection is missing."""


class Store(Protocol):
    """What the API, the CLI and readiness use of a vector store (tests substitute spies)."""

    def search(
        self, query: str, *, limit: int, module: str | None = None, chapter: str | None = None
    ) -> list[Passage]: ...

    def ingest(self, path: Path, progress: Callable[[str], None] | None = None) -> IngestReport: ...

    def ready(self) -> tuple[bool, str]:
        """(True, detail) when the store can answer searches; else (False, why)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Layout:
    """What the existing collection holds."""

    sparse_ok: bool  # "bm25" present with the IDF modifier
    dense_size: int | None  # size of "dense", None when the collection has none


@dataclass(frozen=True, slots=True)
class NewPoint:
    """One chunk as the engines store it."""

    id: str
    sparse: SparseVec
    dense: list[float] | None
    payload: dict[str, object]


@dataclass(frozen=True, slots=True)
class Query:
    """One search as the engines run it: BM25 alone, or fused with a dense vector."""

    sparse: SparseVec | None
    dense: list[float] | None
    module: str | None
    chapter: str | None
    limit: int
    depth: int  # candidates per prefetch when fusing


def passage(point_id: str, score: float, payload: dict[str, Any]) -> Passage:
    """A search hit as the API returns it."""
    return Passage(
        chunk_id=point_id,
        module=str(payload.get("module", "")),
        chapter=str(payload.get("chapter", "")),
        chapter_title=str(payload.get("chapter_title", "")),
        section=str(payload.get("section", "")),
        anchor=str(payload.get("anchor", "")),
        text=str(payload.get("text", "")),
        score=float(score),
    )


class ChunkStore(ABC):
    """Ingest, search and readiness over one Qdrant collection; engines fill in the storage."""

    engine: str  # how ready() names the engine

    def __init__(self, settings: Settings, guard: AbstractContextManager[Any]) -> None:
        self.settings = settings
        # held around engine calls that must not interleave (a no-op for thread-safe engines)
        self._guard = guard
        self.collection = settings.qdrant_collection
        self.sparse = encoder_for(settings)
        self.embedder: Embedder | None = make_embedder(settings)
        self.embedding_model: str | None = self.embedder.model if self.embedder else None
        self._layout: Layout | None = None

    # --- what an engine provides -------------------------------------------------------

    @abstractmethod
    def _read_layout(self) -> Layout | None:
        """The collection's vectors, or None when there is no collection."""

    @abstractmethod
    def _create(self, dense_size: int | None) -> None:
        """Create the collection (bm25 with IDF, dense when sized) and its payload indexes."""

    @abstractmethod
    def _drop(self) -> None: ...

    @abstractmethod
    def _ensure_indexes(self) -> None:
        """Keyword indexes on INDEXED_FIELDS, when missing."""

    @abstractmethod
    def _scan(self, chapters: Sequence[str] | None) -> Iterator[tuple[str, dict[str, object]]]:
        """(id, payload with "chapter" and "embedding_model") of the points of `chapters`
        (None: every point); may yield points of other chapters too."""

    @abstractmethod
    def _upsert(self, points: Sequence[NewPoint]) -> None: ...

    @abstractmethod
    def _delete(self, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def _query(self, query: Query) -> list[Passage]: ...

    @abstractmethod
    def _count(self) -> int:
        """Points in the collection (0 when there is none)."""

    @abstractmethod
    def _close(self) -> None: ...

    def _stats(self) -> tuple[Layout, int] | None:
        """The layout and point count (None: no collection); engines may do it in one call."""
        layout = self._read_layout()
        return (layout, self._count()) if layout else None

    # --- collection ----------------------------------------------------------------------

    def layout(self) -> Layout | None:
        """What the collection holds now (None: no collection)."""
        with self._guard:
            self._layout = self._read_layout()
            return self._layout

    def _layout_cached(self) -> Layout | None:
        if self._layout is None:
            self._layout = self._read_layout()
        return self._layout

    def ensure_collection(self, *, recreate_if_mismatched: bool = False) -> None:
        """Create the collection (and its payload indexes) when missing.

        With `recreate_if_mismatched`, a collection whose vectors do not match the settings
        (embeddings switched on or off, another vector size) is dropped and created again;
        ingest does this since it rewrites every chunk anyway. Without it a mismatch is kept
        and search uses whatever the collection holds.
        """
        with self._guard:
            self._layout = None
            layout = self._read_layout()
            wanted_dense = None
            if self.embedder is not None and (layout is None or recreate_if_mismatched):
                wanted_dense = self._dense_size()
            if layout is None:
                self._create(wanted_dense)
                log.info("created collection %s (dense=%s)", self.collection, wanted_dense)
            elif recreate_if_mismatched and (
                not layout.sparse_ok or layout.dense_size != wanted_dense
            ):
                log.warning(
                    "collection %s holds dense=%s, settings want dense=%s: recreating",
                    self.collection,
                    layout.dense_size,
                    wanted_dense,
                )
                self._drop()
                self._create(wanted_dense)
            self._ensure_indexes()
            self._layout = self._read_layout()

    def _dense_size(self) -> int:
        assert self.embedder is not None
        try:
            return self.embedder.dimensions()
        except EmbeddingError as exc:
            raise StoreError(str(exc)) from exc

    # --- ingest ----------------------------------------------------------------------------

    def _existing(
        self, chapters: Sequence[str], *, every_chapter: bool = False
    ) -> dict[str, dict[str, object]]:
        """For each chapter slug: its stored point ids and the embedding model of each;
        with `every_chapter`, also for each stored chapter that is not in `chapters`."""
        found: dict[str, dict[str, object]] = {slug: {} for slug in chapters}
        for point_id, payload in self._scan(None if every_chapter else chapters):
            slug = str(payload.get("chapter"))
            bucket = found.setdefault(slug, {}) if every_chapter else found.get(slug)
            if bucket is not None:
                bucket[point_id] = payload.get("embedding_model")
        return found

    def _points(self, chunks: Sequence[Chunk]) -> list[NewPoint]:
        texts = [chunk.search_text for chunk in chunks]
        dense: list[list[float]] | None = None
        if self.embedder is not None:
            try:
                dense = self.embedder.embed(texts)
            except EmbeddingError as exc:
                raise StoreError(str(exc)) from exc
        points = []
        for position, chunk in enumerate(chunks):
            payload: dict[str, object] = dict(chunk.payload())
            payload["embedding_model"] = self.embedding_model
            points.append(
                NewPoint(
                    id=chunk.id,
                    sparse=self.sparse.document(texts[position], heading=chunk.context),
                    dense=dense[position] if dense is not None else None,
                    payload=payload,
                )
            )
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
        report = IngestReport(chapters=len(book.chapters), skipped=book.skipped, notes=book.notes)
        if not book.chapters:
            report.seconds = time.perf_counter() - started
            return report
        self.ensure_collection(recreate_if_mismatched=True)
        slugs = [chapter.slug for chapter in book.chapters]
        prune = path.is_dir() and not book.skipped
        with self._guard:
            stored = self._existing(slugs, every_chapter=prune)
        for chapter in book.chapters:
            chunks = chunk_chapter(
                chapter,
                self.settings.chunk_max_chars,
                heading_context=self.settings.chunk_heading_context,
                index_key=self.sparse.signature,
            )
            existing = stored[chapter.slug]
            fresh = [c for c in chunks if existing.get(c.id, _ABSENT) != self.embedding_model]
            for start in range(0, len(fresh), UPSERT_BATCH):
                points = self._points(fresh[start : start + UPSERT_BATCH])  # embeds: unlocked
                with self._guard:
                    self._upsert(points)
            current = {c.id for c in chunks}
            gone = [i for i in existing if i not in current]
            if gone:  # after the upsert: a section is never briefly missing
                with self._guard:
                    self._delete(gone)
            report.chunks += len(chunks)
            report.added += len(fresh)
            report.unchanged += len(chunks) - len(fresh)
            report.deleted += len(gone)
            if progress is not None:
                progress(
                    f"{chapter.slug}: {len(chunks)} chunks, {len(fresh)} added, "
                    f"{len(chunks) - len(fresh)} unchanged, {len(gone)} deleted"
                )
        removed = sorted(stored.keys() - set(slugs)) if prune else []
        for slug in removed:  # after the book is written, as with sections above
            ids = list(stored[slug])
            with self._guard:
                self._delete(ids)
            report.deleted += len(ids)
            if progress is not None:
                progress(f"{slug}: no longer in {path}, {len(ids)} chunks deleted")
        report.seconds = time.perf_counter() - started
        return report

    # --- search ----------------------------------------------------------------------------

    def _query_dense(self, query: str, layout: Layout) -> list[float] | None:
        """The query's embedding when hybrid search is possible, else None (BM25 alone)."""
        if self.embedder is None or layout.dense_size is None:
            return None
        try:
            vector = self.embedder.embed_query(query)
        except EmbeddingError as exc:
            log.warning("hybrid search degraded to BM25: %s", exc)
            return None
        if len(vector) != layout.dense_size:
            log.warning(
                "query embedding has %d dimensions, collection %d: BM25 only; re-run ingest",
                len(vector),
                layout.dense_size,
            )
            return None
        return vector

    def search(
        self, query: str, *, limit: int, module: str | None = None, chapter: str | None = None
    ) -> list[Passage]:
        """The best `limit` passages for `query`, optionally within one module/chapter."""
        with self._guard:
            try:
                layout = self._layout_cached()
            except Exception as exc:
                raise StoreError(f"qdrant unreachable: {type(exc).__name__}: {exc}") from exc
        if layout is None:
            raise StoreError(f"collection {self.collection!r} is missing: run `textbook ingest`")
        sparse = self.sparse.query(query)
        dense = self._query_dense(query, layout)  # may call the embeddings API: unlocked
        if dense is None and not sparse:
            return []  # only stopwords and no embeddings: nothing to match on
        request = Query(
            sparse=sparse or None,
            dense=dense,
            module=module or None,
            chapter=chapter or None,
            limit=limit,
            depth=max(MIN_PREFETCH, limit * PREFETCH_FACTOR),
        )
        with self._guard:
            try:
                return self._query(request)
            except Exception as exc:
                self._layout = None  # the collection may have been recreated elsewhere
                raise StoreError(f"search failed: {type(exc).__name__}: {exc}") from exc

    @property
    def hybrid(self) -> bool:
        """Whether searches fuse dense and sparse results (embeddings configured and stored)."""
        with self._guard:
            layout = self._layout_cached()
        return self.embedder is not None and layout is not None and layout.dense_size is not None

    # --- health and maintenance --------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        """(True, detail) when Qdrant answers and the collection holds chunks."""
        try:
            with self._guard:
                stats = self._stats()
                self._layout = stats[0] if stats else None
        except Exception as exc:
            return False, f"qdrant unreachable: {type(exc).__name__}"
        if stats is None:
            return False, f"collection {self.collection!r} is missing: run `textbook ingest`"
        layout, points = stats
        if points == 0:
            return False, f"collection {self.collection!r} is empty: run `textbook ingest`"
        mode = "hybrid" if self.embedder is not None and layout.dense_size else "bm25"
        detail = f"collection {self.collection!r} ({self.engine}): {points} chunks, {mode} search"
        if self.embedder is not None and layout.dense_size is None:
            detail += " (embeddings configured but not stored: re-run `textbook ingest`)"
        return True, detail

    def count(self) -> int:
        with self._guard:
            return self._count()

    def chunk_ids(self) -> set[str]:
        """Every stored point id (tests and maintenance); none without a collection."""
        with self._guard:
            if self._read_layout() is None:
                return set()
            return {point_id for point_id, _ in self._scan(None)}

    def close(self) -> None:
        with self._guard:
            self._close()
        if self.embedder is not None:
            self.embedder.close()


def make_store(settings: Settings) -> ChunkStore:
    """The store the settings ask for; StoreError when it cannot be opened."""
    # Imported here: each engine loads only its own library (qdrant-client takes ~0.5 s).
    if settings.qdrant_url is not None:
        from textbook.rag.store_server import ServerStore

        return ServerStore(settings)
    from textbook.rag.store_edge import EdgeStore

    return EdgeStore(settings)


def open_store(settings: Settings) -> Store | None:
    """The vector store, or None (readiness then reports why) when it cannot be opened."""
    try:
        return make_store(settings)
    except Exception:
        log.exception("vector store could not be opened")
        return None


def check_store(store: Store | None) -> Component:
    """Readiness of the vector store (GET /api/v1/health, `textbook check`)."""
    if store is None:
        return Component(False, "vector store not opened")
    try:
        ok, detail = store.ready()
    except Exception as exc:
        return Component(False, "unreachable", failure_cause(exc))
    return Component(ok, detail)
