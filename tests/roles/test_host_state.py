"""roles/common's host_state.py (linked into the other roles): the parts the roles' state reads
compare against - file texts, sha256s, directory listings, accounts and the connecting user's
keys - say exactly what the look-ups they replace would say."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from script_module import load_script

ROLE = Path(__file__).resolve().parents[2] / "roles/common"
SCRIPT = ROLE / "files/host_state.py"
# The pattern role common's grep uses for a line that holds a key, passed to the read as well.
KEY_REGEXP = yaml.safe_load((ROLE / "vars/main.yml").read_text())["__common_ssh_key_regexp"]


@pytest.fixture
def host_state() -> ModuleType:
    return load_script(SCRIPT, "host_state")


def read(
    host_state: ModuleType,
    wanted: Mapping[str, object],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> dict[str, object]:
    monkeypatch.setattr("sys.argv", ["host_state.py", json.dumps(wanted)])
    host_state.main()
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def test_texts_sha256s_and_listings_are_read_and_a_missing_path_is_null(
    host_state: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "a.txt").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "b-2.0.dist-info").mkdir()
    (tmp_path / "site" / "a-1.0.dist-info").mkdir()
    missing = str(tmp_path / "missing")
    result = read(
        host_state,
        {
            "contents": [str(tmp_path / "a.txt"), missing],
            "sha256": [str(tmp_path / "a.txt"), missing],
            "listings": [str(tmp_path / "site"), missing],
        },
        monkeypatch,
        capsys,
    )
    text = "Include /etc/ssh/sshd_config.d/*.conf\n"
    assert result["contents"] == {str(tmp_path / "a.txt"): text, missing: None}
    assert result["sha256"] == {
        str(tmp_path / "a.txt"): hashlib.sha256(text.encode()).hexdigest(),
        missing: None,
    }
    assert result["listings"] == {
        str(tmp_path / "site"): ["a-1.0.dist-info", "b-2.0.dist-info"],
        missing: None,
    }


def test_accounts_are_read_as_passwd_and_group_list_them_and_a_missing_one_is_null(
    host_state: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    me = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(me.pw_gid)
    result = read(
        host_state,
        {"users": [me.pw_name, "no-such-user-x"], "groups": [group.gr_name, "no-such-group-x"]},
        monkeypatch,
        capsys,
    )
    assert result["users"] == {
        me.pw_name: {
            "uid": me.pw_uid,
            "gid": me.pw_gid,
            "home": me.pw_dir,
            "shell": me.pw_shell,
            "groups": sorted(g.gr_name for g in grp.getgrall() if me.pw_name in g.gr_mem),
        },
        "no-such-user-x": None,
    }
    assert result["groups"] == {
        group.gr_name: {"gid": group.gr_gid, "members": sorted(group.gr_mem)},
        "no-such-group-x": None,
    }


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        (["# ssh-ed25519 AAAA commented out", ""], False),
        (['from="10.0.0.1" ssh-ed25519 AAAA operator'], True),
        (["ecdsa-sha2-nistp256 AAAA operator"], True),
    ],
)
def test_the_connecting_user_and_its_key_are_known_only_under_ansibles_sudo(
    host_state: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    lines: list[str],
    key: bool,
) -> None:
    me = pwd.getpwuid(os.getuid())
    operator = pwd.struct_passwd((*me[:5], str(tmp_path), me[6]))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys2").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(host_state.pwd, "getpwnam", lambda name: operator)
    monkeypatch.setattr(host_state.os, "geteuid", lambda: 0)
    monkeypatch.setenv("SUDO_USER", "operator")
    files = [".ssh/authorized_keys", ".ssh/authorized_keys2"]
    wanted = {"login": {"files": files, "regexp": KEY_REGEXP}}

    # Ansible's become: sudo ran its BECOME-SUCCESS command.
    monkeypatch.setenv("SUDO_COMMAND", "/bin/sh -c echo BECOME-SUCCESS-abc ; /usr/bin/python3")
    result = read(host_state, wanted, monkeypatch, capsys)
    assert result["login"] == {"user": "operator", "home": str(tmp_path), "key": key}

    # Any other sudo (a SUDO_USER left in the environment): unknown, the role asks as before.
    monkeypatch.setenv("SUDO_COMMAND", "/bin/bash")
    result = read(host_state, wanted, monkeypatch, capsys)
    assert result["login"] == {"user": None, "home": None, "key": None}
