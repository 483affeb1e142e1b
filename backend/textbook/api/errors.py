"""Exception handlers: every error leaves as `{"detail": ...}` with a fitting 4xx/5xx."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from textbook.llm import LLMError, LLMTimeout
from textbook.rag.embeddings import EmbeddingError
from textbook.rag.store import StoreError


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


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


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


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(LLMError, llm_error)
    # Query embeddings go to the same provider; its failures are the provider's too.
    app.add_exception_handler(EmbeddingError, embedding_error)
    app.add_exception_handler(StoreError, store_error)
