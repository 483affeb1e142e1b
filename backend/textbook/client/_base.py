"""What the sync and async clients share: the operations, retries, tokens and error mapping.

Each API operation is an `Op`: the request to send and how to read its answer. The two clients
differ only in how they send it (httpx.Client or httpx.AsyncClient, time.sleep or asyncio.sleep).
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from textbook.client import models
from textbook.client.errors import (
    APIError,
    AuthenticationError,
    StreamError,
    TextbookError,
    Timeout,
    TransportError,
    error_class,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
# Connect fast or fail; a non-streamed answer from a language model may take a minute (the
# server's own provider timeout is 30 s, with retries); a stream is kept alive by heartbeats.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=90.0, write=30.0, pool=10.0)
REQUEST_ID_HEADER = "X-Request-ID"
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Retry:
    """429 and 503 are retried up to `attempts` times: after `Retry-After` when the server
    sends one, else after `backoff * 2**n` seconds (with jitter). A wait over `max_wait`
    is not made: the error is raised at once, with its `retry_after`."""

    attempts: int = 3
    backoff: float = 0.5
    max_wait: float = 30.0

    def delay(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying again, or None to give up."""
        if response.status_code not in RETRY_STATUSES or attempt >= self.attempts:
            return None
        after = retry_after(response)
        if after is None:
            jitter = random.uniform(0.75, 1.0)  # noqa: S311 - spreads retries, not a secret
            return min(self.backoff * 2.0**attempt * jitter, self.max_wait)
        return after if after <= self.max_wait else None


NO_RETRY = Retry(attempts=0)


def retry_after(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date), None when absent or bad."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def api_error(response: httpx.Response) -> APIError:
    """The typed exception for an error response (its body must have been read)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text[:500] or response.reason_phrase
    return error_class(response.status_code)(
        response.status_code,
        detail,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        retry_after=retry_after(response),
    )


def parse_model(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise _unexpected(response, exc) from None

    return parse


def parse_list(model: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]

    def parse(response: httpx.Response) -> list[M]:
        try:
            items: list[M] = adapter.validate_json(response.content)
        except ValidationError as exc:
            raise _unexpected(response, exc) from None
        return items

    return parse


def parse_nothing(_response: httpx.Response) -> None:
    return None


def parse_tokens(response: httpx.Response) -> models.Tokens:
    try:
        return models.Tokens.from_response(response.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise _unexpected(response, exc) from None


def _unexpected(response: httpx.Response, exc: Exception) -> TextbookError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return TextbookError(
        f"unexpected answer from {response.request.url} (HTTP {response.status_code}, "
        f"request id {response.headers.get(REQUEST_ID_HEADER)}): {first}"
    )


@dataclass(frozen=True)
class Op(Generic[T]):
    """One API call: what to send and how to read the answer."""

    method: str
    path: str  # under /api/v1
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    form: Mapping[str, str] | None = None
    auth: bool = False  # send the access token (and refresh it when needed)
    accept: tuple[int, ...] = ()  # error statuses handed to `parse` rather than raised
    retry: bool = True


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# --- the operations --------------------------------------------------------------------------


def op_register(email: str, password: str, full_name: str | None) -> Op[models.User]:
    body = _drop_none({"email": email, "password": password, "full_name": full_name})
    return Op("POST", "/auth/register", parse_model(models.User), json=body)


def op_login(email: str, password: str) -> Op[models.Tokens]:
    form = {"username": email, "password": password}
    return Op("POST", "/auth/login", parse_tokens, form=form)


def op_refresh(refresh_token: str) -> Op[models.Tokens]:
    body = {"refresh_token": refresh_token}
    return Op("POST", "/auth/refresh", parse_tokens, json=body)


def op_logout() -> Op[None]:
    return Op("POST", "/auth/logout", parse_nothing, auth=True)


def op_me() -> Op[models.User]:
    return Op("GET", "/users/me", parse_model(models.User), auth=True)


def op_search(
    query: str, limit: int | None, module: str | None, chapter: str | None
) -> Op[models.SearchResults]:
    params = _drop_none({"q": query, "limit": limit, "module": module, "chapter": chapter})
    return Op("GET", "/search", parse_model(models.SearchResults), params=params)


def chat_body(
    question: str,
    *,
    conversation: uuid.UUID | str | None,
    selected_text: str | None,
    module: str | None,
    chapter: str | None,
    stream: bool,
) -> dict[str, Any]:
    body: dict[str, Any] = {"question": question, "stream": stream}
    body.update(
        _drop_none(
            {
                "session_id": _uuid(conversation) if conversation is not None else None,
                "selected_text": selected_text,
                "module": module,
                "chapter": chapter,
            }
        )
    )
    return body


def op_chat(body: dict[str, Any]) -> Op[models.ChatAnswer]:
    return Op("POST", "/chat", parse_model(models.ChatAnswer), json=body, auth=True)


def op_chat_stream(body: dict[str, Any]) -> Op[None]:
    return Op("POST", "/chat", parse_nothing, json=body, auth=True)


def op_conversations() -> Op[list[models.Conversation]]:
    return Op("GET", "/chat/sessions", parse_list(models.Conversation), auth=True)


def op_conversation(conversation: uuid.UUID | str) -> Op[models.ConversationDetail]:
    path = f"/chat/sessions/{_uuid(conversation)}"
    return Op("GET", path, parse_model(models.ConversationDetail), auth=True)


def op_delete_conversation(conversation: uuid.UUID | str) -> Op[None]:
    return Op("DELETE", f"/chat/sessions/{_uuid(conversation)}", parse_nothing, auth=True)


def op_chapters() -> Op[list[models.Chapter]]:
    return Op("GET", "/chapters", parse_list(models.Chapter))


def op_chapter(slug: str) -> Op[models.Chapter]:
    return Op("GET", f"/chapters/{_segment(slug)}", parse_model(models.Chapter))


def op_section(slug: str, anchor: str) -> Op[models.Section]:
    path = f"/chapters/{_segment(slug)}/sections/{_segment(anchor)}"
    return Op("GET", path, parse_model(models.Section))


def op_ingest() -> Op[models.IngestReport]:
    return Op("POST", "/admin/ingest", parse_model(models.IngestReport), auth=True)


def op_health() -> Op[models.Health]:
    # 503 is an answer here (not ready, with the reasons), not a failure to retry.
    return Op("GET", "/health", parse_model(models.Health), accept=(503,), retry=False)


def _uuid(value: uuid.UUID | str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"not a conversation id: {value!r}") from None


def _segment(value: str) -> str:
    # One path segment: the API's slugs and anchors never hold these; refuse rather than escape.
    if not value or any(ch in value for ch in "/?#%") or value in (".", ".."):
        raise ValueError(f"not a chapter slug or section anchor: {value!r}")
    return value


# --- a streamed answer's events ------------------------------------------------------------------


def stream_event(event: str, data: str, request_id: str | None) -> models.StreamEvent | None:
    """The model of one SSE event; `error` raises StreamError; unknown events are skipped
    (a newer server may add some)."""
    if event == "error":
        try:
            body = json.loads(data)
            status, detail = int(body.get("status", 500)), body.get("detail")
        except (ValueError, TypeError, AttributeError):
            status, detail = 500, data
        raise StreamError(status, detail, request_id=request_id)
    model = models.STREAM_EVENTS.get(event)
    if model is None:
        return None
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise StreamError(
            500, f"malformed {event} event: {str(exc).splitlines()[0]}", request_id=request_id
        ) from None


def incomplete_stream(request_id: str | None) -> StreamError:
    return StreamError(
        500, "the answer's stream ended before its done event", request_id=request_id
    )


# --- what both clients hold ------------------------------------------------------------------


@dataclass
class ClientState:
    """Settings and tokens of one client."""

    base_url: str
    retry: Retry
    refresh_leeway: float
    on_tokens: Callable[[models.Tokens | None], None] | None
    connect_to: str | None
    tokens: models.Tokens | None = None


def api_base(url: str) -> str:
    """The API's root for a deployment's URL (`https://example.org` -> `.../api/v1`)."""
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parsed.path.rstrip("/")
    if not path.endswith(API_PREFIX):
        path += API_PREFIX
    return str(parsed.copy_with(path=path, query=None, fragment=None))


def build_request(
    http: httpx.Client | httpx.AsyncClient, state: ClientState, op: Op[Any]
) -> httpx.Request:
    headers = {REQUEST_ID_HEADER: secrets.token_hex(16)}
    if op.auth and state.tokens is not None:
        headers["Authorization"] = f"Bearer {state.tokens.access_token}"
    url = httpx.URL(state.base_url + op.path)
    extensions: dict[str, Any] = {}
    if state.connect_to:
        # Connect to another address; the Host header and TLS (SNI, certificate) keep the name.
        extensions["sni_hostname"] = url.host
        headers["Host"] = url.netloc.decode("ascii")
        url = url.copy_with(host=state.connect_to)
    return http.build_request(
        op.method,
        url,
        params=op.params,
        json=op.json,
        data=op.form,
        headers=headers,
        extensions=extensions,
    )


def transport_error(exc: httpx.TransportError, request: httpx.Request) -> TransportError:
    request_id = request.headers.get(REQUEST_ID_HEADER)
    shown = request.url.copy_with(query=None)
    if "sni_hostname" in request.extensions:  # connect_to: name the URL's host, not the address
        shown = shown.copy_with(host=request.extensions["sni_hostname"])
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return Timeout(
            f"no answer from {shown} in time ({reason})", url=str(shown), request_id=request_id
        )
    return TransportError(f"cannot reach {shown}: {reason}", url=str(shown), request_id=request_id)


def needs_refresh(state: ClientState, op: Op[Any]) -> bool:
    return (
        op.auth
        and state.tokens is not None
        and bool(state.tokens.refresh_token)
        and state.tokens.expires_within(state.refresh_leeway)
    )


def may_refresh_after_401(state: ClientState, op: Op[Any], response: httpx.Response) -> bool:
    return (
        response.status_code == 401
        and op.auth
        and state.tokens is not None
        and bool(state.tokens.refresh_token)
    )


def not_logged_in(op: Op[Any]) -> AuthenticationError:
    return AuthenticationError(
        401, f"not logged in ({op.method} {API_PREFIX}{op.path} needs a user)"
    )
