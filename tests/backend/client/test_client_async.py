"""textbook.client.AsyncTextbookClient against a live server: the same operations as the
blocking client, sent through httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from conftest import Live, ServeFactory
from textbook.client import (
    AsyncTextbookClient,
    AuthenticationError,
    InvalidRequest,
    NotFound,
    StreamDone,
    StreamError,
    StreamStart,
    StreamToken,
    Tokens,
)

T = TypeVar("T")


@pytest.fixture(scope="module")
def live(live_sqlite: Live) -> Live:
    return live_sqlite


QUESTION = "What does a QoS reliability policy control?"


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def test_login_chat_stream_and_conversations(live: Live) -> None:
    email, password = live.new_user()

    async def scenario() -> None:
        async with AsyncTextbookClient(live.url) as api:
            await api.login(email, password)
            assert (await api.me()).email == email
            answer = await api.chat(QUESTION)
            assert answer.answer == live.llm.behaviour.reply and answer.citations
            events = [e async for e in api.chat_stream(QUESTION, conversation=answer.session_id)]
            start, *tokens, done = events
            assert isinstance(start, StreamStart) and start.session_id == answer.session_id
            text = "".join(t.text for t in tokens if isinstance(t, StreamToken))
            assert text == live.llm.behaviour.reply
            assert isinstance(done, StreamDone)
            conversations = await api.conversations()
            assert [c.id for c in conversations] == [answer.session_id]
            detail = await api.conversation(answer.session_id)
            assert len(detail.messages) == 4
            await api.delete_conversation(answer.session_id)
            with pytest.raises(NotFound):
                await api.conversation(answer.session_id)
            await api.logout()
            assert api.tokens is None

    run(scenario)


def test_search_chapters_and_typed_errors(live: Live) -> None:
    async def scenario() -> None:
        async with AsyncTextbookClient(live.url) as api:
            chapters = await api.chapters()
            chapter = chapters[2]
            found = await api.search(chapter.sections[1].title, chapter=chapter.slug, limit=2)
            assert found.results and {h.chapter for h in found.results} == {chapter.slug}
            with pytest.raises(InvalidRequest, match="limit"):
                await api.search("topics", limit=0)
            assert (await api.health()).status == "ok"

    run(scenario)


def test_concurrent_calls_after_a_401_share_one_refresh(live: Live) -> None:
    email, password = live.new_user()
    refreshes = live.served("POST", "/api/v1/auth/refresh", 200)

    async def scenario() -> None:
        async with AsyncTextbookClient(live.url) as api:
            good = await api.login(email, password)
        broken = Tokens("not-a-token", good.refresh_token, time.time() + 3600)
        async with AsyncTextbookClient(live.url, tokens=broken) as api:
            users = await asyncio.gather(*(api.me() for _ in range(4)))
            assert {u.email for u in users} == {email}

    run(scenario)
    assert live.served("POST", "/api/v1/auth/refresh", 200) == refreshes + 1


def test_a_failing_stream_and_a_bad_token_raise(live: Live) -> None:
    live.llm.behaviour.status = 500

    async def scenario() -> None:
        async with AsyncTextbookClient(live.url) as api:
            await api.login(*live.new_user())
            with pytest.raises(StreamError) as caught:
                async with contextlib.aclosing(api.chat_stream(QUESTION)) as events:
                    async for _ in events:
                        pass
            assert caught.value.status == 502
        broken = Tokens("not-a-token", "not-a-refresh-token", time.time() + 3600)
        async with AsyncTextbookClient(live.url, tokens=broken) as api:
            with pytest.raises(AuthenticationError):
                await api.me()

    run(scenario)


def test_a_429_is_retried_after_its_retry_after(serve: ServeFactory) -> None:
    live = serve(rate_limit_chat="1/second")
    email, password = live.new_user()

    async def scenario() -> float:
        async with AsyncTextbookClient(live.url) as api:
            await api.login(email, password)
            await api.chat(QUESTION)
            started = time.monotonic()
            await api.chat(QUESTION)
            return time.monotonic() - started

    assert run(scenario) >= 0.9
    assert live.served("POST", "/api/v1/chat", 429) >= 1
