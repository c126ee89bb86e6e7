"""The backtester: the queue-position fill model, latency, the recorded and simulated runs, the CLI report."""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
import pytest

from engine.backtest import BacktestConfig, binance_file, load_binance, run_recorded, run_venue
from engine.backtest.__main__ import BINANCE_PARAMS, VENUE_PARAMS, main
from engine.backtest.fill_model import QueueFillModel
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.instruments import Instrument, InstrumentRegistry
from engine.protocol import BookDeltas, VenueCancelOrder, VenuePlaceOrder, VenueReplaceOrder

BUY, SELL = Side.BUY, Side.SELL


def _place(cid: str, side: Side, price: int, qty: int, order_type=OrderType.LIMIT) -> VenuePlaceOrder:
    return VenuePlaceOrder(
        client_order_id=cid,
        account="BT",
        symbol="X",
        side=side,
        order_type=order_type,
        time_in_force=TimeInForce.GTC if order_type == OrderType.LIMIT else TimeInForce.IOC,
        price=price if order_type == OrderType.LIMIT else 0,
        quantity=qty,
    )


def _replace(cid: str, orig: str, price: int, qty: int) -> VenueReplaceOrder:
    return VenueReplaceOrder(
        client_order_id=cid, orig_client_order_id=orig, account="BT", symbol="X", price=price, quantity=qty
    )


def _model(cancel_model: str = "proportional") -> QueueFillModel:
    model = QueueFillModel("X", "BT", cancel_model=cancel_model)
    model.on_depth(((1, 100, 10), (1, 99, 5), (-1, 101, 8), (-1, 102, 4)), 1)
    return model


def _fills(reports) -> list[tuple[int, int, bool]]:
    return [(r.last_price, r.last_quantity, r.is_maker) for r in reports if r.exec_type == ExecType.TRADE]


def test_an_order_joins_the_back_of_the_queue_at_its_price():
    model = _model()

    reports = model.on_command(_place("b", BUY, 100, 3), 2)

    assert [r.exec_type for r in reports] == [ExecType.NEW]
    assert model.orders["b"].queue_ahead == 10


@pytest.mark.parametrize(
    ("printed", "ahead_after", "fills"),
    [
        (4, 6, []),  # the print only eats into the queue ahead
        (10, 0, []),  # exactly the queue ahead: still nothing for us
        (11, 0, [(100, 1, True)]),  # one lot past the queue fills one lot of ours
        (20, 0, [(100, 3, True)]),  # more than queue + our size: all of ours, at our price
    ],
)
def test_prints_at_our_price_fill_us_only_after_the_volume_ahead_is_consumed(printed, ahead_after, fills):
    model = _model()
    model.on_command(_place("b", BUY, 100, 3), 2)

    reports = model.on_trade(100, printed, SELL, 3)

    assert _fills(reports) == fills
    if "b" in model.orders:
        assert model.orders["b"].queue_ahead == ahead_after


def test_a_print_through_our_price_fills_all_of_it_at_our_price():
    model = _model()
    model.on_command(_place("b", BUY, 100, 3), 2)

    reports = model.on_trade(99, 1, SELL, 3)

    assert _fills(reports) == [(100, 3, True)]
    assert reports[-1].status == OrderStatus.FILLED


@pytest.mark.parametrize(("cancel_model", "ahead_after"), [("proportional", 5), ("behind", 5)])
def test_cancels_shrink_the_queue_ahead_by_the_model_rule(cancel_model, ahead_after):
    model = _model(cancel_model)
    model.on_command(_place("b", BUY, 100, 3), 2)

    model.on_depth(((1, 100, 5),), 3)  # the level halves with no print: cancels

    assert model.orders["b"].queue_ahead == ahead_after


def test_cancels_after_others_joined_behind_us_move_us_up_only_in_the_proportional_model():
    proportional, behind = _model("proportional"), _model("behind")
    for model in (proportional, behind):
        model.on_command(_place("b", BUY, 100, 3), 2)
        model.on_depth(((1, 100, 15),), 3)  # 5 lots join behind us

        model.on_depth(((1, 100, 12),), 4)  # 3 of 15 canceled, from somewhere in the queue

    assert proportional.orders["b"].queue_ahead == 8  # 10 - 10 * 3 // 15
    assert behind.orders["b"].queue_ahead == 10


def test_a_level_decrease_explained_by_prints_is_not_counted_again_as_cancels():
    model = _model()
    model.on_command(_place("b", BUY, 100, 3), 2)

    model.on_trade(100, 4, SELL, 3)
    model.on_depth(((1, 100, 6),), 4)  # the print's 4 lots leaving the level

    assert model.orders["b"].queue_ahead == 6


def test_the_other_side_quoting_at_our_price_fills_us():
    model = _model()
    model.on_command(_place("b", BUY, 100, 3), 2)

    reports = model.on_depth(((-1, 100, 2), (-1, 101, 0)), 3)

    assert _fills(reports) == [(100, 3, True)]


def test_a_marketable_order_takes_the_recorded_liquidity_as_a_taker_and_rests_the_rest():
    model = _model()

    reports = model.on_command(_place("b", BUY, 101, 10), 2)

    assert _fills(reports) == [(101, 8, False)]
    assert model.orders["b"].queue_ahead == 0
    assert model.orders["b"].cum == 8


def test_a_market_order_expires_what_it_could_not_fill():
    model = _model()

    reports = model.on_command(_place("m", SELL, 0, 20, OrderType.MARKET), 2)

    assert _fills(reports) == [(100, 10, False), (99, 5, False)]
    assert reports[-1].exec_type == ExecType.EXPIRED


def test_a_replace_to_another_price_requeues_and_a_size_decrease_keeps_the_place():
    model = _model()
    model.on_command(_place("b", BUY, 100, 3), 2)
    model.on_trade(100, 4, SELL, 3)

    smaller = model.on_command(
        VenueReplaceOrder(
            client_order_id="b2", orig_client_order_id="b", account="BT", symbol="X", price=100, quantity=2
        ),
        4,
    )
    kept = model.orders["b2"].queue_ahead
    moved = model.on_command(
        VenueReplaceOrder(
            client_order_id="b3", orig_client_order_id="b2", account="BT", symbol="X", price=99, quantity=2
        ),
        5,
    )

    assert [(r.exec_type, r.client_order_id, r.orig_client_order_id) for r in smaller + moved] == [
        (ExecType.REPLACED, "b2", "b"),
        (ExecType.REPLACED, "b3", "b2"),
    ]
    assert kept == 6
    assert model.orders["b3"].queue_ahead == 5


def test_a_cancel_removes_the_order_and_a_cancel_of_an_unknown_order_is_rejected():
    model = _model()
    model.on_command(_place("b", BUY, 100, 3), 2)

    canceled = model.on_command(
        VenueCancelOrder(client_order_id="c1", orig_client_order_id="b", account="BT", symbol="X"), 3
    )
    unknown = model.on_command(
        VenueCancelOrder(client_order_id="c2", orig_client_order_id="b", account="BT", symbol="X"), 4
    )
    after = model.on_trade(99, 50, SELL, 5)

    assert [(r.exec_type, r.client_order_id) for r in canceled] == [(ExecType.CANCELED, "c1")]
    assert [r.exec_type for r in unknown] == [ExecType.CANCEL_REJECTED]
    assert after == []


@pytest.fixture(scope="module")
def binance_slice():
    instruments = InstrumentRegistry.from_toml()
    if not binance_file().exists():
        pytest.skip("the shared Binance capture is not available")
    return instruments, load_binance(binance_file(), instruments.get("BTCUSDT"), max_events=3_000)


def _strip(report) -> dict:
    data = msgspec.to_builtins(report)
    for key in ("elapsed_s", "events_per_s"):
        data.pop(key)
    return data


def test_the_binance_capture_loads_as_one_uncrossed_contiguous_stream(binance_slice):
    _, events = binance_slice

    seqs = [m.seq for _, m in events]
    stamps = [ts for ts, _ in events]

    assert seqs == list(range(1, len(events) + 1))
    assert stamps == sorted(stamps)
    assert any(type(m) is BookDeltas for _, m in events)


def test_a_recorded_backtest_trades_through_the_engine_and_is_deterministic(binance_slice):
    instruments, events = binance_slice
    config = BacktestConfig(params=BINANCE_PARAMS)

    first = run_recorded(events, instruments, "BTCUSDT", config)
    second = run_recorded(events, instruments, "BTCUSDT", config)

    assert _strip(first) == _strip(second)
    assert first.events == len(events)
    assert first.orders_submitted > 0
    assert first.fills > 0
    assert first.buy_quantity - first.sell_quantity == first.final_position
    assert Decimal(first.total_pnl) == Decimal(first.realized_pnl) + Decimal(first.unrealized_pnl) - Decimal(first.fees)


def test_orders_slower_than_the_whole_data_only_reach_the_final_book(binance_slice):
    instruments, events = binance_slice
    span = events[-1][0] - events[0][0]
    config = BacktestConfig(params=BINANCE_PARAMS, entry_latency_ns=span + 1)

    report = run_recorded(events, instruments, "BTCUSDT", config)

    assert report.orders_submitted > 0
    assert report.maker_fills == 0  # never rested while the market moved
    assert all(ts > events[-1][0] for ts, _ in report.inventory_path)


def test_a_simulated_venue_backtest_with_a_seed_is_reproducible():
    instrument = Instrument(
        symbol="SIM-1", tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), price_precision=2, size_precision=3
    )
    instruments = InstrumentRegistry([instrument])
    config = BacktestConfig(params=VENUE_PARAMS)

    runs = [
        run_venue(seed=3, duration_ns=2_000_000_000, instruments=instruments, symbol="SIM-1", config=config)
        for _ in range(2)
    ]

    assert _strip(runs[0]) == _strip(runs[1])
    assert runs[0].events > 0
    assert runs[0].fills > 0


def test_the_command_line_prints_the_report_and_writes_it_as_json(tmp_path, capsys):
    path = tmp_path / "report.json"

    code = main(["--venue-seed", "5", "--duration", "2s", "--latency-ms", "1", "--json", str(path)])

    out = capsys.readouterr().out
    data = json.loads(path.read_text())
    assert code == 0
    assert "fill ratio" in out
    assert data["source"] == "venue seed 5"
    assert data["latency_ms"]["entry"] == 1.0
    assert {"total_pnl", "fills", "inventory_path", "spread_captured", "fill_ratio"} <= data.keys()


def _replay_engine(instruments, *, trusted: bool):
    from engine.clock import FakeClock
    from engine.config import EngineConfig, StrategyConfig
    from engine.core import Engine
    from engine.gateway import NullGateway

    config = EngineConfig(
        strategies=(StrategyConfig(strategy_id="as1", symbol="BTCUSDT", params=BINANCE_PARAMS, autostart=True),),
        market_data_includes_own_orders=False,
        market_data_trusted=trusted,
    )
    clock = FakeClock(0)
    return Engine(config, clock, instruments, NullGateway()), clock


def test_trusted_replayed_market_data_leaves_the_engine_in_the_same_state_as_the_validating_feed(binance_slice):
    instruments, events = binance_slice
    (checked, c1), (trusted, c2) = (_replay_engine(instruments, trusted=t) for t in (False, True))

    for ts, msg in events:
        for engine, clock in ((checked, c1), (trusted, c2)):
            clock.set(ts)
            engine.handle_market_data(msg)

    assert trusted.state_hash() == checked.state_hash()
    assert [e.event for e in trusted.drain()] == [e.event for e in checked.drain()]
    assert trusted.oms.open_order_count() > 0  # the strategy quoted on the way


def test_trusted_market_data_out_of_sequence_still_goes_through_the_feed_and_its_gap_handling(binance_slice):
    instruments, events = binance_slice
    engine, clock = _replay_engine(instruments, trusted=True)
    for ts, msg in events[:50]:
        clock.set(ts)
        engine.handle_market_data(msg)

    clock.set(events[51][0])
    engine.handle_market_data(events[51][1])  # events[50] lost

    assert engine.state_view()["books"]["BTCUSDT"]["stale"] is True
    assert engine.state_view()["books"]["BTCUSDT"]["last_seq"] == events[49][1].seq
