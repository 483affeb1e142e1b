"""The API's contract: the document the app serves is the committed docs/openapi.json, every
operation has a stable id, a tag and its errors with their schema, and the errors the API
really sends are the documented ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from apitest import ClientFactory, auth_headers
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "docs" / "openapi.json"
ERROR_SCHEMAS = {"#/components/schemas/ErrorMessage", "#/components/schemas/ValidationErrorMessage"}


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_the_served_document_is_the_committed_one(
    make_client: ClientFactory, committed: dict[str, Any]
) -> None:
    served = make_client().get("/api/v1/openapi.json")
    assert served.status_code == 200
    # On failure: the API changed; run `make openapi` and commit docs/openapi.json.
    assert served.json() == committed


def test_the_check_script_sees_a_stale_document(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "openapi.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    stale = tmp_path / "tools"
    stale.mkdir()
    (stale / "openapi.py").write_text((ROOT / "tools" / "openapi.py").read_text())
    (tmp_path / "docs").mkdir()
    edited = json.loads(DOCUMENT.read_text())
    edited["paths"]["/api/v1/search"]["get"]["operationId"] = "findPassages"
    (tmp_path / "docs" / "openapi.json").write_text(json.dumps(edited, indent=2))
    result = subprocess.run(
        [sys.executable, str(stale / "openapi.py"), "check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert '-        "operationId": "findPassages",' in result.stdout
    assert "run `make openapi`" in result.stderr


def test_every_operation_has_a_unique_id_a_tag_and_typed_errors(committed: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in operations(committed)]
    assert len(ids) == len(set(ids)) == 18  # 16 routes, and HEAD on both health routes
    tags = {tag["name"] for tag in committed["tags"]}
    for method, path, operation in operations(committed):
        assert operation["tags"] and set(operation["tags"]) <= tags, (method, path)
        for status, response in operation["responses"].items():
            if int(status) < 400 or (path, status) == ("/api/v1/health", "503"):
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema["$ref"] in ERROR_SCHEMAS, (method, path, status)
        if path.startswith("/api/v1/") and path != "/api/v1/health":
            assert "429" in operation["responses"], (method, path)
        if "requestBody" in operation or operation.get("parameters"):
            assert "422" in operation["responses"], (method, path)
        if "requestBody" in operation:
            assert "413" in operation["responses"], (method, path)
        if operation.get("security") or path.startswith(("/api/v1/chat", "/api/v1/admin")):
            assert "401" in operation["responses"], (method, path)


def test_requests_carry_examples(committed: dict[str, Any]) -> None:
    schemas = committed["components"]["schemas"]
    for name in ("RegisterRequest", "ChatRequest", "ChatResponse", "ErrorMessage"):
        assert schemas[name]["examples"], name
    chat = committed["paths"]["/api/v1/chat"]["post"]["responses"]["200"]["content"]
    assert "event: token" in chat["text/event-stream"]["example"]


def documented(committed: dict[str, Any], method: str, path: str, status: int) -> str:
    """The schema name documented for this status, or an assertion error."""
    responses = committed["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, (method, path, status)
    ref: str = responses[str(status)]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[1]


def assert_body_fits(committed: dict[str, Any], schema: str, body: Any) -> None:
    properties = committed["components"]["schemas"][schema]["properties"]
    assert set(body) == set(properties)
    if schema == "ValidationErrorMessage":
        assert all(set(issue) == {"loc", "msg", "type"} for issue in body["detail"])
    else:
        assert isinstance(body["detail"], str)


def test_the_errors_the_api_sends_are_the_documented_ones(
    make_client: ClientFactory, sqlite_url: str, committed: dict[str, Any]
) -> None:
    client: TestClient = make_client(database_url=sqlite_url, max_body_bytes=1024)
    headers = auth_headers(client)
    cases = [
        ("GET", "/api/v1/users/me", "/api/v1/users/me", {}, 401),
        ("GET", "/api/v1/chapters/nope", "/api/v1/chapters/{slug}", {}, 404),
        ("GET", "/api/v1/search?q=x&limit=99", "/api/v1/search", {}, 422),
        ("POST", "/api/v1/admin/ingest", "/api/v1/admin/ingest", {"headers": headers}, 403),
        (
            "POST",
            "/api/v1/chat",
            "/api/v1/chat",
            {"headers": headers, "json": {"question": "x" * 2000}},
            413,
        ),
    ]
    for method, url, path, options, status in cases:
        response = client.request(method, url, **options)
        assert response.status_code == status, (url, response.text)
        assert_body_fits(committed, documented(committed, method, path, status), response.json())
    limited = make_client(database_url=sqlite_url, rate_limit_per_ip="1/minute")
    limited.get("/api/v1/chapters")
    response = limited.get("/api/v1/chapters")
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert_body_fits(
        committed, documented(committed, "GET", "/api/v1/chapters", 429), response.json()
    )
