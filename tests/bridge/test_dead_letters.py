"""Frames the bridge cannot use are set aside in trading_deadletter with their bytes and reason; the stream goes on."""

from __future__ import annotations

import time

import msgspec
import pytest

from engine.protocol import Codec, EventEnvelope, InstrumentRegistry, TopOfBookChanged
from tests.bridge.conftest import unique_engine_id
from tests.bridge.helpers import assert_no_missing_and_no_duplicate_rows, persisted_events
from tests.engine_process import BTC_FLOW, INSTRUMENTS_FILE
from trading.bridge.link import decode_frame
from trading.bridge.rows import Units
from trading.bridge.writer import DeadLetter as BridgeDeadLetter
from trading.bridge.writer import Pending, Writer
from trading.models import BridgeCheckpoint, DeadLetter, Tick

CODEC = Codec(InstrumentRegistry.from_toml(INSTRUMENTS_FILE))

EXTRA_INSTRUMENT = """
[[instruments]]
symbol = "XYZUSDT"
description = "an instrument the engine lists and the bridge's registry does not"
venue = "SIM"
currency = "USDT"
tick_size = "0.01"
lot_size = "0.001"
price_precision = 2
size_precision = 3
"""


def tob_frame(engine_id: str, seq: int, **changes) -> bytes:
    event = TopOfBookChanged(symbol="BTCUSDT", bid_price=650000, bid_size=5, ask_price=650010, ask_size=7)
    env = EventEnvelope(engine_id=engine_id, seq=seq, ts=time.time_ns(), event=event)
    if not changes:
        return CODEC.encode(env)
    raw = msgspec.to_builtins(env)
    raw["event"] |= {**changes, "type": "TopOfBookChanged"}
    return msgspec.msgpack.encode({**raw, "type": "EventEnvelope"})


@pytest.fixture
def writer(transactional_db):
    from django.conf import settings

    from trading.bridge.writer import conninfo_from_settings

    w = Writer(
        conninfo=conninfo_from_settings(settings.DATABASES["default"]),
        engine_id=unique_engine_id("dead"),
        units=Units(CODEC.instruments),
    )
    w.connect()
    try:
        yield w
    finally:
        w.close()


def test_undecodable_bytes_and_an_event_with_a_bad_field_become_dead_letters_and_the_stream_continues(writer):
    engine_id = writer.engine_id
    garbage = b"\xc1not messagepack at all"
    bad_field = tob_frame(engine_id, 2, bid_size=-3)
    frames = [tob_frame(engine_id, 1), garbage, bad_field, tob_frame(engine_id, 3)]
    items = [decode_frame(CODEC, engine_id, frame) for frame in frames]

    checkpoint, fresh = writer.flush(items)

    assert checkpoint == 3 and len(fresh) == 4
    dead = {d.reason_code: d for d in DeadLetter.objects.filter(engine_id=engine_id)}
    assert set(dead) == {"MALFORMED", "NON_POSITIVE_QUANTITY"}
    assert (dead["MALFORMED"].seq, bytes(dead["MALFORMED"].raw)) == (None, garbage)
    assert (dead["NON_POSITIVE_QUANTITY"].seq, bytes(dead["NON_POSITIVE_QUANTITY"].raw)) == (2, bad_field)
    assert "bid_size" in dead["NON_POSITIVE_QUANTITY"].reason
    assert list(Tick.objects.filter(engine_id=engine_id).order_by("seq").values_list("seq", flat=True)) == [1, 3]
    assert BridgeCheckpoint.objects.get(engine_id=engine_id).last_seq == 3


def test_a_batch_of_dead_letters_written_again_after_a_lost_commit_acknowledgement_is_stored_once(writer):
    engine_id = writer.engine_id
    # No seq (undecodable bytes), a seq of their own (a bad field), and a refused replay as the bridge records it.
    frames = [b"\xc1garbage", tob_frame(engine_id, 1, bid_size=-3)]
    items = [decode_frame(CODEC, engine_id, frame) for frame in frames]
    refused = Pending(seq=None, dead=BridgeDeadLetter(engine_id, 2, "REPLAY_REFUSED", "journal truncated", b""))
    writer.flush([*items, refused])

    # The commit went through but its acknowledgement was lost: the bridge reconnects and writes the batch again,
    # then a restarted bridge meets the same refused replay.
    writer.connect()
    writer.flush([*items, refused])
    writer.flush([refused])

    stored = DeadLetter.objects.filter(engine_id=engine_id)
    assert sorted((d.reason_code, d.seq) for d in stored) == [
        ("MALFORMED", None),
        ("NON_POSITIVE_QUANTITY", 1),
        ("REPLAY_REFUSED", 2),
    ]


def test_an_event_of_another_engine_on_the_stream_is_set_aside_not_written(writer):
    item = decode_frame(CODEC, writer.engine_id, tob_frame("someone-else", 1))

    checkpoint, _ = writer.flush([item])

    assert checkpoint == 0
    assert DeadLetter.objects.get(engine_id=writer.engine_id).reason_code == "ENGINE_ID_MISMATCH"
    assert not Tick.objects.filter(engine_id__in=[writer.engine_id, "someone-else"]).exists()


def test_events_the_bridge_cannot_read_from_a_real_engine_are_dead_lettered_while_the_rest_is_persisted(
    engine_process, bridge_process, tmp_path
):
    # The engine lists an instrument the bridge's registry lacks (configuration drift between the two processes):
    # every event on it fails the bridge's symbol check.
    instruments = tmp_path / "instruments.toml"
    instruments.write_text(INSTRUMENTS_FILE.read_text() + EXTRA_INSTRUMENT)
    xyz_flow = {**BTC_FLOW, "symbol": "XYZUSDT", "initial_price": 100000, "seed": 11}
    engine = engine_process(
        engine_id=unique_engine_id("drift"), instruments_file=instruments, flow=[BTC_FLOW, xyz_flow]
    )
    bridge = bridge_process(engine, env={"ENGINE_INSTRUMENTS_FILE": str(INSTRUMENTS_FILE)}).start()

    bridge.wait_for_checkpoint(engine.snapshot().seq)
    status = bridge.terminate()

    assert status == 0, bridge.log_text()
    checkpoint = bridge.checkpoint()
    events = persisted_events(engine, checkpoint)
    xyz = [e for e in events if getattr(e.event, "symbol", "") == "XYZUSDT"]
    assert xyz, "the XYZUSDT flow should have published events"
    dead = list(DeadLetter.objects.filter(engine_id=engine.engine_id).order_by("seq"))
    assert [(d.seq, d.reason_code) for d in dead] == [(e.seq, "UNKNOWN_SYMBOL") for e in xyz]
    assert [engine.codec().decode_event(bytes(d.raw)) for d in dead] == xyz
    assert_no_missing_and_no_duplicate_rows(engine.engine_id, events, skip_symbols=("XYZUSDT",))
    assert "dead letter UNKNOWN_SYMBOL" in bridge.log_text()
