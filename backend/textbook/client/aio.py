"""The asyncio client (httpx.AsyncClient); the same operations as TextbookClient."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import EventSource, SSEError

from textbook.client import _base as b
from textbook.client import models
from textbook.client.errors import StreamError, TextbookError

T = TypeVar("T")


class AsyncTextbookClient:
    """The textbook API, for asyncio.

        async with AsyncTextbookClient("https://textbook.example.org") as api:
            await api.login("me@example.org", "a long password")
            async for event in api.chat_stream("What is a ROS 2 topic?"):
                ...

    `verify` is httpx's (True, False, or an `ssl.SSLContext`); `ca_file` trusts a private CA
    instead of the system's. `tokens` resumes a session (`on_tokens` is called with every new
    pair, and with None after logout, so a caller can keep them). Access tokens are refreshed
    `refresh_leeway` seconds before they expire, and once more when the API answers 401.
    `connect_to` sends every request to that address while Host, SNI and the certificate
    check keep the URL's name (a deployment not yet in DNS).
    """

    def __init__(
        self,
        url: str = b.DEFAULT_URL,
        *,
        tokens: models.Tokens | None = None,
        on_tokens: Callable[[models.Tokens | None], None] | None = None,
        ca_file: str | None = None,
        verify: bool | ssl.SSLContext = True,
        timeout: httpx.Timeout | float = b.DEFAULT_TIMEOUT,
        retry: b.Retry = b.Retry(),
        refresh_leeway: float = 60.0,
        connect_to: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._state = b.ClientState(
            base_url=b.api_base(url),
            retry=retry,
            refresh_leeway=refresh_leeway,
            on_tokens=on_tokens,
            connect_to=connect_to,
            tokens=tokens,
        )
        if ca_file is not None:
            verify = ssl.create_default_context(cafile=ca_file)
        self._http = httpx.AsyncClient(timeout=timeout, verify=verify, transport=transport)
        self._refresh_lock = asyncio.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncTextbookClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """The API's root, e.g. `https://textbook.example.org/api/v1`."""
        return self._state.base_url

    @property
    def tokens(self) -> models.Tokens | None:
        return self._state.tokens

    # --- auth --------------------------------------------------------------------------------

    async def register(
        self, email: str, password: str, *, full_name: str | None = None
    ) -> models.User:
        return await self._call(b.op_register(email, password, full_name))

    async def login(self, email: str, password: str) -> models.Tokens:
        """Log in; later calls carry the new tokens."""
        tokens = await self._call(b.op_login(email, password))
        self._set_tokens(tokens)
        return tokens

    async def refresh(self) -> models.Tokens:
        """A new token pair for the current refresh token (done for you when needed)."""
        current = self._state.tokens
        if current is None:
            raise b.not_logged_in(b.op_refresh(""))
        async with self._refresh_lock:
            if self._state.tokens is not current:  # refreshed meanwhile by another task
                assert self._state.tokens is not None
                return self._state.tokens
            tokens = await self._call(b.op_refresh(current.refresh_token))
            self._set_tokens(tokens)
        return tokens

    async def logout(self) -> None:
        """Revoke every token of this user (all devices) and forget them here."""
        await self._call(b.op_logout())
        self._set_tokens(None)

    async def me(self) -> models.User:
        return await self._call(b.op_me())

    # --- reading -----------------------------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        limit: int | None = None,
        module: str | None = None,
        chapter: str | None = None,
    ) -> models.SearchResults:
        return await self._call(b.op_search(query, limit, module, chapter))

    async def chapters(self) -> list[models.Chapter]:
        return await self._call(b.op_chapters())

    async def chapter(self, slug: str) -> models.Chapter:
        return await self._call(b.op_chapter(slug))

    async def section(self, slug: str, anchor: str) -> models.Section:
        return await self._call(b.op_section(slug, anchor))

    async def health(self) -> models.Health:
        """Readiness: `status` "ok", or "unavailable" with each component's reason."""
        return await self._call(b.op_health())

    # --- chat --------------------------------------------------------------------------------

    async def chat(
        self,
        question: str,
        *,
        conversation: uuid.UUID | str | None = None,
        selected_text: str | None = None,
        module: str | None = None,
        chapter: str | None = None,
    ) -> models.ChatAnswer:
        """The whole answer. `conversation` continues one (its id); `selected_text` answers
        from that passage alone; `module`/`chapter` narrow the retrieval."""
        body = b.chat_body(
            question,
            conversation=conversation,
            selected_text=selected_text,
            module=module,
            chapter=chapter,
            stream=False,
        )
        return await self._call(b.op_chat(body))

    async def chat_stream(
        self,
        question: str,
        *,
        conversation: uuid.UUID | str | None = None,
        selected_text: str | None = None,
        module: str | None = None,
        chapter: str | None = None,
    ) -> AsyncIterator[models.StreamEvent]:
        """The answer as it is written: a StreamStart (conversation, citations), StreamToken
        pieces, then StreamDone. An `error` event, or a stream that ends without `done`, raises
        StreamError. Heartbeats are skipped. To leave the loop early, close the iterator
        (`contextlib.aclosing`): that ends the connection."""
        body = b.chat_body(
            question,
            conversation=conversation,
            selected_text=selected_text,
            module=module,
            chapter=chapter,
            stream=True,
        )
        response = await self._send(b.op_chat_stream(body), stream=True)
        request_id = response.headers.get(b.REQUEST_ID_HEADER)
        try:
            async for sse in EventSource(response).aiter_sse():
                event = b.stream_event(sse.event, sse.data, request_id)
                if event is not None:
                    yield event
                if isinstance(event, models.StreamDone):
                    return
        except SSEError as exc:
            raise StreamError(500, str(exc), request_id=request_id) from None
        except httpx.TransportError as exc:
            raise b.transport_error(exc, response.request) from None
        finally:
            await response.aclose()
        raise b.incomplete_stream(request_id)

    async def conversations(self) -> list[models.Conversation]:
        """The user's conversations, most recent first."""
        return await self._call(b.op_conversations())

    async def conversation(self, conversation: uuid.UUID | str) -> models.ConversationDetail:
        return await self._call(b.op_conversation(conversation))

    async def delete_conversation(self, conversation: uuid.UUID | str) -> None:
        await self._call(b.op_delete_conversation(conversation))

    # --- admin -------------------------------------------------------------------------------

    async def ingest(self) -> models.IngestReport:
        """Re-index the server's textbook (admin only)."""
        return await self._call(b.op_ingest())

    # --- sending -----------------------------------------------------------------------------

    def _set_tokens(self, tokens: models.Tokens | None) -> None:
        self._state.tokens = tokens
        if self._state.on_tokens is not None:
            self._state.on_tokens(tokens)

    async def _call(self, op: b.Op[T]) -> T:
        response = await self._send(op)
        return op.parse(response)

    async def _send(self, op: b.Op[Any], *, stream: bool = False) -> httpx.Response:
        """The response to `op` (status < 400, or one of op.accept), after the refresh and
        retries it may need; else the typed error."""
        state = self._state
        if op.auth and state.tokens is None:
            raise b.not_logged_in(op)
        if b.needs_refresh(state, op):
            await self.refresh()
        refreshed, attempt = False, 0
        while True:
            used = state.tokens
            request = b.build_request(self._http, state, op)
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise b.transport_error(exc, request) from None
            if response.status_code < 400 or response.status_code in op.accept:
                return response
            await response.aread()
            await response.aclose()
            if not refreshed and b.may_refresh_after_401(state, op, response):
                refreshed = True
                if state.tokens is used:
                    try:
                        await self.refresh()
                    except TextbookError:
                        raise b.api_error(response) from None
                continue
            delay = state.retry.delay(response, attempt) if op.retry else None
            if delay is None:
                raise b.api_error(response)
            await asyncio.sleep(delay)
            attempt += 1
