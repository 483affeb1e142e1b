"""Liveness, readiness (database at head, collection present) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from apitest import ClientFactory
from sqlalchemy import create_engine, text

from textbook.core.migrate import head_revision


class Unready:
    def __init__(self, detail: str) -> None:
        self.detail = detail

    def ready(self) -> tuple[bool, str]:
        return False, self.detail

    def search(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def close(self) -> None:
        pass


def test_liveness_needs_nothing(make_client: ClientFactory, tmp_path: Any) -> None:
    # An unreachable database does not make the process "dead".
    client = make_client(database_url="postgresql+psycopg2://nobody@127.0.0.1:9/none")
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_migrated_and_ingested(make_client: ClientFactory, database_url: str) -> None:
    client = make_client(database_url=database_url)
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"]["database"]["ok"] is True
    assert head_revision() in body["components"]["database"]["detail"]
    assert body["components"]["vector_store"]["ok"] is True


def test_not_ready_before_migration(make_client: ClientFactory, tmp_path: Any) -> None:
    client = make_client(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    database = response.json()["components"]["database"]
    assert database["ok"] is False
    assert "textbook migrate" in database["detail"]


def test_not_ready_when_database_is_down(make_client: ClientFactory) -> None:
    client = make_client(database_url="postgresql+psycopg2://nobody@127.0.0.1:9/none")
    body = client.get("/api/v1/health").json()
    assert body["status"] == "unavailable"
    assert body["components"]["database"]["detail"].startswith("unreachable")


def test_not_ready_without_collection(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url, store=Unready("collection 'textbook' is missing"))
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["components"]["database"]["ok"] is True
    assert body["components"]["vector_store"] == {
        "ok": False,
        "detail": "collection 'textbook' is missing",
    }


def test_real_store_without_collection_is_not_ready(
    make_client: ClientFactory, sqlite_url: str, tmp_path: Any
) -> None:
    from apitest import make_settings

    from textbook.rag.store import make_store

    store = make_store(make_settings(tmp_path / "fresh"))
    try:
        client = make_client(database_url=sqlite_url, store=store)
        response = client.get("/api/v1/health")
        assert response.status_code == 503
        assert "textbook ingest" in response.json()["components"]["vector_store"]["detail"]
        # Search says so too, as a 503 rather than a crash.
        search = client.get("/api/v1/search", params={"q": "topics"})
        assert search.status_code == 503
        assert "textbook ingest" in search.json()["detail"]
    finally:
        store.close()


def test_schema_behind_head_is_not_ready(make_client: ClientFactory, sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'older'"))
    engine.dispose()
    response = make_client(database_url=sqlite_url).get("/api/v1/health")
    assert response.status_code == 503
    assert "older" in response.json()["components"]["database"]["detail"]


def test_metrics_use_route_templates(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url)
    for n in range(3):
        client.get(f"/api/v1/chat/sessions/6f1d9a52-0c4b-4f3e-9d8a-5b7c2e1f0a9{n}")
        client.get(f"/definitely/not/here/{n}")
    client.get("/api/v1/chapters")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text_ = metrics.text
    assert (
        'textbook_http_requests_total{method="GET",'
        'route="/api/v1/chat/sessions/{session_id}",status="401"} 3.0'
    ) in text_
    assert 'route="unmatched",status="404"} 3.0' in text_
    assert 'route="/api/v1/chapters",status="200"} 1.0' in text_
    assert "6f1d9a52" not in text_
    assert "textbook_http_request_duration_seconds_bucket" in text_
