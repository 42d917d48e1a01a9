"""Journal records: what goes in, how it is encoded, framed and checked.

A journal record is any trading command (:data:`~tradeloop.model.commands.TradingCommand`), any
event (:data:`~tradeloop.model.events.Event`) or a :class:`~tradeloop.model.data.BookStatus`. All are
frozen msgspec structs with ``tag=True``, so the union of them decodes by tag.

Each stored record is a :class:`JournalEntry`:

* ``seq``: position in the journal, 1-based and contiguous;
* ``ts``: the record's engine time (its ``ts`` field), ns;
* ``kind``: the struct's tag (its class name, e.g. ``"OrderFilled"``);
* ``payload``: the struct encoded as msgpack (msgspec encoding is deterministic: fields in
  declaration order, enums by value);
* ``crc``: CRC-32 over ``seq | ts | payload`` (``seq`` as u64 and ``ts`` as i64, little endian,
  then the payload), so a damaged or misplaced record is detected when it is read.

The *canonical stream* is the backend-independent byte form of a journal: :data:`STREAM_MAGIC`
followed by one frame per record in seq order. A frame is
``<seq u64><ts i64><len(kind) u16><len(payload) u32><kind ascii><payload><crc u32>`` (little
endian); lengths make the framing unambiguous. ``Journal.digest()`` is the sha256 of this stream
and ``Journal.export()`` writes it to a file, so ``sha256sum`` of an export equals the digest.
Reading a stream back (:func:`read_canonical`) drops a torn last frame with a warning and stops at
any other damage with :class:`JournalCorruptError` naming the byte offset.

Snapshots (:class:`SnapshotRecord`) are stored beside the records by every backend, each with the same
CRC as a record (:func:`record_crc` over its seq, ts and payload).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, Final, NamedTuple, get_args

import msgspec

from tradeloop.core.logging import get_logger
from tradeloop.model.commands import TradingCommand
from tradeloop.model.data import BookStatus
from tradeloop.model.events import Event

JournalRecord = TradingCommand | Event | BookStatus
"""Everything a journal stores: commands, events and book status changes."""

STREAM_MAGIC: Final[bytes] = b"tradeloop-journal/1\n"
"""First bytes of a canonical stream (and of an exported journal file)."""

_log = get_logger("tradeloop.journal")
_CRC_HEAD: Final = struct.Struct("<Qq")
_FRAME_HEAD: Final = struct.Struct("<QqHI")
_FRAME_CRC: Final = struct.Struct("<I")


class JournalError(Exception):
    """Base class of journal errors (misuse, closed journal, unreadable file)."""


class JournalCorruptError(JournalError):
    """A stored record is damaged, missing, out of place or of a kind this version does not know.

    ``seq`` is the record's sequence number when known, ``position`` its byte offset in an exported
    stream when reading one; the message names whichever is known.
    """

    def __init__(self, message: str, *, seq: int | None = None, position: int | None = None) -> None:
        self.seq = seq
        self.position = position
        where = []
        if seq is not None:
            where.append(f"seq {seq}")
        if position is not None:
            where.append(f"byte offset {position}")
        prefix = f"journal corrupt at {', '.join(where)}" if where else "journal corrupt"
        super().__init__(f"{prefix}: {message}")


class JournalFenced(JournalError):
    """A newer owner claimed the journal (``Journal.claim``): this writer's writes are refused.

    ``token`` is this writer's fencing token (the one it claimed with, or tried to), ``owner`` the
    token the journal holds now. Once raised, the journal object refuses every further write.
    """

    def __init__(self, message: str, *, token: int | None = None, owner: int | None = None) -> None:
        self.token = token
        self.owner = owner
        super().__init__(message)


Row = tuple[int, int, str, bytes, int]
"""An entry as a plain tuple ``(seq, ts, kind, payload, crc)``: how backends store and pass entries."""


class JournalEntry(NamedTuple):
    """One stored record, still encoded. A plain tuple underneath, in table column order."""

    seq: int
    ts: int
    kind: str
    payload: bytes
    crc: int


def _record_types() -> tuple[type[msgspec.Struct], ...]:
    types: tuple[type[msgspec.Struct], ...] = get_args(JournalRecord)
    return types


RECORD_TYPES: Final[tuple[type[msgspec.Struct], ...]] = _record_types()
"""Every struct type a journal accepts."""


def _tag_of(cls: type[msgspec.Struct]) -> str:
    tag = cls.__struct_config__.tag
    if not isinstance(tag, str):
        raise TypeError(f"{cls.__name__} must be a msgspec Struct with a string tag to be journaled")
    return tag


KIND_OF: Final[dict[type[Any], str]] = {cls: _tag_of(cls) for cls in RECORD_TYPES}
"""Record type -> kind (its msgspec tag)."""
TYPE_OF: Final[dict[str, type[Any]]] = {kind: cls for cls, kind in KIND_OF.items()}
"""Kind -> record type."""
if len(TYPE_OF) != len(KIND_OF):  # pragma: no cover - guards the model, not run-time input
    raise TypeError("journal record types must have distinct tags")


def record_crc(seq: int, ts: int, payload: bytes) -> int:
    """CRC-32 over ``seq`` (u64 LE), ``ts`` (i64 LE) and ``payload``."""
    return zlib.crc32(payload, zlib.crc32(_CRC_HEAD.pack(seq, ts)))


def kind_of(record: object) -> str:
    """The kind (tag) of a journal record; ``TypeError`` if ``record`` is not journalable."""
    try:
        return KIND_OF[type(record)]
    except KeyError:
        raise TypeError(
            f"{type(record).__name__} cannot be journaled: expected a trading command, an event or BookStatus"
        ) from None


class RecordCodec:
    """Encodes records into :class:`JournalEntry` values and decodes them back, checking integrity.

    One codec per journal; it is cheap to build and holds no state beyond msgspec's encoder and
    decoder.
    """

    __slots__ = ("_decode", "_encode")

    def __init__(self) -> None:
        self._encode = msgspec.msgpack.Encoder().encode
        decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(JournalRecord)
        self._decode = decoder.decode

    def encode(self, record: JournalRecord) -> bytes:
        """The msgpack payload of ``record``."""
        kind_of(record)
        return self._encode(record)

    def entry(self, seq: int, record: JournalRecord) -> JournalEntry:
        """Encode ``record`` as the entry at ``seq`` (``ts`` is taken from ``record.ts``)."""
        return JournalEntry(*self.encode_row(seq, record))

    def encode_row(self, seq: int, record: JournalRecord) -> Row:
        """Like :meth:`entry`, as a plain tuple (cheaper to build; same field order)."""
        kind = KIND_OF.get(type(record))
        if kind is None:
            kind = kind_of(record)  # raises TypeError naming the type
        ts = record.ts
        try:
            head = _CRC_HEAD.pack(seq, ts)
        except struct.error:
            raise ValueError(f"seq {seq} / ts {ts!r} out of range for a journal entry (u64 / i64)") from None
        payload = self._encode(record)
        return seq, ts, kind, payload, zlib.crc32(payload, zlib.crc32(head))

    def encode_rows(self, first_seq: int, records: Iterable[JournalRecord]) -> list[Row]:
        """Encode ``records`` as consecutive entries from ``first_seq``, as plain tuples (the fast path).

        Raises ``TypeError`` / ``ValueError`` before returning anything if a record cannot be
        journaled, so callers never see a partial batch.
        """
        encode = self._encode
        pack = _CRC_HEAD.pack
        crc32 = zlib.crc32
        kinds = KIND_OF
        out: list[Row] = []
        append = out.append
        seq = first_seq
        for record in records:
            kind = kinds.get(type(record))
            if kind is None:
                kind = kind_of(record)  # raises TypeError naming the type
            ts = record.ts
            try:
                head = pack(seq, ts)
            except struct.error:
                raise ValueError(f"seq {seq} / ts {ts!r} out of range for a journal entry (u64 / i64)") from None
            payload = encode(record)
            append((seq, ts, kind, payload, crc32(payload, crc32(head))))
            seq += 1
        return out

    def decode(self, entry: Row) -> JournalRecord:
        """Decode one stored entry, verifying its CRC, kind and payload.

        Raises :class:`JournalCorruptError` naming the seq on any mismatch, an unknown kind or an
        undecodable payload.
        """
        seq, ts, kind, payload, _crc = entry
        verify_entry(entry)
        expected = TYPE_OF.get(kind)
        if expected is None:
            raise JournalCorruptError(
                f"unknown record kind {kind!r} (written by a newer tradeloop, or damaged)", seq=seq
            )
        try:
            record: JournalRecord = self._decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise JournalCorruptError(f"undecodable {kind} payload: {exc}", seq=seq) from None
        if type(record) is not expected:
            raise JournalCorruptError(f"kind column says {kind} but payload holds {type(record).__name__}", seq=seq)
        if record.ts != ts:
            raise JournalCorruptError(f"ts column {ts} differs from the record's ts {record.ts}", seq=seq)
        return record


def verify_entry(entry: Row) -> None:
    """Check an entry's field types and CRC (not its payload); :class:`JournalCorruptError` if wrong."""
    seq, ts, kind, payload, crc = entry
    if not isinstance(payload, bytes) or not isinstance(ts, int) or not isinstance(kind, str):
        raise JournalCorruptError(
            f"malformed entry (ts {type(ts).__name__}, kind {type(kind).__name__}, payload {type(payload).__name__})",
            seq=seq,
        )
    try:
        actual = zlib.crc32(payload, zlib.crc32(_CRC_HEAD.pack(seq, ts)))
    except struct.error:
        raise JournalCorruptError(f"seq/ts out of range (ts {ts})", seq=seq) from None
    if actual != crc:
        raise JournalCorruptError(f"CRC mismatch (stored {crc!r}, computed {actual})", seq=seq)


def frame(entry: Row) -> bytes:
    """One record's frame in the canonical stream."""
    seq, ts, kind, payload, crc = entry
    kind_bytes = kind.encode("ascii")
    return b"".join(
        (_FRAME_HEAD.pack(seq, ts, len(kind_bytes), len(payload)), kind_bytes, payload, _FRAME_CRC.pack(crc))
    )


def canonical_chunks(entries: Iterable[Row]) -> Iterator[bytes]:
    """The canonical stream of ``entries``, in pieces: the magic, then one frame per entry."""
    yield STREAM_MAGIC
    head = _FRAME_HEAD.pack
    tail = _FRAME_CRC.pack
    for seq, ts, kind, payload, crc in entries:
        kind_bytes = kind.encode("ascii")
        yield head(seq, ts, len(kind_bytes), len(payload)) + kind_bytes + payload + tail(crc)


class SnapshotRecord(NamedTuple):
    """A saved snapshot: the state after record ``seq`` (engine time ``ts``), as the caller's opaque bytes."""

    seq: int
    ts: int
    payload: bytes


class CanonicalReader:
    """Iterates the entries of a canonical stream (an exported journal), checking every frame.

    Checks the magic, each frame's CRC and that seqs are contiguous from 1. Records are not decoded
    here; pass the entries to :meth:`RecordCodec.decode` for that.

    A crash (or a copy cut short) can leave the stream ending inside its last frame. That *torn last
    frame* (too short, or complete but failing its check, and the stream ends there) is dropped with
    a warning naming its byte offset: :attr:`dropped_tail` becomes 1 and :attr:`torn_position` is the
    offset. Damage anywhere else raises :class:`JournalCorruptError` naming the byte offset (and the
    seq when readable); so does a frame whose length field points past the end when a valid frame
    follows inside it (the length was damaged, the stream was not cut).
    """

    def __init__(self, stream: BinaryIO, *, name: str = "journal stream") -> None:
        self._stream = stream
        self.name = name
        self.dropped_tail = 0
        """1 when a torn last frame was dropped, else 0."""
        self.torn_position: int | None = None
        """Byte offset of the dropped torn frame."""
        self._frames = self._iterate()

    def __iter__(self) -> CanonicalReader:
        return self

    def __next__(self) -> JournalEntry:
        return next(self._frames)

    def _iterate(self) -> Iterator[JournalEntry]:
        stream = self._stream
        magic = stream.read(len(STREAM_MAGIC))
        if magic != STREAM_MAGIC:
            raise JournalCorruptError("not a tradeloop journal stream (bad magic)", position=0)
        position = len(STREAM_MAGIC)
        expected = 1
        while True:
            head = stream.read(_FRAME_HEAD.size)
            if not head:
                return
            if len(head) < _FRAME_HEAD.size:
                self._torn(position, len(head), "frame header cut short")
                return
            seq, ts, kind_len, payload_len = _FRAME_HEAD.unpack(head)
            size = kind_len + payload_len + _FRAME_CRC.size
            body = stream.read(size)
            if len(body) < size:
                if _frame_inside(body, expected + 1):
                    raise JournalCorruptError(
                        f"frame length damaged (claims {size} bytes, the next frame follows earlier)",
                        seq=seq if seq == expected else None,
                        position=position,
                    )
                self._torn(position, len(head) + len(body), "frame cut short")
                return
            problem = _frame_problem(seq, expected, ts, body, kind_len, payload_len)
            if problem is not None:
                if not stream.read(1):
                    self._torn(position, len(head) + len(body), problem)
                    return
                raise JournalCorruptError(problem, seq=seq if seq == expected else None, position=position)
            payload = body[kind_len : kind_len + payload_len]
            (crc,) = _FRAME_CRC.unpack_from(body, kind_len + payload_len)
            yield JournalEntry(seq, ts, body[:kind_len].decode("ascii"), payload, crc)
            position += _FRAME_HEAD.size + size
            expected += 1

    def _torn(self, position: int, size: int, why: str) -> None:
        self.dropped_tail = 1
        self.torn_position = position
        _log.warning(
            "torn last journal frame dropped", stream=self.name, position=position, bytes_dropped=size, problem=why
        )


def _frame_problem(seq: int, expected: int, ts: int, body: bytes, kind_len: int, payload_len: int) -> str | None:
    """Why a complete frame is bad (``None`` if it is good)."""
    if seq != expected:
        return f"expected seq {expected}, found {seq}"
    try:
        body[:kind_len].decode("ascii")
    except UnicodeDecodeError:
        return "kind is not ASCII"
    (crc,) = _FRAME_CRC.unpack_from(body, kind_len + payload_len)
    if record_crc(seq, ts, body[kind_len : kind_len + payload_len]) != crc:
        return "CRC mismatch"
    return None


def _frame_inside(data: bytes, seq: int) -> bool:
    """Whether a complete, valid frame for ``seq`` starts somewhere in ``data``."""
    needle = struct.pack("<Q", seq)
    at = data.find(needle)
    while at >= 0:
        if at + _FRAME_HEAD.size <= len(data):
            _, ts, kind_len, payload_len = _FRAME_HEAD.unpack_from(data, at)
            start = at + _FRAME_HEAD.size
            end = start + kind_len + payload_len + _FRAME_CRC.size
            if end <= len(data) and _frame_problem(seq, seq, ts, data[start:end], kind_len, payload_len) is None:
                return True
        at = data.find(needle, at + 1)
    return False


def read_canonical(stream: BinaryIO, *, name: str = "journal stream") -> CanonicalReader:
    """Parse a canonical stream (an exported journal) back into entries: see :class:`CanonicalReader`.

    A torn last frame is dropped with a warning (the reader's ``dropped_tail``); any other damage
    raises :class:`JournalCorruptError` naming the byte offset (and seq, when readable).
    """
    return CanonicalReader(stream, name=name)
