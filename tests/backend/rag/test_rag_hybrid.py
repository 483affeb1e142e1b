"""Hybrid retrieval: dense embeddings from a local OpenAI-compatible server + BM25, fused by RRF,
on both engines (Qdrant Edge embedded, a Qdrant server over REST)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rag_helpers import (
    DEFAULT_FAKE_DIMENSIONS,
    EMBED_FAIL_MARKER,
    FakeEmbeddingsServer,
    record_queries,
    stored_point,
)

from conftest import settings_on_engine
from textbook.core.config import Settings
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import load_chapters
from textbook.rag.store import DENSE_VECTOR, SPARSE_VECTOR, ChunkStore, Layout, make_store

# the server engine talks plain HTTP to the stand-in on loopback
pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")


@pytest.fixture
def engine_hybrid_settings(
    engine: str, hybrid_settings: Settings, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    yield from settings_on_engine(engine, hybrid_settings, request, "h")


@pytest.fixture
def store(engine_hybrid_settings: Settings) -> Iterator[ChunkStore]:
    vector_store = make_store(engine_hybrid_settings)
    yield vector_store
    vector_store.close()


def test_ingest_stores_dense_vectors_sized_by_the_first_embedding(
    store: ChunkStore, chapters_dir: Path, embeddings_server: FakeEmbeddingsServer
) -> None:
    report = store.ingest(chapters_dir)
    assert report.added == len(chunk_chapters(load_chapters(chapters_dir)))
    assert store.layout() == Layout(sparse_ok=True, dense_size=DEFAULT_FAKE_DIMENSIONS)
    vectors, payload = stored_point(store, next(iter(store.chunk_ids())))
    dense = vectors[DENSE_VECTOR]
    assert isinstance(dense, list) and len(dense) == DEFAULT_FAKE_DIMENSIONS
    assert SPARSE_VECTOR in vectors
    assert payload["embedding_model"] == "text-embedding-3-small"
    assert {r["model"] for r in embeddings_server.requests} == {"text-embedding-3-small"}
    assert {r["encoding_format"] for r in embeddings_server.requests} == {"float"}
    # Unchanged content: nothing re-embedded on the second run.
    before = len(embeddings_server.requests)
    again = store.ingest(chapters_dir)
    assert (again.added, again.deleted) == (0, 0)
    # One probe request for the vector size; no chunk is embedded again.
    assert [r["count"] for r in embeddings_server.requests[before:]] == [1]


def test_search_fuses_dense_and_bm25_prefetches_with_rrf(
    store: ChunkStore, chapters_dir: Path
) -> None:
    store.ingest(chapters_dir)
    assert store.hybrid
    calls = record_queries(store)
    passages = store.search("What is a QoS profile", limit=3)
    # The fake dense model ranks the short QoS subsection first, BM25 the QoS section: RRF
    # puts the two QoS sections on top, in either order.
    assert {p.anchor for p in passages[:2]} == {"quality-of-service", "compatibility"}
    (call,) = calls
    assert call.fusion == "rrf"
    assert sorted(call.using) == sorted([DENSE_VECTOR, SPARSE_VECTOR])


def test_hybrid_filters_restrict_both_branches(store: ChunkStore, chapters_dir: Path) -> None:
    store.ingest(chapters_dir)
    calls = record_queries(store)
    passages = store.search("ROS 2 sensors messages", limit=10, chapter="gazebo-simulation")
    assert passages and {p.chapter for p in passages} == {"gazebo-simulation"}
    assert calls[0].fusion == "rrf" and calls[0].filtered == [True, True]


def test_configured_dimensions_are_requested(
    engine_hybrid_settings: Settings, chapters_dir: Path, embeddings_server: FakeEmbeddingsServer
) -> None:
    store = make_store(engine_hybrid_settings.model_copy(update={"embedding_dimensions": 32}))
    try:
        store.ingest(chapters_dir)
        assert store.layout() == Layout(sparse_ok=True, dense_size=32)
        assert {r["dimensions"] for r in embeddings_server.requests} == {32}
    finally:
        store.close()


def test_embedding_failure_at_query_time_falls_back_to_bm25(
    store: ChunkStore, chapters_dir: Path
) -> None:
    store.ingest(chapters_dir)
    calls = record_queries(store)
    passages = store.search(f"QoS profile {EMBED_FAIL_MARKER}", limit=3)
    assert passages[0].anchor == "quality-of-service"
    (call,) = calls
    assert call.fusion is None and call.using == [SPARSE_VECTOR]


def test_enabling_embeddings_rebuilds_a_bm25_only_collection(
    sparse_settings: Settings, hybrid_settings: Settings, chapters_dir: Path
) -> None:
    path_settings = hybrid_settings.model_copy(update={"qdrant_path": sparse_settings.qdrant_path})
    sparse_store = make_store(sparse_settings)
    expected = sparse_store.ingest(chapters_dir).added
    sparse_store.close()

    hybrid_store = make_store(path_settings)
    try:
        assert not hybrid_store.hybrid
        ok, detail = hybrid_store.ready()
        assert ok and "re-run `textbook ingest`" in detail
        report = hybrid_store.ingest(chapters_dir)
        assert report.added == expected and hybrid_store.count() == expected
        assert hybrid_store.hybrid
    finally:
        hybrid_store.close()
