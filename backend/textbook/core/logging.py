"""JSON logs, each line carrying the request id of the request that wrote it.

Everything goes through the standard logging module and python-json-logger, except the one
access line per request: `AccessLog` writes that straight to the app's own log handler with
the same fields and layout, in batches (see AppHandler); building a LogRecord, running the
generic formatter and one write per line cost about half of a /health request. When the root
logger's handlers are not just ours (a test's capture, an operator's dictConfig), the access
line goes through logging like everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from contextvars import ContextVar
from json.encoder import encode_basestring_ascii
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
ACCESS_FLUSH_LINES = 64


class AppHandler(logging.StreamHandler[TextIO]):
    """The app's stderr handler; `AccessLog` recognises it to take its fast path.

    Access lines written from the event loop are batched: flushed ACCESS_FLUSH_SECONDS after
    the first one, at ACCESS_FLUSH_LINES, before any other record (so the order of lines is
    kept), and by flush()/close() (worker shutdown runs logging.shutdown). One write per batch
    instead of one per request; a killed worker loses at most that fraction of a second.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._timer_armed = False

    def write_access(self, line: str) -> None:
        self.acquire()
        try:
            pending = self._pending
            pending.append(line)
            if len(pending) >= ACCESS_FLUSH_LINES:
                self._write_pending()
            elif not self._timer_armed:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # not in the event loop: nothing would flush it later
                    self._write_pending()
                    return
                self._timer_armed = True
                loop.call_later(ACCESS_FLUSH_SECONDS, self._timer_fired)
        finally:
            self.release()

    def _timer_fired(self) -> None:
        self.acquire()
        try:
            self._timer_armed = False
            self._write_pending()
        finally:
            self.release()

    def _write_pending(self) -> None:
        # Called with the handler's lock held.
        if not self._pending:
            return
        data = "".join(self._pending)
        self._pending.clear()
        try:
            self.stream.write(data)
            self.stream.flush()
        except Exception:  # as logging does: a broken stream never fails a request
            self.handleError(logging.makeLogRecord({"msg": data, "name": ACCESS_LOGGER}))

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending:
            self.acquire()
            try:
                self._write_pending()
            finally:
                self.release()
        super().emit(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write_pending()
        finally:
            self.release()
        super().flush()


def _handler() -> AppHandler | None:
    handlers = logging.getLogger().handlers
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

    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)

    def _time(self) -> str:
        # logging's default asctime ("2026-11-29 00:31:05,123", local time); strftime once a second.
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._stamp},{int((now - second) * 1000):03d}"

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
        handler = _handler()
        logger = self.logger
        if handler is None or logger.handlers or not logger.propagate or logger.disabled:
            fields = {
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "client": client,
                "user_id": user_id,
            }
            logger.info("request", extra=fields)
            return
        if handler.level > logging.INFO:
            return
        line = (
            f'{{"time": "{self._time()}", "level": "INFO", "logger": "{ACCESS_LOGGER}", '
            f'"message": "request", "request_id": {_json_str(request_id)}, '
            f'"method": {encode_basestring_ascii(method)}, '
            f'"path": {encode_basestring_ascii(path)}, '
            f'"route": {encode_basestring_ascii(route)}, "status": {int(status)}, '
            f'"duration_ms": {float(duration_ms)!r}, "client": {_json_str(client)}, '
            f'"user_id": {_json_str(user_id)}}}\n'
        )
        handler.write_access(line)
