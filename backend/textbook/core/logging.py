"""JSON logs on stderr (standard logging, a formatter that orjson-dumps each record), each
line carrying the id of the request that wrote it."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TextIO

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
HANDLER_NAME = "textbook"
FIELDS = "fields"  # extra={FIELDS: {...}}: a record's fields as one dict (the access record's)


# A record's own attributes; any other one came from `extra=` and goes into the line.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "request_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, request_id,
    the `extra=` fields (or, when the record has one, the keys of its `FIELDS` dict), and
    exc_info / stack_info when present. A dict of the record's fields dumped by orjson:
    python-json-logger's field merge cost a fifth of the access line, and logging's own
    local-time `asctime` ~9 k instructions more than orjson's (docs/bench.md)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        fields = getattr(record, FIELDS, None)
        if fields is not None:
            line.update(fields)
        else:
            line.update((k, v) for k, v in vars(record).items() if k not in _RECORD_ATTRIBUTES)
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str, option=orjson.OPT_UTC_Z).decode()


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Root logger to `stream` (stderr) as JSON, replacing the handler an earlier call added;
    uvicorn's own access log is silenced (the app writes one line per request)."""
    # Written on the caller's thread: a QueueHandler's thread measured dearer (docs/bench.md).
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Records need no thread or process names, nor the caller's file and line (a stack walk
    # per record): the logging HOWTO's "Optimization"; our lines carry none of them.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    for noisy in ("httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
