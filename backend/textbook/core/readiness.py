"""Readiness: each component's state as GET /api/v1/health and `textbook check` report it.
The database's check is here; the vector store's is textbook.rag.store.check_store."""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic

from sqlalchemy import Engine, text

from textbook.core.migrate import head_revision

log = logging.getLogger("textbook.readiness")
CACHE_SECONDS = 1.0  # a burst of probes (several monitors, a load balancer) costs one check
# Where a worker tells systemd it serves: gunicorn_conf moves NOTIFY_SOCKET here, so that the
# master's own READY (sockets bound, no app loaded yet) is not sent.
NOTIFY_SOCKET_ENV = "TEXTBOOK_NOTIFY_SOCKET"
# The gunicorn master's pid, set by gunicorn_conf in the master: READY names it (MAINPID=), so
# that after a re-exec (USR2: role backend's switch to a new release) systemd follows the new
# master, which it did not start, and the old one can stop.
MASTER_PID_ENV = "TEXTBOOK_GUNICORN_MASTER_PID"


def notify_ready() -> None:
    """READY=1 to systemd (Type=notify units) once this worker's app has started: a restart of
    the service, or its hand-over instance (role backend), then ends when requests are served;
    with MAINPID=<this worker's master> under gunicorn. A no-op outside systemd; a failure is
    logged, never fatal."""
    address = os.environ.get(NOTIFY_SOCKET_ENV, "")
    if not address:
        return
    message = "READY=1"
    if os.environ.get(MASTER_PID_ENV, "").isdigit():
        message += f"\nMAINPID={os.environ[MASTER_PID_ENV]}"
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
            notify.connect(address)
            notify.sendall(message.encode())
    except OSError as exc:
        log.warning("could not tell systemd the worker is ready: %s", exc)


@dataclass(frozen=True)
class Component:
    ok: bool
    detail: str  # public: no addresses, no driver messages
    cause: str = ""  # why it failed, in the driver's words: for the log and `textbook check`


def failure_cause(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip()[:300]}"


def check_database(engine: Engine) -> Component:
    """One query: reachable, and the schema at the migration head."""
    try:
        connection = engine.connect()
    except Exception as exc:  # any driver error means "not ready"
        return Component(False, "unreachable", failure_cause(exc))
    with connection:
        try:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        except Exception as exc:  # no version table: never migrated
            return Component(
                False, "schema not migrated; run `textbook migrate`", failure_cause(exc)
            )
    current = ",".join(sorted(row[0] for row in rows)) or None
    head = head_revision()
    if current != head:
        return Component(
            False, f"schema at revision {current}, head is {head}; run `textbook migrate`"
        )
    return Component(True, f"reachable, schema at head ({head})")


class Readiness:
    """The components' state, checked at most once per `seconds` however many probes ask at
    once; a component's failure (with its cause) is logged when it starts or changes, not per
    probe."""

    def __init__(
        self, check: Callable[[], dict[str, Component]], seconds: float = CACHE_SECONDS
    ) -> None:
        self._check = check
        self._seconds = seconds
        self._lock = threading.Lock()  # probes wait for the check in flight, then share it
        self._result: dict[str, Component] = {}
        self._checked_at = -math.inf

    def components(self) -> dict[str, Component]:
        """Blocks (I/O): call it from a worker thread."""
        with self._lock:
            if monotonic() - self._checked_at >= self._seconds:
                previous, self._result = self._result, self._check()
                self._checked_at = monotonic()
                for name, component in self._result.items():
                    before = previous.get(name)
                    if component != before and not (before is None and component.ok):
                        _log_change(name, component)
            return self._result


def _log_change(name: str, component: Component) -> None:
    extra = {"component": name, "detail": component.detail, "cause": component.cause or None}
    if component.ok:
        log.info("ready", extra=extra)
    else:
        log.warning("not ready: %s", component.cause or component.detail, extra=extra)
