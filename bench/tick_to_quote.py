"""Tick-to-quote inside the engine, and risk-gate checks per second.

Run from the repo root: .venv/bin/python bench/tick_to_quote.py [--events N] [--checks N] [--runs 3]

Tick-to-quote: a book update (BookDeltas) enters `Engine.handle_market_data`; the feed applies it to the L2 book,
the Avellaneda-Stoikov strategy computes quotes, the quote manager turns them into actions, every action passes the
full risk gate (firm, strategy and instrument limits, every control set) and the OMS, and the order is handed to
the gateway. Measured with time.perf_counter_ns from just before the call to the moment the gateway receives the
last order the update caused; updates that caused no order are counted, not timed. The market alternates between
two books whose touch is 2 ticks apart, so every update moves the quotes. After each timed update the gateway
answers our orders untimed (NEW / REPLACED / CANCELED reports, as a venue would), so the next update finds live
orders. Every other update starts from no orders (a cancel-all, untimed, in between), so both paths are measured:
new orders (the gate's `check`) and replaces of live orders (`check_replace`). No journal: its cost is
bench/journal.py's figure.

risk_checks_per_s: `RiskGate.check` alone on a PENDING_NEW order that passes every control.

Every limit is set at the firm, the strategy and the instrument (the instrument without `max_daily_loss`, which that
scope cannot carry): the bench checks that each `SetLimits` and cancel-all is accepted and that no order is denied,
so a limit silently left unset or a denial cannot make the figures look better. The machine's load average is
printed with each run: on a shared machine the wall-clock figures move with it.

`--breakdown` adds one instrumented run that attributes the timed path to its stages (exclusive time: feed and
book, strategy, quote manager, risk gate, OMS, portfolio mark, gateway, and the engine's own work around them).
The wrappers cost time themselves, so its total is above the plain runs; read it for proportions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec
from hdrh.histogram import HdrHistogram

from engine.clock import FakeClock
from engine.config import EngineConfig, StrategyConfig
from engine.core import Engine
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.feed import SequencedFeed
from engine.instruments import Instrument, InstrumentRegistry
from engine.oms import Oms
from engine.portfolio import Portfolio
from engine.protocol import (
    BookDeltas,
    CancelAllOrders,
    CommandAccepted,
    ExecutionReport,
    OrderDenied,
    RiskLimits,
    Scope,
    SetLimits,
    VenuePlaceOrder,
    VenueReplaceOrder,
)
from engine.risk import RiskGate
from engine.strategies.quotes import QuoteManager

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
# The instrument scope carries every limit but the daily loss (RISK_UNSUPPORTED_LIMIT there).
INSTRUMENT_LIMITS = msgspec.structs.replace(FULL_LIMITS, max_daily_loss=None)
AS_PARAMS = {
    "gamma": Decimal("0.05"),
    "k": Decimal("1.5"),
    "sigma": Decimal("2"),
    "horizon_s": Decimal("1"),
    "order_size": 1,
    "max_inventory": 100,
    "requote_threshold_ticks": 1,
}


class AckGateway:
    """Takes orders (noting when each is handed over) and, untimed afterwards, answers them as a venue would: NEW
    for a new order, REPLACED for a replace, CANCELED for a cancel. Our orders stay out of the market data, so every
    timed book update is the market's own move."""

    __slots__ = ("held", "last_send_ns", "n", "oms", "sends")

    def __init__(self) -> None:
        self.held: list = []
        self.last_send_ns = 0
        self.sends = 0
        self.n = 0
        self.oms = None

    def send(self, command: object) -> None:
        self.last_send_ns = time.perf_counter_ns()
        self.sends += 1
        self.held.append(command)

    def answers(self, ts: int) -> list[ExecutionReport]:
        held, self.held = self.held, []
        out = []
        for cmd in held:
            self.n += 1
            kind = type(cmd)
            if kind is VenuePlaceOrder:
                fields = {
                    "client_order_id": cmd.client_order_id,
                    "side": cmd.side,
                    "exec_type": ExecType.NEW,
                    "status": OrderStatus.NEW,
                    "price": cmd.price,
                    "quantity": cmd.quantity,
                    "leaves_quantity": cmd.quantity,
                    "cum_quantity": 0,
                    "venue_order_id": self.n,
                }
            else:
                order = self.oms.get(cmd.orig_client_order_id)
                fields = {
                    "client_order_id": cmd.client_order_id,
                    "orig_client_order_id": cmd.orig_client_order_id,
                    "side": order.side,
                    "venue_order_id": order.venue_order_id,
                    "cum_quantity": order.cum_quantity,
                }
                if kind is VenueReplaceOrder:
                    fields |= {
                        "exec_type": ExecType.REPLACED,
                        "status": OrderStatus.NEW,
                        "price": cmd.price,
                        "quantity": cmd.quantity,
                        "leaves_quantity": cmd.quantity - order.cum_quantity,
                    }
                else:
                    fields |= {
                        "exec_type": ExecType.CANCELED,
                        "status": OrderStatus.CANCELED,
                        "price": order.price,
                        "quantity": order.quantity,
                        "leaves_quantity": 0,
                    }
            out.append(
                ExecutionReport(
                    exec_id=f"e{self.n}",
                    account="MM1",
                    symbol=SYMBOL,
                    order_type=OrderType.LIMIT,
                    time_in_force=TimeInForce.GTC,
                    ts=ts,
                    **fields,
                )
            )
        return out


# Two books the market alternates between: the touch moves 2 ticks each update, so the quotes must move.
_BOOK_A = ({9_997: 5, 9_998: 5, 9_999: 5}, {10_001: 5, 10_002: 5, 10_003: 5})
_BOOK_B = ({9_999: 5, 10_000: 5, 10_001: 5}, {10_003: 5, 10_004: 5, 10_005: 5})


def _transition(old: tuple[dict, dict], new: tuple[dict, dict]) -> tuple[tuple[int, int, int], ...]:
    deltas = []
    for side, before, after in ((Side.BUY, old[0], new[0]), (Side.SELL, old[1], new[1])):
        deltas += [(side, price, 0) for price in before if price not in after]
        deltas += [(side, price, size) for price, size in after.items() if before.get(price) != size]
    return tuple(deltas)


_A_TO_B = _transition(_BOOK_A, _BOOK_B)
_B_TO_A = _transition(_BOOK_B, _BOOK_A)
_INITIAL = _transition(({}, {}), _BOOK_A)


def _engine() -> tuple[Engine, FakeClock, AckGateway]:
    clock = FakeClock(START)
    gateway = AckGateway()
    config = EngineConfig(
        account="MM1",
        strategies=(StrategyConfig(strategy_id="as1", symbol=SYMBOL, params=AS_PARAMS, autostart=True),),
        publish_top_of_book=True,
        replay_ring_size=1_000,
    )
    engine = Engine(config, clock, INSTRUMENTS, gateway)
    gateway.oms = engine.oms
    levels = (
        (Scope.firm(), FULL_LIMITS),
        (Scope.strategy("as1"), FULL_LIMITS),
        (Scope.instrument(SYMBOL), INSTRUMENT_LIMITS),
    )
    for n, (scope, limits) in enumerate(levels):
        _accepted(
            engine.handle_command(SetLimits(command_id=f"l{n}", operator="bench", ts=START, scope=scope, limits=limits))
        )
    if len(engine.risk.limits()) != len(levels):
        raise SystemExit(f"limits set at {len(engine.risk.limits())} levels, expected {len(levels)}")
    engine.handle_market_data(BookDeltas(symbol=SYMBOL, seq=1, ts=START, deltas=_INITIAL))
    _answer(engine, gateway, clock)
    return engine, clock, gateway


def _accepted(reply: object) -> None:
    if type(reply) is not CommandAccepted:
        raise SystemExit(f"the bench's command was not accepted: {reply}")


def _answer(engine: Engine, gateway: AckGateway, clock: FakeClock) -> None:
    while gateway.held:
        for report in gateway.answers(clock.now()):
            engine.handle_execution_report(report)
    for envelope in engine.drain():
        if type(envelope.event) is OrderDenied:
            raise SystemExit(f"an order was denied ({envelope.event}): the bench must measure orders that pass")


def tick_to_quote(events: int) -> tuple[HdrHistogram, HdrHistogram, int]:
    engine, clock, gateway = _engine()
    new_hist = HdrHistogram(1, 10_000_000_000, 3)
    replace_hist = HdrHistogram(1, 10_000_000_000, 3)
    no_order = 0
    perf = time.perf_counter_ns
    seq = 1
    for i in range(events):
        clock.advance(1_000_000)
        fresh = i % 2 == 0
        if fresh:  # untimed: start from no live orders, so this update places new orders through `check`
            _accepted(
                engine.handle_command(
                    CancelAllOrders(command_id=f"x{i}", operator="bench", ts=clock.now(), scope=Scope.firm())
                )
            )
            _answer(engine, gateway, clock)
        seq += 1
        update = BookDeltas(symbol=SYMBOL, seq=seq, ts=clock.now(), deltas=_A_TO_B if seq % 2 == 0 else _B_TO_A)
        sends = gateway.sends
        t0 = perf()
        engine.handle_market_data(update)
        if gateway.sends == sends:
            no_order += 1
        else:
            (new_hist if fresh else replace_hist).record_value(max(1, gateway.last_send_ns - t0))
        _answer(engine, gateway, clock)
    return new_hist, replace_hist, no_order


def risk_checks(checks: int) -> float:
    engine, _clock, _gateway = _engine()
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


# Stages of the timed path for --breakdown: (stage, class, method names). Exclusive time: a stage called from inside
# another (the gate reading the OMS) is charged to the inner one only.
def _stages(engine: Engine) -> tuple[tuple[str, type, tuple[str, ...]], ...]:
    return (
        ("feed + book apply", SequencedFeed, ("on_book_deltas",)),
        ("portfolio mark", Portfolio, ("mark",)),
        ("strategy (AS quotes)", type(engine.strategy("as1")), ("on_book",)),
        ("quote manager", QuoteManager, ("reconcile",)),
        ("risk gate", RiskGate, ("check", "check_replace", "on_message_sent")),
        (
            "OMS",
            Oms,
            (
                "new_order",
                "place_message",
                "request_replace",
                "request_cancel",
                "working_orders",
                "get",
                "next_client_order_id",
            ),
        ),
        ("gateway", AckGateway, ("send",)),
        ("engine events (envelope, outbox)", Engine, ("_emit",)),
    )


def breakdown(events: int) -> tuple[dict[str, int], int, int]:
    """One instrumented tick-to-quote run: exclusive ns per stage summed over the timed updates, their total, and
    how many timed updates there were."""
    engine, clock, gateway = _engine()
    totals: dict[str, int] = {}
    stack: list[list[int]] = []  # per active wrapped call: [time spent in wrapped children]
    timing = [False]
    perf = time.perf_counter_ns
    originals = []

    def wrap(stage: str, fn):
        def wrapper(*args, **kwargs):
            if not timing[0]:
                return fn(*args, **kwargs)
            stack.append([0])
            t0 = perf()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = perf() - t0
                children = stack.pop()[0]
                totals[stage] = totals.get(stage, 0) + elapsed - children
                if stack:
                    stack[-1][0] += elapsed

        return wrapper

    for stage, cls, names in _stages(engine):
        for name in names:
            fn = cls.__dict__.get(name)
            if fn is None:  # renamed in the engine since: that stage falls into the engine's own time
                continue
            originals.append((cls, name, fn))
            setattr(cls, name, wrap(stage, fn))
    try:
        total = timed = 0
        seq = 1
        for i in range(events):
            clock.advance(1_000_000)
            if i % 2 == 0:
                _accepted(
                    engine.handle_command(
                        CancelAllOrders(command_id=f"x{i}", operator="bench", ts=clock.now(), scope=Scope.firm())
                    )
                )
                _answer(engine, gateway, clock)
            seq += 1
            update = BookDeltas(symbol=SYMBOL, seq=seq, ts=clock.now(), deltas=_A_TO_B if seq % 2 == 0 else _B_TO_A)
            timing[0] = True
            t0 = perf()
            engine.handle_market_data(update)
            total += perf() - t0
            timing[0] = False
            timed += 1
            _answer(engine, gateway, clock)
    finally:
        for cls, name, fn in originals:
            setattr(cls, name, fn)
    totals["engine (the rest: stamp, dispatch, event structs)"] = total - sum(totals.values())
    return totals, total, timed


def _us(hist: HdrHistogram, pct: float) -> float:
    return hist.get_value_at_percentile(pct) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--checks", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--breakdown", action="store_true", help="add one instrumented run: time per stage")
    args = parser.parse_args()
    p50s, p99s, p999s, rates, loads = [], [], [], [], []
    for run in range(args.runs):
        load = os.getloadavg()[0]
        loads.append(load)
        print(f"run {run + 1}: load average (1 min) {load:.2f} on {os.cpu_count()} CPUs")
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
    if args.breakdown:
        totals, total, timed = breakdown(args.events)
        print(f"breakdown (instrumented, {timed} timed updates, {total / timed / 1000:.2f} us per update in all):")
        for stage, ns in sorted(totals.items(), key=lambda item: -item[1]):
            print(f"  {stage:<34} {ns / timed / 1000:6.2f} us  {100 * ns / total:5.1f} %")
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
                "load_avg_1m": round(statistics.median(loads), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
