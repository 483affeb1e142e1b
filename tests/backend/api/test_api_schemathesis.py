"""Property-based run of the API's own OpenAPI schema against the app in-process (ASGI), on
PostgreSQL: generated requests, valid and invalid (NUL bytes and other text PostgreSQL cannot
store among them), must never produce a 5xx, and every answer must be one the document
promises: a documented status, with a body of the documented schema. MAX_EXAMPLES per
operation and mode keeps it to a minute or two."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from apitest import PASSWORD, llm_settings, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from llm_server import FakeOpenAI
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from textbook.core.security import create_token_pair, hash_password
from textbook.main import create_app
from textbook.models import User
from textbook.rag.store import ChunkStore

pytestmark = pytest.mark.postgres
MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def asgi_api(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    textbook_store: ChunkStore,
    _llm_server: FakeOpenAI,
) -> Iterator[dict[str, Any]]:
    app_settings = make_settings(
        tmp_path_factory.mktemp("schemathesis"),
        database_url=postgres_url,
        **llm_settings(_llm_server),
    )
    # An admin with a token, written straight to the database (the run reaches every route).
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        session.execute(text("TRUNCATE users, chat_sessions, chat_messages CASCADE"))
        user = User(email="fuzz@example.org", hashed_password=hash_password(PASSWORD))
        user.is_admin = True
        session.add(user)
        session.commit()
        tokens = create_token_pair(app_settings, str(user.id), user.token_version)
    engine.dispose()
    app = create_app(app_settings, store=textbook_store)
    try:
        yield {"app": app, "headers": {"Authorization": f"Bearer {tokens.access_token}"}}
    finally:
        asgi.shutdown_lifespans()  # schemathesis started the app's lifespan: close its pool


def with_nul(value: Any) -> Any:
    """`value` with a NUL byte in every string (PostgreSQL text cannot hold one)."""
    if isinstance(value, str):
        return f"{value[:1]}\x00{value[1:]}"
    if isinstance(value, dict):
        return {key: with_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_nul(item) for item in value]
    return value


def nul_in_every_string(case: schemathesis.Case) -> schemathesis.Case:
    case.query = with_nul(case.query)
    case.path_parameters = with_nul(case.path_parameters)
    case.body = with_nul(case.body)
    return case


# positive and negative: schemathesis' own; "nul": valid requests with NUL in every string
# (query, path, body), which the generators produce only now and then.
@pytest.mark.parametrize("mode", ["positive", "negative", "nul"])
def test_no_server_errors(asgi_api: dict[str, Any], mode: str) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", asgi_api["app"])
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        if mode == "nul":
            strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
            strategy = strategy.map(nul_in_every_string)
        else:
            strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=asgi_api["headers"], checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            continue  # negative mode: an operation without inputs has nothing to break
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
    assert operations >= 14
    assert not failures, "\n\n".join(failures)
