"""The bridge's fast market-data decoder accepts exactly what the protocol Codec accepts, with the same content."""

from __future__ import annotations

import msgspec
import pytest

from engine.protocol import Codec, EventEnvelope, InstrumentRegistry, MarketTrade, ProtocolError, Side, TopOfBookChanged
from tests.engine_process import INSTRUMENTS_FILE
from trading.bridge.fast import decode_fast

CODEC = Codec(InstrumentRegistry.from_toml(INSTRUMENTS_FILE))
SYMBOLS = frozenset(CODEC.instruments.symbols)
TOB = TopOfBookChanged(symbol="BTCUSDT", bid_price=650000, bid_size=5, ask_price=650010, ask_size=7, venue_ts=9)
TRADE = MarketTrade(symbol="ETHUSDT", price=350000, quantity=12, aggressor=Side.SELL, trade_id=4)


def frame(event, **changes) -> bytes:
    raw = msgspec.to_builtins(EventEnvelope(engine_id="e1", seq=5, ts=123, event=event))
    envelope_changes = {k[4:]: v for k, v in changes.items() if k.startswith("env_")}
    event_changes = {k: v for k, v in changes.items() if not k.startswith("env_")}
    raw["event"] |= {**event_changes, "type": type(event).__name__}
    return msgspec.msgpack.encode({**raw, **envelope_changes, "type": "EventEnvelope"})


@pytest.mark.parametrize("event", [TOB, TRADE], ids=["top of book", "market trade"])
def test_a_valid_market_data_frame_decodes_to_the_same_fields_as_the_codec_gives(event):
    data = frame(event)

    fast = decode_fast(data, SYMBOLS)
    full = CODEC.decode_event(data)

    assert (fast.engine_id, fast.seq, fast.ts) == (full.engine_id, full.seq, full.ts)
    assert msgspec.to_builtins(fast.event) == msgspec.to_builtins(full.event)


@pytest.mark.parametrize(
    "changes",
    [
        {"bid_size": -1},
        {"bid_price": 2**63},
        {"symbol": "NOPE"},
        {"symbol": ""},
        {"symbol": "X" * 33},
        {"surprise": 1},
        {"v": 2, "env_v": 2},
        {"env_v": 2},
        {"env_seq": 0},
        {"env_engine_id": ""},
        {"ask_size": "7"},
    ],
)
def test_a_frame_the_codec_refuses_is_left_to_the_codec_by_the_fast_decoder(changes):
    data = frame(TOB, **changes)

    fast = decode_fast(data, SYMBOLS)

    assert fast is None
    with pytest.raises(ProtocolError):
        CODEC.decode_event(data)


def test_a_trade_with_a_bad_aggressor_or_zero_price_is_left_to_the_codec():
    for changes in ({"aggressor": 0}, {"price": 0}, {"quantity": 0}):
        data = frame(TRADE, **changes)

        assert decode_fast(data, SYMBOLS) is None
        with pytest.raises(ProtocolError):
            CODEC.decode_event(data)
