"""The messages added for the consoles (market trades, depth, fees, halt completion, utilisation, venue status):
records written before they existed still decode, and the new ones refuse what they cannot carry."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from engine.enums import OrderStatus
from engine.protocol import (
    MAX_DEPTH_LEVELS,
    BookDepth,
    Codec,
    EventEnvelope,
    InstrumentRegistry,
    PnlUpdated,
    PositionChanged,
    PriceLevel,
    ProtocolError,
    ProtocolErrorCode,
    QueryVenueOrders,
    Scope,
    ScopeUtilisation,
    StateSnapshot,
    VenueOrderStatus,
)


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(InstrumentRegistry.from_toml())


def _old_format(codec: Codec, msg: msgspec.Struct, *dropped: str, inside: str | None = None) -> bytes:
    """`msg` as a sender from before `dropped` existed wrote it: the same map without those keys."""
    wire = msgspec.msgpack.decode(codec.encode(msg))
    target = wire[inside] if inside else wire
    for name in dropped:
        del target[name]
    return msgspec.msgpack.encode(wire)


def test_a_journaled_position_change_from_before_fees_decodes_with_zero_fees(codec: Codec) -> None:
    position = PositionChanged(
        strategy_id="mm-btc", symbol="BTCUSDT", quantity=-2, avg_price=Decimal("65000.1"), realized_pnl=Decimal("3")
    )
    envelope = EventEnvelope(engine_id="eng-1", seq=7, ts=1, event=position)

    decoded = codec.decode_event(_old_format(codec, envelope, "fees", inside="event"))

    assert decoded.event.fees == Decimal(0)
    assert decoded == envelope


def test_pnl_and_snapshots_from_before_fees_and_utilisation_decode_with_defaults(codec: Codec) -> None:
    pnl = PnlUpdated(scope=Scope.firm(), realized_pnl=Decimal("1.5"), unrealized_pnl=Decimal("-0.5"))
    snapshot = StateSnapshot(command_id="c-1", engine_id="eng-1", seq=3, ts=4)

    old_pnl = codec.decode(_old_format(codec, pnl, "fees"))
    old_snapshot = codec.decode_reply(_old_format(codec, snapshot, "utilisation"))

    assert (old_pnl.fees, old_snapshot.utilisation) == (Decimal(0), ())


def test_a_newer_sender_adding_an_unknown_field_is_refused_by_name(codec: Codec) -> None:
    wire = msgspec.msgpack.decode(codec.encode(BookDepth(symbol="BTCUSDT")))
    wire["levels_total"] = 20

    with pytest.raises(ProtocolError) as caught:
        codec.decode(msgspec.msgpack.encode(wire))

    assert caught.value.code == ProtocolErrorCode.UNKNOWN_FIELD


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ((PriceLevel(price=10, size=1), PriceLevel(price=11, size=1)), ()),  # bids ascending
        ((), (PriceLevel(price=11, size=1), PriceLevel(price=11, size=2))),  # a price twice
        (tuple(PriceLevel(price=100 - i, size=1) for i in range(MAX_DEPTH_LEVELS + 1)), ()),  # 11 levels
    ],
    ids=["unsorted", "repeated", "too-deep"],
)
def test_book_depth_refuses_levels_out_of_order_or_beyond_ten(bids, asks) -> None:
    with pytest.raises(ProtocolError) as caught:
        BookDepth(symbol="BTCUSDT", bids=bids, asks=asks)

    assert caught.value.code == ProtocolErrorCode.INVALID_FIELD


def test_book_depth_over_ten_levels_on_the_wire_is_refused_on_decode(codec: Codec) -> None:
    wire = msgspec.msgpack.decode(codec.encode(BookDepth(symbol="BTCUSDT")))
    wire["bids"] = [{"price": 100 - i, "size": 1} for i in range(MAX_DEPTH_LEVELS + 1)]

    with pytest.raises(ProtocolError) as caught:
        codec.decode(msgspec.msgpack.encode(wire))

    assert caught.value.code == ProtocolErrorCode.INVALID_FIELD


def test_utilisation_refuses_a_negative_gross_exposure_but_allows_a_short_net_one() -> None:
    short = ScopeUtilisation(scope=Scope.firm(), net_exposure=Decimal("-5"), position=-3)

    with pytest.raises(ProtocolError) as caught:
        ScopeUtilisation(scope=Scope.firm(), gross_exposure=Decimal("-1"))

    assert short.net_exposure == Decimal("-5")
    assert caught.value.code == ProtocolErrorCode.INVALID_FIELD


def test_a_venue_order_status_for_an_unknown_symbol_is_refused_on_decode(codec: Codec) -> None:
    status = VenueOrderStatus(
        command_id="c-1",
        client_order_id="o-1",
        strategy_id="mm",
        symbol="BTCUSDT",
        status=OrderStatus.NEW,
        leaves_quantity=1,
        cum_quantity=0,
    )
    wire = msgspec.msgpack.decode(codec.encode(EventEnvelope(engine_id="e", seq=1, ts=1, event=status)))
    wire["event"]["symbol"] = "DOGEUSDT"

    with pytest.raises(ProtocolError) as caught:
        codec.decode_event(msgspec.msgpack.encode(wire))

    assert caught.value.code == ProtocolErrorCode.UNKNOWN_SYMBOL


def test_query_venue_orders_checks_an_instrument_scope_against_the_registry(codec: Codec) -> None:
    query = QueryVenueOrders(command_id="c", operator="ann", ts=1, scope=Scope.instrument("DOGEUSDT"))

    with pytest.raises(ProtocolError) as caught:
        codec.decode_command(codec.encode(query))

    assert caught.value.code == ProtocolErrorCode.UNKNOWN_SYMBOL
