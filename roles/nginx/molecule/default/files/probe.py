#!/usr/bin/env python3
"""HTTP behaviour of the nginx site, measured from the nginx host itself.

Usage: probe.py SERVER_NAME [HTTP_PORT HTTPS_PORT [CONCURRENT]].
Prints one JSON object; verify.yml asserts on it.
Connects to 127.0.0.1 with SNI/Host SERVER_NAME; certificate trust is not its business
(verify.yml checks TLS with openssl s_client).
"""

import http.client
import json
import ssl
import sys
import threading
import time

name = sys.argv[1]
http_port = int(sys.argv[2]) if len(sys.argv) > 2 else 80
https_port = int(sys.argv[3]) if len(sys.argv) > 3 else 443
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE


class SNIConnection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1 with SNI set to the site's name."""

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=name)


def https() -> SNIConnection:
    return SNIConnection("127.0.0.1", https_port, timeout=15)


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

# Connection limit: more simultaneous slow requests than nginx_conn_limit_per_ip allows.
time.sleep(2.5)  # let earlier requests' tokens refill
concurrent: list[int] = []


def slow() -> None:
    status, _hdrs, _body = get(https(), "/slow")
    concurrent.append(status)


parallel = int(sys.argv[4]) if len(sys.argv) > 4 else 10
threads = [threading.Thread(target=slow) for _ in range(parallel)]
for t in threads:
    t.start()
for t in threads:
    t.join()
out["concurrent_statuses"] = sorted(concurrent)

# Rate limit: a quick series of requests on one keep-alive connection ends in 429s.
time.sleep(2.5)  # let earlier requests' tokens refill
statuses = []
conn = https()
for _ in range(60):
    status, _hdrs, _body = get(conn, "/echo")
    statuses.append(status)
out["burst_statuses"] = statuses
print(json.dumps(out))
