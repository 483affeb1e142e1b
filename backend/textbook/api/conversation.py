"""One chat turn: history, retrieval (or the reader's selection), answer, persistence.

The question and its answer are written in one transaction after the answer exists, so
a failed language-model call leaves nothing behind.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from textbook.api.schemas import AnswerMode, ChatRequest, Citation
from textbook.core.config import Settings
from textbook.core.db import session_scope
from textbook.llm import LLMClient
from textbook.models import ChatMessage, ChatSession, User, utcnow
from textbook.rag.answer import (
    build_prompt_messages,
    compose_extractive_answer,
    selected_text_messages,
)
from textbook.rag.store import Store
from textbook.rag.types import Passage

TITLE_LENGTH = 80


@dataclass
class Turn:
    """Everything needed to answer, decided before the answer is produced."""

    question: str
    session_id: uuid.UUID
    is_new_session: bool
    source: str  # "retrieval" or "selected_text"
    mode: AnswerMode
    selected_text: str | None
    passages: list[Passage] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # the LLM prompt

    @property
    def citations(self) -> list[Citation]:
        # One per passage, in prompt order: the answer's [n] refers to citations[n-1].
        return [Citation.model_validate(p) for p in self.passages]


def owned_session(db: Session, user_id: uuid.UUID, session_id: uuid.UUID) -> ChatSession:
    """The user's session; 404 for unknown ids and for other users' sessions alike."""
    chat = db.get(ChatSession, session_id)
    if chat is None or chat.user_id != user_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Chat session not found")
    return chat


def recent_history(db: Session, session_id: uuid.UUID, turns: int) -> list[dict[str, str]]:
    """The last `turns` question/answer pairs, oldest first."""
    if turns == 0:
        return []
    rows = db.scalars(
        select(ChatMessage)
        .where(ChatMessage.session_id == session_id)
        .order_by(ChatMessage.position.desc())
        .limit(turns * 2)
    ).all()
    return [{"role": m.role, "content": m.content} for m in reversed(rows)]


def load_history(
    factory: sessionmaker[Session], user_id: uuid.UUID, session_id: uuid.UUID, turns: int
) -> list[dict[str, str]]:
    with factory() as db:
        owned_session(db, user_id, session_id)
        return recent_history(db, session_id, turns)


async def prepare_turn(
    body: ChatRequest,
    user: User,
    factory: sessionmaker[Session],
    store: Store,
    llm: LLMClient | None,
    settings: Settings,
) -> Turn:
    history: list[dict[str, str]] = []
    if body.session_id is not None:
        history = await run_in_threadpool(
            load_history, factory, user.id, body.session_id, settings.history_turns
        )
    turn = Turn(
        question=body.question,
        session_id=body.session_id or uuid.uuid4(),
        is_new_session=body.session_id is None,
        source="selected_text" if body.selected_text else "retrieval",
        mode="llm" if llm is not None else "extractive",
        selected_text=body.selected_text,
    )
    if body.selected_text is not None:
        # The reader's selection is the only context: the vector store is not consulted.
        if llm is not None:
            turn.messages = selected_text_messages(body.question, body.selected_text, history)
        return turn
    turn.passages = await run_in_threadpool(
        store.search,
        body.question,
        limit=settings.retrieval_top_k,
        module=body.module,
        chapter=body.chapter,
    )
    if llm is not None:
        turn.messages = build_prompt_messages(body.question, turn.passages, history)
    return turn


def extractive_answer(turn: Turn) -> str:
    if turn.selected_text is not None:
        selection = Passage(
            chunk_id="selection",
            module="",
            chapter="",
            chapter_title="",
            section="Selected text",
            anchor="",
            text=turn.selected_text,
        )
        return compose_extractive_answer(turn.question, [selection])
    return compose_extractive_answer(turn.question, turn.passages)


async def produce_answer(turn: Turn, llm: LLMClient | None) -> str:
    if llm is None:
        return extractive_answer(turn)
    return await llm.complete(turn.messages)


def save_turn(
    factory: sessionmaker[Session], user_id: uuid.UUID, turn: Turn, answer: str
) -> uuid.UUID:
    """Question and answer in one transaction; the assistant message's id."""
    with session_scope(factory) as db:
        now = utcnow()
        if turn.is_new_session:
            chat = ChatSession(
                id=turn.session_id,
                user_id=user_id,
                title=turn.question[:TITLE_LENGTH],
                created_at=now,
                updated_at=now,
            )
            db.add(chat)
            db.flush()
            position = 0
        else:
            chat = db.get_one(ChatSession, turn.session_id)
            chat.updated_at = now
            last = db.scalar(
                select(func.max(ChatMessage.position)).where(
                    ChatMessage.session_id == turn.session_id
                )
            )
            position = (last if last is not None else -1) + 1
        db.add(
            ChatMessage(
                session_id=chat.id,
                position=position,
                role="user",
                content=turn.question,
                selected_text=turn.selected_text,
                citations=[],
                created_at=now,
            )
        )
        reply = ChatMessage(
            session_id=chat.id,
            position=position + 1,
            role="assistant",
            content=answer,
            mode=turn.mode,
            citations=[c.model_dump() for c in turn.citations],
            created_at=now,
        )
        db.add(reply)
        db.flush()
        return reply.id
