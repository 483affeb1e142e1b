#!/usr/bin/env python3
"""Stand-in app server for the nginx scenario (not the textbook app).

Listens on TCP and on a unix socket, like the two forms nginx_upstream_servers takes.
GET /api/v1/chat... streams two server-sent events 2 s apart; /slow answers after 2 s
(/slow?s=N after N s); any other path answers JSON with the request headers it received and
which listener served it.
"""

import json
import os
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STREAM_GAP_S = 2.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/chat"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._chunk(b"data: first\n\n")
            time.sleep(STREAM_GAP_S)
            self._chunk(b"data: last\n\n")
            self._chunk(b"")
            return
        if self.path.startswith("/slow"):  # /slow?s=SECONDS, 2 s by default
            time.sleep(float(self.path.partition("?s=")[2] or STREAM_GAP_S))
        body = json.dumps(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "listener": getattr(self.server, "listener", "?"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_OPTIONS = do_DELETE = do_GET


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 512  # verify sends hundreds of requests at once


class TCPServer(ThreadingHTTPServer):
    request_queue_size = 512


def main() -> None:
    port, sock_path = int(sys.argv[1]), sys.argv[2]
    tcp = TCPServer(("127.0.0.1", port), Handler)
    tcp.listener = "tcp"  # type: ignore[attr-defined]
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    unix = UnixServer(sock_path, Handler)
    unix.listener = "unix"  # type: ignore[attr-defined]
    os.chmod(sock_path, 0o666)  # noqa: S103 - nginx's workers (www-data) connect to it
    threading.Thread(target=unix.serve_forever, daemon=True).start()
    tcp.serve_forever()


if __name__ == "__main__":
    main()
