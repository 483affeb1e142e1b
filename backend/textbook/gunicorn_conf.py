"""gunicorn settings for `textbook serve` (`gunicorn -c python:textbook.gunicorn_conf`).

Environment: GUNICORN_BIND (default 127.0.0.1:8000; the deployment passes
unix:/run/textbook/gunicorn.sock or a private address), WEB_CONCURRENCY (workers),
GUNICORN_TIMEOUT, GUNICORN_GRACEFUL_TIMEOUT, GUNICORN_KEEPALIVE, GUNICORN_MAX_REQUESTS
(recycling; off with one worker).
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

from gunicorn.systemd import SD_LISTEN_FDS_START

from textbook.core.config import get_settings
from textbook.core.readiness import MASTER_PID_ENV, NOTIFY_SOCKET_ENV

_settings = get_settings()


def worker_count(
    env: Mapping[str, str] | None = None,
    cores: int | None = None,
    embedded_qdrant: bool | None = None,
) -> int:
    """Workers: WEB_CONCURRENCY, else one per core (capped at 8); always 1 with embedded
    Qdrant (Qdrant Edge), which allows one process per storage path. One per core, not
    2 x cores + 1: a uvicorn worker serves many requests at once (measured: docs/bench.md)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    if embedded_qdrant is None:
        embedded_qdrant = _settings.qdrant_url is None
    if embedded_qdrant:
        return 1
    requested = environ.get("WEB_CONCURRENCY", "")
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    cores = cores or multiprocessing.cpu_count()
    return min(cores, 8)


bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]


def recycling(workers: int, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(max_requests, max_requests_jitter): GUNICORN_MAX_REQUESTS (default 2000, 0: never),
    with a tenth of it as jitter so workers do not restart together. Never with one worker:
    gunicorn stops it before its replacement serves, and every request waits meanwhile."""
    environ: Mapping[str, str] = os.environ if env is None else env
    requested = environ.get("GUNICORN_MAX_REQUESTS", "2000")
    limit = int(requested) if requested.isdigit() else 2000
    if workers < 2 or limit == 0:
        return 0, 0
    return limit, max(1, limit // 10)


workers = worker_count()
worker_class = "uvicorn_worker.UvicornWorker"
max_requests, max_requests_jitter = recycling(workers)
# SSE answers can take a while; the worker heartbeat is separate from request time.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Above Nginx's upstream keepalive_timeout (nginx_upstream_keepalive_timeout, 4 s): Nginx drops an
# idle connection before gunicorn closes it, so it never sends a request into a closing one.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# gunicorn accepts only addresses and networks here; the app's own proxy middleware also
# honours the "unix:" entry (nginx on a unix socket), so it is left to the app.
forwarded_allow_ips = ",".join(p for p in _settings.trusted_proxies if not p.startswith("unix:"))
proxy_allow_ips = forwarded_allow_ips
# The app writes one JSON access line per request; gunicorn's would be a duplicate.
accesslog = None
errorlog = "-"
loglevel = _settings.log_level.lower()
# Import the app in each worker, after fork: the vector store and DB pool are per process.
preload_app = False


# Under systemd (Type=notify) the service is ready once a worker's app has started
# (textbook.core.readiness.notify_ready, at the end of the app's startup), not when the master
# has bound its sockets: the master's own READY=1 is silenced by moving the notify socket's
# address to the variable the workers read.
# The workers name their master in that READY (MAINPID=): after a re-exec (USR2, below) systemd
# then follows the new master, which it did not start.
if os.environ.get("NOTIFY_SOCKET"):
    os.environ[NOTIFY_SOCKET_ENV] = os.environ.pop("NOTIFY_SOCKET")
    os.environ[MASTER_PID_ENV] = str(os.getpid())


def pre_exec(server: Any) -> None:
    """In the child that becomes the new master on USR2 (gunicorn starts it beside the old one,
    on the same sockets; the old master is then stopped), just before its exec. Role backend
    switches releases this way, through a launcher whose interpreter is the `current` link's
    (`#!<current>/venv/bin/python`), so the new master runs the release `current` points at.
    - Sockets from systemd: gunicorn passes them as LISTEN_FDS=<n> but leaves them where it
      moved them, not at 3, 4, ... as systemd's protocol (and gunicorn's reading of it) wants,
      so the new master fails with EBADF (upstream: gunicorn pull request 3285, open). They
      are copied there.
    - gunicorn would run `<python> <launcher>`: run the launcher itself, so the new master and
      its workers are still `gunicorn` in ps (and pgrep)."""
    if server.systemd:
        copies = [os.dup(listener.fileno()) for listener in server.LISTENERS]
        for number, copy in enumerate(copies, start=SD_LISTEN_FDS_START):
            os.dup2(copy, number)  # inheritable, unlike the copies
    args = server.START_CTX["args"]
    if len(args) > 1 and os.path.isfile(args[1]) and os.access(args[1], os.X_OK):
        server.START_CTX[0] = args[1]
        server.START_CTX["args"] = args[1:]


# Several workers share their Prometheus values through files in one directory, so that
# /metrics, whichever worker answers, counts the requests of all of them.
_metrics_dir_made: list[str] = []


def on_starting(server: Any) -> None:
    """In the master, before any worker starts (prometheus_client chooses where values live
    when it is first imported, in the worker): a fresh directory for this server's run,
    unless the operator set PROMETHEUS_MULTIPROC_DIR (then wiping it between runs is theirs)."""
    if server.cfg.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="textbook-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _metrics_dir_made.append(path)


def on_exit(_server: Any) -> None:
    for path in _metrics_dir_made:
        shutil.rmtree(path, ignore_errors=True)


def child_exit(_server: Any, worker: Any) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
