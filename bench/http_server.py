"""HTTP throughput of GET /health: what our middleware costs over the framework's floor.

Three servers run side by side on free loopback ports, all with access logs off in the
server and the app's own JSON log on at INFO (to a file, then counted):

* bare-gunicorn   a bare FastAPI app with one async /health route (bench/_floor/floor_app.py)
* ours-gunicorn   textbook.main:app
  both with the same gunicorn settings: `-c python:textbook.gunicorn_conf`
* ours-gunicorn-log-warning  the same at LOG_LEVEL=WARNING (diagnostic: no access line)
* ours-uvicorn    textbook.main:app in one plain uvicorn process (--no-access-log)

QDRANT_URL points at a closed loopback port so that gunicorn_conf applies its configured
worker count (embedded Qdrant forces one worker); the app never touches the store for
/health and does not probe it at startup. With several workers gunicorn_conf shares their
Prometheus values through files (PROMETHEUS_MULTIPROC_DIR), as in production.
GUNICORN_MAX_REQUESTS=0 by default: with the production recycling (2000 requests a worker)
a worker restarts every fraction of a second at these rates and the run measures worker
boot time instead of request handling.

`wrk` (Debian package `wrk`) drives each server in turn, on loopback only: a warm-up per
server, then many short runs; bare and ours run back to back in each repeat (alternating which
goes first), so each repeat's ratio is taken under the same load, and the diagnostic servers
run every few repeats. bare and ours are booted afresh --boots times (5), the repeats shared
among the boots: a process keeps its luck (where its memory lands, its hash seed) for all its
runs (one pinned worker of ours took 97.6 to 102.7 us per request in four boots, bare 87.9 to
95.4). Short runs and many of them: on this shared 2-core machine one run's requests/s swings
by up to +-15 % against the next with the other load and the scheduler, for either app, and
over 41 alternating pairs that averages out (with the spread seen here the median's 95 %
interval reaches 3 to 4.6 points either side). Each run's connections split between the
workers anew; the split is sampled from /proc and reported (in 25 repeats on 2026-11-29 it
was 32/32 to 46/18 and did not go with requests/s: correlation 0.08 bare, 0.14 ours).
overhead = 1 - ours/bare per repeat; the headline is the median of those, with a 95 %
confidence interval (the sign test's, distribution-free; medians of rps are reported too).
The servers' CPU time per request (all worker processes, from /proc) is reported beside it.

    python bench/http_server.py [--duration 2] [--warmup 2] [--repeats 41] [--boots 5]
                                [--diagnostics-every 5] [--threads 2] [--connections 64]
                                [--workers N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _report import ROOT, median_ci, write_report

FLOOR_DIR = ROOT / "bench" / "_floor"
BOOT_TIMEOUT_SECONDS = 300
# Private (0700) temporary directories are made in it.
TMPFS = Path("/dev/shm")  # noqa: S108
STARTUP_LINE = b"Application startup complete"
ACCESS_LINE = b'"logger": "textbook.access"'
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# wrk's summary as one JSON line (printed after its text report).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": {"connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, "p90": %d, ' ..
    '"p99": %d, "max": %d, "mean": %.1f}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    workers: int
    log: Path
    # Commands put in front of wrk for this server (taskset for the pinned pair).
    wrk_prefix: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    log_start: int = 0  # where this boot's output starts in the log
    boots: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self) -> None:
        self.log_start = self.log.stat().st_size if self.log.exists() else 0
        self.boots += 1
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - our interpreter, fixed arguments
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=self.log.parent
            )

    def wait_ready(self) -> None:
        """Every worker has finished its startup and /health answers 200."""
        deadline = time.monotonic() + BOOT_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited ({self.process.returncode}); see {self.log}")
            if self.log.read_bytes()[self.log_start:].count(STARTUP_LINE) >= self.workers:
                with urllib.request.urlopen(self.url, timeout=10) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        return
            time.sleep(0.5)
        raise SystemExit(f"{self.name} not ready after {BOOT_TIMEOUT_SECONDS}s; see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def _tree(self) -> tuple[list[int], dict[int, float]]:
        """The server's processes (itself first, then its workers) and the user + system CPU
        seconds of each so far, from /proc."""
        assert self.process is not None
        children: dict[int, list[int]] = {}
        times: dict[int, float] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            pid = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(pid)
            times[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        tree, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree, times

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and all its workers, so far."""
        tree, times = self._tree()
        return sum(times.get(pid, 0.0) for pid in tree)

    def connections_per_worker(self) -> list[int]:
        """How many established loopback connections to the server each of its processes
        holds (largest first; a gunicorn master holds none), from /proc/net/tcp and the
        processes' open sockets."""
        inodes = set()
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == self.port:
                inodes.add(f"socket:[{fields[9]}]")
        counts = []
        for pid in self._tree()[0]:
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            held = 0
            for fd in fds:
                with contextlib.suppress(OSError):
                    held += os.readlink(f"/proc/{pid}/fd/{fd}") in inodes
            if held:
                counts.append(held)
        return sorted(counts, reverse=True)

    def access_lines(self) -> int:
        with self.log.open("rb") as log:
            return sum(1 for line in log if ACCESS_LINE in line)


def wrk(server: Server, seconds: int, threads: int, connections: int,
        script: Path) -> dict[str, Any]:
    if server.wrk_prefix:  # pinned pair: one wrk thread on the other core
        threads, connections = 1, 16
    argv = [*server.wrk_prefix, "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
            "-s", str(script), server.url]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603
                          text=True) as load:
        time.sleep(min(0.5, seconds / 4))  # connected by then
        split = server.connections_per_worker()
        out, err = load.communicate()
    if load.returncode != 0:
        raise SystemExit(f"wrk failed ({load.returncode}): {err.strip()}")
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    summary["rps"] = round(summary["requests"] / (summary["duration_us"] / 1e6), 1)
    summary["connections_per_worker"] = split
    return summary


def servers(tmp: Path, workers: int | None) -> list[Server]:
    python = sys.executable
    base = {**os.environ, "DATA_DIR": str(tmp / "var"), "LOG_LEVEL": "INFO",
            "QDRANT_URL": f"http://127.0.0.1:{free_port()}",  # closed: never contacted
            "GUNICORN_MAX_REQUESTS": os.environ.get("GUNICORN_MAX_REQUESTS", "0")}
    if workers:
        base["WEB_CONCURRENCY"] = str(workers)
    base.pop("PROMETHEUS_MULTIPROC_DIR", None)
    from textbook.gunicorn_conf import worker_count

    configured = worker_count(env=base, embedded_qdrant=False)
    gunicorn = [python, "-m", "gunicorn", "--config", "python:textbook.gunicorn_conf"]
    made = []
    for name, extra, app, log_level in (
        ("bare-gunicorn", ["--pythonpath", str(FLOOR_DIR)], "floor_app:app", "INFO"),
        ("ours-gunicorn", [], "textbook.main:app", "INFO"),
        # Diagnostic: the same without the access line, to tell logging from the rest.
        # gunicorn's own level stays at info: its workers' "startup complete" lines are
        # how the bench knows they are up.
        ("ours-gunicorn-log-warning", ["--log-level", "info"], "textbook.main:app", "WARNING"),
    ):
        port = free_port()
        env = {**base, "GUNICORN_BIND": f"127.0.0.1:{port}", "LOG_LEVEL": log_level}
        made.append(Server(name, [*gunicorn, *extra, app], env, port, configured,
                           tmp / f"{name}.log"))
    # Diagnostic: one worker each, pinned to CPU 0 with wrk on CPU 1, so the per-request cost
    # of the app shows without several processes sharing two cores' caches.
    if len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset"):
        for name, extra, app in (
            ("bare-1worker-pinned", ["--pythonpath", str(FLOOR_DIR)], "floor_app:app"),
            ("ours-1worker-pinned", [], "textbook.main:app"),
        ):
            port = free_port()
            env = {**base, "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
            made.append(Server(name, ["taskset", "-c", "0", *gunicorn, *extra, app], env, port, 1,
                               tmp / f"{name}.log", wrk_prefix=["taskset", "-c", "1"]))
    port = free_port()
    made.append(Server("ours-uvicorn", [python, "-m", "uvicorn", "textbook.main:app", "--host",
                                        "127.0.0.1", "--port", str(port), "--no-access-log",
                                        "--workers", "1"],  # not $WEB_CONCURRENCY
                       base, port, 1, tmp / "ours-uvicorn.log"))
    return made


def boot(servers: list[Server], args: argparse.Namespace, script: Path) -> None:
    """Start the servers together, wait until each is ready, warm each up once."""
    for server in servers:
        server.start()
    for server in servers:
        server.wait_ready()
    for server in servers:
        wrk(server, args.warmup, args.threads, args.connections, script)


def summarise(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    # Logs on tmpfs: the disk here is shared with other jobs, and its journal is not ours.
    shm = TMPFS if TMPFS.is_dir() else None
    with tempfile.TemporaryDirectory(prefix="http-bench-", dir=shm) as name:
        tmp = Path(name)
        script = tmp / "summary.lua"
        script.write_text(WRK_SCRIPT, encoding="utf-8")
        started = servers(tmp, args.workers)
        loads = [load_average()]
        try:
            boot(started, args, script)
            per_boot = -(-args.repeats // args.boots)
            for repeat in range(args.repeats):
                if repeat and repeat % per_boot == 0:
                    # bare and ours booted afresh: a process's luck (where its memory lands,
                    # its hash seed) stays with it for all its runs.
                    for server in started[:2]:
                        server.stop()
                    boot(started[:2], args, script)
                # bare and ours back to back (alternating which goes first), so each repeat's
                # ratio compares runs under the same load; the diagnostics every few repeats.
                pair = started[:2] if repeat % 2 == 0 else started[1::-1]
                diagnostics = started[2:] if repeat % args.diagnostics_every == 0 else []
                for server in pair + diagnostics:
                    cpu_before = server.cpu_seconds()
                    measured = wrk(server, args.duration, args.threads, args.connections,
                                   script)
                    measured["server_cpu_us_per_request"] = round(
                        (server.cpu_seconds() - cpu_before) * 1e6 / max(measured["requests"], 1),
                        1)
                    measured["repeat"] = repeat
                    measured["boot"] = server.boots
                    measured["load_average"] = load_average()
                    server.runs.append(measured)
                    print(f"  {server.name:26s} repeat {repeat:2d}: {measured['rps']:9.1f} rps "
                          f"p99 {measured['latency_us']['p99'] / 1000:.1f} ms "
                          f"cpu {measured['server_cpu_us_per_request']} us/req "
                          f"connections {measured['connections_per_worker']} "
                          f"(load {measured['load_average'][0]})", flush=True)
                loads.append(load_average())
        finally:
            for server in started:
                server.stop()
        results: dict[str, Any] = {
            "wrk": {"threads": args.threads, "connections": args.connections,
                    "duration_s": args.duration, "warmup_s": args.warmup,
                    "repeats": args.repeats, "boots": args.boots,
                    "diagnostics_every": args.diagnostics_every},
            "gunicorn": {"config": "textbook.gunicorn_conf", "workers": started[0].workers,
                         "max_requests": int(started[0].env["GUNICORN_MAX_REQUESTS"])},
            "load_average": {"1min_samples": [load[0] for load in loads],
                             "max_1min": max(load[0] for load in loads)},
            "servers": {},
        }
        for server in started:
            rps = [run_["rps"] for run_ in server.runs]
            served = sum(r["requests"] for r in server.runs)
            results["servers"][server.name] = {
                "workers": server.workers,
                "rps": summarise(rps),
                "latency_p99_ms_median": round(
                    statistics.median(r["latency_us"]["p99"] for r in server.runs) / 1000, 2),
                "requests_measured": served,
                "access_log_lines": server.access_lines()
                if server.env["LOG_LEVEL"] == "INFO" and server.name != "bare-gunicorn" else None,
                "runs": server.runs,
            }
    bare, ours = (results["servers"][n]["runs"] for n in ("bare-gunicorn", "ours-gunicorn"))
    per_repeat = [round(100 * (1 - o["rps"] / b["rps"]), 1) for b, o in zip(bare, ours,
                                                                          strict=True)]
    medians = (results["servers"]["bare-gunicorn"]["rps"]["median"],
               results["servers"]["ours-gunicorn"]["rps"]["median"])
    cpu = [(b["server_cpu_us_per_request"], o["server_cpu_us_per_request"])
           for b, o in zip(bare, ours, strict=True)]
    results["cpu_overhead_percent"] = {
        "what": "server CPU per request, ours over bare, minus 1 (robust to a shared machine's "
                "noisy throughput)",
        "median_of_repeats": statistics.median(round(100 * (o / b - 1), 1) for b, o in cpu),
        "per_repeat": [round(100 * (o / b - 1), 1) for b, o in cpu],
        "bare_us_per_request_median": statistics.median(b for b, _ in cpu),
        "ours_us_per_request_median": statistics.median(o for _, o in cpu),
    }
    pinned = [results["servers"].get(n) for n in ("bare-1worker-pinned", "ours-1worker-pinned")]
    if pinned[0] and pinned[1]:
        b, o = (statistics.median(r["server_cpu_us_per_request"] for r in p["runs"])
                for p in pinned)
        results["pinned_cpu_overhead_percent"] = {
            "what": "one gunicorn worker each on CPU 0, wrk on CPU 1: server CPU per request",
            "bare_us": b, "ours_us": o, "median": round(100 * (o / b - 1), 1)}
    low, high = median_ci(per_repeat)
    by_boot: dict[int, list[float]] = {}
    for run_, overhead in zip(ours, per_repeat, strict=True):
        by_boot.setdefault(run_["boot"], []).append(overhead)
    results["overhead_percent"] = {
        "median_of_repeats": statistics.median(per_repeat),
        "median_ci95": [low, high],
        "mean_of_repeats": round(statistics.fmean(per_repeat), 1),
        "median_per_boot": [round(statistics.median(v), 1) for v in by_boot.values()],
        "from_medians": round(100 * (1 - medians[1] / medians[0]), 1),
        "per_repeat": per_repeat,
        "target": "< 10",
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=int, default=2, help="seconds of each run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds, once per server")
    parser.add_argument("--repeats", type=int, default=41,
                        help="pairs of bare and ours runs (at least 6)")
    parser.add_argument("--boots", type=int, default=5,
                        help="boot bare and ours this many times, the repeats shared among them")
    parser.add_argument("--diagnostics-every", type=int, default=5,
                        help="run the diagnostic servers every N-th repeat")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=None,
                        help="WEB_CONCURRENCY for both gunicorn servers (default: configured)")
    args = parser.parse_args(argv)
    if args.repeats < 6 or min(args.diagnostics_every, args.duration, args.boots) < 1:
        parser.error("--repeats needs at least 6 (for the median's confidence interval), "
                     "--diagnostics-every, --duration and --boots at least 1")
    results = run(args)
    path = write_report("http_server", results)
    for name, server in results["servers"].items():
        rps = server["rps"]
        print(f"http/{name}: {server['workers']} worker(s), {rps['median']} rps "
              f"(min {rps['min']}, max {rps['max']})")
    overhead = results["overhead_percent"]
    low, high = overhead["median_ci95"]
    print(f"http/overhead: {overhead['median_of_repeats']} % median of "
          f"{len(overhead['per_repeat'])} repeats (95 % CI {low} to {high} %; mean "
          f"{overhead['mean_of_repeats']} %; from rps medians {overhead['from_medians']} %; "
          f"median per boot {overhead['median_per_boot']}), "
          f"load average up to {results['load_average']['max_1min']}")
    cpu = results["cpu_overhead_percent"]
    print(f"http/cpu-per-request: bare {cpu['bare_us_per_request_median']} us, ours "
          f"{cpu['ours_us_per_request_median']} us: +{cpu['median_of_repeats']} % median "
          f"(per repeat {cpu['per_repeat']})")
    pinned = results.get("pinned_cpu_overhead_percent")
    if pinned:
        print(f"http/pinned-1-worker cpu-per-request: bare {pinned['bare_us']} us, ours "
              f"{pinned['ours_us']} us: +{pinned['median']} %")
    print(f"report: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
