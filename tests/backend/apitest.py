"""Helpers for API tests: settings, users and tokens, SSE parsing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from llm_server import FakeOpenAI

from textbook.core.config import Settings

TEST_SECRET = "test-signing-key-4f9a1c7e2b8d6035a1e4c9f7b2d8e6a0"
PASSWORD = "correct horse battery"
ClientFactory = Callable[..., TestClient]


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "secret_key": TEST_SECRET,
        "rate_limit_per_ip": "10000/minute",
        "rate_limit_per_user": "10000/minute",
        "rate_limit_chat": "10000/minute",
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def llm_settings(llm: FakeOpenAI, **overrides: Any) -> dict[str, Any]:
    """Settings that send chat completions (not embeddings) to the local server."""
    return {
        "llm_provider": "openai",
        "openai_api_key": "sk-test-not-a-real-key",
        "openai_base_url": llm.base_url,
        "embedding_provider": "none",
        "llm_timeout_seconds": 5,
        "llm_max_retries": 0,
        **overrides,
    }


def register(
    client: TestClient, email: str = "reader@example.org", password: str = PASSWORD
) -> dict[str, Any]:
    response = client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def login(
    client: TestClient, email: str = "reader@example.org", password: str = PASSWORD
) -> dict[str, Any]:
    response = client.post("/api/v1/auth/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def auth_headers(client: TestClient, email: str = "reader@example.org") -> dict[str, str]:
    register(client, email)
    return {"Authorization": f"Bearer {login(client, email)['access_token']}"}


def parse_sse(raw: str) -> list[tuple[str, Any]]:
    """(event, data) per frame; comment frames come back as ("comment", text)."""
    events: list[tuple[str, Any]] = []
    for frame in raw.replace("\r\n", "\n").split("\n\n"):
        if not frame.strip():
            continue
        event, data_lines, comments = "message", [], []
        for line in frame.split("\n"):
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data_lines.append(line[len("data:") :].strip())
        if data_lines:
            events.append((event, json.loads("\n".join(data_lines))))
        else:
            events.append(("comment", " ".join(comments)))
    return events
