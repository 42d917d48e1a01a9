"""Key store: round trip, wrong master key, tampered bytes, permissions, rotation, and no secret anywhere."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import pickle
import secrets
from pathlib import Path

import msgspec
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.secret_scan import register_test_secret
from tradeloop.security.audit import AuditLog, verify_audit_log
from tradeloop.security.keystore import (
    DEFAULT_SCRYPT_LOG_N,
    Credentials,
    KeyStore,
    KeyStoreError,
)
from tradeloop.security.master_key import MasterKey

LOG_N = 10  # cheap scrypt for tests; the store records its own cost


def new_secret(prefix: str) -> str:
    value = f"{prefix}-{secrets.token_urlsafe(24)}"
    register_test_secret(value)
    return value


def pem_of(key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    register_test_secret(pem, *pem.splitlines()[1:-1])
    return pem


@pytest.fixture
def master() -> MasterKey:
    return MasterKey(new_secret("master"), "test")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "keys.json"


@pytest.fixture
def filled(store_path: Path, master: MasterKey) -> dict[str, Credentials]:
    """A store with an HMAC key, a key with passphrase, and two private-key keys."""
    creds = {
        "bn-main": Credentials("binance", "bn-main", new_secret("bnkey"), new_secret("bnsecret")),
        "okx-main": Credentials("okx", "okx-main", new_secret("okxkey"), new_secret("okxsec"), new_secret("okxpass")),
        "cb-ec": Credentials(
            "coinbase", "cb-ec", new_secret("cbkey"), private_key_pem=pem_of(ec.generate_private_key(ec.SECP256R1()))
        ),
        "bn-ed": Credentials(
            "binance", "bn-ed", new_secret("edkey"), private_key_pem=pem_of(ed25519.Ed25519PrivateKey.generate())
        ),
    }
    ks = KeyStore.create(store_path, master, scrypt_log_n=LOG_N)
    for c in creds.values():
        ks.add(c)
    return creds


def flip_b64_byte(text: str, index: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def rewrite(path: Path, change: object) -> None:
    doc = json.loads(path.read_text())
    change(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))


def test_round_trip(store_path: Path, master: MasterKey, filled: dict[str, Credentials]) -> None:
    ks = KeyStore.open(store_path, master)
    for name, original in filled.items():
        got = ks.get(name)
        assert (got.venue, got.name) == (original.venue, original.name)
        assert got.reveal_all() == original.reveal_all()
    okx = ks.get("okx-main")
    assert okx.passphrase is not None and okx.passphrase.reveal() == filled["okx-main"].passphrase.reveal()  # type: ignore[union-attr]
    infos = {i.name: i for i in ks.list()}
    assert list(infos) == ["bn-ed", "bn-main", "cb-ec", "okx-main"]  # sorted by venue, name
    for name, c in filled.items():
        expected_fp = hashlib.sha256(c.api_key.reveal().encode()).hexdigest()[:12]
        assert infos[name].fingerprint == expected_fp == c.fingerprint
    assert infos["okx-main"].fields == ("api_key", "secret", "passphrase")
    assert infos["bn-ed"].fields == ("api_key", "private_key")


def test_private_keys_come_back_usable(store_path: Path, master: MasterKey, filled: dict[str, Credentials]) -> None:
    ks = KeyStore.open(store_path, master)
    ed_key = ks.get("bn-ed").load_private_key()
    assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
    original = serialization.load_pem_private_key(filled["bn-ed"].private_key_pem.reveal().encode(), None)  # type: ignore[union-attr]
    assert isinstance(original, ed25519.Ed25519PrivateKey)
    original.public_key().verify(ed_key.sign(b"payload"), b"payload")
    ec_key = ks.get("cb-ec").load_private_key()
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    ec_key.public_key().verify(ec_key.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(KeyStoreError, match="has no private key"):
        ks.get("bn-main").load_private_key()
    with pytest.raises(KeyStoreError, match="has no API secret"):
        _ = ks.get("bn-ed").secret


def test_file_holds_no_secret_and_is_private(store_path: Path, filled: dict[str, Credentials]) -> None:
    data = store_path.read_bytes()
    for c in filled.values():
        for value in c.reveal_all():
            if value:
                assert value.encode() not in data
                assert base64.b64encode(value.encode())[:16] not in data
    assert store_path.stat().st_mode & 0o777 == 0o600
    assert not [p for p in store_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_wrong_master_key_is_a_clear_error(store_path: Path, filled: dict[str, Credentials]) -> None:
    wrong = new_secret("wrong-master")
    with pytest.raises(KeyStoreError, match="master key does not open this key store") as err:
        KeyStore.open(store_path, MasterKey(wrong, "test"))
    assert wrong not in str(err.value)


@pytest.mark.parametrize("where", ["first", "middle", "tag"])
def test_one_flipped_ciphertext_byte_names_the_entry(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials], where: str
) -> None:
    doc = json.loads(store_path.read_text())
    entry = next(e for e in doc["entries"] if e["name"] == "okx-main")
    size = len(base64.b64decode(entry["ciphertext"]))
    entry["ciphertext"] = flip_b64_byte(entry["ciphertext"], {"first": 0, "middle": size // 2, "tag": size - 1}[where])
    store_path.write_text(json.dumps(doc))
    ks = KeyStore.open(store_path, master)  # the store opens; the damaged entry does not
    assert ks.get("bn-main").reveal_all() == filled["bn-main"].reveal_all()
    with pytest.raises(KeyStoreError, match=r"entry 'okx-main' \(okx\) failed authentication") as err:
        ks.get("okx-main")
    with pytest.raises(KeyStoreError, match="okx-main"):
        ks.list()
    assert all(v not in str(err.value) for v in filled["okx-main"].reveal_all() if v)


@pytest.mark.parametrize(
    ("field", "value"),
    [("fingerprint", "000000000000"), ("created_ns", 1), ("venue", "bybit"), ("nonce", None)],
)
def test_altered_clear_fields_fail_authentication(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials], field: str, value: object
) -> None:
    def change(doc: dict) -> None:  # type: ignore[type-arg]
        entry = next(e for e in doc["entries"] if e["name"] == "bn-main")
        entry[field] = flip_b64_byte(entry["nonce"], 5) if value is None else value

    rewrite(store_path, change)
    with pytest.raises(KeyStoreError, match=r"'bn-main'.*failed authentication"):
        KeyStore.open(store_path, master).get("bn-main")


def test_entries_swapped_between_names_fail(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials]
) -> None:
    def swap(doc: dict) -> None:  # type: ignore[type-arg]
        a, b = (next(e for e in doc["entries"] if e["name"] == n) for n in ("bn-main", "okx-main"))
        a["nonce"], b["nonce"] = b["nonce"], a["nonce"]
        a["ciphertext"], b["ciphertext"] = b["ciphertext"], a["ciphertext"]

    rewrite(store_path, swap)
    ks = KeyStore.open(store_path, master)
    for name in ("bn-main", "okx-main"):
        with pytest.raises(KeyStoreError, match="failed authentication"):
            ks.get(name)


@pytest.mark.parametrize("part", ["check", "salt", "log_n"])
def test_altered_header_reads_as_a_master_key_problem(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials], part: str
) -> None:
    def change(doc: dict) -> None:  # type: ignore[type-arg]
        if part == "check":
            doc["check"]["ciphertext"] = flip_b64_byte(doc["check"]["ciphertext"], 3)
        elif part == "salt":
            doc["kdf"]["salt"] = flip_b64_byte(doc["kdf"]["salt"], 0)
        else:
            doc["kdf"]["log_n"] = LOG_N + 1

    rewrite(store_path, change)
    with pytest.raises(KeyStoreError, match="master key does not open this key store"):
        KeyStore.open(store_path, master)


def test_damaged_or_foreign_files(store_path: Path, master: MasterKey, filled: dict[str, Credentials]) -> None:
    original = store_path.read_text()
    store_path.write_text(original[: len(original) // 2])
    with pytest.raises(KeyStoreError, match="not a readable tradeloop key store"):
        KeyStore.open(store_path, master)
    rewrite_doc = json.loads(original)
    rewrite_doc["version"] = 99
    store_path.write_text(json.dumps(rewrite_doc))
    with pytest.raises(KeyStoreError, match="version 99 is not supported"):
        KeyStore.open(store_path, master)
    with pytest.raises(KeyStoreError, match="no key store at"):
        KeyStore.open(store_path.with_name("absent.json"), master)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o700])
def test_store_with_open_permissions_is_refused(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials], mode: int
) -> None:
    store_path.chmod(mode)
    if mode & 0o077:
        with pytest.raises(KeyStoreError, match=f"permissions {mode:04o}.*chmod 600"):
            KeyStore.open(store_path, master)
    else:
        assert len(KeyStore.open(store_path, master).list()) == 4


def test_rotate_master(store_path: Path, master: MasterKey, filled: dict[str, Credentials], tmp_path: Path) -> None:
    before = json.loads(store_path.read_text())
    ks = KeyStore.open(store_path, master)
    new_master = MasterKey(new_secret("new-master"), "test")
    ks.rotate_master(new_master)
    after = json.loads(store_path.read_text())
    assert after["kdf"]["salt"] != before["kdf"]["salt"] and after["kdf"]["log_n"] == LOG_N
    assert {e["nonce"] for e in after["entries"]}.isdisjoint(e["nonce"] for e in before["entries"])
    with pytest.raises(KeyStoreError, match="master key does not open"):
        KeyStore.open(store_path, master)
    reopened = KeyStore.open(store_path, new_master)
    for name, c in filled.items():
        assert reopened.get(name).reveal_all() == c.reveal_all()
    assert [i.created_ns for i in reopened.list()] == [e["created_ns"] for e in before["entries"]]
    ks.add(Credentials("kraken", "kr", new_secret("krkey"), new_secret("krsec")))  # the same object keeps working
    assert KeyStore.open(store_path, new_master).get("kr").venue == "kraken"
    assert not [p for p in store_path.parent.iterdir() if p.name.endswith(".tmp")]


def test_rotation_to_a_weak_key_changes_nothing(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials]
) -> None:
    before = store_path.read_bytes()
    with pytest.raises(KeyStoreError, match="too short"):
        KeyStore.open(store_path, master).rotate_master(MasterKey("short", "test"))
    assert store_path.read_bytes() == before


def test_a_stale_handle_refuses_to_write_after_rotation_elsewhere(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials]
) -> None:
    stale = KeyStore.open(store_path, master)
    KeyStore.open(store_path, master).rotate_master(MasterKey(new_secret("other-master"), "test"))
    with pytest.raises(KeyStoreError, match="rotated by someone else"):
        stale.remove("bn-main")


def test_add_remove_replace(store_path: Path, master: MasterKey, filled: dict[str, Credentials]) -> None:
    ks = KeyStore.open(store_path, master)
    with pytest.raises(KeyStoreError, match="already exists"):
        ks.add(Credentials("binance", "bn-main", new_secret("k"), new_secret("s")))
    replacement = Credentials("binance", "bn-main", new_secret("k2"), new_secret("s2"))
    ks.add(replacement, replace=True)
    assert KeyStore.open(store_path, master).get("bn-main").reveal_all() == replacement.reveal_all()
    removed = ks.remove("okx-main")
    assert removed.fingerprint == filled["okx-main"].fingerprint
    with pytest.raises(KeyStoreError, match=r"no key store entry named 'okx-main' \(entries: bn-ed, bn-main, cb-ec\)"):
        KeyStore.open(store_path, master).get("okx-main")
    with pytest.raises(KeyStoreError, match="invalid entry name"):
        ks.add(Credentials("binance", "bad name!", new_secret("k"), new_secret("s")))
    with pytest.raises(KeyStoreError, match="invalid venue"):
        ks.add(Credentials("Binance Spot", "ok", new_secret("k"), new_secret("s")))


def test_create_refuses_to_overwrite_and_weak_or_bad_parameters(store_path: Path, master: MasterKey) -> None:
    KeyStore.create(store_path, master, scrypt_log_n=LOG_N)
    with pytest.raises(KeyStoreError, match="already exists"):
        KeyStore.create(store_path, master, scrypt_log_n=LOG_N)
    with pytest.raises(KeyStoreError, match="too short"):
        KeyStore.create(store_path.with_name("b.json"), MasterKey("abc", "test"), scrypt_log_n=LOG_N)
    with pytest.raises(KeyStoreError, match="log_n"):
        KeyStore.create(store_path.with_name("c.json"), master, scrypt_log_n=4)


def test_default_cost_is_strong(tmp_path: Path, master: MasterKey) -> None:
    assert DEFAULT_SCRYPT_LOG_N >= 17
    path = tmp_path / "strong.json"
    KeyStore.create(path, master)
    kdf = json.loads(path.read_text())["kdf"]
    assert (kdf["name"], kdf["log_n"], kdf["r"], kdf["p"]) == ("scrypt", DEFAULT_SCRYPT_LOG_N, 8, 1)
    assert len(base64.b64decode(kdf["salt"])) == 16


def test_credentials_never_show_their_values(filled: dict[str, Credentials]) -> None:
    c = filled["okx-main"]
    values = [v for v in c.reveal_all() if v]
    shown = [
        repr(c),
        str(c),
        f"{c}",
        f"{c!r}",
        repr(c.secret),
        str(c.api_key),
        orjson.dumps({"c": c}, default=str).decode(),
    ]
    for text in shown:
        for value in values:
            assert value not in text
    assert c.fingerprint in repr(c)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(c)
    with pytest.raises(TypeError):
        msgspec.json.encode(c)
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(MasterKey(new_secret("m"), "test"))


def test_bad_private_keys_are_refused_clearly() -> None:
    with pytest.raises(KeyStoreError, match="not a PEM private key"):
        Credentials(
            "binance",
            "x",
            new_secret("k"),
            private_key_pem="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
    key = ed25519.Ed25519PrivateKey.generate()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw-123456"),
    ).decode()
    with pytest.raises(KeyStoreError, match="encrypted"):
        Credentials("binance", "x", new_secret("k"), private_key_pem=encrypted)
    small = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(KeyStoreError, match="1024 bits is too small"):
        Credentials("binance", "x", new_secret("k"), private_key_pem=small)
    with pytest.raises(KeyStoreError, match="give an API secret, a private key, or both"):
        Credentials("binance", "x", new_secret("k"))


def test_operations_are_logged_with_fingerprints_only(
    store_path: Path, master: MasterKey, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradeloop")
    ks = KeyStore.create(store_path, master, scrypt_log_n=LOG_N)
    c = Credentials("binance", "logged", new_secret("logkey"), new_secret("logsecret"))
    ks.add(c)
    ks.remove("logged")
    events = [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records if r.name == "tradeloop.keystore"]
    assert [e for e, _ in events] == ["key store created", "key added", "key removed"]
    assert events[1][1]["fingerprint"] == c.fingerprint
    text = caplog.text + repr(events)
    assert all(v not in text for v in c.reveal_all() if v)


def test_changes_are_audited_with_fingerprints(store_path: Path, master: MasterKey, tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log")
    ks = KeyStore.create(store_path, master, scrypt_log_n=LOG_N, audit=audit, actor="alice")
    c = Credentials("okx", "audited", new_secret("akey"), new_secret("asecret"), new_secret("apass"))
    ks.add(c)
    ks.rotate_master(MasterKey(new_secret("m2"), "test"))
    ks.remove("audited")
    entries = audit.entries()
    assert [(e.actor, e.action) for e in entries] == [
        ("alice", "keys.init"),
        ("alice", "keys.add"),
        ("alice", "keys.rotate_master"),
        ("alice", "keys.remove"),
    ]
    assert entries[1].detail == {"venue": "okx", "name": "audited", "fingerprint": c.fingerprint}
    raw = (tmp_path / "audit.log").read_text()
    assert all(v not in raw for v in c.reveal_all() if v)
    assert verify_audit_log(tmp_path / "audit.log") == []


def test_config_references_resolve_through_the_store(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tradeloop.core.config import ConfigError, resolve_secret

    monkeypatch.setenv("TRADELOOP_KEYSTORE", str(store_path))
    monkeypatch.setenv("TRADELOOP_MASTER_KEY", master.material().decode())
    monkeypatch.delenv("TRADELOOP_MASTER_KEY_FILE", raising=False)
    assert resolve_secret("keystore:okx-main/passphrase").reveal() == filled["okx-main"].passphrase.reveal()  # type: ignore[union-attr]
    assert resolve_secret("keystore:bn-main/api_key").reveal() == filled["bn-main"].api_key.reveal()
    for ref, message in [
        ("keystore:bn-main", "must be <name>/<field>"),
        ("keystore:bn-main/password", "unknown field"),
        ("keystore:nope/secret", "no key store entry named 'nope'"),
        ("keystore:bn-ed/secret", "has no secret"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve_secret(ref)
    monkeypatch.setenv("TRADELOOP_MASTER_KEY", new_secret("wrong"))
    with pytest.raises(ConfigError, match="master key does not open"):
        resolve_secret("keystore:bn-main/secret")
    env_value = new_secret("envsecret")
    monkeypatch.setenv("SOME_VENUE_SECRET", env_value)
    assert resolve_secret("env:SOME_VENUE_SECRET").reveal() == env_value
    secret_file = store_path.parent / "plain.txt"
    secret_file.write_text(env_value + "\n")
    assert resolve_secret(f"file:{secret_file}").reveal() == env_value
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_secret(f"file:{store_path.parent / 'missing.txt'}")


def test_files_owned_by_someone_else_are_refused(
    store_path: Path, master: MasterKey, filled: dict[str, Credentials]
) -> None:
    if os.getuid() != 0:
        pytest.skip("changing a file's owner needs root")
    os.chown(store_path, 12345, -1)
    with pytest.raises(KeyStoreError, match="owned by uid 12345"):
        KeyStore.open(store_path, master)
