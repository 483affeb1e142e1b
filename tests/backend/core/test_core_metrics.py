"""Request metrics: counted by method, route template and status, and under several gunicorn
workers (PROMETHEUS_MULTIPROC_DIR) summed over the workers' files by /metrics."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textbook.core.metrics import Metrics

WORKER = """
import sys
from textbook.core.metrics import Metrics
metrics = Metrics()
for _ in range(int(sys.argv[1])):
    metrics.observe_request("GET", "/health", 200, 0.002)
metrics.observe_request("POST", "/api/v1/chat", 502, 3.0)
"""
RENDER = """
import sys
from textbook.core.metrics import Metrics
sys.stdout.buffer.write(Metrics().render()[0])
"""


def samples(exposition: bytes) -> dict[str, float]:
    # Only the request metrics, without the creation timestamps.
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in exposition.decode().splitlines()
        if line.startswith("textbook_http_request") and "_created" not in line
    }


def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = Metrics()
    metrics.observe_request("GET", "/api/v1/chapters/{slug}", 200, 0.004)
    metrics.observe_request("GET", "/api/v1/chapters/{slug}", 404, 0.02)
    metrics.observe_request("GET", "/api/v1/chapters/{slug}", 200, 0.3)
    got = samples(metrics.render()[0])
    route = 'method="GET",route="/api/v1/chapters/{slug}"'
    assert got[f'textbook_http_requests_total{{{route},status="200"}}'] == 2
    assert got[f'textbook_http_requests_total{{{route},status="404"}}'] == 1
    assert got[f'textbook_http_request_duration_seconds_bucket{{le="0.005",{route}}}'] == 1
    assert got[f'textbook_http_request_duration_seconds_bucket{{le="0.025",{route}}}'] == 2
    assert got[f"textbook_http_request_duration_seconds_count{{{route}}}"] == 3


def test_several_workers_requests_are_summed(tmp_path: Path) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for count in ("3", "4"):  # two worker processes
        subprocess.run([sys.executable, "-c", WORKER, count], env=env, timeout=60, check=True)
    rendered = subprocess.run(
        [sys.executable, "-c", RENDER], env=env, capture_output=True, timeout=60, check=True
    )
    got = samples(rendered.stdout)
    assert got['textbook_http_requests_total{method="GET",route="/health",status="200"}'] == 7
    assert got['textbook_http_requests_total{method="POST",route="/api/v1/chat",status="502"}'] == 2
    count = 'textbook_http_request_duration_seconds_count{method="GET",route="/health"}'
    assert got[count] == 7
