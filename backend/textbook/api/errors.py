"""Exception handlers: every error leaves as `{"detail": ...}` with a fitting 4xx/5xx."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from textbook.core.db import UnstorableTextError
from textbook.llm import LLMError, LLMTimeout
from textbook.rag.embeddings import EmbeddingError
from textbook.rag.store import StoreError

log = logging.getLogger("textbook.error")
RETRY_AFTER_SECONDS = 5  # readiness says the same; a PostgreSQL restart takes seconds


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the echoed input (which may be huge or hostile)."""
    cleaned = []
    for error in errors:
        message = str(error.get("msg", "Invalid value"))
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            message = f"Malformed JSON body: {reason}".rstrip(": ")
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": message,
                "type": str(error.get("type", "value_error")),
            }
        )
    return cleaned


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = getattr(exc, "headers", None)
    if exc.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        # Starlette names the methods of the first route on the path; there may be several.
        given = (headers or {}).get("Allow", "")
        methods = {m.strip() for m in given.split(",") if m.strip()}
        methods |= request.app.state.route_templates.methods(request.url.path)
        headers = {**(headers or {}), "Allow": ", ".join(sorted(methods))}
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": _clean_errors(exc.errors())},
        status_code=422,
    )


async def llm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LLMError)
    timeout = isinstance(exc, LLMTimeout)
    request.app.state.metrics.llm_errors.labels("timeout" if timeout else "error").inc()
    return JSONResponse(
        {"detail": str(exc)},
        status_code=status.HTTP_504_GATEWAY_TIMEOUT if timeout else status.HTTP_502_BAD_GATEWAY,
    )


async def embedding_error(request: Request, exc: Exception) -> JSONResponse:
    request.app.state.metrics.llm_errors.labels("embeddings").inc()
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_502_BAD_GATEWAY)


async def store_error(_request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": f"The vector store is unavailable: {exc}"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


async def unstorable_text(_request: Request, exc: Exception) -> JSONResponse:
    # The shape of a validation error: the database refused the text before storing it.
    error = {"loc": [], "msg": UnstorableTextError.message, "type": "string_unstorable"}
    return JSONResponse({"detail": [error]}, status_code=422)


async def database_error(_request: Request, exc: Exception) -> JSONResponse:
    """503 while the database cannot serve (down, restarting, pool exhausted); the driver's
    message, which names addresses, goes to the log only."""
    if isinstance(exc, DBAPIError) and not _unavailable(exc):
        raise exc  # a bug (bad SQL, constraint), not an outage: the 500 path logs it
    log.warning("database unavailable: %s", str(exc).splitlines()[0][:300])
    return JSONResponse(
        {"detail": "The database is unavailable; try again shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _unavailable(exc: DBAPIError) -> bool:
    # OperationalError: connection refused or lost, server shutting down; InterfaceError:
    # connection already closed. Either way the next attempt may succeed.
    return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(LLMError, llm_error)
    # Query embeddings go to the same provider; its failures are the provider's too.
    app.add_exception_handler(EmbeddingError, embedding_error)
    app.add_exception_handler(StoreError, store_error)
    app.add_exception_handler(UnstorableTextError, unstorable_text)
    app.add_exception_handler(DBAPIError, database_error)
    app.add_exception_handler(PoolTimeoutError, database_error)
