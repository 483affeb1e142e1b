"""Prometheus metrics. Routes are labelled by their template, never by concrete ids."""

from __future__ import annotations

import os
import re
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


CHILD_CACHE_SIZE = 1024


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

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
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.llm_errors = Counter(
            "textbook_llm_errors",
            "Failed language-model calls by kind.",
            ["kind"],
            registry=self.registry,
        )
        # (method, route, status) -> the labelled counter and histogram; labels() is a
        # lock and a dict lookup per call, this is one dict lookup.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            # Methods come from clients: remember a bounded number of label sets.
            if len(self._children) < CHILD_CACHE_SIZE:
                self._children[key] = children
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
    OpenAPI paths plus the app's fixed extras; anything else is "unmatched"."""

    def __init__(self, app: FastAPI, extra: tuple[str, ...]) -> None:
        self.app = app
        self.extra = extra
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def _build(self) -> list[tuple[re.Pattern[str], str]]:
        templates = list(self.app.openapi().get("paths", {})) + list(self.extra)
        # Literal paths first so "/chat/sessions" never matches a "{param}" pattern.
        templates.sort(key=lambda t: (t.count("{"), -len(t)))
        return [(compile_path(t)[0], t) for t in templates]

    def __call__(self, path: str) -> str:
        if self._compiled is None:
            self._compiled = self._build()
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return "unmatched"
