"""Hybrid retrieval: dense embeddings from a local OpenAI-compatible server + BM25, fused by RRF."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import models
from rag_helpers import (
    DEFAULT_FAKE_DIMENSIONS,
    EMBED_FAIL_MARKER,
    FakeEmbeddingsServer,
    spy_calls,
)

from textbook.core.config import Settings
from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import load_chapters
from textbook.rag.store import DENSE_VECTOR, SPARSE_VECTOR, VectorStore


@pytest.fixture
def store(hybrid_settings: Settings) -> Iterator[VectorStore]:
    vector_store = VectorStore(hybrid_settings)
    yield vector_store
    vector_store.close()


def _spy_queries(store: VectorStore) -> list[dict[str, Any]]:
    return spy_calls(store.client, "query_points")


def test_ingest_stores_dense_vectors_sized_by_the_first_embedding(
        store: VectorStore, chapters_dir: Path, embeddings_server: FakeEmbeddingsServer) -> None:
    report = store.ingest(chapters_dir)
    assert report.added == len(chunk_chapters(load_chapters(chapters_dir)))
    params = store.client.get_collection(store.collection).config.params
    assert isinstance(params.vectors, dict)
    assert params.vectors[DENSE_VECTOR].size == DEFAULT_FAKE_DIMENSIONS
    assert params.sparse_vectors is not None
    assert params.sparse_vectors[SPARSE_VECTOR].modifier == models.Modifier.IDF
    point = store.client.retrieve(store.collection, [next(iter(store.chunk_ids()))],
                                  with_vectors=True)[0]
    assert isinstance(point.vector, dict)
    dense = point.vector[DENSE_VECTOR]
    assert isinstance(dense, list) and len(dense) == DEFAULT_FAKE_DIMENSIONS
    assert point.payload is not None
    assert point.payload["embedding_model"] == "text-embedding-3-small"
    assert {r["model"] for r in embeddings_server.requests} == {"text-embedding-3-small"}
    assert {r["encoding_format"] for r in embeddings_server.requests} == {"float"}
    # Unchanged content: nothing re-embedded on the second run.
    before = len(embeddings_server.requests)
    again = store.ingest(chapters_dir)
    assert (again.added, again.deleted) == (0, 0)
    # One probe request for the vector size; no chunk is embedded again.
    assert [r["count"] for r in embeddings_server.requests[before:]] == [1]


def test_search_fuses_dense_and_bm25_prefetches_with_rrf(store: VectorStore,
                                                         chapters_dir: Path) -> None:
    store.ingest(chapters_dir)
    assert store.hybrid
    calls = _spy_queries(store)
    passages = store.search("What is a QoS profile", limit=3)
    # The fake dense model ranks the short QoS subsection first, BM25 the QoS section: RRF
    # puts the two QoS sections on top, in either order.
    assert {p.anchor for p in passages[:2]} == {"quality-of-service", "compatibility"}
    (call,) = calls
    assert isinstance(call["query"], models.FusionQuery)
    assert call["query"].fusion == models.Fusion.RRF
    assert sorted(p.using for p in call["prefetch"]) == sorted([DENSE_VECTOR, SPARSE_VECTOR])
    assert all(p.limit >= 3 for p in call["prefetch"])


def test_hybrid_filters_restrict_both_branches(store: VectorStore, chapters_dir: Path) -> None:
    store.ingest(chapters_dir)
    calls = _spy_queries(store)
    passages = store.search("ROS 2 sensors messages", limit=10, chapter="gazebo-simulation")
    assert passages and {p.chapter for p in passages} == {"gazebo-simulation"}
    assert all(p.filter is not None for p in calls[0]["prefetch"])


def test_configured_dimensions_are_requested(hybrid_settings: Settings, chapters_dir: Path,
                                             embeddings_server: FakeEmbeddingsServer) -> None:
    store = VectorStore(hybrid_settings.model_copy(update={"embedding_dimensions": 32}))
    try:
        store.ingest(chapters_dir)
        params = store.client.get_collection(store.collection).config.params
        assert isinstance(params.vectors, dict) and params.vectors[DENSE_VECTOR].size == 32
        assert {r["dimensions"] for r in embeddings_server.requests} == {32}
    finally:
        store.close()


def test_embedding_failure_at_query_time_falls_back_to_bm25(store: VectorStore,
                                                             chapters_dir: Path) -> None:
    store.ingest(chapters_dir)
    calls = _spy_queries(store)
    passages = store.search(f"QoS profile {EMBED_FAIL_MARKER}", limit=3)
    assert passages[0].anchor == "quality-of-service"
    (call,) = calls
    assert call.get("prefetch") is None and call["using"] == SPARSE_VECTOR


def test_enabling_embeddings_rebuilds_a_bm25_only_collection(
        sparse_settings: Settings, hybrid_settings: Settings, chapters_dir: Path) -> None:
    path_settings = hybrid_settings.model_copy(update={"qdrant_path": sparse_settings.qdrant_path})
    sparse_store = VectorStore(sparse_settings)
    expected = sparse_store.ingest(chapters_dir).added
    sparse_store.close()

    hybrid_store = VectorStore(path_settings)
    try:
        assert not hybrid_store.hybrid
        ok, detail = hybrid_store.ready()
        assert ok and "re-run `textbook ingest`" in detail
        report = hybrid_store.ingest(chapters_dir)
        assert report.added == expected and hybrid_store.count() == expected
        assert hybrid_store.hybrid
    finally:
        hybrid_store.close()
