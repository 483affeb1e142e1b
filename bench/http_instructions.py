"""Instructions per GET /health: what our request layer costs, counted rather than timed.

http_server.py measures requests/s and CPU time, which swing by +-10 points from one run to
the next on a shared machine. This counts the instructions one request takes, which does
not depend on the neighbours: each app is fed GET /health through uvicorn's own HTTP
protocol (`HttpToolsProtocol`, httptools parser, uvloop) with an in-memory transport, under
valgrind's callgrind, once with FEW and once with FEW + COUNTED requests after a warm-up; the
difference over COUNTED is the instructions of one request in the server and the app, start-up
excluded. Both apps run their lifespan first (ours freezes its start-up objects for the
collector there, as in a worker). The network and the kernel are not in it: in a real server
they add about as much again to both sides, so the overhead in requests/s is smaller than
the one counted here. Instructions are not time either: our batch loop (access lines and
metrics, run over 512 records at once) executes more instructions per nanosecond than the
request path, so this overstates its share. And our access lines' time stamp, redone once a
millisecond (natively every ten requests or so), is redone on nearly every request under
valgrind's slowdown: ours counts a few thousand instructions more on a busy machine.

* bare  the framework's floor (bench/_floor/floor_app.py, as in http_server.py)
* ours  textbook.main.create_app(), access lines at INFO written to /dev/null

    python bench/http_instructions.py [--counted 2000]

Needs valgrind (Debian package `valgrind`). One measurement is the difference of two runs
of several minutes' worth of instructions under valgrind (a few minutes in all, two at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _report import ROOT, write_report

FLOOR_DIR = ROOT / "bench" / "_floor"
# More than one batch of access lines (ACCESS_FLUSH_LINES) before counting starts, so the
# one-time work of the first batches (route templates from the OpenAPI schema) is in both
# runs and cancels out.
WARMUP = 1500
FEW = 200
REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
COLLECTED = re.compile(rb"Collected : (\d+)")
APPS = ("bare", "ours")


def _load(name: str) -> Any:
    if name == "bare":
        sys.path.insert(0, str(FLOOR_DIR))
        from floor_app import app as bare

        return bare
    from textbook.core.logging import configure_logging
    from textbook.main import create_app

    ours = create_app()
    configure_logging("INFO", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the run
    return ours


def drive(name: str, requests: int) -> None:
    """Feed `WARMUP + requests` GET /health to the app through uvicorn's HTTP protocol."""
    import uvloop
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    app = _load(name)

    class Transport(asyncio.Transport):
        """Takes the response; the request's end is its last write."""

        def __init__(self) -> None:
            super().__init__()
            self.answered: asyncio.Future[None] | None = None

        def write(self, data: bytes | bytearray | memoryview) -> None:
            if self.answered is not None and not self.answered.done():
                self.answered.set_result(None)

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            peers = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}
            return peers.get(name, default)

        def is_closing(self) -> bool:
            return False

        def pause_reading(self) -> None:
            pass

        def resume_reading(self) -> None:
            pass

        def close(self) -> None:
            pass

    async def run() -> None:
        loop = asyncio.get_running_loop()
        config = Config(app=app, access_log=False, lifespan="off")
        config.load()
        async with app.router.lifespan_context(app):
            protocol = HttpToolsProtocol(config=config, server_state=ServerState(), app_state={})
            transport = Transport()
            protocol.connection_made(transport)
            for _ in range(WARMUP + requests):
                transport.answered = loop.create_future()
                protocol.data_received(REQUEST)
                await transport.answered
        gc.collect()

    uvloop.run(run())


def count(name: str, requests: int, workdir: Path) -> int:
    """Instructions of a whole driver run (start-up included) under callgrind."""
    env = {
        **os.environ,
        "DATA_DIR": str(workdir / name),
        "QDRANT_URL": "http://127.0.0.1:9",  # never contacted for /health
        "LOG_LEVEL": "INFO",
        "PYTHONHASHSEED": "0",
        "OPENBLAS_NUM_THREADS": "1",  # numpy's idle threads would be counted too
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={workdir / f'{name}-{requests}.out'}",
        sys.executable,
        __file__,
        "--drive",
        name,
        str(requests),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, check=False)  # noqa: S603
    found = COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr.decode(errors="replace")[-2000:]
        raise SystemExit(f"{name} ({requests} requests) failed under valgrind:\n{tail}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counted", type=int, default=2000)
    parser.add_argument("--drive", nargs=2, metavar=("APP", "REQUESTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive[0], int(args.drive[1]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind not found (Debian package `valgrind`; `make setup` installs it)")
    runs = [(name, requests) for name in APPS for requests in (FEW, FEW + args.counted)]
    parallel = max(1, min(2, os.cpu_count() or 1))
    with (
        tempfile.TemporaryDirectory(prefix="textbook-instructions-") as tmp,
        ThreadPoolExecutor(max_workers=parallel) as pool,
    ):
        counts = pool.map(lambda run: count(*run, Path(tmp)), runs)
        totals = dict(zip(runs, counts, strict=True))
    per_request = {
        name: round((totals[(name, FEW + args.counted)] - totals[(name, FEW)]) / args.counted)
        for name in APPS
    }
    overhead = round(100 * (per_request["ours"] / per_request["bare"] - 1), 1)
    results = {
        "instructions_per_request": per_request,
        "overhead_percent": overhead,
        "counted_requests": args.counted,
        "warmup_requests": WARMUP,
        "runs": {f"{name}-{requests}": total for (name, requests), total in totals.items()},
    }
    path = write_report("http_instructions", results)
    for name in APPS:
        print(f"http-instructions/{name}: {per_request[name]} instructions per request")
    print(f"http-instructions/overhead: +{overhead} % (ours over bare, counted by callgrind)")
    print(f"report: {path}")


if __name__ == "__main__":
    main()
