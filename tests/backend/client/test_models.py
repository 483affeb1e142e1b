"""The client's models read what the contract (docs/openapi.json) says the API sends: every
field a model requires is a required property of the schema it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from textbook.client import models

DOCUMENT = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"
READS = {
    models.User: "UserOut",
    models.Citation: "Citation",
    models.SearchHit: "SearchHit",
    models.SearchResults: "SearchResponse",
    models.ChatAnswer: "ChatResponse",
    models.Message: "MessageOut",
    models.Conversation: "SessionSummary",
    models.ConversationDetail: "SessionDetail",
    models.SectionSummary: "SectionSummary",
    models.Chapter: "ChapterSummary",
    models.Section: "SectionOut",
    models.IngestReport: "IngestResponse",
    models.ComponentStatus: "ComponentStatus",
    models.Health: "HealthResponse",
}


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    return dict(document["components"]["schemas"])


@pytest.mark.parametrize("model", list(READS), ids=lambda m: m.__name__)
def test_a_client_model_requires_only_what_the_api_always_sends(
    model: type[BaseModel], schemas: dict[str, Any]
) -> None:
    schema = schemas[READS[model]]
    required = {name for name, field in model.model_fields.items() if field.is_required()}
    assert set(model.model_fields) <= set(schema["properties"]), READS[model]
    assert required <= set(schema.get("required", ())), READS[model]


def test_the_check_sees_a_field_the_api_does_not_send(schemas: dict[str, Any]) -> None:
    class Renamed(models.Citation):
        page: int

    assert not set(Renamed.model_fields) <= set(schemas["Citation"]["properties"])
