"""The conformance suite checked against the toy venue (``toy_venue.py``): it passes a venue that
conforms, and fails one that does not, so a green run over the real venues means something."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tradeloop.venues.connectors import CONNECTORS

from . import test_execution, test_market_data

CHECKS: list[Callable[[str], None]] = [
    test_market_data.test_books_sync_and_equal_the_simulators_book,
    test_market_data.test_disconnect_invalidates_then_reconnects_and_resubscribes,
    test_market_data.test_skipped_sequence_is_detected_and_resynced,
    test_market_data.test_corrupted_checksum_is_detected_and_resynced,
    test_market_data.test_malformed_frames_are_counted_and_the_feed_goes_on,
    test_execution.test_place_amend_cancel_fill_cancel_all_and_query,
    test_execution.test_reply_delayed_past_the_timeout_is_resolved_by_query_without_a_duplicate,
    test_execution.test_rate_limit_reply_is_retried_within_the_budget,
    test_execution.test_each_mapped_venue_error_arrives_as_its_reject_reason,
    test_execution.test_a_wrong_signature_is_refused_and_nothing_reaches_the_book,
]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__.removeprefix("test_") for c in CHECKS])
def test_a_conforming_venue_passes(check: Callable[[str], None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONNECTORS, "toy", "tests.venues.conformance.toy_venue:CONNECTOR")
    check("toy")


def test_a_venue_that_ignores_a_skipped_sequence_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CONNECTORS, "toy", "tests.venues.conformance.toy_venue:BROKEN_CONNECTOR")
    with pytest.raises(pytest.fail.Exception, match="the book marked invalid after a skipped book update"):
        test_market_data.test_skipped_sequence_is_detected_and_resynced("toy")
