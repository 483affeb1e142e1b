"""The access line's direct path writes what the logging module would have written, and the
request log hands each request to the access log and the metrics in batches."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from textbook.core.logging import (
    ACCESS_FLUSH_LINES,
    ACCESS_FLUSH_SECONDS,
    AccessLog,
    AppHandler,
    RequestLog,
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


class Observed:
    """What RequestLog hands to the metrics, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[str, str, int, float]]] = []

    def __call__(self, requests: dict[tuple[str, str, int], list[float]]) -> None:
        self.batches.append(
            [
                (method, route, status, s)
                for (method, route, status), d in requests.items()
                for s in d
            ]
        )


def record(log: RequestLog, request_id: str, user_id: str | None = None) -> None:
    started = time.perf_counter()
    client = ("203.0.113.9", 4242)
    log.record(
        ("GET", f"/x/{request_id}", client, request_id, user_id, 200, started, started + 0.25)
    )


def new_log(observed: Observed) -> RequestLog:
    return RequestLog(observed, lambda path: "/x/{id}")


def test_request_records_are_batched_and_keep_their_order(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("INFO", stream)
    observed = Observed()
    log = new_log(observed)

    async def requests() -> tuple[str, str, str]:
        record(log, "a", user_id="u-1")
        record(log, "b")
        before = stream.getvalue()  # batched: nothing written yet
        await asyncio.sleep(ACCESS_FLUSH_SECONDS + 0.3)
        after_timer = stream.getvalue()
        record(log, "c")
        logging.getLogger("textbook").warning("something else")  # flushes "c" first
        return before, after_timer, stream.getvalue()

    before, after_timer, final = asyncio.run(requests())
    assert before == ""
    first = [json.loads(line) for line in after_timer.splitlines()]
    assert [line["request_id"] for line in first] == ["a", "b"]
    assert first[0] | {"time": "t"} == {
        "time": "t",
        "level": "INFO",
        "logger": "textbook.access",
        "message": "request",
        "request_id": "a",
        "method": "GET",
        "path": "/x/a",
        "route": "/x/{id}",
        "status": 200,
        "duration_ms": 250.0,
        "client": "203.0.113.9",
        "user_id": "u-1",
    }
    lines = [json.loads(line) for line in final.splitlines()]
    assert [(line["request_id"], line["message"]) for line in lines] == [
        ("a", "request"),
        ("b", "request"),
        ("c", "request"),
        (None, "something else"),
    ]
    # The metrics got the same requests, in the same batches as the lines.
    assert observed.batches == [
        [
            ("GET", "/x/{id}", 200, pytest.approx(0.25)),
            ("GET", "/x/{id}", 200, pytest.approx(0.25)),
        ],
        [("GET", "/x/{id}", 200, pytest.approx(0.25))],
    ]


def test_the_line_carries_the_wall_clock_time_of_the_requests_end(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("INFO", stream)
    log = new_log(Observed())
    ended_at = time.time()
    record(log, "t")  # outside an event loop: handled at once
    stamp = json.loads(stream.getvalue())["time"]
    written = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    assert abs(written - (ended_at + 0.25)) < 0.05


def test_a_full_batch_and_flush_write_at_once(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("INFO", stream)
    observed = Observed()
    log = new_log(observed)

    async def requests() -> tuple[int, int]:
        for i in range(ACCESS_FLUSH_LINES):
            record(log, f"r{i}")
        full = stream.getvalue().count("\n")
        record(log, "last")
        for handler in logging.getLogger().handlers:
            handler.flush()  # what logging.shutdown() does when a worker exits
        return full, stream.getvalue().count("\n")

    assert asyncio.run(requests()) == (ACCESS_FLUSH_LINES, ACCESS_FLUSH_LINES + 1)
    assert [len(batch) for batch in observed.batches] == [ACCESS_FLUSH_LINES, 1]


def test_metrics_are_kept_above_info(restore_root: None) -> None:
    stream = io.StringIO()
    only_ours("WARNING", stream)
    observed = Observed()
    log = new_log(observed)

    async def requests() -> None:
        record(log, "w1")
        record(log, "w2")
        log.flush()

    asyncio.run(requests())
    assert stream.getvalue() == ""
    assert [len(batch) for batch in observed.batches] == [2]


def test_under_other_handlers_each_record_goes_through_logging_at_once(
    restore_root: None, caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging("INFO", stream=io.StringIO())  # pytest's capture handler stays
    observed = Observed()
    log = new_log(observed)

    async def requests() -> int:
        with caplog.at_level(logging.INFO, logger="textbook.access"):
            record(log, "cap")
            return len([r for r in caplog.records if r.name == "textbook.access"])

    assert asyncio.run(requests()) == 1
    assert caplog.records[-1].request_id == "cap"  # type: ignore[attr-defined]
    assert len(observed.batches) == 1


def test_a_handler_added_while_records_wait_gets_them_with_the_next_request(
    restore_root: None, caplog: pytest.LogCaptureFixture
) -> None:
    """Records wait for the timer under the app's own handler; once someone else's handler
    is added (a dictConfig at run time, a test's capture), the next request's record goes
    through logging at once, after the ones that were waiting."""
    stream = io.StringIO()
    only_ours("INFO", stream)
    log = new_log(Observed())

    async def requests() -> tuple[str, list[str]]:
        record(log, "before")  # waits for the timer
        waiting = stream.getvalue()
        logging.getLogger().addHandler(caplog.handler)
        with caplog.at_level(logging.INFO, logger="textbook.access"):
            record(log, "after")
            access = [r for r in caplog.records if r.name == "textbook.access"]
        return waiting, [r.request_id for r in access]  # type: ignore[attr-defined]

    assert asyncio.run(requests()) == ("", ["before", "after"])


def test_kinds_of_request_past_the_cache_bound_are_still_logged_right(
    restore_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Paths come from clients: what is cached per kind of request is bounded, and requests
    past the bound get the same lines."""
    monkeypatch.setattr("textbook.core.logging.ENCODED_CACHE_SIZE", 3)
    stream = io.StringIO()
    only_ours("INFO", stream)
    log = new_log(Observed())

    async def requests() -> None:
        for i in range(10):
            record(log, f"k{i}", user_id=f"u{i}")
        log.flush()

    asyncio.run(requests())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["path"], line["user_id"]) for line in lines] == [
        (f"/x/k{i}", f"u{i}") for i in range(10)
    ]
    assert len(log._kinds) == len(log._entries) == len(log.access._whos) == 3
