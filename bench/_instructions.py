"""Instructions per GET /health, the app driven in-process (no server, no sockets): what the
request layer costs, read without the noise of a shared machine's load (docs/bench.md).
Counted by valgrind's callgrind (Debian package `valgrind`) for --requests requests after a
warm-up; PROMETHEUS_MULTIPROC_DIR is set, as under gunicorn with several workers; the app's
log lines go to /dev/null. Two figures: all threads (a log-writing thread's included, if
the app has one: logging's handlers are flushed before counting stops) and the thread that
runs the requests (the event loop's).

    python bench/_instructions.py [--bare] [--level INFO] [--requests 1000]
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _report import ROOT, free_port

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/health",
    "raw_path": b"/health",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message: dict[str, Any]) -> None:
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise RuntimeError(f"GET /health answered {message['status']}")


def drive(app: Any, requests: int) -> None:
    """Each request's coroutine runs to its end in one step: nothing in it waits."""
    for _ in range(requests):
        try:
            app(dict(SCOPE), receive, send).send(None)
        except StopIteration:
            continue
        raise RuntimeError("a request waited for something")


def callgrind(switch: str) -> None:
    argv = ["callgrind_control", "-i", switch, str(os.getpid())]
    subprocess.run(argv, check=True, capture_output=True)  # noqa: S603


def counted(bare: bool, requests: int) -> None:
    """Under valgrind: import the app, warm it up, count `requests` requests."""
    if bare:
        sys.path.insert(0, str(ROOT / "bench" / "_floor"))
    app = importlib.import_module("floor_app" if bare else "textbook.main").app
    drive(app, 300)
    gc.collect()
    gc.freeze()  # as the app's lifespan does
    callgrind("on")
    drive(app, requests)
    for handler in logging.getLogger().handlers:
        handler.flush()  # a queueing handler's thread writes what it holds
    callgrind("off")


def measure(args: argparse.Namespace) -> tuple[int, int]:
    """Instructions per request: all threads, the requests' thread."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="instructions-") as name:
        tmp = Path(name)
        (tmp / "metrics").mkdir()
        env = {
            **os.environ,
            "DATA_DIR": str(tmp / "var"),
            "LOG_LEVEL": args.level,
            "QDRANT_URL": f"http://127.0.0.1:{free_port()}",  # closed: never contacted
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        }
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--separate-threads=yes",
            f"--callgrind-out-file={tmp / 'callgrind.out'}",
            f"--log-file={tmp / 'valgrind.log'}",
            sys.executable,
            __file__,
            "--counted",
            f"--requests={args.requests}",
            *(["--bare"] if args.bare else []),
        ]
        subprocess.run(argv, env=env, check=True, stderr=subprocess.DEVNULL)  # noqa: S603
        found = re.search(r"Collected : (\d+)", (tmp / "valgrind.log").read_text())
        main = re.search(r"^totals: (\d+)", (tmp / "callgrind.out-01").read_text(), re.M)
        if found is None or main is None:
            raise SystemExit("valgrind reported no count")
        return int(found.group(1)) // args.requests, int(main.group(1)) // args.requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", action="store_true", help="the bare FastAPI app instead")
    parser.add_argument("--level", default="INFO", help="LOG_LEVEL (WARNING: no access line)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counted:
        counted(args.bare, args.requests)
        return
    app = "bare" if args.bare else f"textbook.main:app, LOG_LEVEL={args.level}"
    total, loop = measure(args)
    print(f"GET /health, {app}: {total} instructions a request ({loop} in the requests' thread)")


if __name__ == "__main__":
    main()
