#!/usr/bin/env python3
"""HTTP behaviour of the nginx site, measured from the nginx host itself.

Usage: probe.py SERVER_NAME CLASSROOM ABUSE BURST
  CLASSROOM: parallel requests from one address that must all be served (a class behind NAT)
  ABUSE: parallel slow requests from one address, more than nginx_conn_limit_per_ip
  BURST: nginx_rate_limit_burst (the quick series sends 100 more than that)
Prints one JSON object; verify.yml asserts on it.
Connects to 127.0.0.1 with SNI/Host SERVER_NAME; certificate trust is not its business
(verify.yml checks TLS with openssl s_client).
"""

import http.client
import json
import ssl
import subprocess
import sys
import time

name = sys.argv[1]
classroom, abuse, burst = (int(arg) for arg in sys.argv[2:5])
http_port, https_port = 80, 443
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI set to the site's name."""

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=name)


def https(source: str = "127.0.0.1") -> SNIConnection:
    return SNIConnection("127.0.0.1", https_port, timeout=30, source_address=(source, 0))


def get(
    conn: http.client.HTTPConnection,
    path: str,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn.request(method, path, body=body, headers={"Host": name, **(headers or {})})
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


out: dict[str, object] = {}


# Plain HTTP: redirect to HTTPS, except the ACME webroot.
def plain() -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", http_port, timeout=15)


status, headers, _body = get(plain(), "/some/path?q=1")
out["http_status"] = status
out["http_location"] = headers.get("location", "")
status, _hdrs, data = get(plain(), "/.well-known/acme-challenge/probe-token")
out["acme_status"] = status
out["acme_body"] = data.decode(errors="replace").strip()

# HTTPS proxied to the app, with the client's id passed through and a spoofed XFF replaced.
spoof = {"X-Request-ID": "probe-req-123", "X-Forwarded-For": "203.0.113.9"}
status, headers, data = get(https(), "/echo", spoof)
out["https_status"] = status
out["https_headers"] = headers
out["upstream_saw"] = json.loads(data)["headers"] if status == 200 else {}
status, _hdrs, data = get(https(), "/echo")
out["generated_request_id"] = (
    json.loads(data)["headers"].get("X-Request-ID", "") if status == 200 else ""
)

# Both upstream forms (host:port and unix socket) take traffic.
listeners = set()
for _ in range(6):
    status, _hdrs, data = get(https(), "/echo")
    if status == 200:
        listeners.add(json.loads(data)["listener"])
out["listeners"] = sorted(listeners)

# Request body limit.
status, _hdrs, _body = get(
    https(),
    "/echo",
    method="POST",
    body=b"x" * (2 * 1024 * 1024),
    headers={"Content-Type": "application/octet-stream"},
)
out["big_body_status"] = status

# SSE: the first event must arrive before the app has finished the stream.
conn = https()
start = time.monotonic()
conn.request("GET", "/api/v1/chat/stream", headers={"Host": name, "Accept": "text/event-stream"})
resp = conn.getresponse()
out["sse_status"] = resp.status
out["sse_headers"] = {k.lower(): v for k, v in resp.getheaders()}
first = resp.readline()
out["sse_first_event"] = first.decode().strip()
out["sse_first_after_s"] = round(time.monotonic() - start, 3)
rest = resp.read()
out["sse_total_s"] = round(time.monotonic() - start, 3)
out["sse_last_event"] = rest.decode().strip().splitlines()[-1] if rest.strip() else ""
conn.close()

# Methods the site does not answer: 405 from nginx with an Allow header, on both ports.
methods: dict[str, object] = {}
for method in ("TRACE", "PROPFIND", "PUT", "OPTIONS"):
    status, headers, _body = get(https(), "/echo", method=method)
    hsts = headers.get("strict-transport-security", "")
    methods[method] = [status, headers.get("allow", ""), hsts]
status, headers, _body = get(plain(), "/", method="TRACE")
methods["http TRACE"] = [status, headers.get("allow", ""), ""]
out["methods"] = methods

# /metrics: served to the monitoring address only (127.0.0.2 in molecule.yml), however spelled.
out["metrics_statuses"] = {
    f"{source} {path}": get(https(source), path)[0]
    for source in ("127.0.0.1", "127.0.0.2")
    for path in ("/metrics", "/metrics/", "/%6detrics?x=1", "//metrics")
}


def parallel(path: str, count: int, at_once: int) -> list[int]:
    """COUNT requests from one address, AT_ONCE of them at the same time, over HTTP/2 (curl
    multiplexes them; nginx's limit_conn counts each HTTP/2 request as a connection), as a
    class of students' browsers behind one NAT address do."""
    urls = [arg for _ in range(count) for arg in ("-o", "/dev/null", f"https://{name}{path}")]
    curl = ["/usr/bin/curl", "-sk", "--http2", "--parallel", "--parallel-max", str(at_once)]
    target = ["--resolve", f"{name}:{https_port}:127.0.0.1", "-w", "%{http_code}\n", *urls]
    run = subprocess.run(  # noqa: S603 - fixed program, arguments from this script
        curl + target, capture_output=True, text=True, check=False, timeout=120
    )
    return sorted(int(code) for code in run.stdout.split())


def drain(requests: int, rate: float) -> None:
    """Wait until the limit zones have forgotten REQUESTS sent at once (they leak at RATE/s)."""
    time.sleep(requests / rate + 1)


# A class of CLASSROOM students behind one NAT address, all at once during a backend pause
# (/slow answers after 2 s): every page request and every chat question is served.
drain(20, 5)
out["classroom_statuses"] = parallel("/slow", classroom, classroom)
out["classroom_chat_statuses"] = parallel("/api/v1/chat/stream", classroom, classroom)
# One address with more requests in flight than nginx_conn_limit_per_ip: 429 from limit_conn.
drain(2 * classroom, 5)
out["concurrent_statuses"] = parallel("/slow?s=8", abuse, abuse)  # long: they all overlap
# One address with more requests than the rate limit's burst: 429 from limit_req (below the
# connection limit: 50 at a time).
drain(abuse, 30)
out["burst_statuses"] = parallel("/echo", burst + 100, 50)
print(json.dumps(out))
