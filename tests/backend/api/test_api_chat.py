"""Chat: answers with citations, the prompt carries the passages, SSE framing, history,
conversations per user, atomicity when the LLM fails, selected text without retrieval."""

from __future__ import annotations

import time
from typing import Any

import pytest
from apitest import ClientFactory, auth_headers, llm_settings, parse_sse
from fastapi.testclient import TestClient
from llm_server import FakeOpenAI
from sqlalchemy import create_engine, func, select

from textbook.models import ChatMessage, ChatSession
from textbook.rag.store import ChunkStore
from textbook.rag.types import Passage

QUESTION = "What does a QoS reliability policy control?"


def count_rows(database_url: str) -> tuple[int, int]:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        sessions = conn.scalar(select(func.count()).select_from(ChatSession))
        messages = conn.scalar(select(func.count()).select_from(ChatMessage))
    engine.dispose()
    return int(sessions or 0), int(messages or 0)


@pytest.fixture
def llm_client(make_client: ClientFactory, database_url: str, llm: FakeOpenAI) -> TestClient:
    return make_client(database_url=database_url, **llm_settings(llm))


def test_extractive_answer_without_llm_key(client: TestClient) -> None:
    headers = auth_headers(client)
    response = client.post("/api/v1/chat", json={"question": QUESTION}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive"
    assert body["source"] == "retrieval"
    assert body["answer"]
    assert body["citations"], "retrieval found nothing for a question the textbook answers"
    first = body["citations"][0]
    assert first["url"] == f"/chapters/{first['chapter']}#{first['anchor']}"
    assert {"chapter", "chapter_title", "section", "anchor", "score", "module"} <= set(first)


def test_llm_prompt_carries_the_retrieved_passages(
    llm_client: TestClient, llm: FakeOpenAI, textbook_store: ChunkStore
) -> None:
    headers = auth_headers(llm_client)
    response = llm_client.post("/api/v1/chat", json={"question": QUESTION}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "llm"
    assert body["answer"] == llm.behaviour.reply
    assert len(llm.chat_requests) == 1
    request = llm.chat_requests[0]
    assert request["auth"] == "Bearer sk-test-not-a-real-key"
    assert request["body"]["model"] == "gpt-4o-mini"
    prompt = llm.prompt_text()
    assert QUESTION in prompt
    expected = textbook_store.search(QUESTION, limit=5)
    assert expected
    for passage in expected:
        assert passage.text in prompt
    # Citations are the passages in prompt order, so the answer's [n] points at them.
    assert [(c["chapter"], c["anchor"]) for c in body["citations"]] == [
        (p.chapter, p.anchor) for p in expected
    ]


def test_gemini_goes_through_the_same_client(
    make_client: ClientFactory, sqlite_url: str, llm: FakeOpenAI
) -> None:
    client = make_client(
        database_url=sqlite_url,
        llm_provider="gemini",
        gemini_api_key="gemini-test-key",
        gemini_base_url=llm.base_url,
        embedding_provider="none",
    )
    response = client.post(
        "/api/v1/chat", json={"question": QUESTION}, headers=auth_headers(client)
    )
    assert response.status_code == 200, response.text
    assert llm.chat_requests[0]["body"]["model"] == "gemini-2.0-flash"
    assert llm.chat_requests[0]["auth"] == "Bearer gemini-test-key"


def test_conversation_history_is_used_and_persisted(
    llm_client: TestClient, llm: FakeOpenAI, database_url: str
) -> None:
    headers = auth_headers(llm_client)
    llm.behaviour.reply = "FIRST-ANSWER-MARKER about reliability."
    first = llm_client.post("/api/v1/chat", json={"question": QUESTION}, headers=headers).json()
    session_id = first["session_id"]
    llm.behaviour.reply = "Second answer."
    second = llm_client.post(
        "/api/v1/chat",
        json={"question": "And what about durability?", "session_id": session_id},
        headers=headers,
    )
    assert second.status_code == 200, second.text
    assert second.json()["session_id"] == session_id
    messages = llm.chat_requests[-1]["body"]["messages"]
    contents = [m["content"] for m in messages]
    assert any(c == QUESTION for c in contents), "previous question missing from the prompt"
    assert any("FIRST-ANSWER-MARKER" in c for c in contents)
    assert count_rows(database_url) == (1, 4)

    detail = llm_client.get(f"/api/v1/chat/sessions/{session_id}", headers=headers).json()
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"] * 2
    assert detail["messages"][0]["content"] == QUESTION
    assert detail["messages"][1]["citations"]
    listed = llm_client.get("/api/v1/chat/sessions", headers=headers).json()
    assert [s["id"] for s in listed] == [session_id]
    assert listed[0]["title"] == QUESTION


def test_history_is_limited_to_history_turns(
    make_client: ClientFactory, sqlite_url: str, llm: FakeOpenAI
) -> None:
    client = make_client(database_url=sqlite_url, **llm_settings(llm, history_turns=1))
    headers = auth_headers(client)
    session_id = None
    for n in range(3):
        body: dict[str, Any] = {"question": f"Question number {n} about topics?"}
        if session_id:
            body["session_id"] = session_id
        session_id = client.post("/api/v1/chat", json=body, headers=headers).json()["session_id"]
    prompt = llm.prompt_text()
    assert "Question number 1" in prompt  # the last turn
    assert "Question number 0" not in prompt  # beyond history_turns


def test_other_users_sessions_are_404(client: TestClient) -> None:
    alice = auth_headers(client, "alice@example.org")
    bob = auth_headers(client, "bob@example.org")
    session_id = client.post("/api/v1/chat", json={"question": QUESTION}, headers=alice).json()[
        "session_id"
    ]
    assert client.get(f"/api/v1/chat/sessions/{session_id}", headers=bob).status_code == 404
    assert client.delete(f"/api/v1/chat/sessions/{session_id}", headers=bob).status_code == 404
    reuse = client.post(
        "/api/v1/chat", json={"question": QUESTION, "session_id": session_id}, headers=bob
    )
    assert reuse.status_code == 404
    assert client.get("/api/v1/chat/sessions", headers=bob).json() == []
    # The owner still has it, and can delete it.
    assert client.delete(f"/api/v1/chat/sessions/{session_id}", headers=alice).status_code == 204
    assert client.get(f"/api/v1/chat/sessions/{session_id}", headers=alice).status_code == 404


def test_unknown_and_malformed_session_ids(client: TestClient) -> None:
    headers = auth_headers(client)
    unknown = "6f1d9a52-0c4b-4f3e-9d8a-5b7c2e1f0a93"
    assert client.get(f"/api/v1/chat/sessions/{unknown}", headers=headers).status_code == 404
    assert client.get("/api/v1/chat/sessions/12345", headers=headers).status_code == 422
    response = client.post(
        "/api/v1/chat", json={"question": QUESTION, "session_id": unknown}, headers=headers
    )
    assert response.status_code == 404


def test_chat_requires_authentication(client: TestClient) -> None:
    assert client.post("/api/v1/chat", json={"question": QUESTION}).status_code == 401


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (429, 502), (401, 502)])
def test_llm_failure_is_502_and_stores_nothing(
    llm_client: TestClient, llm: FakeOpenAI, database_url: str, status: int, expected: int
) -> None:
    headers = auth_headers(llm_client)
    llm.behaviour.status = status
    response = llm_client.post("/api/v1/chat", json={"question": QUESTION}, headers=headers)
    assert response.status_code == expected
    assert "openai" in response.json()["detail"]
    assert count_rows(database_url) == (0, 0)


def test_llm_failure_in_existing_session_adds_no_half_turn(
    llm_client: TestClient, llm: FakeOpenAI, database_url: str
) -> None:
    headers = auth_headers(llm_client)
    session_id = llm_client.post(
        "/api/v1/chat", json={"question": QUESTION}, headers=headers
    ).json()["session_id"]
    llm.behaviour.status = 500
    response = llm_client.post(
        "/api/v1/chat", json={"question": "again?", "session_id": session_id}, headers=headers
    )
    assert response.status_code == 502
    assert count_rows(database_url) == (1, 2)


def test_llm_timeout_is_504(make_client: ClientFactory, sqlite_url: str, llm: FakeOpenAI) -> None:
    client = make_client(database_url=sqlite_url, **llm_settings(llm, llm_timeout_seconds=0.3))
    llm.behaviour.delay = 2
    headers = auth_headers(client)
    started = time.monotonic()
    response = client.post("/api/v1/chat", json={"question": QUESTION}, headers=headers)
    assert response.status_code == 504
    assert "did not answer within 0.3 seconds" in response.json()["detail"]
    assert time.monotonic() - started < 2
    assert count_rows(sqlite_url) == (0, 0)


def test_llm_unreachable_is_502(make_client: ClientFactory, sqlite_url: str) -> None:
    client = make_client(
        database_url=sqlite_url,
        llm_provider="openai",
        openai_api_key="sk-test",
        openai_base_url="http://127.0.0.1:9/v1",
        llm_max_retries=0,
        embedding_provider="none",
    )
    response = client.post(
        "/api/v1/chat", json={"question": QUESTION}, headers=auth_headers(client)
    )
    assert response.status_code == 502
    assert "Could not reach" in response.json()["detail"]


# --- streaming -------------------------------------------------------------------------


def _stream(client: TestClient, headers: dict[str, str], **body: Any) -> tuple[Any, str]:
    with client.stream("POST", "/api/v1/chat", json=body, headers=headers) as response:
        raw = "".join(response.iter_text())
    return response, raw


def test_sse_stream_framing(llm_client: TestClient, llm: FakeOpenAI, database_url: str) -> None:
    headers = auth_headers(llm_client)
    llm.behaviour.reply = "Reliable delivery retransmits lost samples [1]."
    response, raw = _stream(llm_client, headers, question=QUESTION, stream=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = parse_sse(raw)
    names = [name for name, _ in events if name != "comment"]
    assert names[0] == "meta"
    assert names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    meta = events[0][1]
    assert meta["mode"] == "llm"
    assert meta["citations"]
    text = "".join(data["text"] for name, data in events if name == "token")
    assert text == llm.behaviour.reply
    done = next(data for name, data in events if name == "done")
    assert done["session_id"] == meta["session_id"]
    detail = llm_client.get(f"/api/v1/chat/sessions/{meta['session_id']}", headers=headers)
    assert detail.json()["messages"][1]["content"] == llm.behaviour.reply
    assert detail.json()["messages"][1]["id"] == done["message_id"]
    assert count_rows(database_url) == (1, 2)


def test_accept_header_selects_streaming(client: TestClient) -> None:
    headers = auth_headers(client) | {"Accept": "text/event-stream"}
    response, raw = _stream(client, headers, question=QUESTION)
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in parse_sse(raw)]
    assert names == ["meta", "token", "done"]
    assert parse_sse(raw)[0][1]["mode"] == "extractive"


def test_sse_heartbeats_while_the_llm_is_slow(
    make_client: ClientFactory, sqlite_url: str, llm: FakeOpenAI
) -> None:
    client = make_client(database_url=sqlite_url, **llm_settings(llm, sse_heartbeat_seconds=0.1))
    llm.behaviour.reply = "slow words arrive"
    llm.behaviour.chunk_delay = 0.35
    _, raw = _stream(client, auth_headers(client), question=QUESTION, stream=True)
    events = parse_sse(raw)
    assert ("comment", "heartbeat") in events
    assert ": heartbeat\n\n" in raw
    assert [n for n, _ in events if n != "comment"][-1] == "done"


def test_sse_error_event_and_nothing_stored(
    llm_client: TestClient, llm: FakeOpenAI, database_url: str
) -> None:
    llm.behaviour.status = 500
    _, raw = _stream(llm_client, auth_headers(llm_client), question=QUESTION, stream=True)
    events = parse_sse(raw)
    assert [n for n, _ in events if n != "comment"] == ["meta", "error"]
    assert events[-1][1]["status"] == 502
    assert count_rows(database_url) == (0, 0)


def test_sse_failure_mid_stream_stores_nothing(
    llm_client: TestClient, llm: FakeOpenAI, database_url: str
) -> None:
    llm.behaviour.reply = "one two three four five six"
    llm.behaviour.fail_mid_stream = True
    _, raw = _stream(llm_client, auth_headers(llm_client), question=QUESTION, stream=True)
    names = [n for n, _ in parse_sse(raw) if n != "comment"]
    assert names[0] == "meta"
    assert "token" in names
    assert names[-1] == "error"
    assert count_rows(database_url) == (0, 0)


# --- selected text ---------------------------------------------------------------------


class ExplodingStore:
    """A vector store that fails the test if anything searches it."""

    def __init__(self) -> None:
        self.searches = 0

    def search(self, *args: Any, **kwargs: Any) -> list[Passage]:
        self.searches += 1
        raise AssertionError("selected_text mode queried the vector store")

    def ingest(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("unexpected ingest")

    def ready(self) -> tuple[bool, str]:
        return True, "spy"

    def close(self) -> None:
        pass


SELECTION = (
    "The KEEP_LAST history policy with depth 10 keeps only the ten newest samples; "
    "older ones are dropped when the queue is full."
)


@pytest.mark.parametrize("stream", [False, True])
def test_selected_text_never_queries_the_store(
    make_client: ClientFactory, sqlite_url: str, llm: FakeOpenAI, stream: bool
) -> None:
    spy = ExplodingStore()
    client = make_client(database_url=sqlite_url, store=spy, **llm_settings(llm))
    headers = auth_headers(client)
    body = {"question": "What happens to old samples?", "selected_text": SELECTION}
    if stream:
        _, raw = _stream(client, headers, **body, stream=True)
        names = [n for n, _ in parse_sse(raw) if n != "comment"]
        assert names[-1] == "done", raw
        meta = parse_sse(raw)[0][1]
        assert meta["source"] == "selected_text"
        assert meta["citations"] == []
    else:
        response = client.post("/api/v1/chat", json=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["source"] == "selected_text"
        assert response.json()["citations"] == []
    assert spy.searches == 0
    assert SELECTION in llm.prompt_text()
    # Control: an ordinary question does reach the store (the spy is wired in).
    failing = client.post("/api/v1/chat", json={"question": "topics?"}, headers=headers)
    assert failing.status_code == 500
    assert spy.searches == 1


def test_selected_text_extractive_answer_quotes_the_selection(
    make_client: ClientFactory, sqlite_url: str
) -> None:
    client = make_client(database_url=sqlite_url, store=ExplodingStore())
    response = client.post(
        "/api/v1/chat",
        json={"question": "What does KEEP_LAST keep?", "selected_text": SELECTION},
        headers=auth_headers(client),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mode"] == "extractive"
    assert "ten newest samples" in body["answer"]


@pytest.mark.parametrize(
    "body",
    [
        {"question": ""},
        {"question": "x" * 2001},
        {"question": "ok?", "selected_text": "y" * 8001},
        {"question": "nul \x00 byte"},
        {"question": "ok?", "chapter": "../../etc/passwd"},
        {"question": "ok?", "stream": "sometimes"},
        {"question": "ok?", "unexpected": 1},
        {"question": ["not", "a", "string"]},
    ],
    ids=["empty", "long", "long-selection", "nul", "bad-chapter", "bad-stream", "extra", "list"],
)
def test_chat_rejects_bad_input(
    make_client: ClientFactory, sqlite_url: str, body: dict[str, Any]
) -> None:
    client = make_client(database_url=sqlite_url)
    response = client.post("/api/v1/chat", json=body, headers=auth_headers(client))
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"]
