"""OKX signing against the vectors in ``shared/docs/venues/okx.md`` (sample secret from OKX's docs)."""

from __future__ import annotations

from tradeloop.venues.okx.auth import iso_timestamp, rest_headers, sign, ws_login_args

SECRET = "22582BD0CFF14C41EDBF1AB98506286D"


def test_rest_prehash_vector() -> None:
    prehash = "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC"
    assert sign(SECRET, prehash) == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="


def test_ws_login_vector() -> None:
    args = ws_login_args("key", SECRET, "pass", 1538054050)
    assert args == {
        "apiKey": "key",
        "passphrase": "pass",
        "timestamp": "1538054050",
        "sign": "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M=",
    }


def test_rest_headers_build_the_documented_prehash() -> None:
    unix_ns = 1_607_418_537_715_999_999  # 2020-12-08T09:08:57.715999999Z: truncated to ms
    assert iso_timestamp(unix_ns) == "2020-12-08T09:08:57.715Z"
    headers = rest_headers("key", SECRET, "pass", unix_ns, "get", "/api/v5/account/balance?ccy=BTC")
    assert headers["OK-ACCESS-SIGN"] == "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="
    assert headers["OK-ACCESS-TIMESTAMP"] == "2020-12-08T09:08:57.715Z"
    assert headers["OK-ACCESS-KEY"] == "key" and headers["OK-ACCESS-PASSPHRASE"] == "pass"
