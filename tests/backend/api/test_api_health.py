"""Liveness, readiness (database at head, collection present) and Prometheus metrics."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from apitest import ClientFactory
from sqlalchemy import create_engine, event, text

from textbook.core.migrate import head_revision

# Through a trusted proxy (the test client's peer), for a client on loopback.
FROM_LOOPBACK = {"X-Forwarded-For": "127.0.0.1"}


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
    client = make_client(database_url=sqlite_url, trusted_proxies="testclient")
    for n in range(3):
        client.get(f"/api/v1/chat/sessions/6f1d9a52-0c4b-4f3e-9d8a-5b7c2e1f0a9{n}")
        client.get(f"/definitely/not/here/{n}")
    client.get("/api/v1/chapters")
    metrics = client.get("/metrics", headers=FROM_LOOPBACK)
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


class CountingStore:
    """The sample textbook's store, counting readiness checks (slow ones, to overlap probes)."""

    def __init__(self, store: Any, seconds: float = 0.0) -> None:
        self.store = store
        self.seconds = seconds
        self.checks = 0

    def ready(self) -> tuple[bool, str]:
        self.checks += 1
        time.sleep(self.seconds)
        ok, detail = self.store.ready()
        return ok, detail

    def search(self, *args: Any, **kwargs: Any) -> list[Any]:
        return list(self.store.search(*args, **kwargs))

    def close(self) -> None:
        pass


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The readiness cache's clock, stopped: tests move it (now[0] += seconds)."""
    now = [1000.0]
    monkeypatch.setattr("textbook.core.readiness.monotonic", lambda: now[0])
    return now


def test_concurrent_probes_share_one_check_per_component(
    make_client: ClientFactory, database_url: str, textbook_store: Any, clock: list[float]
) -> None:
    store = CountingStore(textbook_store, seconds=0.3)
    client = make_client(database_url=database_url, store=store)
    statements: list[str] = []
    event.listen(
        client.app.state.engine,  # type: ignore[attr-defined]
        "before_cursor_execute",
        lambda _c, _cur, statement, *_: statements.append(statement),
    )
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client.get("/api/v1/health").status_code, range(8)))
    assert codes == [200] * 8
    assert store.checks == 1
    assert statements == ["SELECT version_num FROM alembic_version"]


def test_readiness_is_checked_again_after_a_second(
    make_client: ClientFactory, sqlite_url: str, textbook_store: Any, clock: list[float]
) -> None:
    store = CountingStore(textbook_store)
    client = make_client(database_url=sqlite_url, store=store)
    assert client.get("/api/v1/health").status_code == 200
    clock[0] += 0.9
    assert client.get("/api/v1/health").status_code == 200
    assert store.checks == 1
    clock[0] += 0.2
    assert client.get("/api/v1/health").status_code == 200
    assert store.checks == 2


def test_healthy_probes_log_nothing(
    make_client: ClientFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(database_url=database_url, log_level="INFO")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            assert client.get("/api/v1/health").status_code == 200
    assert [r.getMessage() for r in caplog.records if r.name != "textbook.access"] == []


def test_a_component_failure_is_logged_once_with_its_cause(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture, clock: list[float]
) -> None:
    client = make_client(database_url="postgresql+psycopg2://nobody@127.0.0.1:9/none")
    with caplog.at_level(logging.INFO, logger="textbook.readiness"):
        for _ in range(3):
            assert client.get("/api/v1/health").status_code == 503
            clock[0] += 1.5
    records = [r for r in caplog.records if r.name == "textbook.readiness"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert "OperationalError" in records[0].getMessage()


@pytest.mark.parametrize("path", ["/health", "/api/v1/health"])
def test_head_on_health_routes(make_client: ClientFactory, sqlite_url: str, path: str) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""


def test_head_on_readiness_says_not_ready(make_client: ClientFactory, tmp_path: Any) -> None:
    client = make_client(database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    response = client.head("/api/v1/health")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0


def test_metrics_only_for_monitoring_addresses(make_client: ClientFactory, sqlite_url: str) -> None:
    direct = make_client(database_url=sqlite_url)  # the peer is "testclient": no address
    refused = direct.get("/metrics")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "Metrics are served to monitoring addresses only"}
    assert "textbook_http" not in refused.text

    proxied = make_client(database_url=sqlite_url, trusted_proxies="testclient")
    assert proxied.get("/metrics", headers=FROM_LOOPBACK).status_code == 200
    assert proxied.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 403

    monitoring = make_client(
        database_url=sqlite_url,
        trusted_proxies="testclient",
        metrics_allowed_networks="10.20.0.0/16, 2001:db8::7",
    )
    for allowed in ("10.20.3.4", "2001:db8::7"):
        assert monitoring.get("/metrics", headers={"X-Forwarded-For": allowed}).status_code == 200
    for other in ("10.21.0.1", "127.0.0.1", "2001:db8::8"):
        assert monitoring.get("/metrics", headers={"X-Forwarded-For": other}).status_code == 403


def test_metrics_allow_list_refuses_bad_entries(tmp_path: Any) -> None:
    from apitest import make_settings
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"10\.0\.0\.300"):
        make_settings(tmp_path, metrics_allowed_networks="10.0.0.300")
