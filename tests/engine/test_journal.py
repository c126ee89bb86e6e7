"""The journal: records round-trip, torn and corrupt tails are cut, snapshots are atomic and validated."""

from __future__ import annotations

import os
import struct
from decimal import Decimal

import pytest

from engine.enums import Side
from engine.instruments import Instrument, InstrumentRegistry
from engine.journal import (
    HEADER_SIZE,
    FsyncPolicy,
    Journal,
    JournalError,
    RecordKind,
    Snapshot,
    read_journal,
    read_snapshot,
    scan,
    snapshots_newest_first,
    write_snapshot,
)
from engine.protocol import BookDeltas, Codec, Heartbeat, RiskLimits, Scope, SetLimits, TradePrinted


@pytest.fixture
def codec() -> Codec:
    instrument = Instrument(
        symbol="BTC-USD", tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), price_precision=2, size_precision=3
    )
    return Codec(InstrumentRegistry([instrument]))


def _deltas(seq: int) -> BookDeltas:
    return BookDeltas(symbol="BTC-USD", seq=seq, ts=seq * 10, deltas=((Side.BUY, 100 + seq, seq),))


def _write(path, codec, n: int, policy: FsyncPolicy = FsyncPolicy.NEVER) -> list[int]:
    journal = Journal(path, codec, policy=policy)
    offsets = []
    for i in range(1, n + 1):
        journal.append(RecordKind.MARKET_DATA, i * 10, _deltas(i))
        offsets.append(journal.offset)
    journal.close()
    return offsets


def test_appended_records_read_back_in_order_with_their_kind_and_time(tmp_path, codec):
    path = tmp_path / "j"
    journal = Journal(path, codec, policy=FsyncPolicy.EVERY_RECORD)
    limits = SetLimits(
        command_id="c1",
        operator="risk",
        ts=5,
        scope=Scope.firm(),
        limits=RiskLimits(max_order_quantity=Decimal("1.5")),
    )

    journal.append(RecordKind.COMMAND, 5, limits)
    journal.append(RecordKind.MARKET_DATA, 6, _deltas(1))
    journal.append(RecordKind.TIMER, 7, None)
    journal.close()
    records = list(read_journal(path, codec))

    assert [(r.seq, r.ts, r.kind) for r in records] == [(1, 5, 1), (2, 6, 2), (3, 7, 4)]
    assert records[0].message == limits
    assert records[1].message == _deltas(1)
    assert records[2].message is None


@pytest.mark.parametrize("cut", [1, 4, 8, 9, 20])
def test_a_torn_last_record_is_dropped_and_truncated_on_reopen(tmp_path, codec, cut):
    path = tmp_path / "j"
    offsets = _write(path, codec, 5)
    os.truncate(path, offsets[3] + cut)  # part of record 5 (header or body) made it to disk

    assert [r.seq for r in read_journal(path, codec)] == [1, 2, 3, 4]
    journal = Journal(path, codec)

    assert journal.last_seq == 4
    assert journal.truncated_bytes == cut
    assert path.stat().st_size == offsets[3]
    assert journal.append(RecordKind.MARKET_DATA, 99, _deltas(5)) == 5
    journal.close()
    assert [r.seq for r in read_journal(path, codec)] == [1, 2, 3, 4, 5]


def test_reading_stops_at_a_record_whose_crc_does_not_match(tmp_path, codec):
    path = tmp_path / "j"
    offsets = _write(path, codec, 5)
    data = bytearray(path.read_bytes())
    data[offsets[1] + 12] ^= 0xFF  # a bit flip inside record 3's payload
    path.write_bytes(bytes(data))

    result = scan(path)

    assert result.last_seq == 2
    assert result.valid_end == offsets[1]
    assert result.stop_reason == "CRC mismatch"


def test_reading_stops_at_a_record_that_breaks_the_sequence(tmp_path, codec):
    path = tmp_path / "j"
    offsets = _write(path, codec, 3)
    data = path.read_bytes()
    record2 = data[offsets[0] : offsets[1]]
    path.write_bytes(data + record2)  # a replayed copy of record 2 after record 3

    result = scan(path)

    assert result.last_seq == 3
    assert result.stop_reason.startswith("sequence break")


def test_an_absurd_length_prefix_is_treated_as_corruption_not_allocated(tmp_path, codec):
    path = tmp_path / "j"
    offsets = _write(path, codec, 2)
    with open(path, "ab") as f:
        f.write(struct.pack("<II", 2**31, 0) + b"xx")

    result = scan(path)

    assert result.last_seq == 2
    assert result.valid_end == offsets[1]
    assert "beyond the limit" in result.stop_reason


def test_a_file_that_is_not_a_journal_is_refused(tmp_path, codec):
    path = tmp_path / "j"
    path.write_bytes(b"NOTAJRNL" + b"\x01\x00\x00\x00")

    with pytest.raises(JournalError) as excinfo:
        Journal(path, codec)

    assert excinfo.value.code == "JOURNAL_BAD_MAGIC"


def test_reading_from_a_snapshot_offset_skips_earlier_records(tmp_path, codec):
    path = tmp_path / "j"
    offsets = _write(path, codec, 6)

    records = list(read_journal(path, codec, start_offset=offsets[2]))
    after = list(read_journal(path, codec, after_seq=4))

    assert [r.seq for r in records] == [4, 5, 6]
    assert [r.seq for r in after] == [5, 6]


@pytest.mark.parametrize("policy", list(FsyncPolicy))
def test_every_fsync_policy_writes_every_record_before_append_returns(tmp_path, codec, policy):
    path = tmp_path / "j"
    journal = Journal(path, codec, policy=policy, batch_records=3)

    for i in range(1, 8):
        journal.append(RecordKind.MARKET_DATA, i, _deltas(i))

    # Read while still open: nothing sits in a user-space buffer, so a process crash here loses nothing.
    assert scan(path).last_seq == 7
    journal.close()


def test_a_new_journal_starts_with_the_header_only(tmp_path, codec):
    path = tmp_path / "j"

    Journal(path, codec).close()

    assert path.stat().st_size == HEADER_SIZE
    assert scan(path).records == 0


def _snapshot(seq: int, state: bytes = b"state") -> Snapshot:
    return Snapshot(journal_seq=seq, journal_offset=100 + seq, ts=seq, event_seq=seq * 2, state_hash="h", state=state)


def test_the_newest_valid_snapshot_wins_and_a_corrupt_one_is_skipped(tmp_path):
    write_snapshot(tmp_path, _snapshot(10))
    newest = write_snapshot(tmp_path, _snapshot(20))
    data = bytearray(newest.read_bytes())
    data[-1] ^= 0x01
    newest.write_bytes(bytes(data))

    found = list(snapshots_newest_first(tmp_path))

    assert [s.journal_seq for s in found] == [10]
    assert read_snapshot(newest) is None


def test_snapshot_writing_keeps_only_the_newest_few_and_leaves_no_temp_file(tmp_path):
    for seq in range(1, 6):
        write_snapshot(tmp_path, _snapshot(seq, b"x" * seq), keep=2)

    names = sorted(p.name for p in tmp_path.iterdir())

    assert names == ["snapshot-00000000000000000004.msgpack", "snapshot-00000000000000000005.msgpack"]
    assert read_snapshot(tmp_path / names[1]).state == b"xxxxx"


def test_records_of_every_inbound_family_round_trip(tmp_path, codec):
    path = tmp_path / "j"
    journal = Journal(path, codec)
    trade = TradePrinted(symbol="BTC-USD", seq=1, ts=3, trade_id=1, price=100, quantity=2, aggressor=Side.SELL)
    beat = Heartbeat(command_id="hb1", operator="ops", ts=4, last_seq=0)

    journal.append(RecordKind.MARKET_DATA, 3, trade)
    journal.append(RecordKind.COMMAND, 4, beat)
    journal.close()

    assert [r.message for r in read_journal(path, codec)] == [trade, beat]
