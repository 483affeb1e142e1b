"""The HTTP edge: rate limits, body limits, malformed input, CORS, trusted proxies,
request ids and the JSON access log."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from apitest import ClientFactory, auth_headers
from fastapi.testclient import TestClient


def test_per_ip_limit_is_429_with_retry_after(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url, rate_limit_per_ip="3/minute")
    statuses = [client.get("/api/v1/chapters").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/v1/chapters")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "Rate limit exceeded (per-ip)" in limited.json()["detail"]
    # Liveness and readiness are not rate limited (probes poll them).
    assert client.get("/health").status_code == 200
    assert client.get("/api/v1/health").status_code == 200


def test_per_user_limit_applies_across_ips(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(
        database_url=sqlite_url, rate_limit_per_user="2/minute", trusted_proxies="testclient"
    )
    headers = auth_headers(client)
    codes = []
    for n in range(3):
        forwarded = headers | {"X-Forwarded-For": f"198.51.100.{n}"}
        codes.append(client.get("/api/v1/users/me", headers=forwarded).status_code)
    assert codes == [200, 200, 429]
    other = auth_headers(client, "other@example.org")
    assert client.get("/api/v1/users/me", headers=other).status_code == 200


def test_chat_limit(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url, rate_limit_chat="1/minute")
    headers = auth_headers(client)
    first = client.post("/api/v1/chat", json={"question": "topics?"}, headers=headers)
    second = client.post("/api/v1/chat", json={"question": "topics?"}, headers=headers)
    assert (first.status_code, second.status_code) == (200, 429)
    assert "chat" in second.json()["detail"]
    assert second.headers["retry-after"].isdigit()


def test_forwarded_for_is_trusted_only_from_trusted_proxies(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    trusting = make_client(
        database_url=sqlite_url, rate_limit_per_ip="1/minute", trusted_proxies="testclient"
    )
    a = {"X-Forwarded-For": "203.0.113.7"}
    b = {"X-Forwarded-For": "203.0.113.8"}
    assert trusting.get("/api/v1/chapters", headers=a).status_code == 200
    assert trusting.get("/api/v1/chapters", headers=a).status_code == 429
    assert trusting.get("/api/v1/chapters", headers=b).status_code == 200
    # The default trusts 127.0.0.1 only: a client's own X-Forwarded-For changes nothing.
    untrusting = make_client(database_url=sqlite_url, rate_limit_per_ip="1/minute")
    assert untrusting.get("/api/v1/chapters", headers=a).status_code == 200
    assert untrusting.get("/api/v1/chapters", headers=b).status_code == 429


def test_oversized_body_by_content_length_is_413(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    client = make_client(database_url=sqlite_url, max_body_bytes=2048)
    response = client.post(
        "/api/v1/auth/register", content=b"x" * 4096, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is larger than the limit of 2048 bytes"}


def test_oversized_chunked_body_is_413(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url, max_body_bytes=2048)

    def chunks() -> Iterator[bytes]:
        yield b'{"email": "a@example.org", "password": "'
        for _ in range(10):
            yield b"y" * 512
        yield b'"}'

    response = client.post(
        "/api/v1/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "larger than the limit" in response.json()["detail"]
    form = client.post(
        "/api/v1/auth/login",
        content=(b"username=" + b"a" * 512 for _ in range(8)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status_code == 413


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"email": "a@example.org", "password": ', "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b"email=a@example.org", "application/x-www-form-urlencoded"),
    ],
    ids=["truncated", "binary", "array", "null", "form"],
)
def test_malformed_json_is_422_with_a_message(
    make_client: ClientFactory, sqlite_url: str, body: bytes, content_type: str
) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.post(
        "/api/v1/auth/register", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail[0]["msg"]
    assert "input" not in detail[0]


def test_malformed_json_message_names_the_problem(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.post(
        "/api/v1/auth/register", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )
    assert response.json()["detail"][0]["msg"].startswith("Malformed JSON body")


def test_bad_content_length_is_400(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url)

    async def call() -> list[dict[str, object]]:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/auth/register",
            "raw_path": b"/api/v1/auth/register",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-length", b"abc"), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
            "scheme": "http",
            "http_version": "1.1",
            "asgi": {"version": "3.0"},
        }
        await client.app(scope, receive, send)  # type: ignore[arg-type]
        return sent

    import anyio

    sent = anyio.run(call)
    assert sent[0]["status"] == 400


def test_unknown_routes_and_methods(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url)
    assert client.get("/api/v1/nope").json() == {"detail": "Not Found"}
    assert client.delete("/api/v1/chapters").status_code == 405


def test_request_id_is_echoed_or_generated(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(database_url=sqlite_url)
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = client.get("/health", headers={"X-Request-ID": "bad id\twith junk" + "x" * 200})
    assert len(generated.headers["x-request-id"]) == 32
    assert client.get("/health").headers["x-request-id"] != generated.headers["x-request-id"]
    # The whole value must be an id: 128 characters at most, and nothing else after it.
    longest = "A1._:-" * 21 + "zz"
    assert (
        client.get("/health", headers={"X-Request-ID": longest}).headers["x-request-id"] == longest
    )
    for bad in (longest + "z", "abc/def", "abc def"):
        replaced = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
        assert replaced != bad and len(replaced) == 32


def test_one_json_access_line_per_request(
    make_client: ClientFactory, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(database_url=sqlite_url, log_level="INFO")
    capsys.readouterr()
    client.get("/api/v1/chapters/ros2-foundations", headers={"X-Request-ID": "req-42"})
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line.get("logger") == "textbook.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["request_id"] == "req-42"
    assert entry["status"] == 200
    assert entry["route"] == "/api/v1/chapters/{slug}"
    assert entry["path"] == "/api/v1/chapters/ros2-foundations"
    assert entry["method"] == "GET"
    assert isinstance(entry["duration_ms"], float)


def test_cors_allows_only_configured_origins(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(
        database_url=sqlite_url,
        cors_origins="https://book.example.org",
        trusted_proxies="testclient",
    )
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    ok = client.options("/api/v1/chat", headers={"Origin": "https://book.example.org"} | preflight)
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://book.example.org"
    evil = client.options("/api/v1/chat", headers={"Origin": "https://evil.example"} | preflight)
    assert "access-control-allow-origin" not in evil.headers
    simple = client.get("/api/v1/chapters", headers={"Origin": "https://book.example.org"})
    assert simple.headers["access-control-allow-origin"] == "https://book.example.org"
    # Preflights are answered by the CORS layer, inside the request-context layer: they get
    # a request id too (and an access line and metrics).
    assert len(ok.headers["x-request-id"]) == 32
    assert evil.headers["x-request-id"] != ok.headers["x-request-id"]
    metrics = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).text
    assert 'method="OPTIONS",route="/api/v1/chat",status="200"} 1.0' in metrics


def test_unhandled_error_is_json_500_with_request_id(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    class Broken:
        def search(self, *args: object, **kwargs: object) -> list[object]:
            raise ZeroDivisionError("boom")

        def ready(self) -> tuple[bool, str]:
            return True, ""

        def close(self) -> None:
            pass

    client: TestClient = make_client(database_url=sqlite_url, store=Broken())
    response = client.get("/api/v1/search", params={"q": "x"}, headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "request_id": "r-1"}
    assert response.headers["x-request-id"] == "r-1"
    assert "boom" not in response.text


def test_the_signed_in_user_is_named_in_the_access_line(
    make_client: ClientFactory, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(database_url=sqlite_url, log_level="INFO")
    headers = auth_headers(client)
    capsys.readouterr()
    me = client.get("/api/v1/users/me", headers=headers).json()
    client.get("/health")
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    access = [line for line in lines if line.get("logger") == "textbook.access"]
    assert [(line["path"], line["user_id"]) for line in access] == [
        ("/api/v1/users/me", me["id"]),
        ("/health", None),
    ]


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/health", "GET, HEAD"),
        ("/api/v1/health", "GET, HEAD"),
        ("/api/v1/chapters", "GET"),
        ("/api/v1/auth/login", "POST"),
        # Two routes share this path, one per method: Allow names both.
        ("/api/v1/chat/sessions/6f1d9a52-0c4b-4f3e-9d8a-5b7c2e1f0a90", "DELETE, GET"),
    ],
)
@pytest.mark.parametrize("method", ["TRACE", "PATCH", "PUT", "CONNECT", "FOO"])
def test_unsupported_methods_are_405_with_allow(
    make_client: ClientFactory, sqlite_url: str, path: str, allowed: str, method: str
) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allowed
    assert response.json() == {"detail": "Method Not Allowed"}
