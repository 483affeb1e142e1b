"""Property-based run of the API's own OpenAPI schema against a live uvicorn on loopback:
generated requests (valid and invalid) must never produce a 5xx, and every answer must be one
the document promises: a documented status, with a body of the documented schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from apitest import PASSWORD, llm_settings, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from llm_server import FakeOpenAI, ServerThread
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine, update

from textbook.core.db import make_engine
from textbook.core.migrate import upgrade
from textbook.main import create_app
from textbook.models import User
from textbook.rag.store import ChunkStore

MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def live_api(
    tmp_path_factory: pytest.TempPathFactory, textbook_store: ChunkStore, _llm_server: FakeOpenAI
) -> Iterator[dict[str, Any]]:
    data_dir: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{data_dir / 'api.db'}"
    app_settings = make_settings(data_dir, database_url=url, **llm_settings(_llm_server))
    engine = make_engine(app_settings)
    upgrade(engine)
    engine.dispose()
    with ServerThread(create_app(app_settings, store=textbook_store)) as server:
        httpx.post(
            f"{server.url}/api/v1/auth/register",
            json={"email": "fuzz@example.org", "password": PASSWORD},
        ).raise_for_status()
        admin = create_engine(url)
        with admin.begin() as conn:
            conn.execute(update(User).values(is_admin=True))
        admin.dispose()
        token = httpx.post(
            f"{server.url}/api/v1/auth/login",
            data={"username": "fuzz@example.org", "password": PASSWORD},
        ).json()["access_token"]
        yield {"url": server.url, "headers": {"Authorization": f"Bearer {token}"}}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(live_api: dict[str, Any], mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api['url']}/api/v1/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=live_api["url"], headers=live_api["headers"], checks=CHECKS
            )

        try:
            check()
        except Unsatisfiable:
            continue  # negative mode: an operation without inputs has nothing to break
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert operations >= 12
    assert not failures, "\n\n".join(failures)
