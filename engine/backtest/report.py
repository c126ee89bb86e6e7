"""The backtest report: P&L, fills, inventory path, spread captured, fill ratio (backtest thread only).

`ReportBuilder.observe(event, book)` is fed every outbound engine event as the backtest drains the outbox, with the
engine's book at that moment (the mid the engine saw when it learnt of the fill, after the response latency).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from engine.enums import Side
from engine.instruments import Instrument
from engine.protocol import OrderDenied, OrderFilled, OrderReplaced, OrderSubmitted

MAX_PATH_POINTS = 1_000


class BacktestReport(msgspec.Struct, kw_only=True):
    source: str
    strategy: str
    symbol: str
    params: dict[str, Any]
    latency_ms: dict[str, float]
    events: int  # market-data messages the engine handled (the strategy acted on every book update)
    elapsed_s: float
    events_per_s: float
    orders_submitted: int
    orders_denied: int
    denial_codes: dict[str, int]
    submitted_quantity: int  # lots quoted: new orders plus the size each replace re-quoted
    fills: int
    maker_fills: int
    taker_fills: int
    filled_quantity: int  # lots
    fill_ratio: float  # filled lots / quoted lots
    buy_quantity: int
    sell_quantity: int
    final_position: int  # lots, signed
    max_long: int
    max_short: int
    realized_pnl: str  # money, exact
    unrealized_pnl: str
    fees: str
    total_pnl: str
    spread_captured_ticks_per_lot: float  # mean of (mid - price) for buys, (price - mid) for sells
    spread_captured: str  # money
    inventory_path: list[tuple[int, int]]  # (ts ns, position lots), thinned to at most MAX_PATH_POINTS


class ReportBuilder:
    __slots__ = (
        "_captured_half_ticks",
        "_path",
        "buys",
        "denials",
        "filled",
        "fills",
        "instrument",
        "maker_fills",
        "max_long",
        "max_short",
        "position",
        "sells",
        "submitted",
        "submitted_qty",
        "symbol",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.symbol = instrument.symbol
        self.submitted = 0
        self.submitted_qty = 0
        self.denials: dict[str, int] = {}
        self.fills = 0
        self.maker_fills = 0
        self.filled = 0
        self.buys = 0
        self.sells = 0
        self.position = 0
        self.max_long = 0
        self.max_short = 0
        self._captured_half_ticks = 0  # sum over fills of 2 * (signed edge vs mid) * lots
        self._path: list[tuple[int, int]] = []

    def observe(self, event: Any, book: Any, ts: int) -> None:
        kind = type(event)
        if kind is OrderFilled:
            qty = event.last_quantity
            self.fills += 1
            self.filled += qty
            if event.is_maker:
                self.maker_fills += 1
            bid, ask = book.best_bid, book.best_ask
            if event.side == Side.BUY:
                self.buys += qty
                self.position += qty
                if bid is not None and ask is not None:
                    self._captured_half_ticks += (bid + ask - 2 * event.last_price) * qty
            else:
                self.sells += qty
                self.position -= qty
                if bid is not None and ask is not None:
                    self._captured_half_ticks += (2 * event.last_price - bid - ask) * qty
            self.max_long = max(self.max_long, self.position)
            self.max_short = min(self.max_short, self.position)
            self._path.append((ts, self.position))
        elif kind is OrderSubmitted:
            self.submitted += 1
            self.submitted_qty += event.quantity
        elif kind is OrderReplaced:
            self.submitted_qty += event.leaves_quantity
        elif kind is OrderDenied:
            self.denials[event.code] = self.denials.get(event.code, 0) + 1

    def build(self, *, portfolio: Any, strategy_id: str, **fields: Any) -> BacktestReport:
        symbol = self.symbol
        realized = portfolio.realized_pnl(strategy_id=strategy_id, symbol=symbol)
        unrealized = portfolio.unrealized_pnl(strategy_id=strategy_id, symbol=symbol)
        fees = portfolio.fees(strategy_id=strategy_id, symbol=symbol)
        inst = self.instrument
        per_half_tick_lot = inst.tick_size * inst.lot_size * inst.multiplier / 2
        path = self._path
        if len(path) > MAX_PATH_POINTS:
            step = len(path) / MAX_PATH_POINTS
            path = [path[int(i * step)] for i in range(MAX_PATH_POINTS - 1)] + [path[-1]]
        return BacktestReport(
            symbol=symbol,
            orders_submitted=self.submitted,
            orders_denied=sum(self.denials.values()),
            denial_codes=dict(sorted(self.denials.items())),
            submitted_quantity=self.submitted_qty,
            fills=self.fills,
            maker_fills=self.maker_fills,
            taker_fills=self.fills - self.maker_fills,
            filled_quantity=self.filled,
            fill_ratio=round(self.filled / self.submitted_qty, 6) if self.submitted_qty else 0.0,
            buy_quantity=self.buys,
            sell_quantity=self.sells,
            final_position=self.position,
            max_long=self.max_long,
            max_short=self.max_short,
            realized_pnl=str(realized),
            unrealized_pnl=str(unrealized),
            fees=str(fees),
            total_pnl=str(realized + unrealized - fees),
            spread_captured_ticks_per_lot=round(self._captured_half_ticks / 2 / self.filled, 4) if self.filled else 0.0,
            spread_captured=str((per_half_tick_lot * self._captured_half_ticks).normalize() + Decimal(0)),
            inventory_path=path,
            **fields,
        )


def format_report(report: BacktestReport) -> str:
    lines = [
        f"backtest {report.source}: {report.strategy} on {report.symbol}",
        f"  latency (ms)          {report.latency_ms}",
        f"  events                {report.events:,} in {report.elapsed_s:.2f} s = {report.events_per_s:,.0f} events/s",
        f"  orders                {report.orders_submitted:,} submitted, {report.orders_denied:,} denied "
        f"{report.denial_codes or ''}",
        f"  fills                 {report.fills:,} ({report.maker_fills:,} maker, {report.taker_fills:,} taker), "
        f"{report.filled_quantity:,} of {report.submitted_quantity:,} lots: fill ratio {report.fill_ratio:.2%}",
        f"  bought / sold         {report.buy_quantity:,} / {report.sell_quantity:,} lots",
        f"  inventory             final {report.final_position:+,} lots, range [{report.max_short:+,}, "
        f"{report.max_long:+,}]",
        f"  P&L                   realized {report.realized_pnl}, unrealized {report.unrealized_pnl}, "
        f"fees {report.fees}, total {report.total_pnl}",
        f"  spread captured       {report.spread_captured_ticks_per_lot:+.3f} ticks/lot vs mid, "
        f"{report.spread_captured} in money",
    ]
    return "\n".join(lines)
