"""The store in server mode (REST + API key), against the lab's Qdrant stand-in.

The real Qdrant binary cannot be had in the lab; labstandins/qdrant serves Qdrant's REST API
over Qdrant Edge. This checks, beyond the tests that run on both engines, that a wrong API key
is reported and that a whole ingest/search/edit cycle survives serialisation over HTTP.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from qdrant_standin import free_port, start, wait_ready
from rag_helpers import STANDIN_API_KEY, record_queries, server_settings

from textbook.core.config import Settings
from textbook.rag.store import StoreError, make_store
from textbook.rag.store_server import READ_ATTEMPTS, ServerStore

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


class DroppingProxy(socketserver.ThreadingTCPServer):
    """A TCP proxy on 127.0.0.1 in front of the stand-in, for what a client sees when Qdrant
    stops while a request is on its way. `cut()` closes every open connection (as a stopping
    server closes its kept-alive ones); the next `drops` connections are closed once a request
    has arrived on them, unanswered (httpx retries only connection attempts, not these).
    Other connections are piped to the stand-in."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drops = self.dropped = 0
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def cut(self, then_drop: int) -> None:
        with self.lock:
            for conn in self.open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            self.drops += then_drop

    def take_drop(self, conn: socket.socket) -> bool:
        with self.lock:
            if self.dropped < self.drops:
                self.dropped += 1
                return True
            self.open.add(conn)
            return False


class ProxyHandler(socketserver.BaseRequestHandler):
    server: DroppingProxy

    def handle(self) -> None:
        client: socket.socket = self.request
        if self.server.take_drop(client):
            client.recv(65536)  # the request arrived ...
            return  # ... and the connection closes without an answer
        with socket.create_connection(self.server.upstream) as upstream:

            def pipe(source: socket.socket, sink: socket.socket) -> None:
                with contextlib.suppress(OSError):
                    while data := source.recv(65536):
                        sink.sendall(data)
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_RDWR)

            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            back.start()
            pipe(client, upstream)
            back.join()


def test_a_read_qdrant_drops_unanswered_is_sent_again(
    server_store: ServerStore, hybrid_settings: Settings, qdrant_url: str, chapters_dir: Path
) -> None:
    """A search, a readiness probe and a count whose connection Qdrant closes before answering
    (it stopped meanwhile) are sent again on a new connection and answered; a read dropped on
    every attempt still ends as the store's error, after READ_ATTEMPTS tries."""
    chunks = server_store.ingest(chapters_dir).chunks
    question = "What is a QoS profile"
    expected = server_store.search(question, limit=3)
    proxy = DroppingProxy(qdrant_url)
    store = make_store(server_settings(hybrid_settings, proxy.url, server_store.collection))
    try:
        proxy.cut(then_drop=1)  # the store's first request: reading the collection's layout
        assert store.search(question, limit=3) == expected
        for read in (
            lambda: store.search(question, limit=3) == expected,  # the layout is cached now
            lambda: store.ready()[0],
            lambda: store.count() == chunks,
        ):
            proxy.cut(then_drop=1)
            assert read()
        assert proxy.dropped == 4
        proxy.cut(then_drop=READ_ATTEMPTS)
        with pytest.raises(StoreError, match="search failed"):
            store.search(question, limit=3)
        assert proxy.dropped == 4 + READ_ATTEMPTS
    finally:
        store.close()
        proxy.shutdown()
        proxy.server_close()
