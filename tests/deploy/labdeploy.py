"""Helpers of the full-stack tests (test_single_host.py, test_four_hosts.py; make test-deploy).

One converge per topology, many checks on it: single host (every group) and four hosts (proxy,
two app hosts, db+vector). Needs the lab (make lab) and the Qdrant stand-in artifact (make
qdrant-artifact). Every deploy of a module uses one snapshot of the backend's sources, so edits
to backend/ during a run (shared checkout) do not turn the second run into a new release.

Each run has hosts of its own: names, network aliases (so the domains pebble validates),
inventory and lab secrets carry the run id (TEXTBOOK_TEST_RUN, set by make test / make
test-deploy, else random), so neither `make up`'s host (textbook-lab, inventories/lab), nor a
previous failed run, nor a run of another checkout can change the outcome. The hosts carry the
label textbook-lab.test-run=<run> (lab/molecule/create.yml), by which `lab/bin/clean-tests`
removes what a run left.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = os.environ.get("TEXTBOOK_TEST_RUN") or secrets.token_hex(3)
ENV = {
    **os.environ,
    "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///run/textbook-lab/docker.sock"),
    "ANSIBLE_FORCE_COLOR": "0",
    "TEXTBOOK_TEST_RUN": RUN,
}
# Lab settings shared with `make up` (inventories/lab/group_vars/all); a run's own inventory
# links these and overrides where its lab secrets are generated.
LAB_NETWORK = os.environ.get("LAB_NETWORK", "textbook-lab")  # as lab/bin/common.sh
LAB_GROUP_VARS = ROOT / "inventories/lab/group_vars/all"
# Host-side apt archives (lab/molecule/platform.yml: apt_cache_root) are kept between runs under
# a slot name; a run holds its slot's lock, so runs side by side never share apt's lock.
APT_CACHE_ROOT = Path("/var/cache/textbook-lab/apt")
APT_SLOTS = 8


def playbook(
    *args: str, check: bool = True, timeout: float = 2400
) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    result = subprocess.run(
        ["ansible-playbook", *args],
        cwd=ROOT,
        env=ENV,
        text=True,
        capture_output=True,
        timeout=timeout,
    )
    print(
        f"ansible-playbook {' '.join(args)}: rc={result.returncode} "
        f"in {time.monotonic() - started:.0f}s; slowest: {'; '.join(slowest_tasks(result.stdout))}"
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-6000:]}"
            f"\n{result.stderr[-2000:]}"
        )
    return result


PROFILE_LINE = re.compile(r"^(.+?) -{3,} (\d+\.\d+)s$", re.MULTILINE)


def slowest_tasks(output: str, count: int = 3) -> list[str]:
    """The `count` slowest tasks of a play's profile_tasks summary (ansible.cfg enables it)."""
    tasks = sorted(PROFILE_LINE.findall(output), key=lambda task: -float(task[1]))
    return [f"{name.strip()} {seconds}s" for name, seconds in tasks[:count]]


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host: {'host': {'ok': .., 'changed': .., 'failed': ..}}."""
    return {
        m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        for m in re.finditer(r"^(\S+)\s+: (ok=.*)$", output, re.M)
    }


def changed(output: str) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in recap(output).items()}


def reboot(host: str, timeout: float = 180) -> str:
    """The lab host restarted (its container: a new boot of its systemd), once systemd has
    finished booting: its state, `running` when no unit failed (`degraded` otherwise)."""
    subprocess.run(
        ["docker", "restart", host], env=ENV, check=True, capture_output=True, timeout=timeout
    )
    # The container's systemd may not take `docker exec` at once: ask until it has booted.
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline and state not in ("running", "degraded"):
        time.sleep(1)
        state = docker_exec(host, "systemctl", "is-system-running", check=False).stdout.strip()
    return state


def docker_exec(host: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", host, *argv],
        env=ENV,
        text=True,
        capture_output=True,
        check=check,
        timeout=120,
    )


def snapshot_sources(dest: Path, broken: bool = False) -> Path:
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    shutil.copytree(
        ROOT / "backend",
        dest / "backend",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
    )
    if broken:
        with (dest / "backend/textbook/main.py").open("a") as main:
            main.write('\nraise RuntimeError("deliberately broken release (tests/deploy)")\n')
    return dest


def deploy(
    inventory: str, sources: Path, *args: str, check: bool = True, timeout: float = 2400
) -> subprocess.CompletedProcess[str]:
    return playbook(
        "-i",
        inventory,
        "deploy.yml",
        "-e",
        f"backend_source_dir={sources}",
        *args,
        check=check,
        timeout=timeout,
    )


@dataclass
class Topology:
    """A run's lab hosts: {role: image}, groups {group: [roles]}, the role Nginx is on; extra
    volumes per role and inventory variables of this topology (compose mode); with
    `fixed_addresses` each host keeps its lab address across a restart, as a server keeps its
    address across a reboot (the deployment is wired to it)."""

    name: str
    images: dict[str, str]
    groups: dict[str, list[str]]
    proxy: str
    volumes: dict[str, list[str]] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    fixed_addresses: bool = False
    directory: Path = field(init=False)

    def __post_init__(self) -> None:
        self.directory = ROOT / ".cache/test-deploy" / f"run-{RUN}" / self.name

    def host(self, role: str) -> str:
        return f"tl-{RUN}-{role}"

    @property
    def inventory(self) -> str:
        return str(self.directory / "inventory")

    def platforms(self, apt_slot: str) -> dict[str, Any]:
        """What lab/molecule/create.yml and destroy.yml read; the proxy's network alias is the
        domain pebble validates (it resolves names with the lab network's DNS)."""
        platforms: list[dict[str, Any]] = []
        addresses = iter(free_addresses(len(self.images)) if self.fixed_addresses else [])
        for role, image in self.images.items():
            platform: dict[str, Any] = {
                "name": self.host(role),
                "image": image,
                "apt_cache": f"{apt_slot}-{role}",
            }
            if role in self.volumes:
                platform["volumes"] = self.volumes[role]
            network: dict[str, Any] = {"name": LAB_NETWORK}
            if role == self.proxy:
                network["aliases"] = [f"{self.host(role)}.lab.test"]
            if self.fixed_addresses:
                network["ipv4_address"] = next(addresses)
            if len(network) > 1:
                platform["networks"] = [network]
            platforms.append(platform)
        return {"molecule_yml": {"platforms": platforms}}

    def write(self, apt_slot: str) -> Path:
        """The run's inventory (its own lab secrets directory) and platforms file."""
        group_vars = Path(self.inventory) / "group_vars/all"
        group_vars.mkdir(parents=True, exist_ok=True)
        hosts = {
            "all": {
                "vars": {"ansible_connection": "community.docker.docker"},
                "children": {
                    group: {"hosts": {self.host(role): None for role in roles}}
                    for group, roles in self.groups.items()
                },
            }
        }
        (Path(self.inventory) / "hosts.yml").write_text(json.dumps(hosts, indent=1))
        for shared in sorted(LAB_GROUP_VARS.glob("*.yml")):
            (group_vars / shared.name).unlink(missing_ok=True)
            (group_vars / shared.name).symlink_to(shared)
        # Loaded after the shared files (lexical order), so it wins over generated-secrets.yml.
        secrets_dir = self.directory / "lab-secrets"
        (group_vars / "zz-test-run.yml").write_text(
            f"---\n# This run's own lab secrets.\ntextbook_lab_secrets_dir: {secrets_dir}\n"
            + "".join(f"{name}: {json.dumps(value)}\n" for name, value in self.variables.items())
        )
        platforms = self.directory / "platforms.json"
        platforms.write_text(json.dumps(self.platforms(apt_slot), indent=1))
        return platforms


def lab_network() -> dict[str, Any]:
    """`docker network inspect` of the lab network."""
    inspect = subprocess.run(
        ["docker", "network", "inspect", LAB_NETWORK],
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(inspect.stdout)[0])


def free_addresses(count: int) -> list[str]:
    """`count` addresses of the lab network's upper half that no container holds (IPAM hands
    out the lower addresses first), picked at random so concurrent runs rarely meet."""
    network = lab_network()
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    used = {c["IPv4Address"].split("/")[0] for c in network.get("Containers", {}).values()}
    upper = list(subnet.hosts())[subnet.num_addresses // 2 :]
    free: list[str] = []
    while len(free) < count:
        address = str(secrets.choice(upper))
        if address not in used and address not in free:
            free.append(address)
    return free


def one_host(
    name: str,
    image: str = "textbook-lab/debian:12",
    fixed_addresses: bool = False,
    volumes: list[str] | None = None,
    variables: dict[str, Any] | None = None,
) -> Topology:
    """A topology of one host that is in every group: the whole stack on it."""
    return Topology(
        name,
        images={name: image},
        groups={group: [name] for group in ("proxy", "app", "db", "vector")},
        proxy=name,
        volumes={name: volumes} if volumes else {},
        variables=variables or {},
        fixed_addresses=fixed_addresses,
    )


# Fixed address: test_single_host.py's reboot drill restarts it.
SINGLE = one_host("single", fixed_addresses=True)
# Three distributions: Ubuntu 22.04 runs a backend and PostgreSQL 14 + Qdrant (it has no
# topology of its own), Ubuntu 24.04 the other backend, Debian 12 the proxy.
FOUR = Topology(
    "four",
    images={
        "proxy": "textbook-lab/debian:12",
        "app1": "textbook-lab/ubuntu:22.04",
        "app2": "textbook-lab/ubuntu:24.04",
        "data": "textbook-lab/ubuntu:22.04",
    },
    groups={"proxy": ["proxy"], "app": ["app1", "app2"], "db": ["data"], "vector": ["data"]},
    proxy="proxy",
)


# Compose mode on Ubuntu 24.04 (its docker.io + docker-compose-v2 give Compose v2; Debian 12's
# packages have v1 only). The host's Docker keeps its data on anonymous volumes (ext4 on the lab
# engine's side): overlayfs cannot be mounted on the host's own overlay root. The images the lab
# cannot pull come from lab/bin/compose-images (make compose-images).
COMPOSE_IMAGES = ROOT / ".cache/compose-images/compose-images.tar"
COMPOSE = one_host(
    "compose",
    "textbook-lab/ubuntu:24.04",
    fixed_addresses=True,  # test_reboot_brings_everything_back restarts it
    volumes=["/var/lib/docker", "/var/lib/containerd"],
    variables={
        "backend_mode": "compose",
        "docker_install_source": "distro",
        "backend_compose_base_image": "textbook-lab/python:3.12-noble",
        "backend_compose_qdrant_image": "textbook-lab/qdrant-labstandin:1.20.0",
        "backend_compose_image_archives": [str(COMPOSE_IMAGES)],
    },
)


def apt_slot(topology: Topology) -> tuple[str, IO[str]]:
    """The first apt-archive slot of this topology no other run holds; held while the file is
    open."""
    locks = APT_CACHE_ROOT / "slots"
    locks.mkdir(parents=True, exist_ok=True)
    for number in range(APT_SLOTS):
        slot = f"deploy-{topology.name}-{number}"
        lock = (locks / f"{slot}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return slot, lock
    raise RuntimeError(f"all {APT_SLOTS} apt slots of {topology.name} are held by other runs")


def lab_hosts(topology: Topology) -> Iterator[None]:
    slot, lock = apt_slot(topology)
    platforms = topology.write(slot)
    try:
        playbook("-i", topology.inventory, "lab/molecule/create.yml", "-e", f"@{platforms}")
        yield
    finally:
        if not os.environ.get("TEXTBOOK_KEEP_LAB_HOSTS"):
            playbook(
                "-i",
                topology.inventory,
                "lab/molecule/destroy.yml",
                "-e",
                f"@{platforms}",
                check=False,
            )
            shutil.rmtree(topology.directory, ignore_errors=True)
            with contextlib.suppress(OSError):  # the run's directory, once no topology uses it
                topology.directory.parent.rmdir()
        lock.close()
