"""The ``[live]`` config: strict decoding, secrets only by reference, clear errors before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.secret_scan import register_test_secret
from tradeloop.core.config import ConfigError
from tradeloop.runtime.live_config import CredentialRefs, LiveConfig, load_live_config

API_KEY = "live-config-test-api-key-8c1f"
SECRET = "live-config-test-secret-5d02e9"
register_test_secret(API_KEY)
register_test_secret(SECRET)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(text)
    return path


GOOD = """
[strategy]
name = "market_making"

[live]
existing_orders = "cancel"

[live.venues.binance]
symbols = ["BTCUSDT"]
credentials = { api_key = "env:TL_TEST_KEY", secret = "file:/nonexistent/secret.txt" }
"""


def test_a_good_config_decodes_and_resolves_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET + "\n")
    monkeypatch.setenv("TL_TEST_KEY", API_KEY)
    config = load_live_config(write(tmp_path, GOOD.replace("/nonexistent/secret.txt", str(secret_file))))
    assert isinstance(config, LiveConfig)
    section = config.live.venues["binance"]
    assert section.symbols == ["BTCUSDT"] and config.live.existing_orders == "cancel"
    assert section.credentials is not None
    creds = section.credentials.resolve("binance")
    assert creds.api_key.reveal() == API_KEY and creds.secret.reveal() == SECRET
    assert API_KEY not in repr(creds) and SECRET not in repr(creds) and SECRET not in str(section)


def test_a_literal_secret_is_refused_naming_the_key(tmp_path: Path) -> None:
    text = GOOD.replace('"file:/nonexistent/secret.txt"', f'"{SECRET}"')
    with pytest.raises(ConfigError) as err:
        load_live_config(write(tmp_path, text))
    message = str(err.value)
    assert "credentials.secret" in message and "by reference" in message
    assert SECRET not in message


def test_unknown_keys_and_missing_symbols_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="symbol"):
        load_live_config(write(tmp_path, GOOD.replace("symbols =", "symbolz =")))
    with pytest.raises(ConfigError, match="keep_ordrs"):
        load_live_config(write(tmp_path, GOOD.replace("[live]", "[live]\nkeep_ordrs = true")))
    with pytest.raises(ConfigError, match="no venues"):
        load_live_config(write(tmp_path, "[live]\n"))
    with pytest.raises(ConfigError, match="at least one symbol"):
        load_live_config(write(tmp_path, GOOD.replace('["BTCUSDT"]', "[]")))
    with pytest.raises(ConfigError, match="existing_orders"):
        load_live_config(write(tmp_path, GOOD.replace('"cancel"', '"keep"')))


def test_credentials_need_a_secret_or_private_key() -> None:
    with pytest.raises(ValueError, match="secret or a private_key"):
        CredentialRefs(api_key="env:X")


def test_an_unset_environment_variable_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TL_TEST_UNSET", raising=False)
    refs = CredentialRefs(api_key="env:TL_TEST_UNSET", secret="env:TL_TEST_UNSET")
    with pytest.raises(ConfigError, match="TL_TEST_UNSET is not set"):
        refs.resolve("binance")
