"""A live API for the client's tests: the real app under uvicorn on 127.0.0.1 (a thread), on
SQLite and on the throwaway PostgreSQL, with the sample textbook and the local LLM server."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from apitest import PASSWORD, llm_settings, make_settings
from llm_server import FakeOpenAI, ServerThread
from sqlalchemy import create_engine, update

from textbook.core.db import make_engine
from textbook.core.migrate import upgrade
from textbook.main import create_app
from textbook.models import User
from textbook.rag.store import ChunkStore


@dataclass
class Live:
    url: str
    database_url: str
    llm: FakeOpenAI

    def new_user(self, *, admin: bool = False) -> tuple[str, str]:
        """A registered user's e-mail and password (an admin when asked)."""
        email = f"reader-{uuid.uuid4().hex[:10]}@example.org"
        response = httpx.post(
            f"{self.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        if admin:
            engine = create_engine(self.database_url)
            with engine.begin() as conn:
                conn.execute(update(User).where(User.email == email).values(is_admin=True))
            engine.dispose()
        return email, PASSWORD

    def served(self, method: str, route: str, status: int) -> int:
        """How many requests the server counted for this route and status (its /metrics)."""
        metrics = httpx.get(f"{self.url}/metrics").text
        line = re.search(
            rf'^textbook_http_requests_total\{{method="{method}",route="{re.escape(route)}",'
            rf'status="{status}"\}} (\S+)$',
            metrics,
            re.M,
        )
        return int(float(line.group(1))) if line else 0


def _migrated_sqlite(data_dir: Path) -> str:
    url = f"sqlite:///{data_dir / 'api.db'}"
    engine = make_engine(make_settings(data_dir, database_url=url))
    upgrade(engine)
    engine.dispose()
    return url


def _serve(
    data_dir: Path, database_url: str, shared: ChunkStore, llm: FakeOpenAI, **overrides: Any
) -> Iterator[Live]:
    store = overrides.pop("store", None) or shared
    tls = overrides.pop("tls", {})
    settings = make_settings(data_dir, database_url=database_url, **(llm_settings(llm) | overrides))
    with ServerThread(create_app(settings, store=store), **tls) as server:
        yield Live(server.url, database_url, llm)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    textbook_store: ChunkStore,
    _llm_server: FakeOpenAI,
) -> Iterator[Live]:
    """One server per module and database; tests make users of their own."""
    data_dir = tmp_path_factory.mktemp("live")
    if request.param == "sqlite":
        database_url = _migrated_sqlite(data_dir)
    else:
        database_url = request.getfixturevalue("postgres_url")
    yield from _serve(data_dir, database_url, textbook_store, _llm_server)


@pytest.fixture(scope="module")
def live_sqlite(
    tmp_path_factory: pytest.TempPathFactory, textbook_store: ChunkStore, _llm_server: FakeOpenAI
) -> Iterator[Live]:
    """One server per module on SQLite alone: for tests of what the database does not change
    (the async client, the command line), once the blocking client ran on both."""
    data_dir = tmp_path_factory.mktemp("live")
    yield from _serve(data_dir, _migrated_sqlite(data_dir), textbook_store, _llm_server)


@pytest.fixture(autouse=True)
def _fresh_llm(_llm_server: FakeOpenAI) -> None:
    _llm_server.reset()


ServeFactory = Callable[..., Live]


@pytest.fixture
def serve(
    tmp_path: Path, textbook_store: ChunkStore, _llm_server: FakeOpenAI
) -> Iterator[ServeFactory]:
    """A server of this test's own, on SQLite, with settings overridden (and `store=`, and
    `tls=` uvicorn's ssl options)."""
    running: list[Iterator[Live]] = []

    def start(**overrides: Any) -> Live:
        data_dir = tmp_path / f"serve{len(running)}"
        data_dir.mkdir()
        server = _serve(
            data_dir, _migrated_sqlite(data_dir), textbook_store, _llm_server, **overrides
        )
        running.append(server)
        return next(server)

    yield start
    for server in running:
        server.close()
