"""Risk utilisation: what each scope's limits are measured against right now (engine thread only).

The risk desk draws a bar per limit from 0 to 100 % (issue 8). The figures must be the ones the risk gate itself
compares with the limits (engine/risk.py), or a bar would read 90 % while the gate already denies. They are worked
out here from the same sources - the OMS's working orders (worst-case leaves: the larger size while a replace is in
flight), the portfolio's positions, marks and daily P&L, the gate's own send windows - but only on the utilisation
timer and for `StateSnapshot`, never on the order path, so the per-order cost stays what it was.

For an order on symbol X and side s the gate checks
- position: current position + every same-side working lot (a strategy its own, the firm and instrument X's net);
- gross exposure: the scope's |position| values at the mark plus, for the working lots on s that grow |position|
  in X, those lots at the working orders' average price;
- net exposure: the scope's signed position values plus the signed value of the working orders on s in X;
so the utilisation reports, for each figure, the worst case over every symbol and side the scope trades: the value
the gate would compare with the limit for the next order there. Money is Decimal in the instruments' currency.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine.enums import OrderType, Side
from engine.instruments import InstrumentRegistry
from engine.protocol import Scope, ScopeKind, ScopeUtilisation

_BUY, _SELL = Side.BUY, Side.SELL
_ZERO = Decimal(0)


class _Side:
    """Working orders of one scope in one symbol on one side: lots and their value in ticks x lots."""

    __slots__ = ("lots", "value")

    def __init__(self) -> None:
        self.lots = 0
        self.value = 0


def _working(orders: list[Any], mark2: dict[str, int | None]) -> dict[tuple[str, str, int], _Side]:
    """(strategy id, symbol, side) -> its working lots and value. A MARKET order is valued at the mark, as the gate
    values it at the reference price."""
    table: dict[tuple[str, str, int], _Side] = {}
    for order in orders:
        lots = order.worst_case_leaves()
        if lots <= 0:
            continue
        key = (order.strategy_id, order.symbol, int(order.side))
        side = table.get(key)
        if side is None:
            side = table[key] = _Side()
        side.lots += lots
        if order.order_type == OrderType.MARKET or order.price <= 0:
            side.value += lots * (mark2.get(order.symbol) or 0) // 2
        else:
            side.value += lots * order.price  # the live price, as the OMS's counters value it for the gate
    return table


def compute(
    *,
    risk: Any,
    oms: Any,
    portfolio: Any,
    instruments: InstrumentRegistry,
    strategy_ids: list[str],
    now: int,
) -> tuple[ScopeUtilisation, ...]:
    """The firm first, then every strategy and instrument scope with limits or with a position or working orders
    (sorted by name), so the desk sees exposure where there is some even before a limit is set there."""
    orders = oms.working_orders()
    marks = {symbol: portfolio.mark2(symbol) for symbol in instruments.symbols}
    working = _working(orders, marks)
    positions: dict[tuple[str, str], int] = {}
    for strategy_id, symbol in portfolio.position_keys():
        qty = portfolio.position(strategy_id, symbol)
        if qty:
            positions[(strategy_id, symbol)] = qty
    limited = {(scope.kind, scope.name) for scope, _ in risk.limits()}
    strategies = set(strategy_ids) | {sid for sid, _ in positions} | {sid for sid, _, _ in working}
    strategies |= {name for kind, name in limited if kind == ScopeKind.STRATEGY}
    symbols = {sym for _, sym in positions} | {sym for _, sym, _ in working}
    symbols |= {name for kind, name in limited if kind == ScopeKind.INSTRUMENT}
    figures = _Figures(
        risk=risk,
        oms=oms,
        portfolio=portfolio,
        instruments=instruments,
        working=working,
        positions=positions,
        marks=marks,
        now=now,
    )
    out = [figures.scope(Scope.firm())]
    out.extend(figures.scope(Scope.strategy(sid)) for sid in sorted(strategies))
    out.extend(figures.scope(Scope.instrument(sym)) for sym in sorted(symbols) if sym in instruments)
    return tuple(out)


class _Figures:
    __slots__ = ("instruments", "marks", "now", "oms", "portfolio", "positions", "risk", "working")

    def __init__(
        self,
        *,
        risk: Any,
        oms: Any,
        portfolio: Any,
        instruments: InstrumentRegistry,
        working: dict[tuple[str, str, int], _Side],
        positions: dict[tuple[str, str], int],
        marks: dict[str, int | None],
        now: int,
    ) -> None:
        self.risk = risk
        self.oms = oms
        self.portfolio = portfolio
        self.instruments = instruments
        self.working = working
        self.positions = positions
        self.marks = marks
        self.now = now

    def _money(self, symbol: str, ticks_lots2: int) -> Decimal:
        """Twice a value in ticks x lots, as money."""
        instrument = self.instruments.get(symbol)
        return ticks_lots2 * instrument.tick_size * instrument.lot_size * instrument.multiplier / 2

    def scope(self, scope: Scope) -> ScopeUtilisation:
        kind, name = scope.kind, scope.name
        # Per symbol of the scope: position (lots) and the working (lots, value) per side.
        per_symbol: dict[str, list[Any]] = {}

        def slot(symbol: str) -> list[Any]:
            entry = per_symbol.get(symbol)
            if entry is None:
                entry = per_symbol[symbol] = [0, _Side(), _Side()]
            return entry

        for (sid, symbol), qty in self.positions.items():
            if _in_scope(kind, name, sid, symbol):
                slot(symbol)[0] += qty
        for (sid, symbol, side), working in self.working.items():
            if _in_scope(kind, name, sid, symbol):
                entry = slot(symbol)[1 if side == _BUY else 2]
                entry.lots += working.lots
                entry.value += working.value

        position, position_symbol = 0, ""
        working_buy = working_sell = 0
        base_gross = base_net = _ZERO
        working_gross = _ZERO
        growth = _ZERO
        net_buy = net_sell = _ZERO  # the largest net increase from one symbol's buys, decrease from its sells
        for symbol in sorted(per_symbol):
            qty, buys, sells = per_symbol[symbol]
            working_buy += buys.lots
            working_sell += sells.lots
            up, down = qty + buys.lots, qty - sells.lots
            worst = up if up >= -down else down
            if abs(worst) > abs(position) or (not position_symbol and (buys.lots or sells.lots or qty)):
                position, position_symbol = worst, symbol
            mark2 = self.marks.get(symbol) or 0
            held = self._money(symbol, qty * mark2)
            base_gross += abs(held)
            base_net += held
            working_gross += self._money(symbol, 2 * (buys.value + sells.value))
            for lots, value, grown in (
                (buys.lots, buys.value, abs(up) - abs(qty)),
                (sells.lots, sells.value, abs(down) - abs(qty)),
            ):
                if lots and grown > 0:
                    growth = max(growth, self._money(symbol, 2 * value * grown) / lots)
            net_buy = max(net_buy, self._money(symbol, 2 * buys.value))
            net_sell = max(net_sell, self._money(symbol, 2 * sells.value))
        up_net, down_net = base_net + net_buy, base_net - net_sell
        net_exposure = up_net if up_net >= -down_net else down_net

        orders, messages, window_ns = self.risk.rate_counts(scope, self.now)
        oms, portfolio = self.oms, self.portfolio
        if kind == ScopeKind.FIRM:
            open_orders = oms.open_order_count()
            daily = portfolio.daily_pnl()
        elif kind == ScopeKind.STRATEGY:
            open_orders = oms.open_order_count(strategy_id=name)
            daily = portfolio.daily_pnl(strategy_id=name)
        else:
            open_orders = oms.open_order_count(symbol=name)
            daily = _ZERO  # the portfolio keeps daily P&L per strategy and firm (as the daily loss limit does)
        return ScopeUtilisation(
            scope=scope,
            open_orders=open_orders,
            orders_in_window=orders,
            messages_in_window=messages,
            rate_window_ns=window_ns,
            position=position,
            position_symbol=position_symbol,
            working_buy=working_buy,
            working_sell=working_sell,
            gross_exposure=_clean(base_gross + growth),
            net_exposure=_clean(net_exposure),
            working_exposure=_clean(working_gross),
            daily_pnl=_clean(daily),
            position_quantity=(
                _clean(self.instruments.get(position_symbol).lots_to_qty(position)) if position_symbol else _ZERO
            ),
        )


def _in_scope(kind: ScopeKind, name: str, strategy_id: str, symbol: str) -> bool:
    if kind == ScopeKind.FIRM:
        return True
    if kind == ScopeKind.STRATEGY:
        return strategy_id == name
    return symbol == name


def _clean(value: Decimal) -> Decimal:
    """Without trailing zeros or an exponent ("455.5", not "455.5000" or "4.555E+2"), as the portfolio prints money."""
    if not value:
        return _ZERO
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


__all__ = ["compute"]
