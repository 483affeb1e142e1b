"""Fixtures for the API: settings, databases (SQLite and PostgreSQL), the ingested
sample textbook, the local OpenAI-compatible server and test clients."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apitest import ClientFactory, make_settings
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from llm_server import FakeOpenAI, ServerThread, build_app
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from textbook.core import security
from textbook.core.config import SAMPLE_CONTENT_DIR, Settings
from textbook.core.db import make_engine
from textbook.core.migrate import upgrade
from textbook.main import create_app
from textbook.rag.store import ChunkStore, make_store

# --- databases ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from the test, never from the developer's shell or .env."""
    for name in list(os.environ):
        if name.lower() in Settings.model_fields or name == "TEXTBOOK_ENV_FILE":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing() -> Iterator[None]:
    """Cheap argon2 parameters: the production cost (~0.5 s a hash here) would dominate
    the run. Hashes are still argon2id; the parameters travel inside each hash."""
    production = security._hasher
    security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    security._hasher = production


def _postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set")
    return url


def reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The throwaway server's database, migrated to head once per run."""
    url = _postgres_url()
    reset_postgres(url)
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url


@pytest.fixture(scope="session")
def scratch_postgres_db() -> Callable[[], str]:
    """A new empty database on the test server (for migration tests)."""

    def create() -> str:
        base = make_url(_postgres_url())
        name = f"scratch_{uuid.uuid4().hex[:12]}"
        engine = create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return base.set(database=name).render_as_string(hide_password=False)

    return create


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a fresh SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        engine = make_engine(make_settings(tmp_path, database_url=url))
        upgrade(engine)
        engine.dispose()
        return url
    url: str = request.getfixturevalue("postgres_url")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE users, chat_sessions, chat_messages CASCADE"))
    engine.dispose()
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'test.db'}"
    engine = make_engine(make_settings(tmp_path, database_url=url))
    upgrade(engine)
    engine.dispose()
    return url


# --- the textbook in a vector store ------------------------------------------------------


@pytest.fixture(scope="session")
def textbook_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChunkStore]:
    """The sample chapters ingested once (BM25, embedded Qdrant), shared read-only."""
    settings = make_settings(tmp_path_factory.mktemp("store"))
    store = make_store(settings)
    store.ingest(SAMPLE_CONTENT_DIR)
    yield store
    store.close()


# --- the language model ------------------------------------------------------------------


@pytest.fixture(scope="session")
def _llm_server() -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()
    with ServerThread(build_app(state)) as server:
        state.base_url = f"{server.url}/v1"
        yield state


@pytest.fixture
def llm(_llm_server: FakeOpenAI) -> FakeOpenAI:
    """The local OpenAI-compatible server, reset for this test."""
    _llm_server.reset()
    return _llm_server


# --- clients -----------------------------------------------------------------------------


@pytest.fixture
def make_client(tmp_path: Path, textbook_store: ChunkStore) -> Iterator[ClientFactory]:
    """Build an app (with its lifespan running) from settings overrides."""
    clients: list[TestClient] = []

    def factory(*, store: Any = None, **overrides: Any) -> TestClient:
        overrides.setdefault("database_url", f"sqlite:///{tmp_path / 'unmigrated.db'}")
        settings = make_settings(tmp_path, **overrides)
        app = create_app(settings, store=store if store is not None else textbook_store)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: ClientFactory, database_url: str) -> TestClient:
    """An app on SQLite and on PostgreSQL, embedded defaults (no LLM)."""
    return make_client(database_url=database_url)
