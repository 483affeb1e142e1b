"""JSON logs, each line carrying the request id of the request that wrote it.

Everything goes through the standard logging module and python-json-logger, except the one
access line per request: `RequestLog` collects each request's record and, in batches, has
`AccessLog` write the lines straight to the app's own log handler with the same fields and
layout; building a LogRecord, running the generic formatter and one write per line cost about
half of a /health request. When the root logger's handlers are not just ours (a test's
capture, an operator's dictConfig), the access line goes through logging like everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from json.encoder import encode_basestring_ascii
from time import perf_counter
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
ACCESS_LOGGER = "textbook.access"
# Field names as the formatter writes them (rename_fields below).
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


ACCESS_FLUSH_SECONDS = 0.2
ACCESS_FLUSH_LINES = 512
ENCODED_CACHE_SIZE = 4096


class AppHandler(logging.StreamHandler[TextIO]):
    """The app's stderr handler; `RequestLog` recognises it to take its batched path.

    Request logs with records waiting register here, and any other record, flush() and
    close() (worker shutdown runs logging.shutdown) write their access lines first, so the
    order of lines is kept.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._sources: set[RequestLog] = set()

    def defer(self, source: RequestLog) -> None:
        self._sources.add(source)

    def _flush_sources(self) -> None:
        for source in list(self._sources):
            source.flush()

    def write_lines(self, data: str) -> None:
        self.acquire()
        try:
            self.stream.write(data)
            self.stream.flush()
        except Exception:  # as logging does: a broken stream never fails a request
            self.handleError(logging.makeLogRecord({"msg": data, "name": ACCESS_LOGGER}))
        finally:
            self.release()

    def emit(self, record: logging.LogRecord) -> None:
        if self._sources:
            self._flush_sources()
        super().emit(record)

    def flush(self) -> None:
        self._flush_sources()
        super().flush()


_root = logging.getLogger()


def _handler() -> AppHandler | None:
    handlers = _root.handlers
    if len(handlers) == 1 and isinstance(handlers[0], AppHandler):
        return handlers[0]
    return None


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Root logger to stderr as JSON; uvicorn's own access log is silenced (the app logs)."""
    handler = AppHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields=RENAMED,
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, AppHandler):
            with contextlib.suppress(OSError, ValueError):  # its stream may be closed already
                existing.flush()
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _json_str(value: str | None) -> str:
    return "null" if value is None else str(encode_basestring_ascii(value))


class AccessLog:
    """One JSON line per request, laid out as the JSON formatter lays out
    `logging.getLogger("textbook.access").info("request", extra=fields)`."""

    def __init__(self) -> None:
        self.logger = logging.getLogger(ACCESS_LOGGER)
        self._second = -1
        self._stamp = ""
        self._whos: dict[tuple[str | None, str | None], str] = {}

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def direct(self) -> AppHandler | None:
        """The app's handler when the line may be written to it directly (see the module
        docstring), else None: the line goes through logging."""
        handler = _handler()
        logger = self.logger
        if handler is None or logger.handlers or not logger.propagate or logger.disabled:
            return None
        return handler

    @staticmethod
    def request_json(method: str, path: str, route: str, status: int) -> str:
        """The line's fields from "method" to "status", as JSON (up to "duration_ms": )."""
        return (
            f'"method": {encode_basestring_ascii(method)}, '
            f'"path": {encode_basestring_ascii(path)}, '
            f'"route": {encode_basestring_ascii(route)}, "status": {int(status)}, '
            '"duration_ms": '
        )

    def head(self, now_ms: int) -> str:
        """The line up to `"request_id": ` for a request that ended at `now_ms` (ms since the
        epoch): the time as logging's default asctime ("2026-11-29 00:31:05,123", local time,
        strftime once a second), level, logger, message."""
        second = now_ms // 1000
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return (
            f'{{"time": "{self._stamp},{now_ms % 1000:03d}", "level": "INFO", '
            f'"logger": "{ACCESS_LOGGER}", "message": "request", "request_id": '
        )

    def who(self, client: str | None, user_id: str | None) -> str:
        """The line from `, "client"` to its end. Most requests repeat a few (client, user)
        pairs: their JSON is built once (up to ENCODED_CACHE_SIZE of them)."""
        who = self._whos.get((client, user_id))
        if who is None:
            who = f', "client": {_json_str(client)}, "user_id": {_json_str(user_id)}}}\n'
            if len(self._whos) < ENCODED_CACHE_SIZE:
                self._whos[(client, user_id)] = who
        return who

    def write(
        self,
        request_id: str | None,
        method: str,
        path: str,
        route: str,
        status: int,
        duration_ms: float,
        client: str | None,
        user_id: str | None,
    ) -> None:
        """One line now (RequestLog batches them; this is the unbatched form)."""
        handler = self.direct()
        if handler is None:
            fields = {
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
                "user_id": user_id,
            }
            token = request_id_var.set(request_id)
            try:
                self.logger.info("request", extra=fields)
            finally:
                request_id_var.reset(token)
            return
        if handler.level <= logging.INFO:
            handler.write_lines(
                f"{self.head(int(time.time() * 1000))}{_json_str(request_id)}, "
                f"{self.request_json(method, path, route, status)}{duration_ms:.2f}"
                f"{self.who(client, user_id)}"
            )


# Of a request: method, path, client (host, port), the scope's state (its "request_id", as
# the request layer sets it: [A-Za-z0-9._:-] only, and once authenticated "user_id"),
# response status, perf_counter() at its start and end.
RequestRecord = tuple[str, str, "tuple[str, int] | None", dict[str, Any], int, float, float]
# Of a kind of request (method, path, status): route template, the access line's JSON of
# (method, path, route, status), the metric labels (method, route, status).
Kind = tuple[str, str, tuple[str, str, int]]


class RequestLog:
    """What is kept of each request: its access line and its metrics.

    The request's own path only appends a tuple (see RequestRecord); the records are handled
    together, in the event loop, ACCESS_FLUSH_SECONDS after the first one or at
    ACCESS_FLUSH_LINES: route template, metrics, access lines, one write. Handled in a batch,
    with the code and data warm, they cost a fraction of the same work done at the end of each
    request. `flush()` runs before /metrics is rendered, before any other log record is
    written, and at shutdown; a SIGKILLed worker loses at most ACCESS_FLUSH_SECONDS of them.
    Under someone else's logging setup (a dictConfig, pytest's capture) each record is
    handled at once.
    """

    def __init__(
        self,
        observe: Callable[[dict[tuple[str, str, int], list[float]]], None],
        template: Callable[[str], str],
    ) -> None:
        self.observe = observe
        self.template = template
        self.access = AccessLog()
        self._pending: deque[RequestRecord] = deque()
        self._lock = threading.Lock()
        self._timer_armed = False
        # (method, path, status) -> Kind: built once, up to ENCODED_CACHE_SIZE of them (paths
        # come from clients).
        self._kinds: dict[tuple[str, str, int], Kind] = {}

    def record(self, item: RequestRecord) -> None:
        pending = self._pending
        pending.append(item)
        # The common case, checked inline (this runs on every request): the timer is armed,
        # the batch is not full, and the app's handler is the root logger's only one.
        handlers = _root.handlers
        if (
            self._timer_armed
            and len(pending) < ACCESS_FLUSH_LINES
            and len(handlers) == 1
            and handlers[0].__class__ is AppHandler
        ):
            return
        handler = _handler()
        if handler is None or len(pending) >= ACCESS_FLUSH_LINES:
            self.flush()  # a full batch; or someone else's logging setup: each record at once
        elif not self._timer_armed:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not in the event loop: nothing would flush it later
                self.flush()
                return
            self._timer_armed = True
            handler.defer(self)
            loop.call_later(ACCESS_FLUSH_SECONDS, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer_armed = False
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self._lock:  # appends need no lock: deque.append and popleft are atomic
            pending = self._pending
            items = [pending.popleft() for _ in range(len(pending))]
        self._handle(items, self.access.direct())

    def _handle(self, items: list[RequestRecord], handler: AppHandler | None) -> None:
        access = self.access
        enabled = access.enabled()
        lines: list[str] | None = None
        if enabled and handler is not None and handler.level <= logging.INFO:
            lines = []
        kinds = self._kinds
        observed: dict[tuple[str, str, int], list[float]] = {}  # seconds by metric labels
        # Wall-clock time of a perf_counter() reading, for the lines' timestamps.
        offset = time.time() - perf_counter()
        last_ms, head = -1, ""
        for method, path, client, state, status, started, ended in items:
            # Route template and the line's JSON of (method, path, route, status), looked up
            # once per kind of request.
            kind = kinds.get((method, path, status))
            if kind is None:
                kind = self._kind(method, path, status)
            seconds = ended - started
            durations = observed.get(kind[2])
            if durations is None:
                observed[kind[2]] = [seconds]
            else:
                durations.append(seconds)
            if lines is not None:
                # The line as AccessLog.write() lays it out, inline: this loop is per request.
                now_ms = int((offset + ended) * 1000)
                if now_ms != last_ms:
                    last_ms, head = now_ms, access.head(now_ms)
                who = access.who(client[0] if client else None, state.get("user_id"))
                lines.append(f'{head}"{state["request_id"]}", {kind[1]}{seconds * 1000:.2f}{who}')
            elif enabled:
                access.write(
                    state["request_id"],
                    method,
                    path,
                    kind[0],
                    status,
                    round(seconds * 1000, 2),
                    client[0] if client else None,
                    state.get("user_id"),
                )
        self.observe(observed)
        if lines:
            assert handler is not None
            handler.write_lines("".join(lines))

    def _kind(self, method: str, path: str, status: int) -> Kind:
        route = self.template(path)
        kind = (
            route,
            self.access.request_json(method, path, route, status),
            (method, route, status),
        )
        if len(self._kinds) < ENCODED_CACHE_SIZE:
            self._kinds[(method, path, status)] = kind
        return kind
