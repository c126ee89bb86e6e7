"""The backtester: the live Engine, unchanged, driven by a simulated clock over recorded or simulated markets.

Backtest thread only (it is the engine thread of its run). Two markets:

- `run_recorded`: a recorded L2 stream with prints (the Binance capture in ../shared/data) is the market; our orders
  go to `QueueFillModel`, which decides fills from queue positions (see fill_model.py).
- `run_venue`: the in-process simulated venue with seeded Poisson background flow; the matching core fills us with
  real price-time priority.

Both run one time-ordered loop with three latencies: market data reaches the engine `md_latency_ns` after the
exchange published it; an order reaches the exchange `entry_latency_ns` after the engine sent it; execution reports
come back `response_latency_ns` after the exchange made them. The engine is the same object as in live trading
(same feed, book, strategy, quote manager, risk gate, OMS, portfolio); only its clock is a `FakeClock` moved by the
loop, and it runs without a journal.
"""

from __future__ import annotations

import heapq
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from engine.backtest.fill_model import QueueFillModel
from engine.backtest.report import BacktestReport, ReportBuilder, format_report
from engine.book import L2Book
from engine.clock import FakeClock
from engine.config import EngineConfig, StrategyConfig
from engine.core import Engine
from engine.instruments import Instrument, InstrumentRegistry
from engine.marketdata.binance import DepthDiff, Trade, iter_binance_file
from engine.marketdata.paths import shared_data_dir
from engine.protocol import (
    BookDeltas,
    ExecutionReport,
    RiskLimits,
    Scope,
    SetLimits,
    TradePrinted,
    VenueCommandRejected,
)

__all__ = [
    "BacktestConfig",
    "BacktestReport",
    "binance_file",
    "format_report",
    "load_binance",
    "run_recorded",
    "run_venue",
]

MS = 1_000_000
_INF = float("inf")


class BacktestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    strategy: str = "avellaneda_stoikov"
    strategy_id: str = "bt1"
    params: dict[str, Any] = {}
    account: str = "BT"
    entry_latency_ns: int = 5 * MS
    response_latency_ns: int = 5 * MS
    md_latency_ns: int = 5 * MS
    timer_ns: int = 1_000 * MS  # 0 = no timer ticks
    cancel_model: str = "proportional"
    limits: RiskLimits | None = None  # firm limits set before the first event (the gate runs in full either way)
    maker_fee_bps: Decimal = Decimal(0)
    taker_fee_bps: Decimal = Decimal(0)


def binance_file() -> Path:
    return shared_data_dir() / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"


def load_binance(path: Path | str, instrument: Instrument, *, max_events: int | None = None) -> list[tuple[int, Any]]:
    """(exchange ns, BookDeltas | TradePrinted) in file order, with one contiguous market-data sequence.

    The capture has no REST snapshot, so the book fills in from diffs and a level that stops being updated can go
    stale. When a fresher level crosses stale ones on the other side, the stale ones are removed in the same
    message (a real book is never crossed), so neither the engine nor the fill model sees a crossed book.
    Liquidations (trade kind other than MARKET) did not cross the public book and are left out, as hftbacktest
    does. Exchange times are the matching-engine time T, made non-decreasing across the depth and trade streams.
    """
    symbol = instrument.symbol
    book = L2Book(symbol)
    out: list[tuple[int, Any]] = []
    seq = 0
    last_ts = 0
    for record in iter_binance_file(path, instrument):
        kind = type(record)
        if kind is DepthDiff:
            deltas: list[tuple[int, int, int]] = []
            for side, levels in ((1, record.bids), (-1, record.asks)):
                for price, size in levels:
                    book.apply(side, price, size)
                    deltas.append((side, price, size))
            for side, levels in ((1, record.bids), (-1, record.asks)):
                for price, size in levels:
                    if size > 0:
                        deltas.extend(_uncross(book, side, price))
            msg_ts = record.transact_ns
            make = lambda s, t, d=tuple(deltas): BookDeltas(symbol=symbol, seq=s, ts=t, deltas=d)  # noqa: E731
        elif kind is Trade:
            if record.kind != "MARKET":
                continue
            msg_ts = record.transact_ns
            make = lambda s, t, r=record: TradePrinted(  # noqa: E731
                symbol=symbol,
                seq=s,
                ts=t,
                trade_id=r.trade_id,
                price=r.price,
                quantity=r.quantity,
                aggressor=r.aggressor,
            )
        else:
            continue
        last_ts = max(last_ts, msg_ts)
        seq += 1
        out.append((last_ts, make(seq, last_ts)))
        if max_events is not None and len(out) >= max_events:
            break
    return out


def _uncross(book: L2Book, side: int, price: int) -> list[tuple[int, int, int]]:
    removed = []
    if side == 1:
        while book.best_ask is not None and book.best_ask <= price:
            removed.append((-1, book.best_ask, 0))
            book.apply(-1, book.best_ask, 0)
    else:
        while book.best_bid is not None and book.best_bid >= price:
            removed.append((1, book.best_bid, 0))
            book.apply(1, book.best_bid, 0)
    return removed


class _DelayedGateway:
    """The engine's gateway in a backtest: commands reach the exchange `latency` later, via the loop's heap."""

    __slots__ = ("clock", "heap", "latency", "n", "sent")

    def __init__(self, clock: FakeClock, heap: list, latency: int) -> None:
        self.clock = clock
        self.heap = heap
        self.latency = latency
        self.n = 0
        self.sent = 0

    def send(self, command: Any) -> None:
        self.n += 1
        self.sent += 1
        heapq.heappush(self.heap, (self.clock._now + self.latency, self.n, 0, command))


def _engine(
    instruments: InstrumentRegistry, symbol: str, config: BacktestConfig, clock: FakeClock, gateway, *, recorded: bool
) -> Engine:
    engine_config = EngineConfig(
        engine_id="backtest",
        account=config.account,
        strategies=(
            StrategyConfig(
                strategy_id=config.strategy_id,
                name=config.strategy,
                symbol=symbol,
                params=dict(config.params),
                autostart=True,
            ),
        ),
        publish_top_of_book=False,
        # Nobody watches a backtest live: no per-trade, depth or utilisation events to build and throw away.
        publish_market_trades=False,
        depth_interval_ns=0,
        utilisation_interval_ns=0,
        # Our simulated orders never entered the recorded book, so there is nothing of ours to take out of it.
        market_data_includes_own_orders=not recorded,
        # The recorded stream was validated by its reader (load_binance) and is sequenced by construction.
        market_data_trusted=recorded,
        replay_ring_size=0,
        reply_cache_size=1_000,
        maker_fee_bps=config.maker_fee_bps,
        taker_fee_bps=config.taker_fee_bps,
    )
    engine = Engine(engine_config, clock, instruments, gateway)
    if config.limits is not None:
        engine.handle_command(
            SetLimits(
                command_id="bt-limits", operator="backtest", ts=clock.now(), scope=Scope.firm(), limits=config.limits
            )
        )
    engine.drain()
    return engine


def _latency_ms(config: BacktestConfig) -> dict[str, float]:
    return {
        "entry": config.entry_latency_ns / MS,
        "response": config.response_latency_ns / MS,
        "market_data": config.md_latency_ns / MS,
    }


def run_recorded(
    events: list[tuple[int, Any]], instruments: InstrumentRegistry, symbol: str, config: BacktestConfig
) -> BacktestReport:
    """Run the strategy over recorded (exchange ns, message) events; see the module docstring for the loop."""
    if not events:
        raise ValueError("no events to backtest")
    clock = FakeClock(events[0][0])
    heap: list = []
    gateway = _DelayedGateway(clock, heap, config.entry_latency_ns)
    engine = _engine(instruments, symbol, config, clock, gateway, recorded=True)
    model = QueueFillModel(symbol, config.account, cancel_model=config.cancel_model)
    builder = ReportBuilder(instruments.get(symbol))
    book = engine.book(symbol)
    observe = builder.observe
    on_md = engine.handle_market_data
    on_report = engine.handle_execution_report
    on_timer = engine.on_timer
    drain = engine.drain
    outbox = engine.has_events
    push, pop = heapq.heappush, heapq.heappop
    md_lat, resp_lat, timer = config.md_latency_ns, config.response_latency_ns, config.timer_ns
    stamps = [ts for ts, _ in events]
    messages = [m for _, m in events]
    n = len(events)
    i_ex = i_en = 0
    next_timer = stamps[0] + timer if timer else _INF
    started = time.perf_counter()
    while i_en < n or heap:
        t_ex = stamps[i_ex] if i_ex < n else _INF
        t_en = stamps[i_en] + md_lat if i_en < n else _INF
        t_h = heap[0][0] if heap else _INF
        t_tm = next_timer if i_en < n else _INF
        if t_ex <= t_h and t_ex <= t_en and t_ex <= t_tm:
            msg = messages[i_ex]
            i_ex += 1
            if type(msg) is BookDeltas:
                reports = model.on_depth(msg.deltas, t_ex)
            else:
                reports = model.on_trade(msg.price, msg.quantity, msg.aggressor, t_ex)
            for report in reports:
                gateway.n += 1
                push(heap, (t_ex + resp_lat, gateway.n, 1, report))
            continue
        if t_h <= t_en and t_h <= t_tm:
            t, _, kind, payload = pop(heap)
            if kind == 0:
                for report in model.on_command(payload, t):
                    gateway.n += 1
                    push(heap, (t + resp_lat, gateway.n, 1, report))
                continue
            clock.set(t)
            on_report(payload)
        elif t_en <= t_tm:
            clock.set(t_en)
            on_md(messages[i_en])
            i_en += 1
        else:
            clock.set(t_tm)
            on_timer(t_tm)
            next_timer += timer
        if outbox():
            for envelope in drain():
                observe(envelope.event, book, envelope.ts)
    elapsed = time.perf_counter() - started
    return builder.build(
        portfolio=engine.portfolio,
        strategy_id=config.strategy_id,
        source="recorded",
        strategy=config.strategy,
        params=_params(engine, config),
        latency_ms=_latency_ms(config),
        events=n,
        elapsed_s=round(elapsed, 4),
        events_per_s=round(n / elapsed, 1) if elapsed else 0.0,
    )


def run_venue(
    *, seed: int, duration_ns: int, instruments: InstrumentRegistry, symbol: str, config: BacktestConfig, flow=None
) -> BacktestReport:
    """Run the strategy against the simulated venue with seeded background flow for `duration_ns`."""
    from engine.venue import FlowConfig, PoissonFlow, Venue

    start = 1_700_000_000_000_000_000
    clock = FakeClock(start)
    heap: list = []
    gateway = _DelayedGateway(clock, heap, config.entry_latency_ns)
    engine = _engine(instruments, symbol, config, clock, gateway, recorded=False)
    venue = Venue([symbol], clock=clock.now)
    md_lat, resp_lat = config.md_latency_ns, config.response_latency_ns
    account = config.account

    def route(messages: list, now: int) -> None:
        for msg in messages:
            kind = type(msg)
            if kind is ExecutionReport:
                if msg.account != account:
                    continue
                gateway.n += 1
                heapq.heappush(heap, (now + resp_lat, gateway.n, 1, msg))
            else:
                gateway.n += 1
                heapq.heappush(heap, (now + md_lat, gateway.n, 2, msg))

    def flow_send(command: Any) -> list:
        messages = venue.handle(command)
        route(messages, clock.now())
        return messages

    flow_config = flow or FlowConfig(
        symbol=symbol,
        initial_price=10_000,
        intensity=200.0,
        market_share=0.2,
        cancel_rate=0.3,
        volatility=0.0002,
        depth_ticks=5.0,
        size_mean=3.0,
        size_max=30,
    )
    background = PoissonFlow(flow_config, send=flow_send, clock=clock.now, seed=seed)
    background.prime(levels=10, orders_per_level=2)
    builder = ReportBuilder(instruments.get(symbol))
    book = engine.book(symbol)
    end = start + duration_ns
    step = 1 * MS
    timer = config.timer_ns
    next_timer = start + timer if timer else _INF
    events = 0
    started = time.perf_counter()
    now = start
    while now < end or heap:
        if heap and heap[0][0] <= now:
            t, _, kind, payload = heapq.heappop(heap)
            clock.set(max(t, clock.now()))
            if kind == 0:
                messages = venue.handle(payload)
                background.observe(messages)
                route(messages, clock.now())
                continue
            if kind == 1:
                engine.handle_execution_report(payload)
            elif type(payload) is VenueCommandRejected:
                engine.handle_venue_reject(payload)  # not market data: it must not count as an event or reach a book
            else:
                events += 1
                engine.handle_market_data(payload)
        elif now < end:
            now += step
            clock.set(max(now, clock.now()))
            background.poll()
            if now >= next_timer:
                engine.on_timer(now)
                next_timer += timer
        else:
            now = heap[0][0]
            continue
        for envelope in engine.drain():
            builder.observe(envelope.event, book, envelope.ts)
    elapsed = time.perf_counter() - started
    return builder.build(
        portfolio=engine.portfolio,
        strategy_id=config.strategy_id,
        source=f"venue seed {seed}",
        strategy=config.strategy,
        params=_params(engine, config),
        latency_ms=_latency_ms(config),
        events=events,
        elapsed_s=round(elapsed, 4),
        events_per_s=round(events / elapsed, 1) if elapsed else 0.0,
    )


def _params(engine: Engine, config: BacktestConfig) -> dict[str, Any]:
    from engine.strategies.params import params_to_wire

    wire = params_to_wire(engine.strategy(config.strategy_id).params)
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in wire.items()}
