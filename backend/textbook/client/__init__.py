"""A typed Python client for the textbook API, blocking and asyncio (httpx).

    from textbook.client import TextbookClient

    with TextbookClient("https://textbook.example.org") as api:
        api.login("me@example.org", "a long password")
        print(api.chat("What is a ROS 2 topic?").answer)

It imports nothing of the server (tests/backend/test_layers.py): a script needs only this
package's dependencies. Errors are `textbook.client.errors` classes carrying the HTTP status,
the API's message and the request id.
"""

from __future__ import annotations

from textbook.client._base import DEFAULT_TIMEOUT, DEFAULT_URL, NO_RETRY, Retry
from textbook.client.aio import AsyncTextbookClient
from textbook.client.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    StreamError,
    TextbookError,
    Timeout,
    TransportError,
    UpstreamError,
)
from textbook.client.models import (
    Chapter,
    ChatAnswer,
    Citation,
    Conversation,
    ConversationDetail,
    Health,
    IngestReport,
    SearchHit,
    SearchResults,
    Section,
    StreamDone,
    StreamEvent,
    StreamStart,
    StreamToken,
    Tokens,
    User,
)
from textbook.client.sync import TextbookClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "NO_RETRY",
    "APIError",
    "AsyncTextbookClient",
    "AuthenticationError",
    "Chapter",
    "ChatAnswer",
    "Citation",
    "Conflict",
    "Conversation",
    "ConversationDetail",
    "Health",
    "IngestReport",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "Retry",
    "SearchHit",
    "SearchResults",
    "Section",
    "ServerError",
    "ServiceUnavailable",
    "StreamDone",
    "StreamError",
    "StreamEvent",
    "StreamStart",
    "StreamToken",
    "TextbookClient",
    "TextbookError",
    "Timeout",
    "Tokens",
    "TransportError",
    "UpstreamError",
    "User",
]
