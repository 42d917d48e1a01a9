"""Codec: every record type round-trips; damaged, foreign or unknown entries are refused by seq."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import msgspec
import pytest

from tests.unit.persistence.records import BTC, T0, one_of_each, order_flow
from tradeloop.model.data import Trade
from tradeloop.model.enums import Side
from tradeloop.model.events import MarkPrice, OrderSubmitted
from tradeloop.persistence import (
    RECORD_TYPES,
    STREAM_MAGIC,
    JournalCorruptError,
    JournalEntry,
    JournalRecord,
    MemoryJournal,
    RecordCodec,
    kind_of,
    read_canonical,
    record_crc,
)
from tradeloop.persistence.codec import canonical_chunks

SAMPLES = one_of_each()


def test_every_record_type_has_a_sample() -> None:
    missing = {t.__name__ for t in RECORD_TYPES} - {type(r).__name__ for r in SAMPLES}
    assert not missing, f"add a sample of {sorted(missing)} to tests/unit/persistence/records.py"


@pytest.mark.parametrize("record", SAMPLES, ids=lambda r: type(r).__name__)
def test_round_trip(record: JournalRecord) -> None:
    codec = RecordCodec()
    entry = codec.entry(42, record)
    assert entry.seq == 42
    assert entry.ts == record.ts
    assert entry.kind == type(record).__name__ == kind_of(record)
    assert entry.crc == record_crc(42, record.ts, entry.payload)
    decoded = codec.decode(entry)
    assert type(decoded) is type(record)
    assert decoded == record
    # Encoding is deterministic: a decoded record encodes to the same bytes.
    assert codec.encode(decoded) == entry.payload


def test_round_trip_through_memory_journal() -> None:
    journal = MemoryJournal()
    assert journal.append_many(SAMPLES) == len(SAMPLES)
    got = list(journal.read())
    assert [seq for seq, _, _ in got] == list(range(1, len(SAMPLES) + 1))
    assert [ts for _, ts, _ in got] == [r.ts for r in SAMPLES]
    assert [rec for _, _, rec in got] == SAMPLES
    assert [rec for _, _, rec in journal.read(from_seq=5)] == SAMPLES[4:]


def test_not_journalable_is_refused_at_append() -> None:
    journal = MemoryJournal()
    trade = Trade(BTC, T0, T0, 67_000_000_000_000, 1_000_000, Side.BUY)
    with pytest.raises(TypeError, match="Trade cannot be journaled"):
        journal.append(trade)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        journal.append_many([MarkPrice(ts=T0, instrument_id=BTC, price=1), trade])  # type: ignore[list-item]
    assert journal.last_seq() == 0, "a refused batch appends nothing"


def test_ts_out_of_range_is_refused_at_append() -> None:
    with pytest.raises(ValueError, match="out of range"):
        MemoryJournal().append(MarkPrice(ts=2**63, instrument_id=BTC, price=1))


def _entry(seq: int, kind: str, payload: bytes) -> JournalEntry:
    return JournalEntry(seq, T0, kind, payload, record_crc(seq, T0, payload))


def test_unknown_kind_names_seq_and_kind() -> None:
    payload = msgspec.msgpack.encode({"type": "OrderTeleported", "ts": T0})
    with pytest.raises(JournalCorruptError, match=r"seq 7: unknown record kind 'OrderTeleported'") as info:
        RecordCodec().decode(_entry(7, "OrderTeleported", payload))
    assert info.value.seq == 7


def test_unknown_tag_in_payload_is_corrupt() -> None:
    payload = msgspec.msgpack.encode({"type": "OrderTeleported", "ts": T0})
    with pytest.raises(JournalCorruptError, match="seq 3: undecodable OrderSubmitted payload"):
        RecordCodec().decode(_entry(3, "OrderSubmitted", payload))


def test_kind_column_must_match_payload() -> None:
    payload = RecordCodec().encode(MarkPrice(ts=T0, instrument_id=BTC, price=5))
    with pytest.raises(JournalCorruptError, match="seq 4: kind column says OrderSubmitted but payload holds MarkPrice"):
        RecordCodec().decode(_entry(4, "OrderSubmitted", payload))


def test_crc_mismatch_names_seq() -> None:
    codec = RecordCodec()
    entry = codec.entry(9, OrderSubmitted(ts=T0, instrument_id=BTC, client_order_id="T0abc"))
    flipped = bytearray(entry.payload)
    flipped[-1] ^= 0x01
    with pytest.raises(JournalCorruptError, match="seq 9: CRC mismatch") as info:
        codec.decode(entry._replace(payload=bytes(flipped)))
    assert info.value.seq == 9
    # A record moved to another seq (or re-timed) fails its CRC too.
    with pytest.raises(JournalCorruptError, match="seq 10: CRC mismatch"):
        codec.decode(entry._replace(seq=10))
    with pytest.raises(JournalCorruptError, match="CRC mismatch"):
        codec.decode(entry._replace(ts=T0 + 1))


def test_garbage_payload_with_valid_crc_is_corrupt() -> None:
    with pytest.raises(JournalCorruptError, match="seq 2: undecodable MarkPrice payload"):
        RecordCodec().decode(_entry(2, "MarkPrice", b"\xc1\xc1\xc1"))


def test_ts_column_must_match_record() -> None:
    payload = RecordCodec().encode(MarkPrice(ts=T0 + 5, instrument_id=BTC, price=5))
    with pytest.raises(JournalCorruptError, match="ts column"):
        RecordCodec().decode(_entry(1, "MarkPrice", payload))


def test_export_is_the_canonical_stream(tmp_path: Path) -> None:
    journal = MemoryJournal()
    journal.append_many(SAMPLES)
    path = tmp_path / "run.tlj"
    digest = journal.export(path)
    data = path.read_bytes()
    assert data.startswith(STREAM_MAGIC)
    assert digest == journal.digest() == hashlib.sha256(data).hexdigest()
    assert b"".join(canonical_chunks(journal.entries())) == data
    loaded = MemoryJournal.load(path)
    assert [r for _, _, r in loaded.read()] == SAMPLES
    assert loaded.digest() == digest


def test_empty_journal_digest_is_the_magic() -> None:
    assert MemoryJournal().digest() == hashlib.sha256(STREAM_MAGIC).hexdigest()


def test_digest_frames_are_unambiguous() -> None:
    a, b = MemoryJournal(), MemoryJournal()
    a.append_many(order_flow(20))
    b.append_many(order_flow(21))
    assert a.digest() != b.digest()


def _stream(n: int) -> tuple[bytes, list[int]]:
    """A canonical stream of ``n`` records and the byte offset of each frame."""
    journal = MemoryJournal()
    journal.append_many(order_flow(n))
    chunks = list(canonical_chunks(journal.entries()))
    offsets, at = [], len(STREAM_MAGIC)
    for chunk in chunks[1:]:
        offsets.append(at)
        at += len(chunk)
    return b"".join(chunks), offsets


def test_damaged_export_names_position() -> None:
    data, _ = _stream(10)
    with pytest.raises(JournalCorruptError, match="bad magic"):
        list(read_canonical(io.BytesIO(b"x" + data[1:])))
    damaged = bytearray(data)
    damaged[len(STREAM_MAGIC) + 40] ^= 0xFF  # inside the first frame's kind or payload
    with pytest.raises(JournalCorruptError, match=f"seq 1, byte offset {len(STREAM_MAGIC)}: CRC mismatch") as info:
        list(read_canonical(io.BytesIO(bytes(damaged))))
    assert info.value.position == len(STREAM_MAGIC)
    entries = list(read_canonical(io.BytesIO(data)))
    assert [e.seq for e in entries] == list(range(1, 11))


def test_a_stream_cut_anywhere_keeps_the_whole_frames_and_drops_the_torn_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data, offsets = _stream(6)
    ends = [*offsets[1:], len(data)]
    for cut in range(len(STREAM_MAGIC), len(data) + 1):
        reader = read_canonical(io.BytesIO(data[:cut]), name="export.tlj")
        with caplog.at_level(logging.WARNING, logger="tradeloop.journal"):
            entries = list(reader)
        whole = sum(1 for end in ends if end <= cut)
        assert [e.seq for e in entries] == list(range(1, whole + 1)), cut
        torn = cut not in (len(STREAM_MAGIC), *ends)
        assert reader.dropped_tail == int(torn), cut
        assert reader.torn_position == (offsets[whole] if torn else None), cut
    warnings = [r for r in caplog.records if r.getMessage() == "torn last journal frame dropped"]
    assert warnings and all(r.fields["stream"] == "export.tlj" for r in warnings)  # type: ignore[attr-defined]
    assert {r.fields["position"] for r in warnings} == set(offsets)  # type: ignore[attr-defined]


def test_a_damaged_last_frame_is_torn_a_damaged_middle_frame_is_an_error() -> None:
    data, offsets = _stream(5)
    last = bytearray(data)
    last[-6] ^= 0x01
    reader = read_canonical(io.BytesIO(bytes(last)))
    assert [e.seq for e in reader] == [1, 2, 3, 4] and reader.torn_position == offsets[4]
    for k in range(4):  # every frame but the last
        middle = bytearray(data)
        middle[offsets[k + 1] - 6] ^= 0x01
        with pytest.raises(JournalCorruptError, match=f"seq {k + 1}, byte offset {offsets[k]}: CRC mismatch") as info:
            list(read_canonical(io.BytesIO(bytes(middle))))
        assert (info.value.seq, info.value.position) == (k + 1, offsets[k])
    wrong_seq = bytearray(data)
    wrong_seq[offsets[2]] = 9
    with pytest.raises(JournalCorruptError, match=f"byte offset {offsets[2]}: expected seq 3, found 9"):
        list(read_canonical(io.BytesIO(bytes(wrong_seq))))


def test_a_damaged_length_is_not_mistaken_for_a_torn_tail() -> None:
    data, offsets = _stream(5)
    damaged = bytearray(data)
    # Frame 2's payload length (u32 after seq u64, ts i64, kind length u16) now reaches past the end.
    damaged[offsets[1] + 18 : offsets[1] + 22] = (1 << 20).to_bytes(4, "little")
    with pytest.raises(JournalCorruptError, match=f"seq 2, byte offset {offsets[1]}: frame length damaged") as info:
        list(read_canonical(io.BytesIO(bytes(damaged))))
    assert info.value.position == offsets[1]


def test_loading_a_cut_export_drops_the_torn_frame(tmp_path: Path) -> None:
    journal = MemoryJournal()
    journal.append_many(order_flow(20))
    path = tmp_path / "run.tlj"
    journal.export(path)
    path.write_bytes(path.read_bytes()[:-7])
    loaded = MemoryJournal.load(path)
    assert (loaded.dropped_tail, loaded.last_seq()) == (1, 19)
    assert [r for _, _, r in loaded.read()] == order_flow(20)[:19]
