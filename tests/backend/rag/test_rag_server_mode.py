"""VectorStore in server mode (REST + API key), against the lab's Qdrant stand-in.

The real Qdrant binary cannot be had in the lab; labstandins/qdrant serves Qdrant's REST API
over qdrant-client's local mode. This checks what local mode cannot: that every request the
store makes (prefetch fusion, sparse vectors, MatchAny filters, scroll paging, API key)
survives serialisation over HTTP.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from pydantic import SecretStr
from qdrant_client import models
from rag_helpers import spy_calls

from textbook.core.config import Settings
from textbook.rag.store import VectorStore

STANDIN = Path(__file__).resolve().parents[3] / "labstandins" / "qdrant" / "qdrant_labstandin.py"
API_KEY = "rag-test-key-not-a-secret-0123456789"
pytestmark = [
    pytest.mark.skipif(not STANDIN.exists(), reason="labstandins/qdrant is not in this checkout"),
    pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection"),
]


@pytest.fixture(scope="module")
def qdrant_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("qdrant-server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "service": {"host": "127.0.0.1", "http_port": port, "api_key": API_KEY},
        "storage": {"storage_path": str(root / "storage")}, "telemetry_disabled": True}))
    proc = subprocess.Popen([sys.executable, str(STANDIN), "--config-path", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode() if proc.stdout else ""
                pytest.fail(f"qdrant stand-in exited with {proc.returncode}: {out}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("qdrant stand-in not ready in 30 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def server_store(hybrid_settings: Settings, qdrant_url: str,
                 request: pytest.FixtureRequest) -> Iterator[VectorStore]:
    collection = f"rag_{request.node.name}"[:60]
    store = VectorStore(hybrid_settings.model_copy(update={
        "qdrant_url": qdrant_url, "qdrant_path": None, "qdrant_collection": collection,
        "qdrant_api_key": SecretStr(API_KEY)}))
    try:
        yield store
    finally:
        store.client.delete_collection(collection)
        store.close()


def test_wrong_api_key_is_not_ready(hybrid_settings: Settings, qdrant_url: str) -> None:
    store = VectorStore(hybrid_settings.model_copy(update={
        "qdrant_url": qdrant_url, "qdrant_path": None, "qdrant_api_key": None}))
    try:
        ok, detail = store.ready()
        assert not ok and detail.startswith("qdrant unreachable"), detail
    finally:
        store.close()


def test_hybrid_ingest_and_search_over_rest(server_store: VectorStore,
                                            chapters_dir: Path) -> None:
    assert not server_store.local
    assert not server_store.ready()[0]
    first = server_store.ingest(chapters_dir)
    assert first.added == first.chunks > 0
    again = server_store.ingest(chapters_dir)
    assert (again.added, again.unchanged, again.deleted) == (0, first.chunks, 0)
    ok, detail = server_store.ready()
    assert ok and "hybrid" in detail, detail

    calls = spy_calls(server_store.client, "query_points")
    passages = server_store.search("What is a QoS profile", limit=3)
    assert {p.anchor for p in passages[:2]} == {"quality-of-service", "compatibility"}
    assert isinstance(calls[0]["query"], models.FusionQuery)
    filtered = server_store.search("ROS 2 sensors messages", limit=10,
                                   module="Module 2: The Digital Twin")
    assert filtered and {p.chapter for p in filtered} == {"gazebo-simulation"}

    source = chapters_dir / "01-nervous-system.md"
    text = source.read_text(encoding="utf-8")
    source.write_text(text[: text.index("## Services")], encoding="utf-8")
    third = server_store.ingest(chapters_dir)
    assert third.deleted == 2 and third.added == 0  # "Services" and the repeated section
    assert server_store.count() == first.chunks - 2
