"""The input journal and engine snapshots (engine thread only: the journal is the engine's only I/O).

Journal file layout::

    header  = b"HFTJRNL1" + u32 version (the event schema, below)       (12 bytes)
    record  = u32 payload length + u32 CRC-32 of the payload + payload   (little endian)
    payload = MessagePack array [seq, ts, kind, message]

`seq` is the journal's own sequence (contiguous from 1), `ts` the engine time the input was stamped with (replay
sets the engine clock to it), `kind` a `RecordKind`, `message` the protocol message exactly as the codec encodes it
(None for a timer tick and the START record). Only inbound things are journaled; outbound events are regenerated
by replay.

Reading stops at the first record that is short (torn write), too long, fails its CRC or breaks the sequence;
opening a journal for append truncates the file there. A torn last record was never applied (the engine appends
BEFORE it applies) and its sender was never acknowledged, so dropping it loses nothing that was accepted.

What "accepted" means (the engine replies only after `append` returns):
- `FsyncPolicy.EVERY_RECORD`: the record is on stable storage; survives a process crash and a power loss.
- `FsyncPolicy.BATCH`: written to the kernel (one `os.write`, no user-space buffer) and fsynced within
  `batch_records` records or `batch_ns` of engine time; survives a process crash, a power loss can lose the
  unsynced tail (at most one batch).
- `FsyncPolicy.NEVER`: written to the kernel; survives a process crash, the OS decides when it reaches the disk.

The header's version is also the engine's event schema: replay regenerates the outbound events, so a build that
publishes different events for the same inputs (new event types, events moved within a step) numbers them
differently, and a journal written by another schema would replay into seqs the bridge already stored with other
content. Such a build bumps `VERSION`; opening a journal of another version raises `JournalSchemaMismatch`, which
`Engine.recover` and `replay_events_from_journal` pass on. Version 1 is every journal written before the console
events (MarketTrade, BookDepth, RiskUtilisation, HaltCompleted, VenueOrderStatus, TopOfBookChanged after the quotes).

Snapshots are separate files `snapshot-<seq>.msgpack` (MessagePack envelope + CRC), written atomically (temp file,
fsync, rename, fsync of the directory), naming the last journal seq they include and the byte offset just after it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from enum import IntEnum
from pathlib import Path
from typing import Any

import msgspec

from engine.errors import EngineError
from engine.protocol import Codec

MAGIC = b"HFTJRNL1"
VERSION = 2  # the event schema (module docstring): bump it whenever the same inputs publish different events
_HEADER = struct.Struct("<8sI")
HEADER_SIZE = _HEADER.size
_RECORD = struct.Struct("<II")
RECORD_HEADER_SIZE = _RECORD.size
MAX_RECORD_BYTES = 64 * 1024 * 1024
SNAPSHOT_MAGIC = b"HFTSNAP1"
_SNAP_HEADER = struct.Struct("<8sII")  # magic, crc of body, body length


class JournalError(EngineError):
    """A journal or snapshot file that cannot be used (wrong magic/version, unusable directory)."""


class JournalSchemaMismatch(JournalError):
    """The journal was written by an engine build with another event schema: replaying it would renumber events."""


class RecordKind(IntEnum):
    COMMAND = 1
    MARKET_DATA = 2
    EXECUTION_REPORT = 3
    TIMER = 4
    # The first record of a journal: the engine's start time, so a replay from the beginning builds the engine
    # (strategy parameter history, clocks) at the same instant the original did.
    START = 5
    # A `VenueCommandRejected`: the venue refused a command without an execution report (FIX 35=j).
    VENUE_REJECT = 6
    # A `MassCancelReport`: the venue's one answer to a mass cancel, naming every order it canceled (FIX 35=r).
    MASS_CANCEL_REPORT = 7


class FsyncPolicy(IntEnum):
    EVERY_RECORD = 1
    BATCH = 2
    NEVER = 3


class JournalRecord(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    ts: int
    kind: int
    message: Any


class _RawRecord(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    ts: int
    kind: int
    message: msgspec.Raw


_ENCODER = msgspec.msgpack.Encoder()
_RAW_DECODER = msgspec.msgpack.Decoder(_RawRecord)
_NIL = msgspec.msgpack.encode(None)


class ScanResult(msgspec.Struct):
    """What a scan of a journal found: the valid records end at `valid_end` (a byte offset)."""

    last_seq: int
    valid_end: int
    file_size: int
    records: int
    stop_reason: str  # "" when the file ended cleanly on a record boundary


def _write_header(fd: int) -> None:
    os.write(fd, _HEADER.pack(MAGIC, VERSION))


def _check_header(data: bytes, path: Path) -> None:
    if len(data) < HEADER_SIZE:
        raise JournalError("JOURNAL_BAD_HEADER", f"{path}: shorter than the journal header")
    magic, version = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise JournalError("JOURNAL_BAD_MAGIC", f"{path}: not a journal (magic {magic!r})")
    if version != VERSION:
        raise JournalSchemaMismatch(
            "JOURNAL_EVENT_SCHEMA_MISMATCH",
            f"{path}: written by an engine build with event schema {version}, this build publishes schema {VERSION};"
            " replaying it would renumber events already published. Start this build on a fresh journal (or a new"
            " engine_id) and keep the old journal for audit.",
        )


def iter_records(
    path: Path | str, *, start_offset: int = 0, after_seq: int = 0
) -> Iterator[tuple[int, int, int, int, bytes]]:
    """Yield (seq, ts, kind, end_offset, message_bytes) for each valid record with seq > `after_seq`.

    Stops silently at the first torn or corrupt record (see `scan` to learn where and why). `start_offset` (a
    record boundary, e.g. a snapshot's `journal_offset`) skips the scan of what precedes it; the sequence check
    then starts from the first record read.
    """
    for seq, ts, kind, end, message, _reason in _walk(Path(path), start_offset):
        if message is None:
            return
        if seq > after_seq:
            yield seq, ts, kind, end, message


def _walk(path: Path, start_offset: int) -> Iterator[tuple[int, int, int, int, bytes | None, str]]:
    with open(path, "rb") as f:
        data = f.read()
    _check_header(data, path)
    pos = max(start_offset, HEADER_SIZE)
    size = len(data)
    expected = 0
    unpack = _RECORD.unpack_from
    decode = _RAW_DECODER.decode
    crc32 = zlib.crc32
    while True:
        if pos == size:
            yield expected, 0, 0, pos, None, ""
            return
        if pos + RECORD_HEADER_SIZE > size:
            yield expected, 0, 0, pos, None, "torn record header"
            return
        length, crc = unpack(data, pos)
        body_start = pos + RECORD_HEADER_SIZE
        end = body_start + length
        if length > MAX_RECORD_BYTES:
            yield expected, 0, 0, pos, None, f"record length {length} beyond the limit"
            return
        if end > size:
            yield expected, 0, 0, pos, None, "torn record body"
            return
        payload = data[body_start:end]
        if crc32(payload) != crc:
            yield expected, 0, 0, pos, None, "CRC mismatch"
            return
        try:
            raw = decode(payload)
        except msgspec.MsgspecError:
            yield expected, 0, 0, pos, None, "undecodable record"
            return
        if expected and raw.seq != expected + 1:
            yield expected, 0, 0, pos, None, f"sequence break: {raw.seq} after {expected}"
            return
        expected = raw.seq
        yield raw.seq, raw.ts, raw.kind, end, bytes(raw.message), ""
        pos = end


def scan(path: Path | str, *, start_offset: int = 0) -> ScanResult:
    """Validate a journal from `start_offset` on without decoding the messages."""
    path = Path(path)
    size = path.stat().st_size
    records = 0
    last_seq, end, reason = 0, max(start_offset, HEADER_SIZE), ""
    for seq, _ts, _kind, pos, message, why in _walk(path, start_offset):
        if message is None:
            end, reason = pos, why
            break
        records += 1
        last_seq, end = seq, pos
    return ScanResult(last_seq=last_seq, valid_end=end, file_size=size, records=records, stop_reason=reason)


def encode_record(codec: Codec, seq: int, kind: int, ts: int, message: Any) -> bytes:
    """The bytes of one record (length, CRC, payload) exactly as `Journal.append` writes them."""
    body = _NIL if message is None else codec.encode(message)
    payload = _ENCODER.encode((seq, ts, int(kind), msgspec.Raw(body)))
    return _RECORD.pack(len(payload), zlib.crc32(payload)) + payload


class Journal:
    """Append-only journal of inbound messages. Engine thread only.

    Opening an existing file validates it and truncates a torn or corrupt tail, so the next append continues the
    sequence on a record boundary. `last_seq` is the seq of the last durable-by-policy record.
    """

    __slots__ = (
        "_batch_ns",
        "_batch_records",
        "_codec",
        "_fd",
        "_last_sync_ts",
        "_unsynced",
        "last_seq",
        "offset",
        "path",
        "policy",
        "truncated_bytes",
    )

    def __init__(
        self,
        path: Path | str,
        codec: Codec,
        *,
        policy: FsyncPolicy = FsyncPolicy.EVERY_RECORD,
        batch_records: int = 256,
        batch_ns: int = 2_000_000,
    ) -> None:
        if batch_records < 1 or batch_ns < 1:
            raise JournalError("JOURNAL_BAD_CONFIG", "batch_records and batch_ns must be positive")
        self.path = Path(path)
        self._codec = codec
        self.policy = policy
        self._batch_records = batch_records
        self._batch_ns = batch_ns
        self._unsynced = 0
        self._last_sync_ts = 0
        self.truncated_bytes = 0
        if self.path.exists() and self.path.stat().st_size > 0:
            result = scan(self.path)
            self.last_seq = result.last_seq
            self.offset = result.valid_end
            if result.valid_end < result.file_size:
                # The tail was never acknowledged (see the module docstring): drop it so appends stay contiguous.
                self.truncated_bytes = result.file_size - result.valid_end
                os.truncate(self.path, result.valid_end)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            _write_header(self._fd)
            os.fsync(self._fd)
            self.last_seq = 0
            self.offset = HEADER_SIZE

    def append(self, kind: RecordKind, ts: int, message: Any) -> int:
        """Write one record (and fsync per the policy); returns its seq. Call BEFORE applying the input."""
        seq = self.last_seq + 1
        record = encode_record(self._codec, seq, kind, ts, message)
        # One write per record, no user-space buffering: once it returns, a crash of this process cannot lose it.
        written = os.write(self._fd, record)
        if written != len(record):  # a short write on a regular file means a full disk: stop rather than tear
            raise JournalError("JOURNAL_SHORT_WRITE", f"{written} of {len(record)} bytes written to {self.path}")
        self.last_seq = seq
        self.offset += written
        policy = self.policy
        if policy is FsyncPolicy.EVERY_RECORD:
            os.fsync(self._fd)
        elif policy is FsyncPolicy.BATCH:
            self._unsynced += 1
            if self._unsynced >= self._batch_records or ts - self._last_sync_ts >= self._batch_ns:
                self.sync(ts)
        return seq

    def sync(self, ts: int = 0) -> None:
        """Make every appended record durable now (the BATCH policy's flush; the engine calls it when idle)."""
        os.fsync(self._fd)
        self._unsynced = 0
        self._last_sync_ts = ts

    def close(self) -> None:
        if self._fd >= 0:
            if self.policy is not FsyncPolicy.NEVER:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def read(self, *, start_offset: int = 0, after_seq: int = 0) -> Iterator[JournalRecord]:
        """Decoded records (through the codec: a record is validated like any inbound message)."""
        decode = self._codec.decode
        for seq, ts, kind, _end, body in iter_records(self.path, start_offset=start_offset, after_seq=after_seq):
            yield JournalRecord(seq, ts, kind, None if body == _NIL else decode(body))


def read_journal(
    path: Path | str, codec: Codec, *, start_offset: int = 0, after_seq: int = 0
) -> Iterator[JournalRecord]:
    """Decoded records of a journal file without opening it for append (nothing is truncated)."""
    decode = codec.decode
    for seq, ts, kind, _end, body in iter_records(path, start_offset=start_offset, after_seq=after_seq):
        yield JournalRecord(seq, ts, kind, None if body == _NIL else decode(body))


# --- snapshots -----------------------------------------------------------------------------------------------


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One snapshot: the engine state after journal record `journal_seq`, which ends at byte `journal_offset`.

    `state` is opaque to this module (the engine encodes it); `state_hash` is the engine's state hash at that
    point, checked again after loading so a snapshot that does not restore to the same state is refused.
    """

    version: int = VERSION
    journal_seq: int
    journal_offset: int
    ts: int
    event_seq: int
    state_hash: str
    state: bytes


_SNAP_DECODER = msgspec.msgpack.Decoder(Snapshot)


def snapshot_path(directory: Path, journal_seq: int) -> Path:
    return directory / f"snapshot-{journal_seq:020d}.msgpack"


def write_snapshot(directory: Path | str, snapshot: Snapshot, *, keep: int = 3) -> Path:
    """Write atomically (temp + fsync + rename + fsync of the directory); keep the newest `keep` snapshots."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    body = _ENCODER.encode(snapshot)
    data = _SNAP_HEADER.pack(SNAPSHOT_MAGIC, zlib.crc32(body), len(body)) + body
    final = snapshot_path(directory, snapshot.journal_seq)
    tmp = final.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, final)
    # The rename is durable only once the directory entry is: without this a power loss can bring back the old name.
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    for old in sorted(directory.glob("snapshot-*.msgpack"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return final


def read_snapshot(path: Path | str) -> Snapshot | None:
    """The snapshot in `path`, or None if it is truncated, corrupt or of another version."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if len(data) < _SNAP_HEADER.size:
        return None
    magic, crc, length = _SNAP_HEADER.unpack_from(data)
    body = data[_SNAP_HEADER.size :]
    if magic != SNAPSHOT_MAGIC or length != len(body) or zlib.crc32(body) != crc:
        return None
    try:
        snap = _SNAP_DECODER.decode(body)
    except msgspec.MsgspecError:
        return None
    return snap if snap.version == VERSION else None


def snapshots_newest_first(directory: Path | str) -> Iterator[Snapshot]:
    """Every valid snapshot in `directory`, newest first (invalid ones are skipped)."""
    directory = Path(directory)
    if not directory.exists():
        return
    for path in sorted(directory.glob("snapshot-*.msgpack"), reverse=True):
        snap = read_snapshot(path)
        if snap is not None:
            yield snap
