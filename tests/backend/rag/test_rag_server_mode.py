"""The store in server mode (REST + API key), against the lab's Qdrant stand-in.

The real Qdrant binary cannot be had in the lab; labstandins/qdrant serves Qdrant's REST API
over Qdrant Edge. This checks, beyond the tests that run on both engines, that a wrong API key
is reported and that a whole ingest/search/edit cycle survives serialisation over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_standin import free_port, start, wait_ready
from rag_helpers import STANDIN_API_KEY, record_queries, server_settings

from textbook.core.config import Settings
from textbook.rag.store import make_store
from textbook.rag.store_server import ServerStore

pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")


@pytest.fixture
def server_store(
    hybrid_settings: Settings, qdrant_url: str, request: pytest.FixtureRequest
) -> Iterator[ServerStore]:
    store = make_store(server_settings(hybrid_settings, qdrant_url, f"rag_{request.node.name}"))
    assert isinstance(store, ServerStore)
    try:
        yield store
    finally:
        store.client.delete_collection(store.collection)
        store.close()


def test_wrong_api_key_is_not_ready(hybrid_settings: Settings, qdrant_url: str) -> None:
    store = make_store(
        hybrid_settings.model_copy(
            update={"qdrant_url": qdrant_url, "qdrant_path": None, "qdrant_api_key": None}
        )
    )
    try:
        ok, detail = store.ready()
        assert not ok and detail.startswith("qdrant unreachable"), detail
    finally:
        store.close()


def test_hybrid_ingest_and_search_over_rest(server_store: ServerStore, chapters_dir: Path) -> None:
    assert not server_store.ready()[0]
    first = server_store.ingest(chapters_dir)
    assert first.added == first.chunks > 0
    again = server_store.ingest(chapters_dir)
    assert (again.added, again.unchanged, again.deleted) == (0, first.chunks, 0)
    ok, detail = server_store.ready()
    assert ok and "hybrid" in detail, detail

    calls = record_queries(server_store)
    passages = server_store.search("What is a QoS profile", limit=3)
    assert {p.anchor for p in passages[:2]} == {"quality-of-service", "compatibility"}
    assert calls[0].fusion == "rrf"
    filtered = server_store.search(
        "ROS 2 sensors messages", limit=10, module="Module 2: The Digital Twin"
    )
    assert filtered and {p.chapter for p in filtered} == {"gazebo-simulation"}

    source = chapters_dir / "01-nervous-system.md"
    text = source.read_text(encoding="utf-8")
    source.write_text(text[: text.index("## Services")], encoding="utf-8")
    third = server_store.ingest(chapters_dir)
    assert third.deleted == 2 and third.added == 0  # "Services" and the repeated section
    assert server_store.count() == first.chunks - 2


class CountingClient:
    """The store's QdrantClient, recording the name of each method called (each a request)."""

    def __init__(self, client: object) -> None:
        self._client = client
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: object, **kwargs: object) -> object:
            self.calls.append(name)
            return attr(*args, **kwargs)

        return call


def test_readiness_is_one_request(server_store: ServerStore, chapters_dir: Path) -> None:
    counting = CountingClient(server_store.client)
    server_store.client = counting  # type: ignore[assignment]
    assert server_store.ready() == (
        False,
        "collection 'rag_test_readiness_is_one_request' is missing: run `textbook ingest`",
    )
    assert counting.calls == ["get_collection"]
    server_store.ingest(chapters_dir)
    counting.calls.clear()
    ok, detail = server_store.ready()
    assert ok and "hybrid" in detail, detail
    assert counting.calls == ["get_collection"]


def test_a_qdrant_restart_fails_no_call(
    hybrid_settings: Settings, chapters_dir: Path, tmp_path: Path
) -> None:
    """Connections refused while Qdrant restarts (a config change, an API key rotation) are
    retried with backoff: a call made as the server goes down is answered once it is back."""
    port = free_port()
    config = {
        "service": {"host": "127.0.0.1", "http_port": port, "api_key": STANDIN_API_KEY},
        "storage": {"storage_path": str(tmp_path / "storage")},
    }
    url = f"http://127.0.0.1:{port}"
    first = start(config, tmp_path / "config.yaml")
    wait_ready(url, first)
    store = make_store(server_settings(hybrid_settings, url, "rag_restart"))
    try:
        chunks = store.ingest(chapters_dir).chunks
        first.terminate()
        assert first.wait(timeout=10) == 0
        second = start(config, tmp_path / "config.yaml")  # listening only after its imports
        try:
            assert store.count() == chunks
        finally:
            second.terminate()
            second.wait(timeout=10)
    finally:
        store.close()
