"""HTTP throughput of GET /health: what our request layer costs over a bare FastAPI app.

Two servers with the same gunicorn settings (`-c python:textbook.gunicorn_conf`), on free
loopback ports: bare (bench/_floor/floor_app.py) and ours (textbook.main:app, its JSON access
log on at INFO, written to a file on tmpfs). `wrk` (Debian package `wrk`) drives them in
turn: --repeats pairs of short runs, alternating which goes first, so each pair's ratio is
taken under the same load. The headline is the median of the pairs' overhead
(1 - ours/bare in requests/s); the servers' CPU time per request (from /proc) is reported
beside it. QDRANT_URL points at a closed port so gunicorn_conf runs its configured worker
count; /health never touches the store. GUNICORN_MAX_REQUESTS=0: recycling would measure
worker boots. Results and how to read them: docs/bench.md.

    python bench/http_server.py [--duration 2] [--warmup 2] [--repeats 15] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _report import ROOT, Server, free_port, write_report

FLOOR_DIR = ROOT / "bench" / "_floor"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# wrk's summary as one JSON line (after its text report).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, latency:percentile(99)))
end
"""


@dataclass
class App:
    name: str
    server: Server
    runs: list[dict[str, Any]] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and all its workers so far, from /proc."""
        assert self.server.process is not None
        parents: dict[int, int] = {}
        times: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        root = self.server.process.pid
        return sum(t for pid, t in times.items() if pid == root or parents.get(pid) == root)


def wrk(app: App, seconds: int, args: argparse.Namespace, script: Path) -> dict[str, Any]:
    argv = [
        "wrk",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds}s",
        "-s",
        str(script),
        app.server.url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)  # noqa: S603
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    summary["rps"] = round(summary["requests"] / (summary["duration_us"] / 1e6), 1)
    return summary


def apps(tmp: Path, workers: int | None) -> list[App]:
    env = {
        **os.environ,
        "DATA_DIR": str(tmp / "var"),
        "LOG_LEVEL": "INFO",
        "QDRANT_URL": f"http://127.0.0.1:{free_port()}",  # closed: never contacted
        "GUNICORN_MAX_REQUESTS": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    gunicorn = [sys.executable, "-m", "gunicorn", "--config", "python:textbook.gunicorn_conf"]
    made = []
    for name, argv in (
        ("bare", [*gunicorn, "--pythonpath", str(FLOOR_DIR), "floor_app:app"]),
        ("ours", [*gunicorn, "textbook.main:app"]),
    ):
        port = free_port()
        server = Server(
            argv,
            {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
            f"http://127.0.0.1:{port}/health",
            tmp / f"{name}.log",
        )
        made.append(App(name, server))
    return made


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - logs off the shared disk
    with tempfile.TemporaryDirectory(prefix="http-bench-", dir=shm) as name:
        tmp = Path(name)
        script = tmp / "summary.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        bare, ours = pair = apps(tmp, args.workers)
        try:
            for app in pair:
                app.server.start()
            for app in pair:
                app.server.wait_ready()
                wrk(app, args.warmup, args, script)
            for repeat in range(args.repeats):
                for app in pair if repeat % 2 == 0 else pair[::-1]:
                    cpu = app.cpu_seconds()
                    measured = wrk(app, args.duration, args, script)
                    measured["cpu_us_per_request"] = round(
                        (app.cpu_seconds() - cpu) * 1e6 / max(measured["requests"], 1), 1
                    )
                    measured["load_average"] = os.getloadavg()[0]
                    app.runs.append(measured)
                    print(
                        f"  {app.name} repeat {repeat:2d}: {measured['rps']:9.1f} rps, "
                        f"cpu {measured['cpu_us_per_request']} us/req "
                        f"(load {measured['load_average']:.1f})",
                        flush=True,
                    )
        finally:
            for app in pair:
                app.server.stop()
    overhead = [
        round(100 * (1 - o["rps"] / b["rps"]), 1) for b, o in zip(bare.runs, ours.runs, strict=True)
    ]
    return {
        "wrk": {
            "threads": args.threads,
            "connections": args.connections,
            "duration_s": args.duration,
            "repeats": args.repeats,
        },
        "workers": args.workers or "configured",
        "servers": {
            app.name: {
                "rps_median": statistics.median(r["rps"] for r in app.runs),
                "cpu_us_per_request_median": statistics.median(
                    r["cpu_us_per_request"] for r in app.runs
                ),
                "runs": app.runs,
            }
            for app in pair
        },
        "overhead_percent": {"median": statistics.median(overhead), "per_repeat": overhead},
        "load_average_max": max(r["load_average"] for app in pair for r in app.runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=2, help="seconds of each run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds, once per server")
    parser.add_argument("--repeats", type=int, default=15, help="pairs of bare and ours runs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="WEB_CONCURRENCY for both servers (default: gunicorn_conf's)",
    )
    args = parser.parse_args(argv)
    results = run(args)
    path = write_report("http_server", results)
    bare, ours = (results["servers"][n] for n in ("bare", "ours"))
    print(
        f"http/health: bare {bare['rps_median']} rps, ours {ours['rps_median']} rps; "
        f"overhead {results['overhead_percent']['median']} % (median of {args.repeats} "
        f"pairs); cpu per request bare {bare['cpu_us_per_request_median']} us, ours "
        f"{ours['cpu_us_per_request_median']} us; load average up to "
        f"{results['load_average_max']:.1f}"
    )
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
