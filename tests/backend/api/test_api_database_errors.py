"""What the API answers when the database cannot take a request: text it cannot store is the
caller's mistake (422), a database that is down is an outage (503 with Retry-After)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apitest import PASSWORD, ClientFactory, auth_headers, make_settings
from sqlalchemy import create_engine, select, text

from textbook.core.db import make_engine
from textbook.models import User

DOWN = "postgresql+psycopg2://nobody@127.0.0.1:9/none"  # nothing listens on port 9


@pytest.mark.parametrize("value", ["\x00a", "a\x00b"], ids=["first", "inside"])
def test_text_the_database_cannot_store_is_422_with_a_message(
    make_client: ClientFactory, database_url: str, value: str
) -> None:
    client = make_client(database_url=database_url)
    response = client.post("/api/v1/auth/login", data={"username": value, "password": PASSWORD})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert "NUL" in error["msg"]


def test_a_nul_byte_in_the_raw_form_is_422(make_client: ClientFactory, database_url: str) -> None:
    client = make_client(database_url=database_url)
    response = client.post(
        "/api/v1/auth/login",
        content=f"username=%00a&password={PASSWORD}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 422, response.text
    # The request was refused, the session still works for the next one.
    auth_headers(client)


def test_the_engine_refuses_nul_before_the_driver_sees_it(
    database_url: str, tmp_path: Path
) -> None:
    from textbook.core.db import UnstorableTextError

    engine = make_engine(make_settings(tmp_path, database_url=database_url))
    try:
        with engine.connect() as connection, pytest.raises(UnstorableTextError):
            connection.execute(select(User.id).where(User.email == "a\x00b"))
        with engine.connect() as connection, pytest.raises(UnstorableTextError):
            connection.execute(text("SELECT :a, :b"), [{"a": "ok", "b": "x\x00"}, {"a": 1, "b": 2}])
        with engine.connect() as connection, pytest.raises(UnstorableTextError):
            connection.execute(text("SELECT :a"), {"a": "lone \ud800 surrogate"})
        with engine.connect() as connection:  # what it can store still goes through
            assert connection.execute(text("SELECT :a"), {"a": "ünïcode ✓"}).scalar() == "ünïcode ✓"
    finally:
        engine.dispose()


def test_database_routes_answer_503_with_retry_after_while_the_database_is_down(
    make_client: ClientFactory,
) -> None:
    client = make_client(database_url=DOWN)
    for response in (
        client.post("/api/v1/auth/login", data={"username": "a@example.org", "password": "x"}),
        client.post("/api/v1/auth/register", json={"email": "a@example.org", "password": PASSWORD}),
    ):
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) > 0
        assert response.json() == {"detail": "The database is unavailable; try again shortly"}


def test_public_readiness_names_no_addresses_or_driver_messages(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(database_url=DOWN)
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["components"]["database"] == {"ok": False, "detail": "unreachable"}
    for leak in ("127.0.0.1", "psycopg2", "OperationalError", "port 9", "nobody"):
        assert leak not in response.text
    # The detail is for the operator: in the log.
    assert any("127.0.0.1" in record.getMessage() for record in caplog.records)


@pytest.mark.postgres
def test_a_bug_in_sql_is_still_a_500_not_an_outage(
    make_client: ClientFactory, postgres_url: str
) -> None:
    client = make_client(database_url=postgres_url)
    engine = create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE users RENAME COLUMN full_name TO full_name_gone"))
    try:
        response = client.post(
            "/api/v1/auth/register", json={"email": "b@example.org", "password": PASSWORD}
        )
        assert response.status_code == 500
    finally:
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE users RENAME COLUMN full_name_gone TO full_name"))
        engine.dispose()
