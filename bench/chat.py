"""Chat and search latency over HTTP in the embedded answer mode (no LLM: extractive answers).

The setup is `make serve`'s: SQLite and Qdrant's local mode in a throwaway DATA_DIR, the
sample textbook ingested, `textbook serve` (gunicorn, one worker as embedded Qdrant
requires) on a free loopback port, logging at INFO to a file. One user registers and logs
in; then, one request at a time over a keep-alive connection:

* POST /api/v1/chat with the bearer token (retrieval, a new conversation each time),
* POST /api/v1/chat with selected_text (answer from the selection, no vector store),
* GET /api/v1/search.

Rate limits are raised for the run (they are still checked on every request). Every
response is checked (200, extractive mode, citations) and failures are counted. Requests go
through the project's client (textbook.client, no retries), so each figure includes its
work (a request id, parsing the answer into its model) as a script using it would see.

    python bench/chat.py [--requests 200] [--warmup 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _report import Server, free_port, latency_summary, write_report

from textbook.client import NO_RETRY, TextbookClient, TextbookError
from textbook.core.config import SAMPLE_CONTENT_DIR

QUESTIONS = [
    "What is a ROS 2 topic?",
    "How do ROS 2 nodes discover each other?",
    "What is a QoS profile?",
    "When should I use an action instead of a service?",
    "How does tf2 transform a point between frames?",
    "How is a URDF joint described?",
    "What is the Jacobian used for?",
    "How does a stereo camera measure depth?",
    "Why does an IMU drift?",
    "What is loop closure in SLAM?",
    "What is the zero moment point?",
    "What is domain randomization?",
]
SELECTION = (
    "A topic is a named bus over which nodes exchange messages. Publishers send messages "
    "to a topic without knowing who receives them, and subscribers receive every message "
    "published on it. Quality of service settings decide whether delivery is reliable."
)
PASSWORD = "bench password, long enough"  # noqa: S105 - throwaway user of a throwaway DB
ACCESS_LINE = b'"logger":"textbook.access"'  # orjson's compact JSON


def textbook(env: dict[str, str], *args: str) -> None:
    subprocess.run(  # noqa: S603
        [sys.executable, "-m", "textbook.cli", *args],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def timed(count: int, warmup: int, call: Callable[[int], bool]) -> dict[str, Any]:
    """Run call(i) warmup + count times; latency of the last `count`, failures (a False or an
    error raised by the client) counted."""

    def attempt(i: int) -> bool:
        try:
            return call(i)
        except TextbookError:
            return False

    for i in range(warmup):
        attempt(i)
    seconds: list[float] = []
    failures = 0
    for i in range(count):
        started = time.perf_counter()
        ok = attempt(i)
        seconds.append(time.perf_counter() - started)
        failures += not ok
    return {**latency_summary(seconds), "failures": failures}


def measure(base: str, requests: int, warmup: int) -> dict[str, Any]:
    with TextbookClient(base, timeout=60, retry=NO_RETRY) as api:
        email = "bench@example.org"
        api.register(email, PASSWORD)
        api.login(email, PASSWORD)

        def chat(i: int) -> bool:
            answer = api.chat(QUESTIONS[i % len(QUESTIONS)])
            return (
                answer.mode == "extractive"
                and answer.source == "retrieval"
                and bool(answer.citations)
            )

        def chat_selected(i: int) -> bool:
            answer = api.chat(QUESTIONS[i % len(QUESTIONS)], selected_text=SELECTION)
            return answer.source == "selected_text"

        def search(i: int) -> bool:
            return bool(api.search(QUESTIONS[i % len(QUESTIONS)], limit=5).results)

        return {
            "chat_retrieval": timed(requests, warmup, chat),
            "chat_selected_text": timed(requests, warmup, chat_selected),
            "search": {"limit": 5, **timed(requests, warmup, search)},
        }


def run(requests: int, warmup: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as name:
        tmp = Path(name)
        port = free_port()
        env = {
            **os.environ,
            "DATA_DIR": str(tmp / "var"),
            "LOG_LEVEL": "INFO",
            "GUNICORN_BIND": f"127.0.0.1:{port}",
            "LLM_PROVIDER": "none",
            "EMBEDDING_PROVIDER": "none",
            "RATE_LIMIT_PER_IP": "100000/minute",
            "RATE_LIMIT_PER_USER": "100000/minute",
            "RATE_LIMIT_CHAT": "100000/minute",
        }
        for unset in ("QDRANT_URL", "OPENAI_API_KEY", "GEMINI_API_KEY", "DATABASE_URL"):
            env.pop(unset, None)
        textbook(env, "migrate")
        with_ingest = time.perf_counter()
        textbook(env, "ingest", str(SAMPLE_CONTENT_DIR))
        ingest_seconds = time.perf_counter() - with_ingest
        base = f"http://127.0.0.1:{port}"
        log = tmp / "server.log"
        server = Server(
            [sys.executable, "-m", "textbook.cli", "serve"], env, f"{base}/api/v1/health", log
        )
        server.start()
        try:
            server.wait_ready()
            results = measure(base, requests, warmup)
        finally:
            server.stop()
        with log.open("rb") as lines:
            results["access_log_lines"] = sum(1 for line in lines if ACCESS_LINE in line)
    results["setup"] = {
        "server": "textbook serve (gunicorn, 1 worker: embedded Qdrant)",
        "database": "sqlite",
        "qdrant": "local",
        "answers": "extractive",
        "ingest_cli_seconds": round(ingest_seconds, 2),
        "requests": requests,
        "warmup": warmup,
        "concurrency": 1,
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    results = run(args.requests, args.warmup)
    results["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    path = write_report("chat", results)
    for name in ("chat_retrieval", "chat_selected_text", "search"):
        summary = results[name]
        print(
            f"chat/{name}: p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms "
            f"({summary['count']} requests, {summary['failures']} failed)"
        )
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
