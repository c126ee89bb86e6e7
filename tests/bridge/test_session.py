"""A scripted engine session through the real bridge process: the database ends up holding what the engine did."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from engine.enums import Side, TimeInForce
from engine.protocol import (
    CommandAccepted,
    CommandRejected,
    EventEnvelope,
    HaltTrading,
    LimitsChanged,
    OrderFilled,
    ReplaceOrder,
    RiskLimits,
    Scope,
    SetLimits,
    StrategyParamsChanged,
    TradingStateChanged,
    UpdateStrategyParams,
)
from tests.bridge.conftest import unique_engine_id
from tests.bridge.helpers import (
    BTC,
    assert_hash_chain_holds,
    assert_no_missing_and_no_duplicate_rows,
    cancel,
    order,
    persisted_events,
    working_orders_in_db,
    working_orders_in_engine,
)
from tests.engine_process import AS_BTC, BTC_FLOW
from trading.bridge.rows import JOURNALED, jsonable
from trading.models import (
    DeadLetter,
    Fill,
    Order,
    OrderEvent,
    Position,
    RiskLimitVersion,
    Strategy,
    StrategyParamVersion,
    TradingStateChange,
)


def test_a_scripted_session_with_orders_fills_cancels_a_limit_change_and_a_halt_is_persisted_exactly(
    engine_process, bridge_process
):
    # No market orders in the background flow: nothing but our own IOC order may trade against our resting orders,
    # so the engine's order state at a seq is still the state when the bridge's rows are read a little later.
    engine = engine_process(
        engine_id=unique_engine_id("session"),
        limits=[("firm", {"max_open_orders": 50})],
        flow=[{**BTC_FLOW, "market_share": 0.0}],
        strategies=[AS_BTC],
    )
    bridge = bridge_process(engine).start()
    client = engine.client()
    accepted = [
        client.request(order(engine, "rest-1", price="60000.0")),
        client.request(order(engine, "rest-2", side=Side.SELL, price="70000.0", qty="0.003")),
        client.request(order(engine, "take-1", price="66000.0", qty="0.001", tif=TimeInForce.IOC)),
        client.request(cancel(engine, "rest-1")),
        client.request(
            engine.command(
                ReplaceOrder,
                operator="tina_trader",
                client_order_id="rest-2b",
                orig_client_order_id="rest-2",
                symbol="BTCUSDT",
                price=Decimal("71000.0"),
                quantity=Decimal("0.004"),
            )
        ),
        client.request(
            engine.command(SetLimits, operator="rick_risk", scope=Scope.firm(), limits=RiskLimits(max_open_orders=40))
        ),
        client.request(order(engine, "rest-3", price="60500.0")),
        client.request(
            engine.command(
                UpdateStrategyParams,
                operator="tina_trader",
                strategy_id="as-btc",
                params={"gamma": Decimal("0.07")},
                reason="wider quotes into the close",
            )
        ),
    ]
    mid = engine.snapshot()
    bridge.wait_for_checkpoint(mid.seq)
    working_mid = working_orders_in_db(engine.engine_id)
    halt = client.request(
        engine.command(HaltTrading, operator="rick_risk", scope=Scope.firm(), reason="end of the scripted session")
    )
    denied = client.request(order(engine, "after-halt"))
    end = engine.snapshot()
    bridge.wait_for_checkpoint(end.seq)

    status = bridge.terminate()

    assert all(type(reply) is CommandAccepted for reply in [*accepted, halt]), accepted
    assert (type(denied), denied.code) == (CommandRejected, "STATE_HALTED")
    assert status == 0, bridge.log_text()
    checkpoint = bridge.checkpoint()
    events = persisted_events(engine, checkpoint)
    engine_id = engine.engine_id
    assert_no_missing_and_no_duplicate_rows(engine_id, events)
    assert_hash_chain_holds(engine_id)
    # Each order event row is the engine's event: its payload is the envelope's JSON, field for field.
    journaled = [env for env in events if type(env.event) in JOURNALED]
    rows = list(OrderEvent.objects.filter(engine_id=engine_id).order_by("seq"))
    assert [msgspec.json.decode(bytes(r.payload)) for r in rows] == [
        msgspec.json.decode(msgspec.json.encode(jsonable(env))) for env in journaled
    ]
    assert [msgspec.json.decode(bytes(r.payload), type=EventEnvelope).seq for r in rows] == [e.seq for e in journaled]
    assert [r.kind for r in rows] == [type(env.event).__name__ for env in journaled]
    # Working orders in the middle of the session were exactly the engine's.
    assert working_mid == working_orders_in_engine(mid)
    assert set(working_mid) == {"rest-2b", "rest-3"}
    # After the halt nothing works, in the engine and in the database.
    assert working_orders_in_engine(end) == {} == working_orders_in_db(engine_id)
    orders = {o.client_order_id: o for o in Order.objects.filter(engine_id=engine_id)}
    assert orders["rest-1"].status == "CANCELED"
    assert (orders["rest-2"].status, orders["rest-2"].code) == ("CANCELED", "REPLACED")
    assert (orders["rest-2b"].price, orders["rest-2b"].quantity) == (Decimal("71000.0"), Decimal("0.004"))
    assert "after-halt" not in orders
    # Fills: the engine's executions in Decimal, and the order's cumulative quantity and average price.
    fills = [env.event for env in events if type(env.event) is OrderFilled]
    assert fills, "the marketable IOC order should have traded"
    stored = list(Fill.objects.filter(engine_id=engine_id).order_by("seq"))
    assert [(f.exec_id, f.client_order_id, f.side, f.price, f.quantity, f.commission) for f in stored] == [
        (
            f.exec_id,
            f.client_order_id,
            Side(f.side).name,
            BTC.ticks_to_price(f.last_price),
            BTC.lots_to_qty(f.last_quantity),
            f.commission,
        )
        for f in fills
    ]
    take = orders["take-1"]
    assert take.cum_quantity == sum(f.quantity for f in stored)
    assert take.avg_fill_price == (sum(f.price * f.quantity for f in stored) / take.cum_quantity).quantize(
        Decimal("1e-12")
    )
    # Positions equal the engine's.
    for p in end.positions:
        row = Position.objects.get(engine_id=engine_id, strategy_id=p.strategy_id, symbol=p.symbol)
        assert (row.quantity, row.avg_price, row.realized_pnl) == (
            BTC.lots_to_qty(p.quantity),
            p.avg_price,
            p.realized_pnl,
        )
    # Limit versions and the halt.
    limit_events = [env for env in events if type(env.event) is LimitsChanged]
    versions = list(RiskLimitVersion.objects.filter(engine_id=engine_id).order_by("seq"))
    assert [(v.seq, v.scope_kind, v.operator) for v in versions] == [
        (env.seq, "FIRM", env.event.operator) for env in limit_events
    ]
    assert versions[-1].limits["max_open_orders"] == 40
    halts = [env for env in events if type(env.event) is TradingStateChanged]
    changes = list(TradingStateChange.objects.filter(engine_id=engine_id).order_by("seq"))
    assert [(c.seq, c.state, c.operator, c.reason) for c in changes] == [
        (env.seq, "HALTED", "rick_risk", "end of the scripted session") for env in halts
    ]
    # Strategy parameter history and the strategy's current parameters.
    param_events = [env for env in events if type(env.event) is StrategyParamsChanged]
    assert [
        (v.seq, v.version, v.params, v.operator, v.reason)
        for v in StrategyParamVersion.objects.filter(engine_id=engine_id).order_by("seq")
    ] == [
        (env.seq, env.event.version, jsonable(env.event.params), env.event.operator, env.event.reason)
        for env in param_events
    ]
    assert param_events[-1].event.reason == "wider quotes into the close"
    assert param_events[-1].event.params["gamma"] == Decimal("0.07")
    strategy = Strategy.objects.get(strategy_id="as-btc")
    assert (strategy.params_version, strategy.params, strategy.engine_id) == (
        param_events[-1].event.version,
        jsonable(param_events[-1].event.params),
        engine_id,
    )
    assert not DeadLetter.objects.filter(engine_id=engine_id).exists()
