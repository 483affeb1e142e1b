"""Request and response bodies. Every request string has a max_length."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, computed_field

from textbook.rag.library import section_url


def _no_control_chars(value: str) -> str:
    # NUL cannot be stored in PostgreSQL text and no reader types other control characters.
    if any(ord(ch) < 32 and ch not in "\t\n\r" for ch in value):
        raise ValueError("must not contain control characters")
    return value


PlainText = AfterValidator(_no_control_chars)
Name = Annotated[str, Field(max_length=200), PlainText]
Question = Annotated[str, Field(min_length=1, max_length=2000), PlainText]
SelectedText = Annotated[str, Field(min_length=1, max_length=8000), PlainText]


Slug = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9-]*$")]
Password = Annotated[str, Field(min_length=8, max_length=128)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- auth and users ---------------------------------------------------------------------


class RegisterRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "ada@example.org", "password": "a long password", "full_name": "Ada"}
            ]
        }
    )

    email: Annotated[EmailStr, Field(max_length=320)]
    password: Password
    full_name: Name | None = None


class RefreshRequest(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refresh_token": "eyJhbGciOi..."}]})

    refresh_token: Annotated[str, Field(min_length=1, max_length=4096)]


class TokenResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOi...",
                    "refresh_token": "eyJhbGciOi...",
                    "token_type": "bearer",
                    "expires_in": 1800,
                }
            ]
        }
    )

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - OAuth2 token type, not a secret
    expires_in: int


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str | None
    is_admin: bool
    created_at: datetime


# --- chapters and search ------------------------------------------------------------------


class SectionSummary(BaseModel):
    title: str
    anchor: str
    level: int


class ChapterSummary(BaseModel):
    slug: str
    number: int
    title: str
    module: str
    url: str
    sections: list[SectionSummary]


class SectionLink(BaseModel):
    """A section of a chapter with its URL on the textbook site."""

    chapter: str
    anchor: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def url(self) -> str:
        return section_url(self.chapter, self.anchor)


class SectionOut(SectionLink):
    chapter_title: str
    module: str
    title: str
    level: int
    text: str


class Citation(SectionLink):
    """Made from a retrieved Passage (`Citation.model_validate(passage)`)."""

    model_config = ConfigDict(from_attributes=True)

    chapter_title: str
    module: str
    section: str
    score: float


class SearchHit(Citation):
    text: str


class SearchResponse(BaseModel):
    query: str
    results: list[SearchHit]


# --- chat --------------------------------------------------------------------------------

AnswerMode = Literal["llm", "extractive"]


class ChatRequest(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"question": "What is a ROS 2 topic?", "stream": True},
                {
                    "question": "Explain this in simpler words.",
                    "selected_text": "A topic is a named bus over which nodes exchange messages.",
                },
                {
                    "question": "And how is a service different?",
                    "session_id": "0b0e5a52-6f3c-4a8e-9d55-3f0e7f6f1b2a",
                    "chapter": "ros2-communication",
                },
            ]
        }
    )

    question: Question
    session_id: uuid.UUID | None = None
    # The passage the reader highlighted: the answer comes from it alone, no retrieval.
    selected_text: SelectedText | None = None
    module: Name | None = None
    chapter: Slug | None = None
    stream: bool = False


class ChatResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "session_id": "0b0e5a52-6f3c-4a8e-9d55-3f0e7f6f1b2a",
                    "message_id": "5f9c2d1e-8b7a-4c3d-9e2f-1a0b9c8d7e6f",
                    "answer": "A topic is a named bus over which nodes exchange messages [1].",
                    "mode": "llm",
                    "source": "retrieval",
                    "citations": [
                        {
                            "chapter": "ros2-communication",
                            "anchor": "topics",
                            "url": "/chapters/ros2-communication#topics",
                            "chapter_title": "ROS 2 communication",
                            "module": "ROS 2",
                            "section": "Topics",
                            "score": 0.83,
                        }
                    ],
                }
            ]
        }
    )

    session_id: uuid.UUID
    message_id: uuid.UUID
    answer: str
    mode: AnswerMode
    source: Literal["retrieval", "selected_text"]
    citations: list[Citation]


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: str
    content: str
    mode: str | None
    selected_text: str | None
    citations: list[dict[str, Any]]
    created_at: datetime


class SessionSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


class SessionDetail(SessionSummary):
    messages: list[MessageOut]


# --- admin and health --------------------------------------------------------------------


class IngestResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    chapters: int
    chunks: int
    added: int
    unchanged: int
    deleted: int
    seconds: float
    skipped: list[str] = []  # "<file>: <reason>" for each file left out
    notes: list[str] = []  # e.g. a slug renamed to stay unique


class ComponentStatus(BaseModel):
    ok: bool
    detail: str


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    components: dict[str, ComponentStatus]
