"""Registration, login, refresh, logout, current user, admin-only routes; tokens bad,
expired and revoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from apitest import PASSWORD, TEST_SECRET, ClientFactory, auth_headers, login, register
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, update

from textbook.models import User


def test_register_login_and_me(client: TestClient) -> None:
    created = register(client, "Ada@Example.org")
    assert created["email"] == "ada@example.org"
    assert created["is_admin"] is False
    assert "hashed_password" not in created
    tokens = login(client, "ADA@example.org")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 30 * 60
    me = client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["id"] == created["id"]


def test_password_is_stored_as_argon2_hash(client: TestClient, database_url: str) -> None:
    register(client)
    engine = create_engine(database_url)
    with engine.connect() as conn:
        stored = conn.execute(User.__table__.select()).one().hashed_password
    engine.dispose()
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_duplicate_registration_is_409(client: TestClient) -> None:
    register(client, "ada@example.org")
    again = client.post(
        "/api/v1/auth/register", json={"email": "ADA@example.org", "password": PASSWORD}
    )
    assert again.status_code == 409
    assert "already registered" in again.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@example.org", "password": "short"},
        {"email": "a@example.org", "password": "x" * 129},
        {"email": "a@example.org", "password": PASSWORD, "full_name": "x" * 201},
        {"email": "a@example.org", "password": PASSWORD, "is_admin": True},
        {"email": "a@example.org"},
    ],
    ids=["bad-email", "short-password", "long-password", "long-name", "extra-field", "missing"],
)
def test_register_rejects_bad_input(
    make_client: ClientFactory, sqlite_url: str, body: dict[str, object]
) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_wrong_password_and_unknown_user_are_401(client: TestClient) -> None:
    register(client)
    for username, password in (
        ("reader@example.org", "wrong password"),
        ("nobody@example.org", PASSWORD),
    ):
        response = client.post(
            "/api/v1/auth/login", data={"username": username, "password": password}
        )
        assert response.status_code == 401
        assert response.json() == {"detail": "Incorrect e-mail or password"}
        assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_issues_new_tokens_and_refuses_access_tokens(client: TestClient) -> None:
    register(client)
    tokens = login(client)
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new_access = refreshed.json()["access_token"]
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {new_access}"}
        ).status_code
        == 200
    )
    # An access token is not a refresh token, and a refresh token does not authenticate.
    wrong = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert wrong.status_code == 401
    assert (
        client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"}
        ).status_code
        == 401
    )


def test_logout_revokes_every_token_issued_before_it(client: TestClient) -> None:
    register(client)
    laptop, phone = login(client), login(client)
    laptop_auth = {"Authorization": f"Bearer {laptop['access_token']}"}
    assert client.post("/api/v1/auth/logout", headers=laptop_auth).status_code == 204

    # Both devices' access and refresh tokens are refused, with the reason.
    for tokens in (laptop, phone):
        me = client.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        assert me.status_code == 401
        assert me.json() == {"detail": "Token has been revoked (logged out)"}
        refreshed = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
        assert refreshed.json() == {"detail": "Token has been revoked (logged out)"}
    assert client.post("/api/v1/auth/logout", headers=laptop_auth).status_code == 401

    # Logging in again gives tokens that work, refresh included; the chats are kept.
    again = login(client)
    auth = {"Authorization": f"Bearer {again['access_token']}"}
    assert client.get("/api/v1/users/me", headers=auth).status_code == 200
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": again["refresh_token"]})
    assert refreshed.status_code == 200
    assert client.get("/api/v1/chat/sessions", headers=auth).status_code == 200


def test_logout_needs_a_valid_access_token(client: TestClient) -> None:
    register(client)
    tokens = login(client)
    assert client.post("/api/v1/auth/logout").status_code == 401
    with_refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    assert client.post("/api/v1/auth/logout", headers=with_refresh).status_code == 401
    # Nothing was revoked by the refused calls.
    me = client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert me.status_code == 200


def test_tokens_from_before_versioning_stay_valid_until_logout(client: TestClient) -> None:
    """Tokens issued before the token_version migration carry no "ver": they count as 0."""
    user_id = register(client)["id"]
    legacy = _token(user_id, "access", timedelta(minutes=5))
    auth = {"Authorization": f"Bearer {legacy}"}
    assert client.get("/api/v1/users/me", headers=auth).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=auth).status_code == 204
    assert client.get("/api/v1/users/me", headers=auth).status_code == 401


def _token(subject: str, token_type: str, expires_in: timedelta, key: str = TEST_SECRET) -> str:
    now = datetime.now(UTC)
    return jwt.encode(
        {"sub": subject, "type": token_type, "iat": now, "exp": now + expires_in},
        key,
        algorithm="HS256",
    )


def test_expired_tokens_are_401_with_a_clear_message(client: TestClient) -> None:
    user_id = register(client)["id"]
    expired = _token(user_id, "access", timedelta(seconds=-5))
    response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}
    stale_refresh = _token(user_id, "refresh", timedelta(seconds=-5))
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": stale_refresh})
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Bearer " + "a" * 3000,
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
    ids=["garbage", "huge", "alg-none", "basic", "empty"],
)
def test_bad_tokens_are_401(make_client: ClientFactory, sqlite_url: str, header: str) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.get("/api/v1/users/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["detail"]


def test_token_signed_with_another_key_or_for_unknown_user_is_401(client: TestClient) -> None:
    user_id = register(client)["id"]
    forged = _token(
        user_id, "access", timedelta(minutes=5), key="an-attacker-key-that-is-long-enough-0000"
    )
    ghost = _token("6f1d9a52-0c4b-4f3e-9d8a-5b7c2e1f0a93", "access", timedelta(minutes=5))
    not_uuid = _token("robert'); DROP TABLE users;--", "access", timedelta(minutes=5))
    for token in (forged, ghost, not_uuid):
        response = client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


def test_previous_key_still_verifies_during_rotation(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    old = make_client(database_url=sqlite_url)
    user_id = register(old)["id"]
    old_token = login(old)["access_token"]
    rotated = make_client(
        database_url=sqlite_url,
        secret_key="a-brand-new-signing-key-9c1e7b3d5f2a8e6c",
        secret_key_previous=TEST_SECRET,
    )
    me = rotated.get("/api/v1/users/me", headers={"Authorization": f"Bearer {old_token}"})
    assert me.status_code == 200
    assert me.json()["id"] == user_id


def test_admin_routes_need_the_admin_role(client: TestClient, database_url: str) -> None:
    headers = auth_headers(client)
    assert client.post("/api/v1/admin/ingest").status_code == 401
    forbidden = client.post("/api/v1/admin/ingest", headers=headers)
    assert forbidden.status_code == 403
    assert forbidden.json() == {"detail": "Admin role required"}
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(User).values(is_admin=True))
    engine.dispose()
    allowed = client.post("/api/v1/admin/ingest", headers=headers)
    assert allowed.status_code == 200, allowed.text
    report = allowed.json()
    assert report["chapters"] >= 1
    assert report["chunks"] == report["added"] + report["unchanged"]


def test_disabled_user_cannot_log_in_or_use_tokens(client: TestClient, database_url: str) -> None:
    headers = auth_headers(client)
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(update(User).values(is_active=False))
    engine.dispose()
    assert client.get("/api/v1/users/me", headers=headers).status_code == 401
    response = client.post(
        "/api/v1/auth/login", data={"username": "reader@example.org", "password": PASSWORD}
    )
    assert response.status_code == 403
