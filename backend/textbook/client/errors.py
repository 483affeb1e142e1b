"""What the client raises: one class per kind of failure, each carrying what the API said."""

from __future__ import annotations

from typing import Any


class TextbookError(Exception):
    """Every error the client raises."""


class TransportError(TextbookError):
    """The request got no HTTP answer: connection refused or reset, TLS, DNS, timeout."""

    def __init__(self, message: str, *, url: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.request_id = request_id


class Timeout(TransportError):
    """No answer within the client's timeout."""


class APIError(TextbookError):
    """The API answered with an error status.

    `status` is the HTTP status, `detail` the body's `detail` as sent (a string, or the list of
    validation errors for 422), `message` one readable line of it, `request_id` the response's
    `X-Request-ID` (quote it when reporting a problem), `retry_after` the `Retry-After` seconds.
    """

    def __init__(
        self,
        status: int,
        detail: Any,
        *,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.detail = detail
        self.message = describe(detail) or f"HTTP {status}"
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f", request id {self.request_id}" if self.request_id else ""
        return f"{self.message} (HTTP {self.status}{where})"


class InvalidRequest(APIError):
    """422: the request did not validate (`detail` lists each field's error)."""


class AuthenticationError(APIError):
    """401: no, a bad, an expired or a revoked token; or a wrong e-mail or password."""


class PermissionDenied(APIError):
    """403: e.g. an admin operation by a user who is not one."""


class NotFound(APIError):
    """404: no such chapter, section or conversation (or not yours)."""


class Conflict(APIError):
    """409: e.g. the e-mail address is already registered."""


class PayloadTooLarge(APIError):
    """413: the request body is over the server's limit."""


class RateLimited(APIError):
    """429, after the client's own retries: `retry_after` says when to try again."""


class ServiceUnavailable(APIError):
    """503, after the client's own retries: e.g. the vector store is down."""


class UpstreamError(APIError):
    """502 or 504: the language model provider failed or timed out."""


class ServerError(APIError):
    """Any other 5xx."""


class StreamError(APIError):
    """A streamed answer ended with an `error` event (its `status` and `detail`), or ended
    without its `done` event."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    502: UpstreamError,
    503: ServiceUnavailable,
    504: UpstreamError,
}


def error_class(status: int) -> type[APIError]:
    return _BY_STATUS.get(status, ServerError if status >= 500 else APIError)


def describe(detail: Any) -> str:
    """One line from a `detail`: the text, or `field: message` for each validation error."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for error in detail:
            if isinstance(error, dict):
                loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
                msg = str(error.get("msg", "invalid"))
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
            else:
                parts.append(str(error))
        return "; ".join(parts)
    return "" if detail is None else str(detail)
