"""Measurements of a deployed lab host for `make e2e` (and the single-host tests): each writes
its result as JSON under reports/e2e/ and returns it, so a test can assert on it.

    tls_scan(stack)           sslyze against Mozilla's intermediate profile, and HSTS
    exposures(host)           systemd-analyze security of every unit that listens on TCP
    lynis(host)               Lynis hardening index, warnings and suggestions
    drill(stack, name, act)   a fault under CountingLoad through Nginx: seconds until healthy
                              again and the failed-request count
    port_scan(name, scans)    every TCP port of a host, scanned from another lab host
    fuzz(stack)               schemathesis through Nginx and TLS as a signed-in user: status
                              histogram, every 5xx with its request, the 429 share
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import schemathesis
from api_fuzz import MODES, operations, run_cases
from labdeploy import ENV, ROOT, docker_exec
from load import CountingLoad
from schemathesis.core import NOT_SET
from smoke import PEBBLE_ROOT, Stack, container_address, healthy

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


# Skips only the tests whose subject a container does not own (the host's kernel, its audit and
# security module): the file says which and why.
LYNIS_LAB_PROFILE = Path(__file__).with_name("lynis-lab-container.prf")


def lynis(host: str) -> dict[str, Any]:
    """Lynis (Debian's package, installed for the audit) with its default profile plus
    LYNIS_LAB_PROFILE: index, warnings (and the packages behind PKGS-7392), suggestions."""
    docker_exec(host, "apt-get", "install", "-y", "-qq", "lynis")
    profile = f"/etc/lynis/{LYNIS_LAB_PROFILE.name}"
    subprocess.run(
        ["docker", "cp", str(LYNIS_LAB_PROFILE), f"{host}:{profile}"], env=ENV, check=True
    )
    docker_exec(host, "chown", "root:root", profile)
    # Its own timeout: the audit takes about two minutes on the shared 2-core lab machine.
    audit = ["lynis", "audit", "system", "--quick", "--no-colors", "--profile", profile]
    subprocess.run(["docker", "exec", host, *audit], env=ENV, capture_output=True, timeout=600)
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
            "profile": f"default + tests/deploy/{LYNIS_LAB_PROFILE.name}",
            "skipped_tests": sorted(
                line.split("=", 1)[1]
                for line in LYNIS_LAB_PROFILE.read_text().splitlines()
                if line.startswith("skip-test=")
            ),
            "hardening_index": int(values.get("hardening_index", ["0"])[0]),
            "warnings": values.get("warning[]", []),
            "vulnerable_packages": values.get("vulnerable_package[]", []),
            "suggestions": values.get("suggestion[]", []),
        },
    )


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


# The fuzz run's pace, under Nginx's per-address limits as deployed (roles/nginx defaults:
# nginx_rate_limit 30r/s, nginx_chat_rate_limit 5r/s on the chat location), so Nginx refuses
# none of its requests; the backend's own limits are raised for the run by the test
# (test_single_host.py), as they are far lower (RATE_LIMIT_PER_USER 60/minute).
FUZZ_INTERVAL_S = 1 / 20
FUZZ_CHAT_INTERVAL_S = 1 / 4
CHAT_LOCATION = "/api/v1/chat"  # nginx_chat_location
# Examples per operation and mode, as in the in-process run (tests/backend/api): about 500
# requests, a minute or two at the pace above.
FUZZ_EXAMPLES = 20


class ConnectTo(requests.adapters.HTTPAdapter):
    """Sends https://DOMAIN/... to ADDRESS with DOMAIN as Host and SNI, and checks the
    certificate against DOMAIN (the lab's names are not in the control node's DNS)."""

    def __init__(self, domain: str, address: str) -> None:
        self.domain, self.address = domain, address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.update(server_hostname=self.domain, assert_hostname=self.domain)
        super().init_poolmanager(*args, **kwargs)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url)
        port = f":{url.port}" if url.port else ""
        request.url = urlunsplit(url._replace(netloc=f"{self.address}{port}"))
        request.headers["Host"] = f"{self.domain}{port}"
        return super().send(request, **kwargs)


class Pacer:
    """Waits before each request so the run stays under FUZZ_INTERVAL_S overall and
    FUZZ_CHAT_INTERVAL_S on the chat location."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def wait(self, path: str) -> None:
        zones = {"any": FUZZ_INTERVAL_S}
        if path.startswith(CHAT_LOCATION):
            zones["chat"] = FUZZ_CHAT_INTERVAL_S
        now = time.monotonic()
        delay = max(self.last.get(zone, 0.0) + gap - now for zone, gap in zones.items())
        if delay > 0:
            time.sleep(delay)
        for zone in zones:
            self.last[zone] = time.monotonic()


def sign_in(session: requests.Session, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """A new user, registered and logged in: its login form and the Authorization header."""
    email, password = f"fuzz-{secrets.token_hex(4)}@example.org", secrets.token_urlsafe(18)
    registered = session.post(
        f"{base_url}/api/v1/auth/register",
        json={"email": email, "password": password},
        timeout=60,
    )
    assert registered.status_code == 201, registered.text
    form = {"username": email, "password": password}
    return form, log_in(session, base_url, form)


def log_in(session: requests.Session, base_url: str, form: dict[str, str]) -> dict[str, str]:
    response = session.post(f"{base_url}/api/v1/auth/login", data=form, timeout=60)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def fuzz_api(
    base_url: str, address: str, ca_file: str, max_examples: int = FUZZ_EXAMPLES
) -> dict[str, Any]:
    """schemathesis on every operation of the API's OpenAPI document at BASE_URL (reached at
    ADDRESS, certificate checked against CA_FILE), in each of api_fuzz.MODES, as a user signed
    in for the run (logged in again after the fuzzer's own logout): statuses counted, every
    5xx kept with its request and body, every error of the client's own (a dropped
    connection) kept."""
    session = requests.Session()
    session.trust_env = False  # no proxy, and CA_FILE over REQUESTS_CA_BUNDLE
    session.verify = ca_file
    session.mount(base_url, ConnectTo(urlsplit(base_url).hostname or "", address))
    document = session.get(f"{base_url}/api/v1/openapi.json", timeout=60)
    document.raise_for_status()
    schema = schemathesis.openapi.from_dict(document.json())
    form, auth = sign_in(session, base_url)
    pacer = Pacer()
    statuses: Counter[int] = Counter()
    server_errors: list[dict[str, Any]] = []
    errors: list[str] = []
    found = operations(schema)
    began = time.monotonic()
    for mode in MODES:
        for operation in found:

            def act(case: schemathesis.Case, mode: str = mode) -> None:
                nonlocal auth
                pacer.wait(case.formatted_path)
                response = case.call(
                    base_url=base_url, session=session, headers=auth, verify=ca_file, timeout=60
                )
                statuses[response.status_code] += 1
                if response.status_code >= 500:
                    server_errors.append(
                        {
                            "mode": mode,
                            "method": case.method,
                            "path": response.request.path_url,
                            "status": response.status_code,
                            "request_body": None if case.body is NOT_SET else repr(case.body)[:500],
                            "body": response.content[:500].decode(errors="replace"),
                            "request_id": (response.headers.get("x-request-id") or [""])[0],
                        }
                    )
                if case.path.endswith("/auth/logout") and response.status_code == 204:
                    auth = log_in(session, base_url, form)  # the user's tokens were revoked

            failure = run_cases(operation, mode, max_examples, act, shrink=False)
            if failure:
                errors.append(f"{mode} {failure}")
    requests_sent = sum(statuses.values())
    return {
        "target": base_url,
        "schemathesis": schemathesis.__version__,
        "modes": list(MODES),
        "examples_per_operation_and_mode": max_examples,
        "pace_requests_per_s": {"any": 1 / FUZZ_INTERVAL_S, "chat": 1 / FUZZ_CHAT_INTERVAL_S},
        "operations": len(found),
        "requests": requests_sent,
        "seconds": round(time.monotonic() - began, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "5xx": sum(count for code, count in statuses.items() if code >= 500),
        "429": statuses[429],
        "share_429": round(statuses[429] / max(requests_sent, 1), 4),
        "server_errors": server_errors,
        "errors": errors,
    }


def fuzz(stack: Stack, max_examples: int = FUZZ_EXAMPLES) -> dict[str, Any]:
    """fuzz_api through the stack's Nginx and TLS, pebble's root as trust store."""
    return write(
        "fuzz", fuzz_api(f"https://{stack.domain}", stack.address, PEBBLE_ROOT, max_examples)
    )
