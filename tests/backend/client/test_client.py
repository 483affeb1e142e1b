"""textbook.client.TextbookClient against a live server: every operation, tokens refreshed
before expiry and once on a 401, typed errors, retries of 429 and 503, streamed answers."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Live, ServeFactory
from textbook.client import (
    NO_RETRY,
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Retry,
    ServiceUnavailable,
    StreamDone,
    StreamError,
    StreamStart,
    StreamToken,
    TextbookClient,
    Timeout,
    Tokens,
    TransportError,
)
from textbook.rag.store import ChunkStore, StoreError

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
QUESTION = "What does a QoS reliability policy control?"
FAST_RETRY = Retry(attempts=3, backoff=0.01, max_wait=5)


def logged_in(live: Live, **options: Any) -> TextbookClient:
    api = TextbookClient(live.url, **options)
    api.login(*live.new_user())
    return api


# --- auth ------------------------------------------------------------------------------------


def test_register_login_me_and_logout_revokes_the_tokens(live: Live) -> None:
    email = f"new-{uuid.uuid4().hex[:8]}@example.org"
    kept: list[Tokens | None] = []
    with TextbookClient(live.url, on_tokens=kept.append) as api:
        user = api.register(email, "a long password", full_name="Ada")
        assert (user.email, user.full_name, user.is_admin) == (email, "Ada", False)
        tokens = api.login(email, "a long password")
        assert kept == [tokens] and api.tokens == tokens
        assert tokens.expires_at > time.time() + 60
        assert api.me().id == user.id
        api.logout()
        assert api.tokens is None and kept[-1] is None
    with (
        TextbookClient(live.url, tokens=tokens) as stale,
        pytest.raises(AuthenticationError) as caught,
    ):
        stale.me()
    assert caught.value.status == 401
    assert caught.value.message == "Token has been revoked (logged out)"
    assert REQUEST_ID.match(caught.value.request_id or "")
    assert str(caught.value) == (
        f"Token has been revoked (logged out) (HTTP 401, request id {caught.value.request_id})"
    )


def test_a_wrong_password_and_a_taken_email_are_typed_errors(live: Live) -> None:
    email, password = live.new_user()
    with TextbookClient(live.url) as api:
        with pytest.raises(AuthenticationError, match="Incorrect e-mail or password"):
            api.login(email, password + "x")
        with pytest.raises(Conflict, match="already registered") as caught:
            api.register(email, password)
    assert caught.value.status == 409


def test_a_call_that_needs_a_user_without_login_says_so_without_sending(live: Live) -> None:
    before = live.served("GET", "/api/v1/chat/sessions", 401)
    with TextbookClient(live.url) as api, pytest.raises(AuthenticationError, match="not logged in"):
        api.conversations()
    assert live.served("GET", "/api/v1/chat/sessions", 401) == before


def test_the_access_token_is_refreshed_before_it_expires(serve: ServeFactory) -> None:
    live = serve(access_token_minutes=1)
    # A leeway longer than the token's life: every call finds it about to expire.
    with logged_in(live, refresh_leeway=120) as api:
        first = api.tokens
        assert api.me().email.startswith("reader-")
        assert api.tokens is not None and first is not None
        assert api.tokens.access_token != first.access_token
    assert live.served("POST", "/api/v1/auth/refresh", 200) == 1
    assert live.served("GET", "/api/v1/users/me", 401) == 0


def test_a_401_is_answered_by_one_refresh_and_the_call_is_sent_again(live: Live) -> None:
    with logged_in(live) as api:
        assert api.tokens is not None
        good = api.tokens
    refreshes = live.served("POST", "/api/v1/auth/refresh", 200)
    unauthorized = live.served("GET", "/api/v1/users/me", 401)
    broken = Tokens("not-a-token", good.refresh_token, time.time() + 3600)
    kept: list[Tokens | None] = []
    with TextbookClient(live.url, tokens=broken, on_tokens=kept.append) as api:
        assert api.me().email.startswith("reader-")
    assert live.served("POST", "/api/v1/auth/refresh", 200) == refreshes + 1
    assert live.served("GET", "/api/v1/users/me", 401) == unauthorized + 1
    assert len(kept) == 1 and kept[0] is not None and kept[0].access_token != "not-a-token"


def test_when_the_refresh_fails_too_the_401_is_raised_after_one_try(live: Live) -> None:
    refreshes = live.served("POST", "/api/v1/auth/refresh", 401)
    unauthorized = live.served("GET", "/api/v1/users/me", 401)
    broken = Tokens("not-a-token", "not-a-refresh-token", time.time() + 3600)
    with (
        TextbookClient(live.url, tokens=broken) as api,
        pytest.raises(AuthenticationError, match="Could not validate credentials"),
    ):
        api.me()
    assert live.served("POST", "/api/v1/auth/refresh", 401) == refreshes + 1
    assert live.served("GET", "/api/v1/users/me", 401) == unauthorized + 1


# --- reading ---------------------------------------------------------------------------------


def test_search_with_chapter_and_module_filters(live: Live) -> None:
    with TextbookClient(live.url) as api:
        everywhere = api.search("quality of service reliability", limit=8)
        assert everywhere.query == "quality of service reliability"
        assert len(everywhere.results) == 8
        chapter = everywhere.results[-1].chapter
        narrowed = api.search("quality of service reliability", chapter=chapter)
        assert narrowed.results and {h.chapter for h in narrowed.results} == {chapter}
        module = everywhere.results[0].module
        by_module = api.search("quality of service reliability", module=module, limit=3)
        assert by_module.results and {h.module for h in by_module.results} == {module}
        hit = by_module.results[0]
        assert hit.url == f"/chapters/{hit.chapter}#{hit.anchor}" and hit.text


def test_invalid_input_is_an_invalid_request_naming_the_field(live: Live) -> None:
    with TextbookClient(live.url) as api, pytest.raises(InvalidRequest) as caught:
        api.search("topics", limit=50)
    assert caught.value.status == 422
    assert caught.value.message == "limit: Input should be less than or equal to 20"
    assert isinstance(caught.value.detail, list)


def test_chapters_chapter_and_section(live: Live) -> None:
    with TextbookClient(live.url) as api:
        chapters = api.chapters()
        assert len(chapters) == 13
        assert [c.number for c in chapters] == sorted(c.number for c in chapters)
        first = api.chapter(chapters[0].slug)
        assert first == chapters[0]
        section = api.section(first.slug, first.sections[1].anchor)
        assert section.title == first.sections[1].title and section.text
        with pytest.raises(NotFound, match="Chapter 'no-such-chapter' not found"):
            api.chapter("no-such-chapter")
        with pytest.raises(ValueError, match="not a chapter slug"):
            api.chapter("../admin")


def test_health_reports_readiness(live: Live) -> None:
    with TextbookClient(live.url) as api:
        health = api.health()
    assert health.status == "ok"
    assert set(health.components) == {"database", "vector_store"}


# --- chat ------------------------------------------------------------------------------------


def test_chat_returns_the_whole_answer_with_citations(live: Live) -> None:
    with logged_in(live) as api:
        answer = api.chat(QUESTION)
    assert answer.answer == live.llm.behaviour.reply
    assert (answer.mode, answer.source) == ("llm", "retrieval")
    assert answer.citations and answer.citations[0].url.startswith("/chapters/")
    assert answer.citations[0].section in live.llm.prompt_text()


def test_selected_text_mode_answers_from_the_selection_alone(live: Live) -> None:
    selection = "A lifecycle node moves through unconfigured, inactive and active states."
    with logged_in(live) as api:
        answer = api.chat("What states are there?", selected_text=selection)
        streamed = list(api.chat_stream("And which comes first?", selected_text=selection))
    assert answer.source == "selected_text" and answer.citations == []
    assert selection in live.llm.prompt_text()
    assert isinstance(streamed[0], StreamStart) and streamed[0].source == "selected_text"


def test_conversations_are_listed_read_continued_and_deleted(live: Live) -> None:
    with logged_in(live) as api:
        first = api.chat(QUESTION)
        second = api.chat("And what about durability?", conversation=first.session_id)
        assert second.session_id == first.session_id
        assert [c.id for c in api.conversations()] == [first.session_id]
        detail = api.conversation(first.session_id)
        assert [m.role for m in detail.messages] == ["user", "assistant"] * 2
        assert detail.messages[2].content == "And what about durability?"
        api.delete_conversation(first.session_id)
        assert api.conversations() == []
        with pytest.raises(NotFound, match="not found"):
            api.conversation(first.session_id)
        with pytest.raises(ValueError, match="not a conversation id"):
            api.conversation("42")


def test_a_streamed_answer_arrives_as_start_tokens_and_done_without_heartbeats(
    serve: ServeFactory,
) -> None:
    live = serve(sse_heartbeat_seconds=0.05)
    live.llm.behaviour.chunk_delay = 0.15  # longer than the heartbeat: heartbeats are sent
    with logged_in(live) as api:
        events = list(api.chat_stream(QUESTION))
        assert api.tokens is not None
        token = api.tokens.access_token
    start, *tokens, done = events
    assert isinstance(start, StreamStart) and start.citations and start.mode == "llm"
    assert all(isinstance(t, StreamToken) for t in tokens) and len(tokens) == 5
    assert "".join(t.text for t in tokens if isinstance(t, StreamToken)) == (
        live.llm.behaviour.reply
    )
    assert isinstance(done, StreamDone) and done.session_id == start.session_id
    # The same request as raw bytes: the heartbeats the client skipped were there.
    raw = httpx.post(
        f"{live.url}/api/v1/chat",
        json={"question": QUESTION, "stream": True},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).text
    assert ": heartbeat" in raw


def test_a_stream_that_fails_raises_stream_error_with_its_status(live: Live) -> None:
    live.llm.behaviour.status = 500
    with logged_in(live) as api, pytest.raises(StreamError) as caught:
        for _ in api.chat_stream(QUESTION):
            pass
    assert caught.value.status == 502
    assert REQUEST_ID.match(caught.value.request_id or "")


def test_leaving_a_stream_early_closes_it(live: Live) -> None:
    with logged_in(live) as api:
        stream = api.chat_stream(QUESTION)
        assert isinstance(next(stream), StreamStart)
        stream.close()
        assert api.me()  # the client is still usable


# --- admin -----------------------------------------------------------------------------------


def test_ingest_needs_an_admin(live: Live) -> None:
    with logged_in(live) as api, pytest.raises(PermissionDenied, match="Admin role required"):
        api.ingest()
    with TextbookClient(live.url) as admin:
        admin.login(*live.new_user(admin=True))
        report = admin.ingest()
    assert report.chapters == 13 and report.chunks == report.unchanged and report.added == 0


# --- failures, retries, timeouts -------------------------------------------------------------


def test_a_429_is_retried_after_its_retry_after(serve: ServeFactory) -> None:
    live = serve(rate_limit_chat="1/second")
    with logged_in(live) as api:
        api.chat(QUESTION)
        started = time.monotonic()
        assert api.chat(QUESTION).answer
        waited = time.monotonic() - started
    assert live.served("POST", "/api/v1/chat", 429) >= 1
    assert waited >= 0.9  # Retry-After: 1


def test_a_retry_after_over_the_limit_is_raised_at_once(serve: ServeFactory) -> None:
    live = serve(rate_limit_chat="1/minute")
    with logged_in(live, retry=Retry(max_wait=5)) as api:
        api.chat(QUESTION)
        with pytest.raises(RateLimited) as caught:
            api.chat(QUESTION)
    assert caught.value.retry_after is not None and 5 < caught.value.retry_after <= 60
    assert live.served("POST", "/api/v1/chat", 429) == 1


class FlakyStore:
    """The shared store, whose first `failures` searches fail as an unreachable server's do."""

    def __init__(self, inner: ChunkStore, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def search(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("connection refused (test)")
        return self.inner.search(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_503_is_retried_with_backoff(serve: ServeFactory, textbook_store: ChunkStore) -> None:
    live = serve(store=FlakyStore(textbook_store, failures=2))
    with TextbookClient(live.url, retry=FAST_RETRY) as api:
        assert api.search("topics").results
    assert live.served("GET", "/api/v1/search", 503) == 2


def test_retries_are_bounded_and_the_503_is_raised(
    serve: ServeFactory, textbook_store: ChunkStore
) -> None:
    live = serve(store=FlakyStore(textbook_store, failures=100))
    with (
        TextbookClient(live.url, retry=Retry(attempts=2, backoff=0.01)) as api,
        pytest.raises(ServiceUnavailable, match="vector store is unavailable") as caught,
    ):
        api.search("topics")
    assert caught.value.status == 503
    assert live.served("GET", "/api/v1/search", 503) == 3
    with TextbookClient(live.url, retry=NO_RETRY) as api, pytest.raises(ServiceUnavailable):
        api.search("topics")
    assert live.served("GET", "/api/v1/search", 503) == 4


def test_a_body_over_the_limit_is_payload_too_large(serve: ServeFactory) -> None:
    live = serve(max_body_bytes=1024)
    with logged_in(live) as api, pytest.raises(PayloadTooLarge) as caught:
        api.chat("Explain this.", selected_text="x" * 2000)
    assert caught.value.status == 413


def test_a_slow_answer_times_out(live: Live) -> None:
    live.llm.behaviour.delay = 2
    with logged_in(live, timeout=0.5) as api, pytest.raises(Timeout, match="no answer from"):
        api.chat(QUESTION)


def test_nothing_listening_is_a_transport_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with TextbookClient(f"http://127.0.0.1:{port}") as api, pytest.raises(TransportError) as caught:
        api.chapters()
    assert str(caught.value).startswith(f"cannot reach http://127.0.0.1:{port}/api/v1/chapters")


def test_connect_to_sends_to_the_address_with_the_urls_name(live: Live) -> None:
    port = httpx.URL(live.url).port
    with TextbookClient(f"http://textbook.invalid:{port}", connect_to="127.0.0.1") as api:
        assert len(api.chapters()) == 13


def test_https_with_a_private_ca_and_connect_to(serve: ServeFactory, tmp_path: Path) -> None:
    """As the deploy tests reach the lab: the URL's name for Host, SNI and the certificate
    check, a CA file of our own, the connection to another address."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=textbook.test", "-keyout", str(key),
         "-out", str(cert), "-addext", "subjectAltName=DNS:textbook.test"],
        check=True, capture_output=True,
    )  # fmt: skip
    live = serve(tls={"ssl_certfile": str(cert), "ssl_keyfile": str(key)})
    port = httpx.URL(live.url).port
    url = f"https://textbook.test:{port}"
    with TextbookClient(url, ca_file=str(cert), connect_to="127.0.0.1") as api:
        assert len(api.chapters()) == 13
    with (
        TextbookClient(url, connect_to="127.0.0.1") as api,  # the system's CAs: refused
        pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED") as caught,
    ):
        api.chapters()
    assert str(caught.value).startswith(f"cannot reach {url}/api/v1/chapters: ")
    with (
        TextbookClient(
            f"https://other.test:{port}", ca_file=str(cert), connect_to="127.0.0.1"
        ) as api,
        pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"),  # not its name
    ):
        api.chapters()


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        TextbookClient("ftp://example.org")
