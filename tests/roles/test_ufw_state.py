"""roles/firewall's ufw_state.py: the rules and settings the role changes (none on a converged
host)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "roles/firewall/files/ufw_state.py"

INPUTS = {
    "ssh_port": 22,
    "ssh_sources": [],
    "public_tcp_ports": [80, 443],
    "internal_rules": [
        {"port": 5432, "proto": "tcp", "sources": ["10.0.0.5", "10.0.1.0/24"], "comment": "pg"}
    ],
}
STATUS_ACTIVE = """Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip
"""


def tuple_line(port: str, src: str, action: str = "allow", direction: str = "in") -> str:
    return f"### tuple ### {action} tcp {port} 0.0.0.0/0 any {src} {direction}"


@pytest.fixture
def ufw_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script, reading its rule files under tmp_path."""
    module = load_script(SCRIPT, "ufw_state")
    monkeypatch.setattr(module, "RULE_FILES", (tmp_path / "user.rules", tmp_path / "user6.rules"))
    return module


def run(ufw_state: ModuleType, capsys: pytest.CaptureFixture[str], shown: str) -> dict[str, object]:
    ufw_state.main([json.dumps(INPUTS)], lambda: shown)
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_a_converged_host_needs_no_rule_and_no_setting(
    ufw_state: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        tuple_line("22", "0.0.0.0/0"),
        tuple_line("80", "0.0.0.0/0"),
        tuple_line("443", "0.0.0.0/0"),
        tuple_line("5432", "10.0.0.5"),
        tuple_line("5432", "10.0.1.0/24"),
    ]
    (tmp_path / "user.rules").write_text("\n".join(lines) + "\n")
    result = run(ufw_state, capsys, STATUS_ACTIVE)
    assert result == {
        "missing": [],
        "stale": [],
        "active": True,
        "incoming": "deny",
        "outgoing": "allow",
        "logging": "low",
    }


def test_missing_rules_come_in_order_ssh_first_and_unlisted_ones_are_stale(
    ufw_state: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        tuple_line("443", "0.0.0.0/0"),
        tuple_line("5432", "10.0.0.9"),  # a host that left the inventory
        tuple_line("8080", "0.0.0.0/0", direction="out"),  # another shape: left alone
    ]
    (tmp_path / "user.rules").write_text("\n".join(lines) + "\n")
    result = run(ufw_state, capsys, "Status: inactive\n")
    assert result["missing"] == [
        {"port": "22", "proto": "tcp", "src": "any", "comment": "ssh"},
        {"port": "80", "proto": "tcp", "src": "any", "comment": "public"},
        {"port": "5432", "proto": "tcp", "src": "10.0.0.5", "comment": "pg"},
        {"port": "5432", "proto": "tcp", "src": "10.0.1.0/24", "comment": "pg"},
    ]
    assert result["stale"] == [{"port": "5432", "proto": "tcp", "src": "10.0.0.9"}]
    assert (result["active"], result["incoming"], result["logging"]) == (False, None, None)


def test_logging_off_and_other_policies_are_read_as_ufw_shows_them(
    ufw_state: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = (
        "Status: active\nLogging: off\n"
        "Default: reject (incoming), deny (outgoing), disabled (routed)\n"
    )
    result = run(ufw_state, capsys, shown)
    assert (result["logging"], result["incoming"], result["outgoing"]) == ("off", "reject", "deny")


def test_packages_and_the_unit_are_read_when_the_inputs_name_them(
    ufw_state: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = {**INPUTS, "packages": ["ufw", "iptables"], "unit": "ufw"}
    ufw_state.main(
        [json.dumps(inputs)], lambda: STATUS_ACTIVE, lambda: {"iptables"}, lambda unit: "disabled"
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["missing_packages"], result["unit_file_state"]) == (["ufw"], "disabled")
    ufw_state.main(
        [json.dumps(inputs)], lambda: STATUS_ACTIVE, lambda: {"ufw", "iptables"}, lambda unit: None
    )
    result = json.loads(capsys.readouterr().out)
    assert (result["missing_packages"], result["unit_file_state"]) == ([], None)
