"""End-to-end check of a deployed lab stack, from the control node.

Used by `make up` (prints the URL and an answered question) and by tests/deploy. It connects to
the proxy host's lab-network address with the public name as SNI and Host, and verifies the
certificate chain against pebble's issuing root (the lab's stand-in for Let's Encrypt).
API calls go through the project's own client (`Stack.client()`, textbook.client);
`Stack.request` stays a raw HTTP probe (one new TLS connection per request, OSError when the
proxy does not answer) for health checks, headers and load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import ssl
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

from textbook.client import TextbookClient

PEBBLE_ROOT = os.environ.get("LAB_PEBBLE_ROOT", "/var/lib/textbook-lab/share/pebble-root.pem")
QUESTION = "What is a ROS 2 node?"


@dataclass
class Stack:
    domain: str
    address: str
    context: ssl.SSLContext

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        raw = socket.create_connection((self.address, 443), timeout=60)
        conn = http.client.HTTPSConnection(self.domain, 443, timeout=60, context=self.context)
        conn.sock = self.context.wrap_socket(raw, server_hostname=self.domain)
        conn.request(method, path, body=body, headers={"Host": self.domain, **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def client(self, **options: Any) -> TextbookClient:
        """The API's client for this stack: the public name, pebble's root, this address."""
        return TextbookClient(
            f"https://{self.domain}", verify=self.context, connect_to=self.address, **options
        )

    def json(
        self,
        method: str,
        path: str,
        payload: Any = None,
        form: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, Any]:
        headers: dict[str, str] = {}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data) if data else None


def container_address(name: str) -> str:
    out = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            name,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return out[0]


def healthy(stack: Stack) -> bool:
    """/api/v1/health through Nginx answers 200 (False while the stack is down or coming up)."""
    try:
        return stack.request("GET", "/api/v1/health")[0] == 200
    except OSError:
        return False


def stack_for(proxy_host: str) -> Stack:
    context = ssl.create_default_context(cafile=PEBBLE_ROOT)
    return Stack(
        domain=f"{proxy_host}.lab.test", address=container_address(proxy_host), context=context
    )


def ask_sample_question(stack: Stack) -> dict[str, Any]:
    """register -> login -> ask; returns the chat response."""
    email = f"smoke-{secrets.token_hex(4)}@example.org"
    password = secrets.token_urlsafe(18)
    with stack.client() as api:
        api.register(email, password)
        api.login(email, password)
        answer = api.chat(QUESTION)
    assert answer.citations, answer
    return answer.model_dump(mode="json")


def signed_in_user(stack: Stack, prefix: str) -> tuple[str, dict[str, str], str]:
    """A new user, registered and logged in: its email, login form and access token."""
    email, password = f"{prefix}-{secrets.token_hex(4)}@example.org", secrets.token_urlsafe(18)
    status, _ = stack.json("POST", "/api/v1/auth/register", {"email": email, "password": password})
    assert status in (200, 201)
    form = {"username": email, "password": password}
    status, body = stack.json("POST", "/api/v1/auth/login", form=form)
    assert status == 200
    return email, form, str(body["access_token"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proxy", default="textbook-lab", help="proxy lab host (container name)")
    parser.add_argument("--inventory", help="(informational) inventory deployed")
    args = parser.parse_args()
    stack = stack_for(args.proxy)
    with stack.client() as api:
        health = api.health()
    if health.status != "ok":
        print(f"health: {health.model_dump_json()}", file=sys.stderr)
        return 1
    answer = ask_sample_question(stack)
    print(
        f"URL: https://{stack.domain}/  (lab network address {stack.address}; "
        f"certificate issued by pebble, root {PEBBLE_ROOT})"
    )
    print(f"Q: {QUESTION}")
    print(f"A ({answer['mode']}): {answer['answer'][:600]}")
    for citation in answer["citations"][:3]:
        print(f"   cites: {json.dumps(citation)[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
