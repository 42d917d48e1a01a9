"""Master key sources and the permission check on master key files."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from tests.secret_scan import register_test_secret
from tradeloop.security.master_key import KeyStoreError, load_master_key, read_master_key_file


def key_file(tmp_path: Path, mode: int, name: str = "master.key") -> tuple[Path, str]:
    value = "mk-" + secrets.token_urlsafe(32)
    register_test_secret(value)
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(mode)
    return path, value


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_private_file_is_read_without_its_newline(tmp_path: Path, mode: int) -> None:
    path, value = key_file(tmp_path, mode)
    key = read_master_key_file(path)
    assert key.material() == value.encode()
    assert value not in repr(key) and str(path) in repr(key)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620, 0o602, 0o660, 0o666, 0o604])
def test_file_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    path, value = key_file(tmp_path, mode)
    with pytest.raises(KeyStoreError, match=rf"master key file .* has permissions {mode:04o}.*chmod 600") as err:
        read_master_key_file(path)
    assert value not in str(err.value)


def test_not_a_regular_file_or_missing(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match="not a regular file"):
        read_master_key_file(tmp_path)
    with pytest.raises(KeyStoreError, match="not found"):
        read_master_key_file(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(KeyStoreError, match="empty"):
        read_master_key_file(empty)


def test_source_precedence(tmp_path: Path) -> None:
    explicit, explicit_value = key_file(tmp_path, 0o600, "a.key")
    from_env_file, env_file_value = key_file(tmp_path, 0o600, "b.key")
    env_value = "env-" + secrets.token_urlsafe(20)
    register_test_secret(env_value)
    env = {"TRADELOOP_MASTER_KEY_FILE": str(from_env_file), "TRADELOOP_MASTER_KEY": env_value}
    assert load_master_key(explicit, environ=env).material() == explicit_value.encode()
    assert load_master_key(None, environ=env).material() == env_file_value.encode()
    only_env = load_master_key(None, environ={"TRADELOOP_MASTER_KEY": env_value})
    assert only_env.material() == env_value.encode() and "TRADELOOP_MASTER_KEY" in only_env.source
    with pytest.raises(KeyStoreError, match="no master key: set TRADELOOP_MASTER_KEY"):
        load_master_key(None, environ={})
    from_env_file.chmod(0o644)
    with pytest.raises(KeyStoreError, match="permissions 0644"):
        load_master_key(None, environ=env)  # a file named in the environment is checked too
