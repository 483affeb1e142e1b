"""Fixtures for the retrieval tests: fixture chapters copied to tmp_path, embedded (Qdrant Edge)
settings, the lab's Qdrant stand-in as a server, and `engine_settings` for tests that run
against both engines."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from qdrant_standin import STANDIN, free_port, start, wait_ready
from rag_helpers import (
    FIXTURE_CHAPTERS,
    FIXTURE_DOCUSAURUS,
    STANDIN_API_KEY,
    FakeEmbeddingsServer,
    embeddings_app,
    settings_on_engine,
)

from textbook.core.config import Settings

ENGINES = ("edge", "server")


@pytest.fixture
def chapters_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture chapters (ingest tests edit them)."""
    target = tmp_path / "chapters"
    shutil.copytree(FIXTURE_CHAPTERS, target)
    return target


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    """A writable copy of the Docusaurus fixture folder."""
    target = tmp_path / "docs"
    shutil.copytree(FIXTURE_DOCUSAURUS, target)
    return target


@pytest.fixture
def sparse_settings(tmp_path: Path, chapters_dir: Path) -> Settings:
    """Embedded Qdrant (Edge) under tmp_path, no embeddings provider: the sparse-only path."""
    return Settings(
        _env_file=None,
        qdrant_url=None,
        qdrant_path=tmp_path / "qdrant",
        qdrant_collection="test_textbook",
        content_path=chapters_dir,
        embedding_provider="none",
        llm_provider="none",
    )


@pytest.fixture
def fixture_chapters() -> Path:
    """The read-only fixture chapter directory."""
    return FIXTURE_CHAPTERS


@pytest.fixture(scope="session")
def embeddings_server() -> Iterator[FakeEmbeddingsServer]:
    """An OpenAI-compatible /v1/embeddings on a random loopback port, for the whole session."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    fake = FakeEmbeddingsServer(base_url=f"http://127.0.0.1:{port}/v1")
    server = uvicorn.Server(
        uvicorn.Config(embeddings_app(fake), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("fake embeddings server did not start")
        time.sleep(0.01)
    yield fake
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def hybrid_settings(
    tmp_path: Path,
    chapters_dir: Path,
    embeddings_server: FakeEmbeddingsServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """OpenAI embeddings configured the way production does it: through the environment."""
    for name in (
        "EMBEDDING_PROVIDER",
        "LLM_PROVIDER",
        "EMBEDDING_MODEL",
        "EMBEDDING_DIMENSIONS",
        "GEMINI_API_KEY",
        "QDRANT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-not-secret")
    monkeypatch.setenv("OPENAI_BASE_URL", embeddings_server.base_url)
    embeddings_server.requests.clear()
    return Settings(
        _env_file=None,
        qdrant_path=tmp_path / "qdrant",
        qdrant_collection="test_textbook",
        content_path=chapters_dir,
        llm_max_retries=0,
        llm_timeout_seconds=10,
    )


@pytest.fixture(scope="session")
def qdrant_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lab's Qdrant stand-in (Qdrant Edge behind Qdrant's REST API) on a loopback port."""
    if not STANDIN.exists():
        pytest.skip("labstandins/qdrant is not in this checkout")
    root = tmp_path_factory.mktemp("qdrant-server")
    port = free_port()
    config = {
        "service": {"host": "127.0.0.1", "http_port": port, "api_key": STANDIN_API_KEY},
        "storage": {"storage_path": str(root / "storage")},
        "telemetry_disabled": True,
    }
    proc = start(config, root / "config.yaml")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Each engine in turn: "edge" (embedded) and "server" (qdrant-client over REST)."""
    return str(request.param)


@pytest.fixture
def engine_settings(
    engine: str, sparse_settings: Settings, request: pytest.FixtureRequest
) -> Iterator[Settings]:
    """`sparse_settings` for the engine under test."""
    yield from settings_on_engine(engine, sparse_settings, request, "t")
