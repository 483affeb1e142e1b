"""Measurements of a deployed lab host for `make e2e` (and the single-host tests): each writes
its result as JSON under reports/e2e/ and returns it, so a test can assert on it.

    tls_scan(stack)           sslyze against Mozilla's intermediate profile, and HSTS
    exposures(host)           systemd-analyze security of every unit that listens on TCP
    lynis(host)               Lynis hardening index, warnings and suggestions
    drill(stack, name, act)   a fault under CountingLoad through Nginx: seconds until healthy
                              again and the failed-request count
    port_scan(name, scans)    every TCP port of a host, scanned from another lab host
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labdeploy import ROOT, docker_exec
from load import CountingLoad
from smoke import PEBBLE_ROOT, Stack, container_address

REPORTS = ROOT / "reports/e2e"
# sslyze pins its own cryptography: it lives in a venv of its own (make e2e-tools).
SSLYZE_PYTHON = Path(os.environ.get("E2E_SSLYZE_PYTHON", ROOT / ".cache/e2e-venv/bin/python"))


def write(name: str, result: dict[str, Any]) -> dict[str, Any]:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def listening_units(host: str) -> dict[str, list[str]]:
    """{unit: ["0.0.0.0:443", ...]} for every process that listens on TCP (systemd's own
    socket units, pid 1, excepted: their service is what serves)."""
    ss = docker_exec(host, "ss", "-Hltnp").stdout
    units: dict[str, list[str]] = {}
    for line in ss.splitlines():
        fields = line.split()
        for pid in sorted(set(re.findall(r"pid=(\d+)", line)) - {"1"}):
            unit = docker_exec(host, "ps", "-o", "unit=", "-p", pid, check=False).stdout.strip()
            if unit:
                units.setdefault(unit, [])
                if fields[3] not in units[unit]:
                    units[unit].append(fields[3])
    return units


def exposures(host: str, extra_units: tuple[str, ...] = ()) -> dict[str, Any]:
    """systemd-analyze security's overall exposure of every listening unit (plus extra_units:
    ours behind a socket unit listen through pid 1)."""
    units = listening_units(host)
    for unit in extra_units:
        units.setdefault(unit, ["(socket activation)"])
    result: dict[str, Any] = {}
    for unit, addresses in sorted(units.items()):
        out = docker_exec(host, "systemd-analyze", "security", "--no-pager", unit).stdout
        level = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\S+)", out)
        assert level, out[-500:]
        result[unit] = {
            "listens": addresses,
            "exposure": float(level.group(1)),
            "rating": level.group(2),
        }
    return write(f"exposure-{host}", {"host": host, "units": result})


def lynis(host: str) -> dict[str, Any]:
    """Lynis (Debian's package, installed for the audit): index, warnings, suggestions."""
    docker_exec(host, "apt-get", "install", "-y", "-qq", "lynis")
    docker_exec(host, "lynis", "audit", "system", "--quick", "--no-colors", check=False)
    report = docker_exec(host, "cat", "/var/log/lynis-report.dat").stdout
    values: dict[str, list[str]] = {}
    for line in report.splitlines():
        key, _, value = line.partition("=")
        values.setdefault(key, []).append(value)
    return write(
        f"lynis-{host}",
        {
            "host": host,
            "lynis_version": values.get("lynis_version", [""])[0],
            "hardening_index": int(values.get("hardening_index", ["0"])[0]),
            "warnings": values.get("warning[]", []),
            "suggestions": values.get("suggestion[]", []),
        },
    )


def healthy(stack: Stack) -> bool:
    try:
        return stack.request("GET", "/api/v1/health")[0] == 200
    except OSError:
        return False


def drill(
    stack: Stack, name: str, act: Callable[[], object], timeout: float = 300
) -> dict[str, Any]:
    """ACT (a fault) while a bounded counting load runs through Nginx on the readiness route:
    the seconds from the fault until readiness answers 200 again, and every failed request."""
    assert healthy(stack), f"{name}: the stack is not healthy before the drill"
    with CountingLoad(stack, "/api/v1/health", threads=2, rate=10, max_seconds=timeout) as load:
        time.sleep(2)
        began = time.monotonic()
        act()
        time.sleep(0.5)
        while not healthy(stack) and time.monotonic() - began < timeout:
            time.sleep(0.25)
        recovered = time.monotonic() - began
        time.sleep(3)  # the load keeps going: a relapse after recovery would count too
    result = load.result
    return write(
        f"drill-{name}",
        {
            "drill": name,
            "seconds_until_healthy": round(recovered, 1),
            "requests": result.total,
            "failed": result.failed,
            "failures": sorted({sample.outcome for sample in result.failures}),
            "longest_wait_s": round(result.longest_wait, 2),
            "summary": result.summary(),
        },
    )


def tls_scan(stack: Stack) -> dict[str, Any]:
    """sslyze's scan of the proxy, checked against Mozilla's intermediate configuration, with
    pebble's root as the trust store (the lab's Let's Encrypt)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sslyze.json"
        run = subprocess.run(
            [
                str(SSLYZE_PYTHON),
                "-m",
                "sslyze",
                "--mozilla_config=intermediate",
                f"--certinfo_ca_file={PEBBLE_ROOT}",
                "--http_headers",
                f"--json_out={out}",
                f"{stack.domain}:443{{{stack.address}}}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        scan = json.loads(out.read_text())["server_scan_results"][0]["scan_result"]
    compliance = run.stdout.partition("COMPLIANCE AGAINST")[2]
    accepted = {
        version: bool(scan[f"{version}_cipher_suites"]["result"]["accepted_cipher_suites"])
        for version in ("ssl_2_0", "ssl_3_0", "tls_1_0", "tls_1_1", "tls_1_2", "tls_1_3")
    }
    return write(
        "tls",
        {
            "target": f"{stack.domain} ({stack.address}):443",
            "mozilla_intermediate_compliant": f"{stack.domain}:443: OK" in compliance,
            "compliance_report": [line.strip() for line in compliance.splitlines() if "*" in line],
            "protocols_accepted": accepted,
            "hsts": scan["http_headers"]["result"]["strict_transport_security_header"],
            "sslyze_exit_code": run.returncode,
        },
    )


# Run on the scanning host by its own python3: a TCP connect scan of every port (1-65535), a
# few thousand non-blocking connects at a time; open when the handshake completes within 1 s.
PORT_SCAN = """
import json, resource, select, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
batch, found = min(4000, hard - 100), []
for first in range(1, 65536, batch):
    pending, poller = {}, select.poll()
    for port in range(first, min(first + batch, 65536)):
        probe = socket.socket()
        probe.setblocking(False)
        probe.connect_ex((sys.argv[1], port))
        pending[probe.fileno()] = (probe, port)
        poller.register(probe, select.POLLOUT)
    deadline = time.monotonic() + 1
    while pending and deadline > time.monotonic():
        for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            probe, port = pending.pop(fd)
            poller.unregister(fd)
            if probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                found.append(port)
            probe.close()
    for probe, _ in pending.values():
        probe.close()
print(json.dumps(sorted(found)))
"""


def port_scan(name: str, scans: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """{label: (from host, to host)} -> {label: {"from", "to", "open": [ports], "seconds"}},
    every TCP port of the target scanned from the other lab host; written as <name>.json."""
    result: dict[str, Any] = {}
    for label, (source, target) in scans.items():
        started = time.monotonic()
        address = container_address(target)
        scan = docker_exec(source, "python3", "-c", PORT_SCAN, address).stdout
        result[label] = {
            "from": source,
            "to": f"{target} ({address})",
            "open": json.loads(scan),
            "seconds": round(time.monotonic() - started, 1),
        }
    return write(name, result)
