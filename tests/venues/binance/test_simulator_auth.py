"""The Binance simulator refuses what Binance refuses: wrong key, bad signature, stale timestamp."""

from __future__ import annotations

import pytest

from tradeloop.security.credentials import Credentials
from tradeloop.venues.binance.auth import signed_query, ws_api_params
from tradeloop.venues.binance.simulator_auth import AuthError, check_rest, check_ws_api

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
CREDS = Credentials("binance", "docs", KEY, SECRET)
TS = 1499827319559
PARAMS = {"symbol": "LTCBTC", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1", "price": "0.1"}


def test_the_official_example_is_accepted_within_its_window() -> None:
    query = signed_query(SECRET, PARAMS, TS, 5000)
    check_rest(CREDS, KEY, query, "", TS + 4999)
    check_rest(CREDS, KEY, query, "", TS - 999)


@pytest.mark.parametrize(
    ("key", "server_ms", "tamper", "code"),
    [
        (KEY, TS + 5001, False, -1021),  # older than recvWindow
        (KEY, TS - 1000, False, -1021),  # 1 s or more ahead of the server
        (KEY, TS, True, -1022),  # signature does not match
        ("other-key-000000", TS, False, -2015),
        (None, TS, False, -2014),
    ],
)
def test_refusals(key: str | None, server_ms: int, tamper: bool, code: int) -> None:
    query = signed_query(SECRET, PARAMS, TS, 5000)
    if tamper:
        query = query.replace("price=0.1", "price=0.2")
    with pytest.raises(AuthError) as err:
        check_rest(CREDS, key, query, "", server_ms)
    assert err.value.code == code


def test_ws_api_signature() -> None:
    params = ws_api_params(KEY, SECRET, {}, TS)
    check_ws_api(CREDS, params, TS)
    with pytest.raises(AuthError) as err:
        check_ws_api(CREDS, {**params, "timestamp": str(TS + 1)}, TS)
    assert err.value.code == -1022
