"""Questions about the textbook, answered with citations; conversations per user."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from textbook.api.conversation import (
    Turn,
    extractive_answer,
    owned_session,
    prepare_turn,
    produce_answer,
    save_turn,
)
from textbook.api.deps import CurrentUser, LLMDep, SessionDep, SettingsDep, StoreDep, limit_chat
from textbook.api.responses import WITH_BODY, errors
from textbook.api.schemas import ChatRequest, ChatResponse, SessionDetail, SessionSummary
from textbook.core.sse import sse_event, sse_response
from textbook.llm import LLMClient, LLMError, LLMTimeout
from textbook.models import ChatSession

router = APIRouter(prefix="/chat", tags=["chat"])
SessionIdPath = Annotated[uuid.UUID, Path(description="Chat session id")]

STREAM_DOC = (
    "With `stream: true` or `Accept: text/event-stream` the answer arrives as server-sent "
    "events: `meta` (session id, mode, citations), `token` (text deltas), `done` "
    "(message id) or `error` (detail, status); comment lines are heartbeats."
)
STREAM_EXAMPLE = (
    'event: meta\ndata: {"session_id": "0b0e5a52-6f3c-4a8e-9d55-3f0e7f6f1b2a", "mode": "llm", '
    '"source": "retrieval", "citations": []}\n\n'
    'event: token\ndata: {"text": "A topic is a named bus"}\n\n'
    ": heartbeat\n\n"
    'event: done\ndata: {"session_id": "0b0e5a52-6f3c-4a8e-9d55-3f0e7f6f1b2a", '
    '"message_id": "5f9c2d1e-8b7a-4c3d-9e2f-1a0b9c8d7e6f"}\n\n'
)
# One event of the stream (OpenAPI before 3.2 documents a stream by the schema of its events).
STREAM_EVENT_SCHEMA = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["meta", "token", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["event", "data"],
}


@router.post(
    "",
    response_model=ChatResponse,
    dependencies=[Depends(limit_chat)],
    description="Answer a question from the textbook. " + STREAM_DOC,
    operation_id="chat",
    responses={
        200: {
            "content": {
                "text/event-stream": {
                    "schema": STREAM_EVENT_SCHEMA,
                    "example": STREAM_EXAMPLE,
                }
            }
        },
        **errors(401, 404, *WITH_BODY, 502, 503, 504, e404="Unknown chat session"),
    },
)
async def ask(
    request: Request,
    body: ChatRequest,
    user: CurrentUser,
    store: StoreDep,
    llm: LLMDep,
    settings: SettingsDep,
) -> Response:
    factory = request.app.state.sessionmaker
    turn = await prepare_turn(body, user, factory, store, llm, settings)
    wants_stream = body.stream or "text/event-stream" in request.headers.get("accept", "")
    if wants_stream:
        return sse_response(_stream(request, turn, llm, user.id), settings.sse_heartbeat_seconds)
    answer = await produce_answer(turn, llm)
    message_id = await run_in_threadpool(save_turn, factory, user.id, turn, answer)
    payload = ChatResponse(
        session_id=turn.session_id,
        message_id=message_id,
        answer=answer,
        mode=turn.mode,
        source=turn.source,
        citations=turn.citations,
    )
    return JSONResponse(payload.model_dump(mode="json"))


async def _stream(
    request: Request, turn: Turn, llm: LLMClient | None, user_id: uuid.UUID
) -> AsyncIterator[bytes]:
    yield sse_event(
        "meta",
        {
            "session_id": str(turn.session_id),
            "mode": turn.mode,
            "source": turn.source,
            "citations": [c.model_dump() for c in turn.citations],
        },
    )
    parts: list[str] = []
    try:
        if llm is None:
            parts.append(extractive_answer(turn))
            yield sse_event("token", {"text": parts[-1]})
        else:
            async for delta in llm.stream(turn.messages):
                parts.append(delta)
                yield sse_event("token", {"text": delta})
        if not "".join(parts).strip():
            raise LLMError("The language model provider sent an empty answer")
    except LLMError as exc:
        code = 504 if isinstance(exc, LLMTimeout) else 502
        request.app.state.metrics.llm_errors.labels("timeout" if code == 504 else "error").inc()
        yield sse_event("error", {"detail": str(exc), "status": code})
        return
    message_id = await run_in_threadpool(
        save_turn, request.app.state.sessionmaker, user_id, turn, "".join(parts)
    )
    yield sse_event("done", {"session_id": str(turn.session_id), "message_id": str(message_id)})


@router.get(
    "/sessions",
    response_model=list[SessionSummary],
    operation_id="listConversations",
    responses=errors(401, 429),
)
def list_sessions(user: CurrentUser, db: SessionDep) -> list[ChatSession]:
    """The user's conversations, most recent first."""
    return list(
        db.scalars(
            select(ChatSession)
            .where(ChatSession.user_id == user.id)
            .order_by(ChatSession.updated_at.desc())
            .limit(200)
        ).all()
    )


@router.get(
    "/sessions/{session_id}",
    response_model=SessionDetail,
    operation_id="readConversation",
    responses=errors(401, 404, 422, 429, e404="Unknown chat session"),
)
def read_session(session_id: SessionIdPath, user: CurrentUser, db: SessionDep) -> ChatSession:
    return owned_session(db, user.id, session_id)


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="deleteConversation",
    responses=errors(401, 404, 422, 429, e404="Unknown chat session"),
)
def delete_session(session_id: SessionIdPath, user: CurrentUser, db: SessionDep) -> None:
    db.delete(owned_session(db, user.id, session_id))
    db.commit()
