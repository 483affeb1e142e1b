"""What the API returns, as the client hands it back (pydantic models of docs/openapi.json).

Fields the server adds later are ignored, so an older client keeps working against a newer
server; tests/backend/client/test_models.py checks each model against the committed contract.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    id: uuid.UUID
    email: str
    full_name: str | None = None
    is_admin: bool
    created_at: datetime


class Citation(_Model):
    """A passage the answer is built on; `[n]` in an answer is citation n."""

    chapter: str
    anchor: str
    url: str  # where the textbook site shows the section, e.g. /chapters/ros2-basics#topics
    chapter_title: str
    module: str
    section: str
    score: float


class SearchHit(Citation):
    text: str


class SearchResults(_Model):
    query: str
    results: list[SearchHit]


class ChatAnswer(_Model):
    session_id: uuid.UUID
    message_id: uuid.UUID
    answer: str
    mode: Literal["llm", "extractive"]
    source: Literal["retrieval", "selected_text"]
    citations: list[Citation]


class Message(_Model):
    id: uuid.UUID
    role: str
    content: str
    mode: str | None = None
    selected_text: str | None = None
    citations: list[dict[str, Any]]
    created_at: datetime


class Conversation(_Model):
    id: uuid.UUID
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationDetail(Conversation):
    messages: list[Message]


class SectionSummary(_Model):
    title: str
    anchor: str
    level: int


class Chapter(_Model):
    slug: str
    number: int
    title: str
    module: str
    url: str
    sections: list[SectionSummary]


class Section(_Model):
    chapter: str
    anchor: str
    url: str
    chapter_title: str
    module: str
    title: str
    level: int
    text: str


class IngestReport(_Model):
    chapters: int
    chunks: int
    added: int
    unchanged: int
    deleted: int
    seconds: float
    skipped: list[str] = []
    notes: list[str] = []


class ComponentStatus(_Model):
    ok: bool
    detail: str


class Health(_Model):
    status: Literal["ok", "unavailable"]
    components: dict[str, ComponentStatus]


# --- a streamed answer -----------------------------------------------------------------------


class StreamStart(_Model):
    """The first event: the conversation, how the answer is made, and its citations."""

    session_id: uuid.UUID
    mode: Literal["llm", "extractive"]
    source: Literal["retrieval", "selected_text"]
    citations: list[Citation]


class StreamToken(_Model):
    """A piece of the answer's text, in order."""

    text: str


class StreamDone(_Model):
    """The last event: the answer is complete and saved as `message_id`."""

    session_id: uuid.UUID
    message_id: uuid.UUID


StreamEvent = StreamStart | StreamToken | StreamDone
# The SSE event name of each (`error` events are raised as StreamError).
STREAM_EVENTS: dict[str, type[StreamStart] | type[StreamToken] | type[StreamDone]] = {
    "meta": StreamStart,
    "token": StreamToken,
    "done": StreamDone,
}


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tokens:
    """An access and refresh token pair; `expires_at` is when the access token expires
    (Unix time, from the login's `expires_in`)."""

    access_token: str
    refresh_token: str
    expires_at: float

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> Tokens:
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_at=time.time() + float(body["expires_in"]),
        )

    def expires_within(self, seconds: float) -> bool:
        return time.time() + seconds >= self.expires_at
