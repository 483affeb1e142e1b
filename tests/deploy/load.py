"""A bounded, counting load through Nginx, for "zero failed requests" measurements.

    with CountingLoad(stack_for(proxy), "/api/v1/search?q=ros") as load:
        ...  # an update, a rollback, a rotation
    assert load.result.failed == 0, load.result.summary()

A few threads send requests one after the other (each on a new TLS connection, as a browser
opening a page would) until the block ends, at most `rate` requests a second in all and never
longer than `max_seconds`. Every non-2xx answer and every connection error counts as a failure;
every request's start time, latency and outcome are kept for timelines (bench, report).
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

from smoke import Stack


@dataclass(frozen=True)
class Sample:
    started: float  # seconds since the load began
    seconds: float  # latency
    outcome: str  # HTTP status as text, or the connection error's class name
    detail: str = ""  # a failure's answer (its first 300 bytes) or error message


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def failures(self) -> list[Sample]:
        return [s for s in self.samples if not s.outcome.startswith("2")]

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def longest_wait(self) -> float:
        return max((s.seconds for s in self.samples), default=0.0)

    @property
    def median_wait(self) -> float:
        return statistics.median(s.seconds for s in self.samples) if self.samples else 0.0

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        details: dict[str, str] = {}  # the first failure's detail of each kind, to tell the cause
        for sample in self.failures:
            kinds[sample.outcome] = kinds.get(sample.outcome, 0) + 1
            details.setdefault(sample.outcome, f"at {sample.started:.1f} s: {sample.detail}")
        return (
            f"{self.total} requests, {self.failed} failed {kinds or ''}, "
            f"median {self.median_wait * 1000:.0f} ms, longest {self.longest_wait * 1000:.0f} ms"
            + "".join(f"; first {kind} {detail}" for kind, detail in details.items())
        )


class CountingLoad:
    def __init__(
        self,
        stack: Stack,
        path: str = "/api/v1/health",
        *,
        threads: int = 4,
        rate: float = 40.0,
        max_seconds: float = 900.0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.stack, self.path, self.headers = stack, path, headers or {}
        self.threads, self.interval, self.max_seconds = threads, threads / rate, max_seconds
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._began = 0.0

    def _work(self) -> None:
        deadline = self._began + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            start = time.monotonic()
            detail = ""
            try:
                status, _, body = self.stack.request("GET", self.path, headers=self.headers)
                outcome = str(status)
                if status >= 300:
                    detail = body[:300].decode("utf-8", "replace")
            except OSError as error:  # refused, reset, TLS or timeout: a failed request
                outcome, detail = type(error).__name__, str(error)
            took = time.monotonic() - start
            with self._lock:
                self.result.samples.append(Sample(start - self._began, took, outcome, detail))
            self._stop.wait(max(0.0, self.interval - took))

    def __enter__(self) -> CountingLoad:
        self._began = time.monotonic()
        for _ in range(self.threads):
            worker = threading.Thread(target=self._work, daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join()
        self.result.samples.sort(key=lambda s: s.started)
