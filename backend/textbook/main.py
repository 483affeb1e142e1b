"""The ASGI application: `create_app()` builds it; gunicorn serves `textbook.main:app`."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response

from textbook.api.errors import install_exception_handlers
from textbook.api.main import api_router
from textbook.api.responses import TAGS as OPENAPI_TAGS
from textbook.core.config import Settings, get_settings
from textbook.core.db import make_engine, make_sessionmaker
from textbook.core.logging import configure_logging
from textbook.core.metrics import Metrics, RouteTemplates
from textbook.core.middleware import RequestMiddleware
from textbook.core.netaddr import AddressList
from textbook.core.ratelimit import RateLimiter
from textbook.core.readiness import Readiness, check_database, notify_ready
from textbook.llm import make_llm_client
from textbook.rag.library import ChapterLibrary
from textbook.rag.store import Store, check_store, open_store

API_PREFIX = "/api/v1"
log = logging.getLogger("textbook")


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> FastAPI:
    """The application. `store` replaces the vector store (tests); the caller then owns it."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Connections and clients live as long as the worker; migrations are not run here.
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.store = store if store is not None else open_store(settings)
        app.state.llm = make_llm_client(settings)
        app.state.readiness = Readiness(
            lambda: {
                "database": check_database(engine),
                "vector_store": check_store(app.state.store),
            }
        )
        # Everything built so far lives as long as the worker: out of the collector's sight, so
        # collections during requests scan only what requests allocate (gc.freeze docs).
        gc.collect()
        gc.freeze()
        log.info(
            "started",
            extra={
                "environment": settings.environment,
                "llm": settings.chat_provider,
                "database": engine.dialect.name,
            },
        )
        notify_ready()
        try:
            yield
        finally:
            if app.state.llm is not None:
                await app.state.llm.close()
            if store is None and app.state.store is not None:
                app.state.store.close()
            engine.dispose()

    app = FastAPI(
        title=settings.project_name,
        version="1.0.0",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        lifespan=lifespan,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.rate_limiter = RateLimiter(settings)
    app.state.library = ChapterLibrary(settings.content_path)
    app.state.store = store

    install_exception_handlers(app)
    metrics_readers = AddressList(settings.metrics_allowed_networks)

    # Before the API router: FastAPI tries routes in order, and liveness is the hot path.
    @app.get("/health", tags=["health"], summary="Liveness (no I/O)", operation_id="liveness")
    async def liveness() -> dict[str, str]:  # async: no thread-pool hop for a constant
        return {"status": "ok"}

    app.add_api_route(
        "/health",
        liveness,
        methods=["HEAD"],
        tags=["health"],
        summary="Liveness, for monitors",
        operation_id="livenessHead",
    )

    @app.get(
        "/metrics",
        tags=["health"],
        summary="Prometheus metrics",
        response_class=Response,
        include_in_schema=False,
    )
    def metrics(request: Request) -> Response:
        if not metrics_readers.allows(request.client.host if request.client else None):
            raise HTTPException(403, "Metrics are served to monitoring addresses only")
        body, content_type = request.app.state.metrics.render()
        return Response(body, media_type=content_type)

    app.include_router(api_router, prefix=API_PREFIX)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Accept", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Added last, so outermost: every response, CORS preflights and unhandled errors included,
    # gets a request id, an access line and metrics.
    fixed = (
        "/health",
        "/metrics",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        f"{API_PREFIX}/openapi.json",
    )
    app.state.route_templates = RouteTemplates(app, fixed)
    app.add_middleware(
        RequestMiddleware,
        metrics=app.state.metrics,
        routes=app.state.route_templates,
        max_body_bytes=settings.max_body_bytes,
        trusted_proxies=settings.trusted_proxies,
    )
    return app


def _app_for_server() -> Any:
    return create_app()


app = _app_for_server()
