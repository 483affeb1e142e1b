"""The access line's direct path writes what the logging module would have written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from textbook.core.logging import (
    ACCESS_FLUSH_LINES,
    ACCESS_FLUSH_SECONDS,
    AccessLog,
    AppHandler,
    configure_logging,
    request_id_var,
)

FIELDS = {
    "method": "GET",
    "path": '/api/v1/chapters/"quoted"\\slash/\u00e9t\u00e9\n',
    "route": "unmatched",
    "status": 404,
    "duration_ms": 0.37,
    "client": "203.0.113.9",
    "user_id": None,
}


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


def only_ours(level: str, stream: io.StringIO) -> None:
    """The app's logging as in production: pytest's own capture handlers removed."""
    configure_logging(level, stream=stream)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if isinstance(h, AppHandler)]


def write(access: AccessLog, request_id: str | None) -> None:
    access.write(request_id, *FIELDS.values())  # type: ignore[arg-type]


def test_direct_line_equals_the_formatters_line(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("INFO", stream)
    write(AccessLog(), "req-1")
    direct = stream.getvalue()
    assert direct.count("\n") == 1

    # The same request through logging.info() and the JSON formatter.
    stream.truncate(0)
    stream.seek(0)
    token = request_id_var.set("req-1")
    try:
        logging.getLogger("textbook.access").info("request", extra=FIELDS)
    finally:
        request_id_var.reset(token)
    formatted = json.loads(stream.getvalue())
    parsed = json.loads(direct)
    assert list(parsed) == list(formatted)  # same keys, same order
    assert {k: v for k, v in parsed.items() if k != "time"} == {
        k: v for k, v in formatted.items() if k != "time"
    }
    assert parsed["path"] == FIELDS["path"]
    assert len(parsed["time"]) == len(formatted["time"]) == len("2026-11-29 00:31:05,123")


def test_other_handlers_get_the_access_line_through_logging(
    restore_root: None, caplog: pytest.LogCaptureFixture
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)  # pytest's capture handler stays on the root
    with caplog.at_level(logging.INFO, logger="textbook.access"):
        write(AccessLog(), None)
    records = [r for r in caplog.records if r.name == "textbook.access"]
    assert len(records) == 1
    assert records[0].status == 404  # type: ignore[attr-defined]
    assert json.loads(stream.getvalue())["path"] == FIELDS["path"]


def test_no_access_line_above_info(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("WARNING", stream)
    access = AccessLog()
    if access.enabled():
        write(access, "req-2")
    assert stream.getvalue() == ""


def test_access_lines_from_the_event_loop_are_batched_and_keep_their_order(
    restore_root: None,
) -> None:
    stream = io.StringIO()
    only_ours("INFO", stream)
    access = AccessLog()

    async def requests() -> tuple[str, str, str]:
        write(access, "a")
        write(access, "b")
        before = stream.getvalue()  # batched: nothing written yet
        await asyncio.sleep(ACCESS_FLUSH_SECONDS + 0.3)
        after_timer = stream.getvalue()
        write(access, "c")
        logging.getLogger("textbook").warning("something else")  # flushes "c" first
        return before, after_timer, stream.getvalue()

    before, after_timer, final = asyncio.run(requests())
    assert before == ""
    assert [json.loads(line)["request_id"] for line in after_timer.splitlines()] == ["a", "b"]
    lines = [json.loads(line) for line in final.splitlines()]
    assert [(line["request_id"], line["message"]) for line in lines] == [
        ("a", "request"),
        ("b", "request"),
        ("c", "request"),
        (None, "something else"),
    ]


def test_a_full_batch_and_flush_write_at_once(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("INFO", stream)
    access = AccessLog()

    async def requests() -> tuple[int, int]:
        for i in range(ACCESS_FLUSH_LINES):
            write(access, f"r{i}")
        full = stream.getvalue().count("\n")
        write(access, "last")
        for handler in logging.getLogger().handlers:
            handler.flush()  # what logging.shutdown() does when a worker exits
        return full, stream.getvalue().count("\n")

    assert asyncio.run(requests()) == (ACCESS_FLUSH_LINES, ACCESS_FLUSH_LINES + 1)
