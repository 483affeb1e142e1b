"""The contract's error responses and tags: what each route declares in its decorator, so
every error a client can get is in the OpenAPI document with its schema (docs/openapi.json)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorMessage(BaseModel):
    """Every error but validation: `{"detail": "..."}`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"detail": "Chapter 'no-such-chapter' not found"}]}
    )

    detail: str


class ValidationIssue(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ValidationErrorMessage(BaseModel):
    """422: one entry per field that did not validate (the input itself is not echoed)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": [
                        {
                            "loc": ["body", "question"],
                            "msg": "String should have at most 2000 characters",
                            "type": "string_too_long",
                        }
                    ]
                }
            ]
        }
    )

    detail: list[ValidationIssue]


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}
_ERRORS: dict[int, dict[str, Any]] = {
    400: {"description": "The body could not be parsed (e.g. not UTF-8)"},
    401: {
        "description": "Missing, bad, expired or revoked token (or wrong e-mail or password)",
        "headers": _WWW_AUTHENTICATE,
    },
    403: {"description": "Not allowed (admin role required, or account disabled)"},
    404: {"description": "Not found"},
    409: {"description": "Conflict (e-mail already registered)"},
    413: {"description": "Request body over the server's limit (MAX_BODY_BYTES)"},
    422: {"description": "The request did not validate", "model": ValidationErrorMessage},
    429: {"description": "Rate limit exceeded", "headers": _RETRY_AFTER},
    500: {"description": "The server failed (the body names the request id)"},
    502: {"description": "The language model provider failed"},
    503: {"description": "A dependency is unavailable (vector store); try again later"},
    504: {"description": "The language model provider timed out"},
}


def errors(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its schema; `descriptions` (`e404="..."`)
    say what the status means on that route."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry = {"model": ErrorMessage, **_ERRORS[status]}
        if f"e{status}" in descriptions:
            entry["description"] = descriptions[f"e{status}"]
        responses[status] = entry
    return responses


# Every route under /api/v1 except readiness counts against the per-IP limit.
LIMITED = (429,)
# Routes that take a body: it may not parse, be too large or not validate.
WITH_BODY = (400, 413, 422, 429)

TAGS: list[dict[str, Any]] = [
    {"name": "auth", "description": "Register, log in (OAuth2 password), refresh, log out"},
    {"name": "users", "description": "The signed-in user"},
    {"name": "chapters", "description": "The textbook's chapters and sections"},
    {"name": "search", "description": "Hybrid search over the textbook's passages"},
    {
        "name": "chat",
        "description": "Questions answered with citations (JSON or server-sent events); "
        "conversations",
    },
    {"name": "admin", "description": "Re-index the textbook (admin role)"},
    {"name": "health", "description": "Liveness and readiness"},
]
