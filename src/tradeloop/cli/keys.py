"""``tradeloop keys``: add, list, remove and re-key the encrypted store of exchange credentials.

Secrets are read from a hidden prompt or from stdin (``--stdin``), never from command-line arguments
(those end up in shell history and ``ps``). ``list`` shows fingerprints, never secrets. With
``--audit-log`` (or ``TRADELOOP_AUDIT_LOG``) every change is recorded in the audit log.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from tradeloop.cli.common import console

if TYPE_CHECKING:
    from tradeloop.security.audit import AuditLog

keys_app = typer.Typer(
    no_args_is_help=True,
    help="Encrypted key store for exchange API credentials (secrets never on the command line).",
)

NEW_MASTER_KEY_ENV = "TRADELOOP_NEW_MASTER_KEY"

StoreOption = typer.Option(
    None, "--store", envvar="TRADELOOP_KEYSTORE", help="Key store file (default ~/.tradeloop/keys.json)."
)
MasterFileOption = typer.Option(
    None,
    "--master-key-file",
    help="File holding the master key (mode 0600). Default: TRADELOOP_MASTER_KEY_FILE, then TRADELOOP_MASTER_KEY.",
)
AuditOption = typer.Option(
    None, "--audit-log", envvar="TRADELOOP_AUDIT_LOG", help="Append an audit entry for every change to this log."
)
ActorOption = typer.Option(None, "--actor", help="Who is making the change (default: the OS user name).")
LogNOption = typer.Option(
    17, "--scrypt-log-n", min=10, max=22, help="scrypt cost 2**N for a new store (lower only for tests)."
)


def _fail(exc: Exception) -> typer.Exit:
    console.print(f"[red]key store error:[/red] {escape(str(exc))}")
    return typer.Exit(1)


def _audit(audit_log: Path | None) -> AuditLog | None:
    from tradeloop.security.audit import AuditLog

    return AuditLog(audit_log) if audit_log else None


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"


def _store_path(store: Path | None) -> Path:
    from tradeloop.security.keystore import default_store_path

    return store.expanduser() if store else default_store_path()


def _read_secrets(use_stdin: bool, with_passphrase: bool) -> tuple[str, str | None, str | None]:
    """API key, secret and passphrase: three lines on stdin, or hidden prompts."""
    if use_stdin:
        lines = sys.stdin.read().splitlines()
        api_key = lines[0].strip() if lines else ""
        secret = lines[1].strip() if len(lines) > 1 else ""
        passphrase = lines[2].strip() if len(lines) > 2 else ""
    else:
        api_key = typer.prompt("API key", hide_input=True).strip()
        secret = typer.prompt(
            "API secret (empty if this key signs with a private key)", hide_input=True, default="", show_default=False
        ).strip()
        passphrase = typer.prompt("API passphrase", hide_input=True).strip() if with_passphrase else ""
    if with_passphrase and not passphrase:
        raise typer.BadParameter("--with-passphrase was given but no passphrase was entered")
    return api_key, secret or None, passphrase or None


@keys_app.command("init")
def init(
    store: Path | None = StoreOption,
    master_key_file: Path | None = MasterFileOption,
    scrypt_log_n: int = LogNOption,
    audit_log: Path | None = AuditOption,
    actor: str | None = ActorOption,
) -> None:
    """Create an empty key store encrypted under the master key."""
    from tradeloop.security.keystore import KeyStore, KeyStoreError
    from tradeloop.security.master_key import load_master_key

    path = _store_path(store)
    try:
        KeyStore.create(
            path,
            load_master_key(master_key_file),
            scrypt_log_n=scrypt_log_n,
            audit=_audit(audit_log),
            actor=_actor(actor),
        )
    except KeyStoreError as exc:
        raise _fail(exc) from None
    console.print(f"created key store {escape(str(path))}")


@keys_app.command("add")
def add(
    venue: str = typer.Option(..., "--venue", help="Venue id, e.g. binance, okx, coinbase."),
    name: str = typer.Option(..., "--name", help="Entry name, used in config as keystore:<name>/<field>."),
    with_passphrase: bool = typer.Option(False, "--with-passphrase", help="Also ask for the API passphrase."),
    private_key_file: Path | None = typer.Option(
        None, "--private-key-file", exists=True, dir_okay=False, help="PEM private key (Ed25519, ECDSA or RSA)."
    ),
    use_stdin: bool = typer.Option(
        False, "--stdin", help="Read API key, secret and passphrase as three lines on stdin instead of prompting."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace an existing entry of that name."),
    store: Path | None = StoreOption,
    master_key_file: Path | None = MasterFileOption,
    scrypt_log_n: int = LogNOption,
    audit_log: Path | None = AuditOption,
    actor: str | None = ActorOption,
) -> None:
    """Add credentials (creates the store if there is none yet)."""
    from tradeloop.security.keystore import Credentials, KeyStore, KeyStoreError
    from tradeloop.security.master_key import load_master_key

    path = _store_path(store)
    api_key, secret, passphrase = _read_secrets(use_stdin, with_passphrase)
    try:
        pem = private_key_file.read_text() if private_key_file else None
        creds = Credentials(venue, name, api_key, secret, passphrase, pem)
        master = load_master_key(master_key_file)
        audit, who = _audit(audit_log), _actor(actor)
        if path.exists():
            ks = KeyStore.open(path, master, audit=audit, actor=who)
        else:
            ks = KeyStore.create(path, master, scrypt_log_n=scrypt_log_n, audit=audit, actor=who)
        info = ks.add(creds, replace=replace)
    except (KeyStoreError, UnicodeDecodeError) as exc:
        raise _fail(exc) from None
    console.print(f"added {escape(info.venue)}/{escape(info.name)} fingerprint {info.fingerprint}")


@keys_app.command("list")
def list_keys(store: Path | None = StoreOption, master_key_file: Path | None = MasterFileOption) -> None:
    """List entries: venue, name, API key fingerprint, fields set, creation time. Never a secret."""
    from tradeloop.security.keystore import KeyStore, KeyStoreError
    from tradeloop.security.master_key import load_master_key

    try:
        infos = KeyStore.open(_store_path(store), load_master_key(master_key_file)).list()
    except KeyStoreError as exc:
        raise _fail(exc) from None
    rows = [("VENUE", "NAME", "FINGERPRINT", "FIELDS", "CREATED (UTC)")]
    for i in infos:
        created = datetime.fromtimestamp(i.created_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        rows.append((i.venue, i.name, i.fingerprint, ",".join(i.fields), created))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@keys_app.command("remove")
def remove(
    name: str = typer.Argument(..., help="Entry name."),
    store: Path | None = StoreOption,
    master_key_file: Path | None = MasterFileOption,
    audit_log: Path | None = AuditOption,
    actor: str | None = ActorOption,
) -> None:
    """Remove an entry."""
    from tradeloop.security.keystore import KeyStore, KeyStoreError
    from tradeloop.security.master_key import load_master_key

    try:
        ks = KeyStore.open(
            _store_path(store), load_master_key(master_key_file), audit=_audit(audit_log), actor=_actor(actor)
        )
        info = ks.remove(name)
    except KeyStoreError as exc:
        raise _fail(exc) from None
    console.print(f"removed {escape(info.venue)}/{escape(info.name)} fingerprint {info.fingerprint}")


@keys_app.command("rotate-master")
def rotate_master(
    new_master_key_file: Path | None = typer.Option(
        None, "--new-master-key-file", help=f"File with the new master key (mode 0600). Default: {NEW_MASTER_KEY_ENV}."
    ),
    scrypt_log_n: int | None = typer.Option(
        None, "--scrypt-log-n", min=10, max=22, help="New scrypt cost 2**N (default: keep the store's)."
    ),
    store: Path | None = StoreOption,
    master_key_file: Path | None = MasterFileOption,
    audit_log: Path | None = AuditOption,
    actor: str | None = ActorOption,
) -> None:
    """Re-encrypt every entry under a new master key; the old key no longer opens the store."""
    from tradeloop.security.keystore import KeyStore, KeyStoreError
    from tradeloop.security.master_key import MasterKey, load_master_key, read_master_key_file

    try:
        ks = KeyStore.open(
            _store_path(store), load_master_key(master_key_file), audit=_audit(audit_log), actor=_actor(actor)
        )
        if new_master_key_file is not None:
            new_master = read_master_key_file(new_master_key_file)
        elif os.environ.get(NEW_MASTER_KEY_ENV):
            new_master = MasterKey(os.environ[NEW_MASTER_KEY_ENV], f"environment variable {NEW_MASTER_KEY_ENV}")
        else:
            value = typer.prompt("New master key", hide_input=True, confirmation_prompt=True)
            new_master = MasterKey(value, "prompt")
        ks.rotate_master(new_master, scrypt_log_n=scrypt_log_n)
    except KeyStoreError as exc:
        raise _fail(exc) from None
    console.print(f"re-encrypted {escape(str(ks.path))} under the new master key ({escape(new_master.source)})")
