"""JSON logs: one line per record with the request id of the request that wrote it; setting
logging up again replaces the app's handler instead of adding a second one."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from textbook.core.logging import FIELDS, JsonFormatter, configure_logging, request_id_var


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


def parsed(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_carries_the_request_id_of_its_context(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("textbook.test")
    log.info("outside", extra={"answer": 42})
    token = request_id_var.set("req-1")
    try:
        log.warning("inside")
    finally:
        request_id_var.reset(token)
    first, second = parsed(stream)
    assert first | {"time": "t"} == {
        "time": "t",
        "level": "INFO",
        "logger": "textbook.test",
        "message": "outside",
        "request_id": None,
        "answer": 42,
    }
    assert (second["message"], second["level"], second["request_id"]) == (
        "inside",
        "WARNING",
        "req-1",
    )


def test_time_is_iso_8601_in_utc(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    before = datetime.now(UTC)
    logging.getLogger("textbook.test").info("now")
    [line] = parsed(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", str(line["time"]))
    written = datetime.fromisoformat(str(line["time"]))
    assert written.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= written <= datetime.now(UTC)


def test_a_records_fields_given_as_one_dict_are_fields_of_the_line(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("textbook.test").info("request", extra={FIELDS: {"status": 200, "a": "b"}})
    [line] = parsed(stream)
    assert line | {"time": "t"} == {
        "time": "t",
        "level": "INFO",
        "logger": "textbook.test",
        "message": "request",
        "request_id": None,
        "status": 200,
        "a": "b",
    }


def test_configuring_again_replaces_the_apps_handler(restore_root: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", stream=first)
    configure_logging("WARNING", stream=second)
    logging.getLogger("textbook.test").warning("once")
    logging.getLogger("textbook.test").info("below the level")
    assert first.getvalue() == ""
    assert [line["message"] for line in parsed(second)] == ["once"]


def test_server_logs_go_through_the_json_handler_and_its_access_log_is_off(
    restore_root: None,
) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("uvicorn.error").warning("worker booted")  # whatever level it was given
    logging.getLogger("uvicorn.access").info("GET /health 200")
    assert [(line["logger"], line["message"]) for line in parsed(stream)] == [
        ("uvicorn.error", "worker booted")
    ]


def test_exceptions_stacks_and_unusual_extras_are_fields_of_the_line(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    log = logging.getLogger("textbook.test")
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        log.exception("failed", extra={"where": Path("/srv/x")})
    [failed] = parsed(stream)
    assert failed["message"] == "failed" and failed["where"] == "/srv/x"
    assert "ZeroDivisionError: division by zero" in failed["exc_info"]
    # configure_logging skips the caller lookup that fills stack_info; a record may carry one.
    record = logging.LogRecord("textbook.test", logging.INFO, "", 0, "here", None, None)
    record.stack_info = "Stack (most recent call last):\n  in f"
    here = json.loads(JsonFormatter().format(record))
    assert here["stack_info"] == record.stack_info and "exc_info" not in here
