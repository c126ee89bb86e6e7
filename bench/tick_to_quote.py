"""Tick-to-quote inside the engine, and risk-gate checks per second.

Run from the repo root: .venv/bin/python bench/tick_to_quote.py [--events N] [--checks N] [--runs 3]

Tick-to-quote: a book update (BookDeltas) enters `Engine.handle_market_data`; the feed applies it to the L2 book,
the Avellaneda-Stoikov strategy computes quotes, the quote manager turns them into actions, every action passes the
full risk gate (firm, strategy and instrument limits, every control set) and the OMS, and the order is handed to
the gateway. Measured with time.perf_counter_ns from just before the call to the moment the gateway receives the
last order the update caused; updates that caused no order (quotes within the requote threshold) are counted, not
timed. The gateway is the in-process venue: after each timed update the venue's answers (acks, our orders' own
market data) are delivered untimed, so the next update finds live orders. Every other update starts from no
orders (a cancel-all, untimed, in between), so both paths are measured: new orders (the gate's `check`) and
replaces of live orders (`check_replace`). No journal: the journal's cost is bench/journal.py's figure.

risk_checks_per_s: `RiskGate.check` alone on a PENDING_NEW order that passes every control.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrh.histogram import HdrHistogram

from engine.clock import FakeClock
from engine.config import EngineConfig, StrategyConfig
from engine.core import Engine
from engine.enums import OrderType, Side, TimeInForce
from engine.gateway import InProcessGateway
from engine.instruments import Instrument, InstrumentRegistry
from engine.protocol import (
    BookDeltas,
    CancelAllOrders,
    ExecutionReport,
    RiskLimits,
    Scope,
    SetLimits,
    VenueCancelOrder,
    VenuePlaceOrder,
)
from engine.venue import Venue

SYMBOL = "BTC-USD"
START = 1_700_000_000_000_000_000
INSTRUMENTS = InstrumentRegistry(
    [
        Instrument(
            symbol=SYMBOL, tick_size=Decimal("0.01"), lot_size=Decimal("0.001"), price_precision=2, size_precision=3
        )
    ]
)
FULL_LIMITS = RiskLimits(
    max_order_quantity=Decimal("1"),
    max_order_notional=Decimal("1000"),
    price_collar_pct=Decimal("5"),
    price_collar_ticks=500,
    max_position=Decimal("1"),
    max_gross_exposure=Decimal("100000"),
    max_net_exposure=Decimal("100000"),
    max_open_orders=50,
    max_orders_per_window=10_000_000,
    max_messages_per_window=10_000_000,
    rate_window_ns=1_000_000_000,
    duplicate_window_ns=1_000,
    max_daily_loss=Decimal("1000000"),
    restricted_symbols=(),  # a list to scan: the symbol traded is not on it
)
AS_PARAMS = {
    "gamma": Decimal("0.05"),
    "k": Decimal("1.5"),
    "sigma": Decimal("2"),
    "horizon_s": Decimal("1"),
    "order_size": 1,
    "max_inventory": 100,
    "requote_threshold_ticks": 1,
}


class TimingGateway(InProcessGateway):
    """The in-process venue gateway, noting when each order is handed over."""

    __slots__ = ("last_send_ns", "sends")

    def __init__(self, venue: Venue, account: str) -> None:
        super().__init__(venue, account)
        self.last_send_ns = 0
        self.sends = 0

    def send(self, command: object) -> None:
        self.last_send_ns = time.perf_counter_ns()
        self.sends += 1
        super().send(command)


def _engine() -> tuple[Engine, FakeClock, Venue, TimingGateway]:
    clock = FakeClock(START)
    venue = Venue([SYMBOL], clock=clock.now)
    gateway = TimingGateway(venue, "MM1")
    config = EngineConfig(
        account="MM1",
        strategies=(StrategyConfig(strategy_id="as1", symbol=SYMBOL, params=AS_PARAMS, autostart=True),),
        publish_top_of_book=True,
        replay_ring_size=1_000,
    )
    engine = Engine(config, clock, INSTRUMENTS, gateway)
    for n, scope in enumerate((Scope.firm(), Scope.strategy("as1"), Scope.instrument(SYMBOL))):
        engine.handle_command(
            SetLimits(command_id=f"l{n}", operator="bench", ts=START, scope=scope, limits=FULL_LIMITS)
        )
    return engine, clock, venue, gateway


def _pump(engine: Engine, gateway: TimingGateway) -> None:
    inbox = gateway.inbox
    while inbox:
        msg = inbox.popleft()
        if type(msg) is ExecutionReport:
            engine.handle_execution_report(msg)
        else:
            engine.handle_market_data(msg)
    engine.drain()


def _lp(venue: Venue, cid: str, side: Side, price: int, lots: int) -> list:
    return venue.handle(
        VenuePlaceOrder(
            client_order_id=cid,
            account="LP",
            symbol=SYMBOL,
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=price,
            quantity=lots,
        )
    )


def tick_to_quote(events: int) -> tuple[HdrHistogram, HdrHistogram, int]:
    engine, clock, venue, gateway = _engine()
    gateway.deliver(_lp(venue, "base-b", Side.BUY, 9_980, 50) + _lp(venue, "base-a", Side.SELL, 10_020, 50))
    _pump(engine, gateway)
    new_hist = HdrHistogram(1, 10_000_000_000, 3)
    replace_hist = HdrHistogram(1, 10_000_000_000, 3)
    no_order = 0
    n_lp = 0
    perf = time.perf_counter_ns
    for i in range(events):
        clock.advance(1_000_000)
        fresh = i % 2 == 0
        if fresh:  # untimed: start from no live orders, so this update places new orders through `check`
            engine.handle_command(
                CancelAllOrders(command_id=f"x{i}", operator="bench", ts=clock.now(), scope=Scope.firm())
            )
            _pump(engine, gateway)
        # Untimed: move the market: a liquidity provider's order appears or goes, 3 ticks inside the touch.
        n_lp += 1
        side = Side.BUY if (i // 2) % 2 == 0 else Side.SELL
        if (i // 4) % 2 == 0:
            messages = _lp(venue, f"lp{n_lp}", side, 9_990 + 3 * (i % 3) if side > 0 else 10_010 - 3 * (i % 3), 5)
        else:
            resting = [o for o in venue.open_orders("LP") if o.client_order_id.startswith("lp")]
            messages = []
            if resting:
                victim = resting[0]
                messages = venue.handle(
                    VenueCancelOrder(
                        client_order_id=f"c{n_lp}",
                        orig_client_order_id=victim.client_order_id,
                        account="LP",
                        symbol=SYMBOL,
                    )
                )
        update = next((m for m in messages if type(m) is BookDeltas), None)
        if update is None:
            continue
        sends = gateway.sends
        t0 = perf()
        engine.handle_market_data(update)
        if gateway.sends == sends:
            no_order += 1
        else:
            (new_hist if fresh else replace_hist).record_value(max(1, gateway.last_send_ns - t0))
        _pump(engine, gateway)
    return new_hist, replace_hist, no_order


def risk_checks(checks: int) -> float:
    engine, _clock, venue, gateway = _engine()
    gateway.deliver(_lp(venue, "base-b", Side.BUY, 9_990, 50) + _lp(venue, "base-a", Side.SELL, 10_010, 50))
    _pump(engine, gateway)
    oms, risk = engine.oms, engine.risk
    order = oms.new_order(
        strategy_id="bench",
        client_order_id="bench-1",
        symbol=SYMBOL,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=9_995,
        quantity=1,
    )
    check = risk.check
    engine_clock = engine._time  # the clock every component reads (the engine sets it from each input's stamp)
    denied = 0
    last = None
    started = time.perf_counter()
    for _ in range(checks):
        engine_clock._now += 2_000  # past the duplicate window, so every check passes every control
        denial = check(order, reference_price=10_000)
        if denial is not None:
            denied += 1
            last = denial
    elapsed = time.perf_counter() - started
    if denied:
        raise SystemExit(f"{denied} of {checks} checks were denied ({last}): the bench must measure passing checks")
    return checks / elapsed


def _us(hist: HdrHistogram, pct: float) -> float:
    return hist.get_value_at_percentile(pct) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--checks", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    p50s, p99s, p999s, rates = [], [], [], []
    for run in range(args.runs):
        new_hist, replace_hist, no_order = tick_to_quote(args.events)
        both = HdrHistogram(1, 10_000_000_000, 3)
        both.add(new_hist)
        both.add(replace_hist)
        p50s.append(_us(both, 50))
        p99s.append(_us(both, 99))
        p999s.append(_us(both, 99.9))
        for name, hist in (("new orders", new_hist), ("replaces", replace_hist), ("all", both)):
            print(
                f"run {run + 1} tick-to-quote {name:<10} n={hist.get_total_count():>6}  p50 {_us(hist, 50):7.1f} us  "
                f"p99 {_us(hist, 99):7.1f} us  p99.9 {_us(hist, 99.9):7.1f} us  "
                f"max {hist.get_max_value() / 1000:8.1f} us"
            )
        print(f"run {run + 1}: {no_order} updates caused no order (quotes unchanged within the requote threshold)")
        rate = risk_checks(args.checks)
        rates.append(rate)
        print(f"run {run + 1} risk gate: {rate:,.0f} checks/s ({1e6 / rate:.2f} us per check)")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"median of {args.runs}: p50 {statistics.median(p50s):.1f} us, p99 {statistics.median(p99s):.1f} us, "
        f"p99.9 {statistics.median(p999s):.1f} us, {statistics.median(rates):,.0f} risk checks/s; "
        f"max RSS {rss_mb:.1f} MB"
    )
    print(
        json.dumps(
            {
                "tick_to_quote_p50_us": round(statistics.median(p50s), 2),
                "tick_to_quote_p99_us": round(statistics.median(p99s), 2),
                "tick_to_quote_p999_us": round(statistics.median(p999s), 2),
                "risk_checks_per_s": round(statistics.median(rates)),
            }
        )
    )


if __name__ == "__main__":
    main()
