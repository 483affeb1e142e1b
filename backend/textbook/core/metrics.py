"""Prometheus metrics. Routes are labelled by their template, never by concrete ids."""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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


class BatchHistogram(Histogram):
    """A Histogram that also takes many observations at once, already sorted into buckets:
    one update per bucket and label set instead of one per observation (in multiprocess
    mode each update is a write to a shared file)."""

    @property
    def upper_bounds(self) -> list[float]:
        return list(self._upper_bounds)

    def observe_counts(self, bucket_counts: list[int], total: float) -> None:
        """As `observe()` called bucket_counts[i] times with values in bucket i (the first
        bound >= the value, as observe() files them) and adding up to `total`."""
        self._raise_if_not_observable()  # type: ignore[no-untyped-call]
        self._sum.inc(total)
        for bucket, count in zip(self._buckets, bucket_counts, strict=True):
            if count:
                bucket.inc(count)


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
        self.latency = BatchHistogram(
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
        self.bounds = self.latency.upper_bounds

    def observe_requests(self, requests: Mapping[tuple[str, str, int], list[float]]) -> None:
        """The requests handled since the last call: seconds of each, by (method, route
        template, status). One update per counter and latency bucket; no Python code runs
        per request (each label set's durations are sorted, then cut at the bucket bounds)."""
        bounds = self.bounds
        latency: dict[tuple[str, str], list[Any]] = {}  # [sum, count in bucket 0, 1, ...]
        for (method, route, status), durations in requests.items():
            self.requests.labels(method, route, str(status)).inc(len(durations))
            sums = latency.get((method, route))
            if sums is None:
                sums = latency[(method, route)] = [0.0] + [0] * len(bounds)
            sums[0] += sum(durations)
            ordered = sorted(durations)
            # observe() files a value in the first bucket whose bound is >= it: the values up
            # to a bound are bisect_right(ordered, bound); the last bound is +Inf.
            below = 0
            for bucket, bound in enumerate(bounds, start=1):
                up_to = bisect_right(ordered, bound)
                sums[bucket] += up_to - below
                below = up_to
        for (method, route), sums in latency.items():
            self.latency.labels(method, route).observe_counts(sums[1:], sums[0])

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Several gunicorn workers: aggregate the per-process files.
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RouteTemplates:
    """Request path -> route template ("/api/v1/chat/sessions/{session_id}"), from the
    OpenAPI paths plus the app's fixed extras; anything else is "unmatched". (RequestLog
    keeps the result per kind of request.)"""

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
