"""rotate.yml under load, shared by test_day2.py (one host) and test_four_hosts.py (the database
and Qdrant on another host than the two backends).

    rotate_every_credential(...)    new values in the run's lab secret store, rotate.yml under a
                                    load that reads Qdrant and PostgreSQL, then the checks both
                                    tests make: no failed request, tokens, installed values, old
                                    credentials refused
"""

from __future__ import annotations

import json
import secrets
import subprocess

import smoke
from labdeploy import ENV, Topology, docker_exec, playbook
from load import CountingLoad

# Run on an app host by the live release's Python: which credentials PostgreSQL and Qdrant
# accept now (the values come on stdin, never on a command line; only booleans come back).
CREDENTIALS_PROBE = """
import json, sys, urllib.error, urllib.request
import psycopg2
from sqlalchemy.engine import make_url
given = json.load(sys.stdin)
lines = open("/etc/textbook/textbook.env").read().splitlines()
env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
db = make_url(env["DATABASE_URL"])
def database(password):
    try:
        psycopg2.connect(host=db.host, port=db.port, dbname=db.database, user=db.username,
                         password=password, connect_timeout=5).close()
        return True
    except psycopg2.OperationalError:
        return False
def qdrant(key):
    request = urllib.request.Request(env["QDRANT_URL"] + "/collections", headers={"api-key": key})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status == 200
    except urllib.error.HTTPError:
        return False
print(json.dumps({
    "database": {name: database(value) for name, value in given["db_password"].items()},
    "qdrant": {name: qdrant(value) for name, value in given["qdrant_api_key"].items()},
}))
"""


def accepted(host: str, db_password: dict[str, str], qdrant_api_key: dict[str, str]) -> object:
    """{"database": {name: accepted?}, "qdrant": {...}}, asked from app host `host`."""
    given = {"db_password": db_password, "qdrant_api_key": qdrant_api_key}
    probe = subprocess.run(
        [
            *("docker", "exec", "-i", host),
            "/opt/textbook/current/venv/bin/python",
            "-c",
            CREDENTIALS_PROBE,
        ],
        input=json.dumps(given),
        env=ENV,
        text=True,
        capture_output=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    return json.loads(probe.stdout)


def rotate(topology: Topology, *extra: str) -> subprocess.CompletedProcess[str]:
    return playbook("-i", topology.inventory, "playbooks/rotate.yml", *extra, check=False)


def rotate_every_credential(topology: Topology, apps: list[str]) -> None:
    """New signing key (the old one kept as previous), database password, Qdrant API key and
    language model key go into the run's lab secret store (production: the vault); rotate.yml
    installs them under a load through Nginx that reads Qdrant (search) and PostgreSQL (a
    signed-in user's profile). Checked here: the play passed, no request failed, a token issued
    before still works and a new login does, every app host has the new values, and PostgreSQL
    and Qdrant accept the new credentials and refuse the old ones."""
    stack = smoke.stack_for(topology.host(topology.proxy))
    store = topology.directory / "lab-secrets"
    _, form, issued_before = smoke.signed_in_user(stack, "rotate-all")
    old = {name: (store / name).read_text().strip() for name in ("db_password", "qdrant_api_key")}
    new = {
        "secret_key_previous": (store / "secret_key").read_text().strip(),
        "secret_key": secrets.token_hex(32),
        "db_password": secrets.token_hex(16),
        "qdrant_api_key": secrets.token_hex(24),
        "openai_api_key": f"sk-lab-{secrets.token_hex(16)}",
    }
    for name, value in new.items():
        (store / name).write_text(value + "\n")
        (store / name).chmod(0o600)
    # Under Nginx's and the backend's per-address limits: 1.5 requests a second in all.
    profile = {"Authorization": f"Bearer {issued_before}"}
    search = CountingLoad(stack, "/api/v1/search?q=ros", threads=1, rate=1.0)
    me = CountingLoad(stack, "/api/v1/users/me", threads=1, rate=0.5, headers=profile)
    with search, me:
        result = rotate(topology)
    print(f"rotate.yml ({topology.name}), search (Qdrant) under load: {search.result.summary()}")
    print(f"rotate.yml ({topology.name}), signed-in profile under load: {me.result.summary()}")
    assert result.returncode == 0, result.stdout[-6000:]
    assert search.result.total > 0 and me.result.total > 0
    assert search.result.failed == 0, search.result.summary()
    assert me.result.failed == 0, me.result.summary()

    assert stack.json("GET", "/api/v1/users/me", token=issued_before)[0] == 200
    status, body = stack.json("POST", "/api/v1/auth/login", form=form)
    assert status == 200
    assert stack.json("GET", "/api/v1/users/me", token=body["access_token"])[0] == 200
    for app in apps:
        env = docker_exec(app, "cat", "/etc/textbook/textbook.env").stdout.splitlines()
        installed = (
            f"SECRET_KEY={new['secret_key']}" in env
            and f"SECRET_KEY_PREVIOUS={new['secret_key_previous']}" in env
            and f"OPENAI_API_KEY={new['openai_api_key']}" in env
            and any(
                line.startswith("DATABASE_URL=") and f":{new['db_password']}@" in line
                for line in env
            )
            and f"QDRANT_API_KEY={new['qdrant_api_key']}" in env
        )
        assert installed, app  # a bool, so a failure prints no secret
    assert accepted(
        apps[0],
        {"new": new["db_password"], "old": old["db_password"]},
        {"new": new["qdrant_api_key"], "old": old["qdrant_api_key"]},
    ) == {"database": {"new": True, "old": False}, "qdrant": {"new": True, "old": False}}
