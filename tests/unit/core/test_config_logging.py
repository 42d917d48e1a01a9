from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import pytest

from tradeloop.core.config import ConfigError, Secret, check_secret_ref, load_config, resolve_secret
from tradeloop.core.logging import configure_logging, get_logger, register_secret


class Inner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    limit: int = 5
    name: str = "x"


class Outer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seed: int = 1
    inner: Inner = msgspec.field(default_factory=Inner)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("seed = 3\n[inner]\nlimt = 4\n")
    with pytest.raises(ConfigError, match=r"limt"):
        load_config(path, Outer, environ={})


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[inner]\nlimit = "four"\n')
    with pytest.raises(ConfigError, match=r"inner.limit"):
        load_config(path, Outer, environ={})


def test_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("seed = 3\n")
    cfg = load_config(path, Outer, environ={"TRADELOOP__INNER__LIMIT": "9", "TRADELOOP__SEED": "4", "OTHER": "1"})
    assert cfg == Outer(seed=4, inner=Inner(limit=9))


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", Outer, environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, Outer, environ={})


def test_secrets_only_by_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        check_secret_ref("plain-secret-value", "venues.binance.secret")
    assert check_secret_ref("env:BINANCE_SECRET", "k") == "env:BINANCE_SECRET"
    monkeypatch.setenv("BINANCE_SECRET", "s3cr3t-value-123")
    secret = resolve_secret("env:BINANCE_SECRET")
    assert secret.reveal() == "s3cr3t-value-123"
    assert "s3cr3t" not in repr(secret) and "s3cr3t" not in str(secret)
    assert isinstance(secret, Secret)


def test_logs_are_json_and_redacted() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    register_secret("NhqPtmdSJYdKjVHjA7PZj4Mge3R5")
    log = get_logger("tradeloop.test")
    log.info(
        "signed request NhqPtmdSJYdKjVHjA7PZj4Mge3R5 sent",
        venue="binance",
        api_secret="anything",
        detail="key=NhqPtmdSJYdKjVHjA7PZj4Mge3R5",
        nested={"token": "abc123456", "ok": 1},
    )
    line = stream.getvalue().strip()
    record = json.loads(line)
    assert "NhqPtmdSJYdKjVHjA7PZj4Mge3R5" not in line and "abc123456" not in line
    assert record["venue"] == "binance" and record["api_secret"] == "***"
    assert record["nested"] == {"token": "***", "ok": 1}
    assert record["level"] == "info" and "***" in record["event"]
