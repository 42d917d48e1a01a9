"""Coinbase: the live ws-feed recording (books consistent, per-product sequence holds), Advanced Trade
fixtures, the connection sequence rule, JWT signing verified with the public key, malformed frames."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import sample_path
from tradeloop.core.bus import MessageBus
from tradeloop.core.clock import SimClock
from tradeloop.data.book_manager import BookManager
from tradeloop.data.cryptofeed import Direction, read_cryptofeed
from tradeloop.model.data import BookDeltas, Trade
from tradeloop.model.enums import Side
from tradeloop.venues.coinbase import spec
from tradeloop.venues.coinbase.auth import build_jwt, load_private_key, rest_uri
from tradeloop.venues.coinbase.parse import (
    CoinbaseAdvancedParser,
    CoinbaseExchangeParser,
    ConnectionSequence,
    ParseError,
)


def test_ws_feed_recording_books_stay_valid_and_sequences_hold() -> None:
    parser = CoinbaseExchangeParser()
    manager = BookManager(MessageBus(), SimClock(0), {spec.VENUE: spec.SEQUENCE_RULE})
    trades = 0
    for frame in read_cryptofeed(sample_path("coinbase/ws_recording/cryptofeed_COINBASE.ws.28.0")):
        if frame.direction is not Direction.RECEIVED:
            continue
        for item in parser.parse(frame.payload, frame.ts_recv):
            if isinstance(item, BookDeltas):
                manager.on_deltas(item)
            else:
                trades += 1
    books = manager.books()
    assert len(books) == 10
    assert sum(manager.counters(i).applied for i in books) == 9719
    for iid, book in books.items():
        assert book.valid, f"{iid}: {book.invalid_reason}"
        assert manager.counters(iid).crossed == 0
    assert trades == 107  # 97 matches + 10 last_match
    assert parser.sequence_regressions == 0


def test_advanced_trade_fixtures_parse() -> None:
    parser = CoinbaseAdvancedParser()
    snap = parser.parse(sample_path("coinbase/ws_book/ws_l2_data_snapshot.json").read_bytes(), 1)
    upd = parser.parse(sample_path("coinbase/ws_book/ws_l2_data_update.json").read_bytes(), 2)
    assert isinstance(snap[0], BookDeltas) and snap[0].snapshot
    assert (68_900_000_000_000, 1_500_000_000) in snap[0].bids
    assert isinstance(upd[0], BookDeltas) and not upd[0].snapshot
    assert upd[0].bids == [(68_900_000_000_000, 2_000_000_000)] and upd[0].asks == [(68_901_000_000_000, 0)]
    assert parser.sequence.gaps == 0
    trades = parser.parse(sample_path("coinbase/ws_trades/ws_market_trades.json").read_bytes(), 3)
    assert all(isinstance(t, Trade) for t in trades) and trades[0].aggressor is Side.BUY  # type: ignore[union-attr]
    assert parser.sequence.gaps == 1  # the fixture's sequence_num jumps from 1 to 5


def test_connection_sequence() -> None:
    seq = ConnectionSequence()
    assert [seq.check(n) for n in (7, 8, 9)] == [True, True, True]
    assert seq.check(9) is False and seq.stale == 1
    assert seq.check(11) is False and seq.gaps == 1
    assert seq.check(12) is True
    seq.reset()
    assert seq.check(0) is True


def _verify_es256(token: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, object]:
    head, claims, sig = token.split(".")
    raw = base64.urlsafe_b64decode(sig + "==")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public_key.verify(der, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "header": json.loads(base64.urlsafe_b64decode(head + "==")),
        "claims": json.loads(base64.urlsafe_b64decode(claims + "==")),
    }


def test_es256_jwt_verifies_with_the_matching_public_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    name = "organizations/org-1/apiKeys/key-1"
    uri = rest_uri("get", "/api/v3/brokerage/accounts?limit=5")
    token = build_jwt(name, load_private_key(pem), 1_700_000_000, "ab12", uri)
    decoded = _verify_es256(token, key.public_key())
    assert decoded["header"] == {"alg": "ES256", "kid": name, "nonce": "ab12", "typ": "JWT"}
    assert decoded["claims"] == {
        "sub": name,
        "iss": "cdp",
        "nbf": 1_700_000_000,
        "exp": 1_700_000_120,
        "uri": "GET api.coinbase.com/api/v3/brokerage/accounts",
    }
    with pytest.raises(InvalidSignature):
        _verify_es256(token, ec.generate_private_key(ec.SECP256R1()).public_key())


def test_eddsa_jwt_verifies() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    token = build_jwt("k", load_private_key(base64.b64encode(seed).decode()), 1, "00")
    head, claims, sig = token.split(".")
    key.public_key().verify(base64.urlsafe_b64decode(sig + "=="), f"{head}.{claims}".encode())
    assert "uri" not in json.loads(base64.urlsafe_b64decode(claims + "=="))  # WebSocket JWTs carry no uri


def test_wrong_key_types_are_refused() -> None:
    rsa_like = "-----BEGIN EC PRIVATE KEY-----\nnot a key\n-----END EC PRIVATE KEY-----"
    with pytest.raises(ValueError):
        load_private_key(rsa_like)
    with pytest.raises(ValueError):
        load_private_key(base64.b64encode(b"short").decode())


@pytest.mark.parametrize(
    "frame",
    [
        b'{"type":"l2update","product_id":"BTC-USD","changes":[["up","1","1"]]}',
        b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy","x","1"]]}',
        b'{"type":"l2update","product_id":"BTC-USD","changes":[["buy"]]}',
        b'{"type":"match","product_id":"BTC-USD"}',
        b'{"type":"error","message":"Failed to subscribe","reason":"BTC-XYZ is not a valid product"}',
        b"{",
    ],
)
def test_malformed_feed_frames_raise_parse_errors(frame: bytes) -> None:
    with pytest.raises(ParseError):
        CoinbaseExchangeParser().parse(frame, 1)


def test_symbol_mapping() -> None:
    assert spec.to_unified("BTC-USD") == "BTC/USD" and spec.from_unified("BTC/USD") == "BTC-USD"
    for bad in ["BTCUSD", "btc-usd", "A-B-C"]:
        with pytest.raises(spec.SymbolError):
            spec.to_unified(bad)
