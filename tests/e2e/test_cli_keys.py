"""``tradeloop keys`` as a user runs it: subprocesses, a master key file, secrets on stdin only."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.secret_scan import record_output, register_test_secret


def secret(prefix: str) -> str:
    value = f"{prefix}-{secrets.token_urlsafe(20)}"
    register_test_secret(value)
    return value


class Cli:
    def __init__(self, tmp_path: Path) -> None:
        self.store = tmp_path / "keys.json"
        self.audit = tmp_path / "audit.log"
        self.master_file = tmp_path / "master.key"
        self.master = secret("master")
        self.master_file.write_text(self.master + "\n")
        self.master_file.chmod(0o600)
        self.outputs: list[str] = []

    def run(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRADELOOP_")}
        full_env = {
            **base,
            "TRADELOOP_KEYSTORE": str(self.store),
            "TRADELOOP_MASTER_KEY_FILE": str(self.master_file),
            "TRADELOOP_AUDIT_LOG": str(self.audit),
            "COLUMNS": "200",
            **(env or {}),
        }
        result = subprocess.run(
            [sys.executable, "-m", "tradeloop.cli", "keys", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            timeout=120,
            check=False,
        )
        record_output(f"tradeloop keys {args[0]}", result.stdout + result.stderr)
        self.outputs.append(result.stdout + result.stderr)
        return result


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    c = Cli(tmp_path)
    result = c.run("init", "--scrypt-log-n", "10", "--actor", "alice")
    assert result.returncode == 0, result.stderr
    return c


def test_add_list_remove_with_audit(cli: Cli) -> None:
    api_key, api_secret, passphrase = secret("key"), secret("sec"), secret("pass")
    added = cli.run(
        "add",
        "--venue",
        "okx",
        "--name",
        "okx-main",
        "--with-passphrase",
        "--stdin",
        "--actor",
        "alice",
        stdin=f"{api_key}\n{api_secret}\n{passphrase}\n",
    )
    assert added.returncode == 0, added.stderr
    fp = hashlib.sha256(api_key.encode()).hexdigest()[:12]
    assert f"okx/okx-main fingerprint {fp}" in added.stderr

    listed = cli.run("list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["VENUE", "NAME", "FINGERPRINT", "FIELDS"]
    assert row.split()[:4] == ["okx", "okx-main", fp, "api_key,secret,passphrase"]

    removed = cli.run("remove", "okx-main", "--actor", "bob")
    assert removed.returncode == 0 and fp in removed.stderr
    assert cli.run("list").stdout.splitlines()[1:] == []

    entries = [json.loads(line) for line in cli.audit.read_text().splitlines()]
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("alice", "keys.init"),
        ("alice", "keys.add"),
        ("bob", "keys.remove"),
    ]
    assert entries[1]["detail"]["fingerprint"] == fp
    everything = "\n".join(cli.outputs) + cli.audit.read_text() + cli.store.read_text()
    assert all(v not in everything for v in (api_key, api_secret, passphrase))


def test_private_key_entry(cli: Cli, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    register_test_secret(pem, *pem.splitlines()[1:-1])
    pem_file = tmp_path / "ed.pem"
    pem_file.write_text(pem)
    api_key = secret("edkey")
    result = cli.run(
        "add",
        "--venue",
        "binance",
        "--name",
        "bn-ed",
        "--private-key-file",
        str(pem_file),
        "--stdin",
        stdin=f"{api_key}\n\n",
    )
    assert result.returncode == 0, result.stderr
    assert cli.run("list").stdout.splitlines()[1].split()[3] == "api_key,private_key"
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    result = cli.run(
        "add",
        "--venue",
        "binance",
        "--name",
        "bn-bad",
        "--private-key-file",
        str(bad),
        "--stdin",
        stdin=f"{secret('k')}\n\n",
    )
    assert result.returncode == 1 and "not a PEM private key" in result.stderr


def test_secrets_cannot_be_given_as_arguments(cli: Cli) -> None:
    value = secret("argsecret")
    result = cli.run("add", "--venue", "okx", "--name", "x", "--secret", value)
    assert result.returncode == 2 and "No such option" in result.stderr


def test_wrong_master_key_and_open_key_file(cli: Cli, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text(secret("wrong") + "\n")
    wrong.chmod(0o600)
    result = cli.run("list", "--master-key-file", str(wrong))
    assert result.returncode == 1
    assert "master key does not open this key store" in " ".join(result.stderr.split())
    cli.master_file.chmod(0o644)
    result = cli.run("list")
    assert result.returncode == 1
    assert "permissions 0644" in result.stderr and "chmod 600" in " ".join(result.stderr.split())


def test_rotate_master(cli: Cli, tmp_path: Path) -> None:
    api_key, api_secret = secret("key"), secret("sec")
    assert (
        cli.run("add", "--venue", "binance", "--name", "bn", "--stdin", stdin=f"{api_key}\n{api_secret}\n").returncode
        == 0
    )
    new_file = tmp_path / "new.key"
    new_file.write_text(secret("newmaster") + "\n")
    new_file.chmod(0o600)
    rotated = cli.run("rotate-master", "--new-master-key-file", str(new_file))
    assert rotated.returncode == 0, rotated.stderr
    assert cli.run("list").returncode == 1  # the old key no longer opens it
    listed = cli.run("list", "--master-key-file", str(new_file))
    assert listed.returncode == 0 and hashlib.sha256(api_key.encode()).hexdigest()[:12] in listed.stdout
    assert [json.loads(x)["action"] for x in cli.audit.read_text().splitlines()][-1] == "keys.rotate_master"


def test_errors_are_clear(cli: Cli) -> None:
    result = cli.run("remove", "ghost")
    assert result.returncode == 1 and "no key store entry named 'ghost'" in result.stderr
    result = cli.run("add", "--venue", "okx", "--name", "x", "--stdin", stdin="only-a-key\n")
    assert result.returncode == 1 and "give an API secret, a private key, or both" in result.stderr
    result = cli.run("list", env={"TRADELOOP_KEYSTORE": str(cli.store.with_name("none.json"))})
    assert result.returncode == 1 and "no key store at" in result.stderr
