"""The shared real-engine fixture (tests/engine_process.py) does what other test packages rely on."""

from __future__ import annotations

from decimal import Decimal

from engine.enums import OrderType, Side, TimeInForce
from engine.protocol import CommandAccepted, OrderSubmitted, RiskLimits, SubmitOrder
from tests.engine_process import AS_BTC, engine_process  # noqa: F401


def test_an_engine_killed_and_restarted_by_the_fixture_recovers_its_journal_and_continues_its_sequence(
    engine_process,  # noqa: F811
):
    engine = engine_process(strategies=[AS_BTC], limits=[("instrument:BTCUSDT", {"max_order_quantity": "0.1"})])
    client = engine.client()
    reply = client.request(
        engine.command(
            SubmitOrder,
            strategy_id="manual",
            client_order_id="fixture-1",
            symbol="BTCUSDT",
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=Decimal("60000.0"),
            quantity=Decimal("0.002"),
        )
    )
    before = engine.events()
    working = [o.client_order_id for o in engine.snapshot().orders]

    engine.restart()
    after = engine.snapshot()

    assert type(reply) is CommandAccepted
    assert any(type(e.event) is OrderSubmitted and e.event.client_order_id == "fixture-1" for e in before)
    assert after.seq >= before[-1].seq
    assert working == ["fixture-1"]
    assert after.limits[0].limits == RiskLimits(max_order_quantity=Decimal("0.1"))
    assert engine.events()[: len(before)] == before
