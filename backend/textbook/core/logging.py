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
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from itertools import repeat, starmap
from json.encoder import encode_basestring_ascii
from time import perf_counter
from typing import TextIO

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


# The access line's head after the time.
_HEAD_END = f'", "level": "INFO", "logger": "{ACCESS_LOGGER}", "message": "request", "request_id": '


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
        second, ms = divmod(now_ms, 1000)
        if second != self._second:
            self._second = second
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._stamp = f'{{"time": "{stamp},'
        return f"{self._stamp}{str(1000 + ms)[1:]}{_HEAD_END}"  # ms as 3 digits

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


# Of a request: method, path, client (host, port), request id ([A-Za-z0-9._:-] only, as the
# request layer takes or makes it), user id once authenticated, response status,
# perf_counter() at its start and end.
RequestRecord = tuple[str, str, "tuple[str, int] | None", str, "str | None", int, float, float]
# Of a kind of request (method, path, status): route template, the access line's JSON of
# (method, path, route, status), the metric labels (method, route, status).
Kind = tuple[str, str, tuple[str, str, int]]
# (method, path, status, client host, user id): what a request's line and metrics need
# besides its id, time and duration.
EntryKey = tuple[str, str, int, "str | None", "str | None"]
# Of an EntryKey: the line from the request id's closing quote to `"duration_ms": ` (method,
# path, route, status), the line from `, "client"` to its end, the metric labels, the route
# template.
Entry = tuple[str, str, tuple[str, str, int], str]


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
        observe: Callable[[Mapping[tuple[str, str, int], list[float]]], None],
        template: Callable[[str], str],
    ) -> None:
        self.observe = observe
        self.template = template
        self.access = AccessLog()
        self._pending: deque[RequestRecord] = deque()
        self._lock = threading.Lock()
        # Records the batch may still take without being handled: ACCESS_FLUSH_LINES while
        # its timer is armed, 0 otherwise (so the first record of a batch arms it).
        self._room = 0
        # The root logger's handlers when the timer was armed: [the app's handler].
        self._direct: list[logging.Handler] = []
        # Built once, each up to ENCODED_CACHE_SIZE of them (paths come from clients):
        # (method, path, status) -> Kind, EntryKey -> Entry, hundredths of a ms -> their text.
        self._kinds: dict[tuple[str, str, int], Kind] = {}
        self._entries: dict[EntryKey, Entry] = {}
        self._durations: dict[int, str] = {}

    def record(self, item: RequestRecord) -> None:
        pending = self._pending
        pending.append(item)
        # The common case, checked inline (this runs on every request): the timer is armed
        # and the batch not full, and the root logger's handlers are still just the app's.
        if len(pending) < self._room and _root.handlers == self._direct:
            return
        handler = _handler()
        if handler is None or len(pending) >= ACCESS_FLUSH_LINES:
            self.flush()  # a full batch; or someone else's logging setup: each record at once
            return
        self._direct = [handler]
        handler.defer(self)
        if self._room:
            return  # armed already (the app's handler was replaced meanwhile)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not in the event loop: nothing would flush it later
            self.flush()
            return
        self._room = ACCESS_FLUSH_LINES
        loop.call_later(ACCESS_FLUSH_SECONDS, self._timer_fired)

    def _timer_fired(self) -> None:
        self._room = 0
        self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self._lock:  # appends need no lock: deque.append and popleft are atomic
            pending = self._pending
            items = list(starmap(pending.popleft, repeat((), len(pending))))
        self._handle(items, self.access.direct())

    def _handle(self, items: list[RequestRecord], handler: AppHandler | None) -> None:
        access = self.access
        enabled = access.enabled()
        # The lines' pieces, joined once for the batch's one write.
        parts: list[str] | None = None
        if enabled and handler is not None and handler.level <= logging.INFO:
            parts = []
        entries = self._entries
        durations = self._durations
        observed: defaultdict[tuple[str, str, int], list[float]] = defaultdict(list)
        # The lines' time stamps: `head` is the line's start for the requests that ended in
        # [low, high), one millisecond of wall-clock time in perf_counter() readings.
        offset = time.time() - perf_counter()
        low = high = 0.0
        head = ""
        for method, path, client, request_id, user_id, status, started, ended in items:
            key = (method, path, status, client[0] if client else None, user_id)
            entry = entries.get(key)
            if entry is None:
                entry = self._entry(key)
            seconds = ended - started
            observed[entry[2]].append(seconds)
            if parts is not None:
                # The line as AccessLog.write() lays it out, inline: this loop is per request.
                if ended >= high or ended < low:
                    now_ms = int((offset + ended) * 1000)
                    head = access.head(now_ms) + '"'
                    low, high = now_ms / 1000 - offset, (now_ms + 1) / 1000 - offset
                hundredths = int(seconds * 100_000.0 + 0.5)  # of a millisecond, rounded
                duration = durations.get(hundredths)
                if duration is None:
                    duration = self._duration(hundredths)
                parts += (head, request_id, entry[0], duration, entry[1])
            elif enabled:
                access.write(
                    request_id,
                    method,
                    path,
                    entry[3],
                    status,
                    round(seconds * 1000, 2),
                    key[3],
                    key[4],
                )
        self.observe(observed)
        if parts:
            assert handler is not None
            handler.write_lines("".join(parts))

    def _kind(self, method: str, path: str, status: int) -> Kind:
        kind = self._kinds.get((method, path, status))
        if kind is None:
            route = self.template(path)
            kind = (
                route,
                self.access.request_json(method, path, route, status),
                (method, route, status),
            )
            if len(self._kinds) < ENCODED_CACHE_SIZE:
                self._kinds[(method, path, status)] = kind
        return kind

    def _entry(self, key: EntryKey) -> Entry:
        method, path, status, client, user_id = key
        route, request_json, labels = self._kind(method, path, status)
        entry = ('", ' + request_json, self.access.who(client, user_id), labels, route)
        if len(self._entries) < ENCODED_CACHE_SIZE:
            self._entries[key] = entry
        return entry

    def _duration(self, hundredths: int) -> str:
        """The duration's text in the line ("12.34", ms): cached, most are a few hundred."""
        text = f"{hundredths // 100}.{hundredths % 100:02d}"
        if len(self._durations) < ENCODED_CACHE_SIZE:
            self._durations[hundredths] = text
        return text
