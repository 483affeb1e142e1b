"""Prometheus metrics. Routes are labelled by their template, never by concrete ids."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import compile_path

if TYPE_CHECKING:
    from fastapi import FastAPI

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """One registry per app, so several apps (tests) never collide. Under several gunicorn
    workers (PROMETHEUS_MULTIPROC_DIR set, see gunicorn_conf) values live in files shared by
    the workers and /metrics sums them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "textbook_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "textbook_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.llm_errors = Counter(
            "textbook_llm_errors",
            "Failed language-model calls by kind.",
            ["kind"],
            registry=self.registry,
        )
        # The labelled children, looked up once per (method, route, status): `labels()` takes
        # a lock and checks its arguments on every call (docs/bench.md). As bounded as the
        # label sets themselves (route templates, never raw paths).
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several gunicorn workers: aggregate the per-process files.
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RouteTemplates:
    """Request path -> route template ("/api/v1/chat/sessions/{session_id}"), from the
    OpenAPI paths plus the app's fixed extras; anything else is "unmatched". Also for requests
    answered before routing (CORS preflights). `methods(path)`: the methods the OpenAPI schema
    documents for the path (a 405's Allow)."""

    def __init__(self, app: FastAPI, extra: tuple[str, ...]) -> None:
        self.app = app
        self.extra = extra
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None
        self._methods: dict[str, frozenset[str]] = {}
        # Paths come from clients: a bounded cache.
        self.template = lru_cache(maxsize=4096)(self._template)

    def _build(self) -> list[tuple[re.Pattern[str], str]]:
        paths = self.app.openapi().get("paths", {})
        self._methods = {t: frozenset(m.upper() for m in ops) for t, ops in paths.items()}
        templates = list(paths) + list(self.extra)
        # Literal paths first so "/chat/sessions" never matches a "{param}" pattern.
        templates.sort(key=lambda t: (t.count("{"), -len(t)))
        return [(compile_path(t)[0], t) for t in templates]

    def _template(self, path: str) -> str:
        if self._compiled is None:
            self._compiled = self._build()
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return "unmatched"

    def methods(self, path: str) -> frozenset[str]:
        template = self.template(path)  # builds the table on first use
        return self._methods.get(template, frozenset())
