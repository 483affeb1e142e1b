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
from api_fuzz import MODES, operations, run_cases
from apitest import PASSWORD, llm_settings, make_settings
from llm_server import FakeOpenAI
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
    # An admin, written straight to the database (the run reaches every route).
    engine = create_engine(postgres_url)
    with Session(engine) as session:
        session.execute(text("TRUNCATE users, chat_sessions, chat_messages CASCADE"))
        user = User(email="fuzz@example.org", hashed_password=hash_password(PASSWORD))
        user.is_admin = True
        session.add(user)
        session.commit()
        user_id = user.id

    def authorize() -> dict[str, str]:
        """A token of the admin's current version: the fuzzer's own logout revokes the last."""
        with Session(engine) as session:
            admin = session.get_one(User, user_id)
            tokens = create_token_pair(app_settings, str(admin.id), admin.token_version)
        return {"Authorization": f"Bearer {tokens.access_token}"}

    app = create_app(app_settings, store=textbook_store)
    try:
        yield {"app": app, "authorize": authorize}
    finally:
        asgi.shutdown_lifespans()  # schemathesis started the app's lifespan: close its pool
        engine.dispose()


# positive, negative, nul (api_fuzz.MODES): the same modes as the run through Nginx and TLS.
@pytest.mark.parametrize("mode", MODES)
def test_no_server_errors(asgi_api: dict[str, Any], mode: str) -> None:
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", asgi_api["app"])
    headers = asgi_api["authorize"]()

    def call(case: schemathesis.Case) -> None:
        nonlocal headers
        try:
            case.call_and_validate(headers=headers, checks=CHECKS)
        finally:
            if case.path.endswith("/auth/logout"):
                headers = asgi_api["authorize"]()

    found = operations(schema)  # logout last
    failures = [failure for op in found if (failure := run_cases(op, mode, MAX_EXAMPLES, call))]
    assert len(found) >= 14
    assert not failures, "\n\n".join(failures)
