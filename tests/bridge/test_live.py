"""Live updates: conflated per topic, stored for snapshots, sent to the channel-layer groups the console joins."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

from channels.layers import get_channel_layer

from engine.enums import Side, TradingState
from engine.protocol import (
    EngineHeartbeat,
    EventEnvelope,
    InstrumentRegistry,
    MarketTrade,
    OrderFilled,
    PnlUpdated,
    Scope,
    ScopeTradingState,
    StateSnapshot,
    TopOfBookChanged,
    TradingStateChanged,
)
from tests.bridge.conftest import unique_engine_id
from tests.bridge.helpers import order
from tests.conftest import free_port, wait_for
from tests.engine_process import INSTRUMENTS_FILE
from trading import live
from trading.bridge.livestate import TRADES_KEPT, LivePublisher, LiveState
from trading.bridge.rows import Units
from trading.bridge.service import Bridge
from trading.bridge.writer import Pending, Writer, conninfo_from_settings

UNITS = Units(InstrumentRegistry.from_toml(INSTRUMENTS_FILE))


def tob(seq: int, bid: int) -> EventEnvelope:
    event = TopOfBookChanged(symbol="BTCUSDT", bid_price=bid, bid_size=3, ask_price=bid + 10, ask_size=4)
    return EventEnvelope(engine_id="e1", seq=seq, ts=1_000 + seq, event=event)


def test_many_book_changes_between_two_publishes_become_one_update_with_the_latest_state():
    state = LiveState(engine_id="e1", units=UNITS)
    heartbeat = EventEnvelope(
        engine_id="e1", seq=101, ts=2_000, event=EngineHeartbeat(interval_ns=10**9, firm_state=TradingState.ACTIVE)
    )
    state.apply([tob(seq, 650_000 + seq) for seq in range(1, 101)] + [heartbeat], {})

    first = state.take()
    second = state.take()

    assert [m["topic"] for m in first] == ["tob.BTCUSDT", "heartbeat"]
    assert first[0] == {
        "type": "live.update",
        "topic": "tob.BTCUSDT",
        "seq": 100,
        "engine_id": "e1",
        "ts": 1_100,
        "data": {
            "symbol": "BTCUSDT",
            "bid": "65010.0",
            "bid_size": "0.003",
            "ask": "65011.0",
            "ask_size": "0.004",
            "mid": "65010.5",
        },
    }
    assert first[1]["data"] == {"engine_id": "e1", "firm_state": "ACTIVE", "ts": 2_000}
    assert second == []


def test_publish_stores_the_latest_state_and_reaches_the_topic_group(transactional_db):
    async def publish_and_receive():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(live.group_name("alerts"), channel)
        await asyncio.to_thread(live.publish, "alerts", data={"alert": {"title": "t"}}, seq=7)
        return await asyncio.wait_for(layer.receive(channel), timeout=10)

    received = asyncio.run(publish_and_receive())

    assert received["type"] == "live.update" and received["data"] == {"alert": {"title": "t"}}
    assert live.latest(["alerts", "never-published"]) == {
        "alerts": {"seq": 7, "ts": 0, "engine_id": "", "data": {"alert": {"title": "t"}}}
    }


def test_a_publisher_that_stalled_never_replaces_a_newer_state_of_the_same_source():
    live.publish("alerts", data={"alerts": ["newer"]}, seq=20, engine_id="riskdesk")
    live.publish("alerts", data={"alerts": ["older"]}, seq=10, engine_id="riskdesk")
    after_stale = live.latest(["alerts"])["alerts"]["data"]
    live.publish("alerts", data={"alerts": ["other source"]}, seq=1, engine_id="engine-2")

    assert after_stale == {"alerts": ["newer"]}
    assert live.latest(["alerts"])["alerts"]["data"] == {"alerts": ["other source"]}


def test_the_bridge_publishes_working_orders_and_the_top_of_book_after_they_are_committed(
    engine_process, bridge_process
):
    engine = engine_process(engine_id=unique_engine_id("live"))
    bridge = bridge_process(engine).start()
    bridge.wait_for_checkpoint(1)

    async def order_and_receive():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(live.group_name("orders"), channel)
        reply = await asyncio.to_thread(engine.client().request, order(engine, "live-1"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = await asyncio.wait_for(layer.receive(channel), timeout=60)
            if any(o["client_order_id"] == "live-1" for o in msg["data"]["working"]):
                return reply, msg
        raise AssertionError("no orders update with live-1")

    reply, update = asyncio.run(order_and_receive())
    latest = wait_for(
        lambda: (snap := live.latest(["orders", "tob.BTCUSDT"])) and len(snap) == 2 and snap,
        timeout=30,
        what="stored live state",
    )

    assert type(reply).__name__ == "CommandAccepted"
    assert update["engine_id"] == engine.engine_id
    assert update["seq"] <= bridge.checkpoint()  # published after the rows behind it were committed
    working = {o["client_order_id"]: o for o in latest["orders"]["data"]["working"]}
    assert working["live-1"]["price"] == "60000.0" and working["live-1"]["quantity"] == "0.002"
    assert latest["orders"]["seq"] <= bridge.checkpoint()
    book = latest["tob.BTCUSDT"]["data"]
    assert book["symbol"] == "BTCUSDT" and book["bid"] and book["ask"]


def order_row(cid: str, status: str, seq: int) -> dict:
    return {"client_order_id": cid, "status": status, "last_seq": seq, "price": Decimal("60000.0"), "symbol": "BTCUSDT"}


def test_the_orders_topic_lists_working_orders_and_drops_one_once_it_is_closed():
    state = LiveState(engine_id="e1", units=UNITS)
    state.apply([tob(1, 650_000)], {"a": order_row("a", "NEW", 1), "b": order_row("b", "NEW", 1)})
    opened = {m["topic"]: m for m in state.take()}["orders"]

    state.apply([tob(2, 650_001)], {"a": order_row("a", "CANCELED", 2)})
    closed = {m["topic"]: m for m in state.take()}["orders"]

    assert sorted(o["client_order_id"] for o in opened["data"]["working"]) == ["a", "b"]
    assert opened["data"]["working"][0]["price"] == "60000.0"
    assert [o["client_order_id"] for o in closed["data"]["working"]] == ["b"]
    assert closed["seq"] == 2


def test_events_already_in_the_engine_snapshot_do_not_move_the_state_it_seeded_back():
    snapshot = StateSnapshot(
        command_id="c",
        engine_id="e1",
        seq=10,
        ts=5,
        trading_states=(ScopeTradingState(scope=Scope.firm(), state=TradingState.HALTED, operator="rick"),),
    )
    older = EventEnvelope(
        engine_id="e1",
        seq=9,
        ts=4,
        event=TradingStateChanged(
            scope=Scope.firm(), state=TradingState.ACTIVE, previous=TradingState.REDUCING, reason="replayed"
        ),
    )
    state = LiveState(engine_id="e1", units=UNITS)
    state.load_snapshot(snapshot)

    state.apply([older], {})
    published = {m["topic"]: m for m in state.take()}

    assert published["trading_state"]["data"]["states"] == [
        {"scope_kind": "FIRM", "scope_name": "", "state": "HALTED", "operator": "rick", "reason": "", "code": ""}
    ]


def pnl_event(seq: int, scope: Scope, realized: str, engine_id: str = "e1") -> EventEnvelope:
    event = PnlUpdated(scope=scope, realized_pnl=Decimal(realized), unrealized_pnl=Decimal("1.5"), fees=Decimal("0.2"))
    return EventEnvelope(engine_id=engine_id, seq=seq, ts=time.time_ns(), event=event)


def test_a_restarted_bridge_publishes_heartbeat_pnl_and_fills_at_once_so_an_earlier_runs_state_is_replaced():
    snapshot = StateSnapshot(
        command_id="c",
        engine_id="e1",
        seq=10,
        ts=5_000,
        trading_states=(ScopeTradingState(scope=Scope.firm(), state=TradingState.REDUCING, operator="rick"),),
    )
    stored_fill = {"seq": 8, "ts": 4_000, "exec_id": "x1", "client_order_id": "a", "price": "60000.0"}
    firm = {"scope_kind": "FIRM", "scope_name": "", "realized": "12.5", "unrealized": "1.5", "fees": "0.2"}
    restarted = LiveState(engine_id="e1", units=UNITS)
    restarted.load_snapshot(snapshot, [stored_fill], [(7, 3_000, firm)])
    fresh = LiveState(engine_id="e1", units=UNITS)
    fresh.load_snapshot(snapshot)

    published = {m["topic"]: m for m in restarted.take()}
    restarted.apply([pnl_event(9, Scope.firm(), "13.0")], {})  # replayed: after the stored row, before the snapshot
    replayed = {m["topic"]: m for m in restarted.take()}
    empty = {m["topic"]: m for m in fresh.take()}

    assert (published["heartbeat"]["seq"], published["heartbeat"]["data"]) == (
        10,
        {"engine_id": "e1", "firm_state": "REDUCING", "ts": 5_000},
    )
    # Stored rows go out under their own seq: the replayed P&L after them is newer, not older than the snapshot.
    assert (published["pnl"]["seq"], published["pnl"]["data"]) == (7, {"scopes": [firm]})
    assert (published["fills"]["seq"], published["fills"]["data"]) == (8, {"fills": [stored_fill]})
    assert (replayed["pnl"]["seq"], replayed["pnl"]["data"]["scopes"][0]["realized"]) == (9, "13.0")
    # Nothing stored for this engine: empty states, which still replace whatever an earlier engine left.
    assert (empty["pnl"]["data"], empty["fills"]["data"]) == ({"scopes": []}, {"fills": []})


def test_the_newest_stored_pnl_of_each_scope_is_what_a_starting_bridge_loads(engine_process, transactional_db):
    from django.conf import settings

    engine = engine_process(engine_id=unique_engine_id("pnlload"), flow=[])
    bridge = Bridge(
        conninfo=conninfo_from_settings(settings.DATABASES["default"]),
        command_endpoint=engine.command_endpoint,
        event_endpoint=engine.event_endpoint,
        keys_dir=engine.keys_dir,
        instruments=InstrumentRegistry.from_toml(INSTRUMENTS_FILE),
    )
    bridge.engine_id = engine_id = engine.engine_id
    bridge.writer = Writer(conninfo=bridge.conninfo, engine_id=bridge.engine_id, units=UNITS)
    bridge.writer.connect()
    try:
        events = [
            pnl_event(1, Scope.firm(), "1.0", engine_id),
            pnl_event(2, Scope.strategy("as-btc"), "2.0", engine_id),
            pnl_event(3, Scope.firm(), "3.0", engine_id),
        ]
        bridge.writer.flush([Pending(seq=e.seq, env=e) for e in events])

        loaded = {(scope["scope_kind"], scope["scope_name"]): (seq, scope) for seq, _ts, scope in bridge._latest_pnl()}
    finally:
        bridge.writer.close()
        bridge.link.close()

    assert {key: (seq, scope["realized"]) for key, (seq, scope) in loaded.items()} == {
        ("FIRM", ""): (3, "3"),
        ("STRATEGY", "as-btc"): (2, "2"),
    }
    assert loaded[("FIRM", "")][1] == {
        "scope_kind": "FIRM",
        "scope_name": "",
        "realized": "3",
        "unrealized": "1.5",
        "fees": "0.2",
    }


def test_a_starting_bridge_seeds_fills_with_their_exact_nanosecond_and_pnl_with_its_microsecond(
    engine_process, transactional_db
):
    from django.conf import settings

    engine = engine_process(engine_id=unique_engine_id("tsload"), flow=[])
    bridge = Bridge(
        conninfo=conninfo_from_settings(settings.DATABASES["default"]),
        command_endpoint=engine.command_endpoint,
        event_endpoint=engine.event_endpoint,
        keys_dir=engine.keys_dir,
        instruments=InstrumentRegistry.from_toml(INSTRUMENTS_FILE),
    )
    bridge.engine_id = engine_id = engine.engine_id
    bridge.writer = Writer(conninfo=bridge.conninfo, engine_id=engine_id, units=UNITS)
    bridge.writer.connect()
    ts = time.time_ns() // 10**9 * 10**9 + 123_456_789  # well inside a second: rounding to seconds shows
    fill = OrderFilled(
        strategy_id="manual",
        client_order_id="a",
        symbol="BTCUSDT",
        side=Side.BUY,
        exec_id="x-1",
        venue_order_id=2,
        last_price=600000,
        last_quantity=2,
        leaves_quantity=0,
        cum_quantity=2,
        commission=Decimal("0.01"),
    )
    pnl = PnlUpdated(scope=Scope.firm(), realized_pnl=Decimal("1"), unrealized_pnl=Decimal("0"))
    events = [EventEnvelope(engine_id=engine_id, seq=s, ts=ts, event=e) for s, e in ((1, fill), (2, pnl))]
    try:
        bridge.writer.flush([Pending(seq=e.seq, env=e) for e in events])

        fills = bridge._recent_fills()
        pnls = bridge._latest_pnl()
    finally:
        bridge.writer.close()
        bridge.link.close()

    assert [(f["seq"], f["ts"]) for f in fills] == [(1, ts)]
    # trading_pnlsnapshot keeps no ts_ns: its timestamptz holds whole microseconds.
    assert [(seq, seed_ts) for seq, seed_ts, _scope in pnls] == [(2, ts // 1000 * 1000)]


def market_trade(seq: int, price: int) -> EventEnvelope:
    event = MarketTrade(symbol="BTCUSDT", price=price, quantity=1, aggressor=Side.SELL)
    return EventEnvelope(engine_id="e1", seq=seq, ts=1_000 + seq, event=event)


def test_a_burst_of_trades_beyond_what_one_update_carries_keeps_the_newest_ones():
    state = LiveState(engine_id="e1", units=UNITS)
    state.apply([market_trade(seq, 600_000 + seq) for seq in range(1, TRADES_KEPT + 101)], {})

    (update,) = state.take()

    trades = update["data"]["trades"]
    assert (update["topic"], update["seq"], len(trades)) == ("trades.BTCUSDT", TRADES_KEPT + 100, TRADES_KEPT)
    # Newest first: the last trade of the burst down to the 101st; the first 100 are the ones left out.
    assert [t["ts"] for t in trades] == [1_000 + seq for seq in range(TRADES_KEPT + 100, 100, -1)]


def test_trades_of_an_update_redis_refused_are_sent_again_with_the_ones_that_came_after(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/4"  # nothing listens: every send fails
    state = LiveState(engine_id="e1", units=UNITS)
    state.apply([market_trade(1, 600_001), market_trade(2, 600_002)], {})
    publisher = LivePublisher(state, interval_s=0.01)
    publisher.start()
    try:
        wait_for(lambda: publisher.failures >= 2, timeout=30, what="the publisher to fail twice")
        state.apply([market_trade(3, 600_003)], {})  # arrives while the sends keep failing
        wait_for(lambda: publisher.failures >= 4, timeout=30, what="the publisher to fail twice more")
    finally:
        publisher.stop()

    (retry,) = state.take()  # what the next attempt sends

    assert (retry["topic"], retry["seq"]) == ("trades.BTCUSDT", 3)
    assert [t["price"] for t in retry["data"]["trades"]] == ["60000.3", "60000.2", "60000.1"]
