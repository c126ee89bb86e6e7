"""The pre-trade risk gate: every new order passes it inline before it leaves for the venue (engine thread only).

Controls (SEC 15c3-5(c)(1), MiFID II RTS 6 Art. 15-17), each with its own code (`RiskCode`), applied at every level
of the hierarchy that sets the limit: an order must pass the firm's limits, its strategy's and its instrument's.
Per-order limits (quantity, notional, collar) reduce to the tightest level, the reason naming the level that
bound; aggregate limits count what belongs to their level (see docs/risk.md for the table).

Order of operations (RTS 6 Art. 15(2): an order counts against the limits the moment it is sent):
1. the engine registers the order in the OMS (`Oms.new_order`, PENDING_NEW), so every OMS count already includes it;
2. `RiskGate.check(order, reference_price=...)`: None = passed. A pass *is* the send decision: the gate records
   the order in its order-rate, message-rate and duplicate windows and tells the trading states (reject-rate
   denominator) before returning, so the engine must then send it (`Oms.place_message`);
3. on a `Denial` the engine calls `Oms.on_order_denied` and publishes `OrderDenied(code, reason)`. Nothing was
   recorded, so a denied order counts against nothing.
Cancels and replaces are messages: the engine calls `on_message_sent` for each one it sends (new orders are
counted by `check` itself). Cancels are never denied: they only ever reduce risk.

Speed: limits are compiled to ints (ticks, lots, tick*lot notional units) at `set_limits` time and resolved per
(strategy, symbol) on first use, so a check is integer compares, deque appends and one pass over the symbol's
working orders; Decimal appears only where the portfolio reports money (exposure, daily loss), and only when that
limit is set.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any, Protocol

import msgspec

from engine.clock import Clock
from engine.enums import OrderType, Side, TradingState
from engine.errors import EngineError
from engine.instruments import Instrument, InstrumentRegistry
from engine.protocol import RiskLimits, Scope, ScopeKind, ScopeLimits
from engine.trading_state import TradingStates

_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrderType.MARKET
_HALTED = TradingState.HALTED
_REDUCING = TradingState.REDUCING

# Orders and messages are remembered this long at a level with no rate limit, so a limit set at run time with a
# window up to this long counts what was sent before it was set.
DEFAULT_RATE_RETENTION_NS = 1_000_000_000


class RiskCode(StrEnum):
    """Reason codes on `OrderDenied` (and on `RiskError` for bad limit commands)."""

    MAX_ORDER_QTY = "RISK_MAX_ORDER_QTY"
    MAX_ORDER_NOTIONAL = "RISK_MAX_ORDER_NOTIONAL"
    PRICE_COLLAR = "RISK_PRICE_COLLAR"
    NO_REFERENCE_PRICE = "RISK_NO_REFERENCE_PRICE"
    MAX_POSITION = "RISK_MAX_POSITION"
    MAX_GROSS_EXPOSURE = "RISK_MAX_GROSS_EXPOSURE"
    MAX_NET_EXPOSURE = "RISK_MAX_NET_EXPOSURE"
    MAX_OPEN_ORDERS = "RISK_MAX_OPEN_ORDERS"
    ORDER_RATE = "RISK_ORDER_RATE"
    MESSAGE_RATE = "RISK_MESSAGE_RATE"
    DUPLICATE_ORDER = "RISK_DUPLICATE_ORDER"
    SELF_MATCH = "RISK_SELF_MATCH"
    RESTRICTED_SYMBOL = "RISK_RESTRICTED_SYMBOL"
    DAILY_LOSS = "RISK_DAILY_LOSS"
    UNKNOWN_SYMBOL = "RISK_UNKNOWN_SYMBOL"
    UNSUPPORTED_LIMIT = "RISK_UNSUPPORTED_LIMIT"
    STATE_HALTED = "STATE_HALTED"
    STATE_REDUCING = "STATE_REDUCING"


class RiskError(EngineError):
    """A limit command that cannot be applied (unknown instrument). Denials are `Denial`s, not errors."""


class Denial(msgspec.Struct, frozen=True):
    """Why the gate refused an order; the engine publishes it as `OrderDenied(code=..., reason=...)`."""

    code: str
    reason: str


class _Oms(Protocol):
    def working_orders(self, *, strategy_id: str | None = None, symbol: str | None = None) -> list[Any]: ...

    def open_order_count(self, *, strategy_id: str | None = None, symbol: str | None = None) -> int: ...


class _Portfolio(Protocol):
    def position(self, strategy_id: str, symbol: str) -> int: ...

    def net_position(self, symbol: str) -> int: ...

    def daily_pnl(self, *, strategy_id: str | None = None) -> Decimal: ...

    def gross_exposure(self, *, strategy_id: str | None = None) -> Decimal: ...

    def net_exposure(self, *, strategy_id: str | None = None) -> Decimal: ...


_FIRM_KEY = (int(ScopeKind.FIRM), "")


def _key(scope: Scope) -> tuple[int, str]:
    return (int(scope.kind), scope.name)


def _floor_steps(limit: Decimal, step: Decimal) -> int:
    """Whole steps within `limit`: a limit off the grid rounds towards safety (down)."""
    return int(Fraction(limit) // Fraction(step))


class _Level:
    """One level's aggregate limits resolved for one (strategy, symbol), in engine units."""

    __slots__ = (
        "daily_loss",
        "max_gross",
        "max_messages",
        "max_net",
        "max_open_orders",
        "max_orders",
        "max_position",
        "name",
        "rate_window_ns",
    )

    def __init__(self, name: str, limits: RiskLimits, instrument: Instrument) -> None:
        self.name = name
        self.max_position = (
            None if limits.max_position is None else _floor_steps(limits.max_position, instrument.lot_size)
        )
        self.max_gross = limits.max_gross_exposure
        self.max_net = limits.max_net_exposure
        self.max_open_orders = limits.max_open_orders
        self.max_orders = limits.max_orders_per_window
        self.max_messages = limits.max_messages_per_window
        self.rate_window_ns = limits.rate_window_ns
        self.daily_loss = None if limits.max_daily_loss is None else -limits.max_daily_loss


class _Resolved:
    """Everything the gate needs for orders of one strategy in one symbol, built once per limit change.

    Per-order limits hold the tightest value over the three levels and the name of the level that set it.
    """

    __slots__ = (
        "collar_pct",
        "collar_pct_level",
        "collar_ticks",
        "collar_ticks_level",
        "dup_level",
        "dup_window_ns",
        "firm",
        "instrument",
        "max_notional_units",
        "max_qty",
        "notional_level",
        "notional_unit",
        "qty_level",
        "restricted_by",
        "strategy",
        "symbol_level",
    )

    def __init__(self, instrument: Instrument, levels: list[tuple[str, RiskLimits | None]]) -> None:
        self.instrument = instrument
        # Money per (tick * lot): notional = ticks * lots * unit, so notional limits compare as ints.
        unit = instrument.tick_size * instrument.lot_size * instrument.multiplier
        self.notional_unit = unit
        self.restricted_by: str | None = None
        self.max_qty: int | None = None
        self.qty_level = ""
        self.max_notional_units: int | None = None
        self.notional_level = ""
        self.collar_ticks: int | None = None
        self.collar_ticks_level = ""
        self.collar_pct: tuple[int, int] | None = None  # (numerator, denominator) of the percentage
        self.collar_pct_level = ""
        self.dup_window_ns: int | None = None
        self.dup_level = ""
        resolved: list[_Level | None] = []
        symbol = instrument.symbol
        for name, limits in levels:
            if limits is None:
                resolved.append(None)
                continue
            if self.restricted_by is None and symbol in limits.restricted_symbols:
                self.restricted_by = name
            if limits.max_order_quantity is not None:
                lots = _floor_steps(limits.max_order_quantity, instrument.lot_size)
                if self.max_qty is None or lots < self.max_qty:
                    self.max_qty, self.qty_level = lots, name
            if limits.max_order_notional is not None:
                units = int(Fraction(limits.max_order_notional) // Fraction(unit))
                if self.max_notional_units is None or units < self.max_notional_units:
                    self.max_notional_units, self.notional_level = units, name
            if limits.price_collar_ticks is not None and (
                self.collar_ticks is None or limits.price_collar_ticks < self.collar_ticks
            ):
                self.collar_ticks, self.collar_ticks_level = limits.price_collar_ticks, name
            if limits.price_collar_pct is not None:
                ratio = limits.price_collar_pct.as_integer_ratio()
                if self.collar_pct is None or Fraction(*ratio) < Fraction(*self.collar_pct):
                    self.collar_pct, self.collar_pct_level = ratio, name
            if limits.duplicate_window_ns is not None and (
                self.dup_window_ns is None or limits.duplicate_window_ns > self.dup_window_ns
            ):
                self.dup_window_ns, self.dup_level = limits.duplicate_window_ns, name
            resolved.append(_Level(name, limits, instrument))
        self.firm, self.strategy, self.symbol_level = resolved


class _Windows:
    """Send timestamps of orders and of messages at one level (firm, one strategy or one symbol)."""

    __slots__ = ("messages", "orders")

    def __init__(self) -> None:
        self.orders: deque[int] = deque()
        self.messages: deque[int] = deque()


def _prune(window: deque[int], horizon: int) -> int:
    """Drop timestamps at or before `horizon` (outside a sliding window ending now); return what is left."""
    while window and window[0] <= horizon:
        window.popleft()
    return len(window)


def _reduces(position: int, side: Side, worst_case_lots: int) -> bool:
    """Whether filling `worst_case_lots` on `side` brings |position| down without crossing through zero."""
    if position > 0:
        return side == _SELL and worst_case_lots <= position
    if position < 0:
        return side == _BUY and worst_case_lots <= -position
    return False


class RiskGate:
    """Pre-trade checks for one account (one `Oms`). Engine thread only; never reads the wall clock."""

    __slots__ = (
        "_clock",
        "_dup_last",
        "_dup_order",
        "_dup_retention_ns",
        "_firm_windows",
        "_instruments",
        "_limits",
        "_oms",
        "_portfolio",
        "_resolved",
        "_states",
        "_strategy_windows",
        "_symbol_windows",
        "checks",
        "denials",
    )

    def __init__(
        self,
        clock: Clock,
        instruments: InstrumentRegistry,
        oms: _Oms,
        portfolio: _Portfolio,
        states: TradingStates,
    ) -> None:
        self._clock = clock
        self._instruments = instruments
        self._oms = oms
        self._portfolio = portfolio
        self._states = states
        self._limits: dict[tuple[int, str], RiskLimits] = {}
        self._resolved: dict[tuple[str, str], _Resolved] = {}
        self._firm_windows = _Windows()
        self._strategy_windows: dict[str, _Windows] = {}
        self._symbol_windows: dict[str, _Windows] = {}
        # Duplicate detection: last send time per (strategy, symbol, side, price, quantity), and the sends in time
        # order so expired keys are forgotten in O(1) amortised.
        self._dup_last: dict[tuple[str, str, int, int, int], int] = {}
        self._dup_order: deque[tuple[int, tuple[str, str, int, int, int]]] = deque()
        self._dup_retention_ns = 0
        self.checks = 0
        self.denials: dict[str, int] = {}

    # --- limits --------------------------------------------------------------------------------------------------

    def set_limits(self, scope: Scope, limits: RiskLimits | None) -> None:
        """Replace the whole limit set of `scope` (None removes it). Takes effect on the next check: the resolved
        per-(strategy, symbol) limits are dropped and rebuilt lazily."""
        if scope.kind == ScopeKind.INSTRUMENT:
            if scope.name not in self._instruments:
                raise RiskError(RiskCode.UNKNOWN_SYMBOL, f"no instrument {scope.name!r} to set limits on")
            if limits is not None and limits.max_daily_loss is not None:
                # The portfolio keeps daily P&L per strategy and for the firm, not per instrument; refusing the
                # limit is better than accepting one that would never bind.
                raise RiskError(
                    RiskCode.UNSUPPORTED_LIMIT,
                    "max_daily_loss applies to the FIRM and STRATEGY scopes, not an instrument",
                )
        key = _key(scope)
        if limits is None:
            self._limits.pop(key, None)
        else:
            self._limits[key] = limits
        self._resolved.clear()
        windows = [lim.duplicate_window_ns for lim in self._limits.values() if lim.duplicate_window_ns is not None]
        self._dup_retention_ns = max(windows, default=0)

    def limits_for(self, scope: Scope) -> RiskLimits | None:
        return self._limits.get(_key(scope))

    def limits(self) -> list[tuple[Scope, RiskLimits]]:
        """Every (scope, limits) set, sorted by scope."""
        return [(Scope(kind=ScopeKind(kind), name=name), lim) for (kind, name), lim in sorted(self._limits.items())]

    def scope_limits(self) -> tuple[ScopeLimits, ...]:
        """Every scope's limits, sorted, for `StateSnapshot.limits`."""
        return tuple(
            ScopeLimits(scope=Scope(kind=ScopeKind(kind), name=name), limits=limits)
            for (kind, name), limits in sorted(self._limits.items())
        )

    def _resolve(self, strategy_id: str, symbol: str) -> _Resolved | None:
        if symbol not in self._instruments:
            return None
        get = self._limits.get
        resolved = _Resolved(
            self._instruments.get(symbol),
            [
                ("firm", get(_FIRM_KEY)),
                (f"strategy {strategy_id}", get((int(ScopeKind.STRATEGY), strategy_id))),
                (f"instrument {symbol}", get((int(ScopeKind.INSTRUMENT), symbol))),
            ],
        )
        self._resolved[(strategy_id, symbol)] = resolved
        return resolved

    # --- the check -------------------------------------------------------------------------------------------------

    def check(self, order: Any, *, reference_price: int | None) -> Denial | None:
        """None if `order` may be sent, else the first control it fails.

        Preconditions: `order` is registered in the OMS (PENDING_NEW), so OMS counts include it; a None result
        means the engine sends it now (the gate has already counted it as sent). `reference_price` is the mid or
        last trade in ticks, None when the book has neither.
        """
        self.checks += 1
        denial = self._evaluate(order, reference_price)
        if denial is _PASS:
            return None
        denials = self.denials
        denials[denial.code] = denials.get(denial.code, 0) + 1
        return denial

    def check_replace(self, order: Any, price: int, quantity: int, *, reference_price: int | None) -> Denial | None:
        """None if `order` (live, in the OMS) may be replaced to `quantity` lots (total, FIX OrderQty) at `price`.

        A replace is judged as the order it would become: per-order limits, the collar and self-match on the new
        terms, and the message rate. Position, exposure, REDUCING and daily-loss checks apply only when it raises
        the worst-case leaves (while in flight the venue may fill either size, so the larger one counts): a replace
        that does not add risk is never refused by them. Nothing is recorded: the engine reports the replace it
        sends through `on_message_sent`, like a cancel.
        """
        self.checks += 1
        denial = self._evaluate(order, reference_price, price, quantity)
        if denial is _PASS:
            return None
        denials = self.denials
        denials[denial.code] = denials.get(denial.code, 0) + 1
        return denial

    def _evaluate(
        self, order: Any, reference_price: int | None, new_price: int = 0, new_quantity: int = 0
    ) -> Denial | None:
        strategy_id = order.strategy_id
        symbol = order.symbol
        side = order.side
        replace = new_quantity > 0
        if replace:
            quantity = new_quantity
            # Worst-case leaves once the replace is in flight vs now (Order.worst_case_leaves).
            new_leaves = max(order.leaves_quantity, new_quantity - order.cum_quantity)
            adds_risk = new_leaves > order.worst_case_leaves()
        else:
            quantity = order.quantity
            new_leaves = 0
            adds_risk = True
        resolved = self._resolved.get((strategy_id, symbol))
        if resolved is None:
            resolved = self._resolve(strategy_id, symbol)
            if resolved is None:
                return Denial(RiskCode.UNKNOWN_SYMBOL, f"no instrument {symbol!r}")
        is_market = order.order_type == _MARKET
        price = new_price if replace else order.price

        # Lazily fetched counters, shared by the controls that need them.
        strategy_position: int | None = None
        net_position: int | None = None

        states = self._states
        reducing_strategy = reducing_net = False
        if not states.all_active:
            firm_state, strategy_state, symbol_state = states.levels_for(strategy_id, symbol)
            if firm_state is _HALTED or strategy_state is _HALTED or symbol_state is _HALTED:
                where = "firm" if firm_state is _HALTED else "strategy" if strategy_state is _HALTED else "instrument"
                return Denial(RiskCode.STATE_HALTED, f"trading is HALTED at the {where} level: only cancels")
            reducing_strategy = strategy_state is _REDUCING
            reducing_net = firm_state is _REDUCING or symbol_state is _REDUCING

        if resolved.restricted_by is not None:
            return Denial(RiskCode.RESTRICTED_SYMBOL, f"{symbol} is on the restricted list ({resolved.restricted_by})")

        if is_market:
            if reference_price is None:
                return Denial(RiskCode.NO_REFERENCE_PRICE, f"no reference price for a MARKET order in {symbol}")
            notional_price = reference_price
        else:
            notional_price = price

        max_qty = resolved.max_qty
        if max_qty is not None and quantity > max_qty:
            return Denial(
                RiskCode.MAX_ORDER_QTY, f"quantity {quantity} lots above {max_qty} lots ({resolved.qty_level})"
            )
        max_units = resolved.max_notional_units
        if max_units is not None and notional_price * quantity > max_units:
            notional = resolved.instrument.notional(notional_price, quantity)
            return Denial(
                RiskCode.MAX_ORDER_NOTIONAL,
                f"notional {notional} above {resolved.notional_unit * max_units} ({resolved.notional_level})",
            )
        if reference_price is not None and not is_market:
            distance = price - reference_price if price > reference_price else reference_price - price
            collar = resolved.collar_ticks
            if collar is not None and distance > collar:
                return Denial(
                    RiskCode.PRICE_COLLAR,
                    f"price {price} is {distance} ticks from reference {reference_price}, collar {collar} ticks "
                    f"({resolved.collar_ticks_level})",
                )
            pct = resolved.collar_pct
            # distance / reference <= pct / 100, cross-multiplied so it stays exact in ints.
            if pct is not None and distance * 100 * pct[1] > reference_price * pct[0]:
                return Denial(
                    RiskCode.PRICE_COLLAR,
                    f"price {price} is {distance} ticks from reference {reference_price}, beyond the "
                    f"{Fraction(*pct)} % collar ({resolved.collar_pct_level})",
                )

        firm, strategy, instrument = resolved.firm, resolved.strategy, resolved.symbol_level
        now = self._clock.now()

        # Rates: the order would be one more order and one more message in each level's window.
        firm_windows = self._firm_windows
        strategy_windows = self._strategy_windows.get(strategy_id)
        symbol_windows = self._symbol_windows.get(symbol)
        for level, windows in ((firm, firm_windows), (strategy, strategy_windows), (instrument, symbol_windows)):
            if level is None or level.rate_window_ns is None or windows is None:
                continue
            horizon = now - level.rate_window_ns
            if not replace and level.max_orders is not None and _prune(windows.orders, horizon) >= level.max_orders:
                return Denial(
                    RiskCode.ORDER_RATE,
                    f"{level.max_orders} orders already sent in {level.rate_window_ns} ns ({level.name})",
                )
            if level.max_messages is not None and _prune(windows.messages, horizon) >= level.max_messages:
                return Denial(
                    RiskCode.MESSAGE_RATE,
                    f"{level.max_messages} messages already sent in {level.rate_window_ns} ns ({level.name})",
                )

        dup_window = resolved.dup_window_ns
        if dup_window is not None and not replace:
            last = self._dup_last.get((strategy_id, symbol, side, price, quantity))
            if last is not None and now - last < dup_window:
                return Denial(
                    RiskCode.DUPLICATE_ORDER,
                    f"same {side.name} {quantity}@{price} sent {now - last} ns ago, window {dup_window} ns "
                    f"({resolved.dup_level})",
                )

        # One pass over the symbol's working orders (this one included: it is PENDING_NEW in the OMS) gives the
        # open-order counts, the worst-case same-side quantities, their notional, and self-match.
        symbol_orders = self._oms.working_orders(symbol=symbol)
        strategy_same_side = 0
        net_same_side = 0
        strategy_same_notional = 0
        net_same_notional = 0
        crossing = None
        for working in symbol_orders:
            working_strategy = working.strategy_id
            if working.side == side:
                if working is order:
                    leaves = new_leaves if replace else order.quantity
                    wprice = notional_price
                else:
                    leaves = working.worst_case_leaves()
                    wprice = working.price if working.order_type != _MARKET else notional_price
                net_same_side += leaves
                net_same_notional += leaves * wprice
                if working_strategy == strategy_id:
                    strategy_same_side += leaves
                    strategy_same_notional += leaves * wprice
            elif crossing is None and working_strategy != strategy_id:
                # Would this order trade against a resting order of another strategy of the same account?
                # A replace in flight may rest at either price, so both count.
                other = working.price
                pending = working.pending_price
                if (
                    is_market
                    or working.order_type == _MARKET
                    or (
                        (side == _BUY and (other <= price or (pending and pending <= price)))
                        or (side == _SELL and (other >= price or (pending and pending >= price)))
                    )
                ):
                    crossing = working
        if crossing is not None:
            return Denial(
                RiskCode.SELF_MATCH,
                f"{side.name} @{price or 'MKT'} would cross {crossing.client_order_id} of strategy "
                f"{crossing.strategy_id} @{crossing.price}",
            )

        if replace:
            pass  # a replace opens no order
        elif firm is not None and firm.max_open_orders is not None:
            count = self._oms.open_order_count()
            if count > firm.max_open_orders:
                return Denial(RiskCode.MAX_OPEN_ORDERS, f"{count} open orders above {firm.max_open_orders} (firm)")
        if not replace and strategy is not None and strategy.max_open_orders is not None:
            count = self._oms.open_order_count(strategy_id=strategy_id)
            if count > strategy.max_open_orders:
                return Denial(
                    RiskCode.MAX_OPEN_ORDERS, f"{count} open orders above {strategy.max_open_orders} ({strategy.name})"
                )
        if not replace and instrument is not None and instrument.max_open_orders is not None:
            count = len(symbol_orders)
            if count > instrument.max_open_orders:
                return Denial(
                    RiskCode.MAX_OPEN_ORDERS,
                    f"{count} open orders above {instrument.max_open_orders} ({instrument.name})",
                )

        # Positions: worst case = current position + every same-side working lot (this order's included).
        portfolio = self._portfolio
        signed = int(side)
        for level, of_strategy in ((firm, False), (strategy, True), (instrument, False)):
            if level is None or level.max_position is None or not adds_risk:
                continue
            if of_strategy:
                if strategy_position is None:
                    strategy_position = portfolio.position(strategy_id, symbol)
                worst = strategy_position + signed * strategy_same_side
            else:
                if net_position is None:
                    net_position = portfolio.net_position(symbol)
                worst = net_position + signed * net_same_side
            if signed * worst > level.max_position:
                return Denial(
                    RiskCode.MAX_POSITION,
                    f"worst-case position {worst} lots beyond {level.max_position} lots ({level.name})",
                )

        # Exposures, in money: the portfolio's figure at mark plus what this side's working orders in this symbol
        # (this one included) would add at their prices. For gross, fills that shrink |position| count negative.
        unit = resolved.notional_unit
        for level, of_strategy in ((firm, False), (strategy, True), (instrument, False)):
            if level is None or (level.max_gross is None and level.max_net is None) or not adds_risk:
                continue
            if of_strategy:
                if strategy_position is None:
                    strategy_position = portfolio.position(strategy_id, symbol)
                position, same_side, same_notional = strategy_position, strategy_same_side, strategy_same_notional
            else:
                if net_position is None:
                    net_position = portfolio.net_position(symbol)
                position, same_side, same_notional = net_position, net_same_side, net_same_notional
            if level is instrument:
                # The instrument's own exposure: its net position valued at this order's price.
                gross_now = abs(position) * notional_price * unit
                net_now = position * notional_price * unit
            else:
                strategy_filter = strategy_id if of_strategy else None
                gross_now = portfolio.gross_exposure(strategy_id=strategy_filter) if level.max_gross is not None else 0
                net_now = portfolio.net_exposure(strategy_id=strategy_filter) if level.max_net is not None else 0
            if level.max_gross is not None:
                # Average price of the same-side working lots, so the change in |position| is valued at them.
                after = abs(position + signed * same_side)
                change = after - abs(position)
                if change > 0:
                    worst_gross = gross_now + Decimal(change * same_notional) * unit / same_side
                    if worst_gross > level.max_gross:
                        return Denial(
                            RiskCode.MAX_GROSS_EXPOSURE,
                            f"worst-case gross exposure {worst_gross:.2f} above {level.max_gross} ({level.name})",
                        )
            if level.max_net is not None:
                worst_net = net_now + signed * same_notional * unit
                if signed * worst_net > level.max_net:
                    return Denial(
                        RiskCode.MAX_NET_EXPOSURE,
                        f"worst-case net exposure {worst_net} beyond {level.max_net} ({level.name})",
                    )

        # Trading states and the daily loss limit both let through only orders that reduce the position; at the
        # strategy level that is the strategy's own position, at the firm and instrument levels the symbol's net.
        loss_strategy = strategy is not None and strategy.daily_loss is not None
        loss_firm = firm is not None and firm.daily_loss is not None
        if adds_risk and (reducing_strategy or reducing_net or loss_strategy or loss_firm):
            if reducing_strategy or loss_strategy:
                if strategy_position is None:
                    strategy_position = portfolio.position(strategy_id, symbol)
                strategy_reduces = _reduces(strategy_position, side, strategy_same_side)
            else:
                strategy_reduces = True
            if reducing_net or loss_firm:
                if net_position is None:
                    net_position = portfolio.net_position(symbol)
                net_reduces = _reduces(net_position, side, net_same_side)
            else:
                net_reduces = True
            if reducing_strategy and not strategy_reduces:
                return Denial(
                    RiskCode.STATE_REDUCING,
                    f"strategy {strategy_id} is REDUCING: worst case {side.name} {strategy_same_side} lots does not "
                    f"reduce its position {strategy_position}",
                )
            if reducing_net and not net_reduces:
                return Denial(
                    RiskCode.STATE_REDUCING,
                    f"REDUCING: worst case {side.name} {net_same_side} lots does not reduce the {symbol} position "
                    f"{net_position}",
                )
            if loss_firm and not net_reduces:
                pnl = portfolio.daily_pnl()
                if pnl <= firm.daily_loss:
                    return Denial(RiskCode.DAILY_LOSS, f"daily P&L {pnl} at or below {firm.daily_loss} (firm)")
            if loss_strategy and not strategy_reduces:
                pnl = portfolio.daily_pnl(strategy_id=strategy_id)
                if pnl <= strategy.daily_loss:
                    return Denial(
                        RiskCode.DAILY_LOSS, f"daily P&L {pnl} at or below {strategy.daily_loss} ({strategy.name})"
                    )

        if replace:
            return _PASS
        # Passed: from here the order counts as sent (RTS 6 Art. 15(2)).
        self._record_send(
            strategy_id=strategy_id,
            symbol=symbol,
            now=now,
            strategy_windows=strategy_windows,
            symbol_windows=symbol_windows,
            firm=firm,
            strategy=strategy,
            instrument=instrument,
        )
        if dup_window is not None or self._dup_retention_ns:
            self._record_duplicate((strategy_id, symbol, side, price, quantity), now)
        states.on_order_sent(strategy_id=strategy_id, symbol=symbol)
        return _PASS

    # --- sends -----------------------------------------------------------------------------------------------------

    def _record_send(
        self,
        *,
        strategy_id: str,
        symbol: str,
        now: int,
        strategy_windows: _Windows | None,
        symbol_windows: _Windows | None,
        firm: _Level | None,
        strategy: _Level | None,
        instrument: _Level | None,
    ) -> None:
        if strategy_windows is None:
            strategy_windows = self._strategy_windows[strategy_id] = _Windows()
        if symbol_windows is None:
            symbol_windows = self._symbol_windows[symbol] = _Windows()
        for level, windows in (
            (firm, self._firm_windows),
            (strategy, strategy_windows),
            (instrument, symbol_windows),
        ):
            # Keep a level's window pruned to its own length (or the default retention without a rate limit), so
            # memory is bounded by the rate limit itself.
            window_ns = level.rate_window_ns if level is not None and level.rate_window_ns is not None else None
            horizon = now - (window_ns if window_ns is not None else DEFAULT_RATE_RETENTION_NS)
            orders = windows.orders
            orders.append(now)
            while orders[0] <= horizon:
                orders.popleft()
            messages = windows.messages
            messages.append(now)
            while messages[0] <= horizon:
                messages.popleft()

    def on_message_sent(self, now: int, *, strategy_id: str | None = None, symbol: str | None = None) -> None:
        """A cancel or replace left for the venue: one more message in the firm's window, and the strategy's and
        symbol's when given. New orders are counted by `check` itself; do not report them here."""
        self._firm_windows.messages.append(now)
        _prune(self._firm_windows.messages, now - self._retention(_FIRM_KEY))
        if strategy_id is not None:
            windows = self._strategy_windows.get(strategy_id)
            if windows is None:
                windows = self._strategy_windows[strategy_id] = _Windows()
            windows.messages.append(now)
            _prune(windows.messages, now - self._retention((int(ScopeKind.STRATEGY), strategy_id)))
        if symbol is not None:
            windows = self._symbol_windows.get(symbol)
            if windows is None:
                windows = self._symbol_windows[symbol] = _Windows()
            windows.messages.append(now)
            _prune(windows.messages, now - self._retention((int(ScopeKind.INSTRUMENT), symbol)))

    def _retention(self, key: tuple[int, str]) -> int:
        limits = self._limits.get(key)
        if limits is not None and limits.rate_window_ns is not None:
            return limits.rate_window_ns
        return DEFAULT_RATE_RETENTION_NS

    def _record_duplicate(self, key: tuple[str, str, int, int, int], now: int) -> None:
        self._dup_last[key] = now
        order = self._dup_order
        order.append((now, key))
        horizon = now - self._dup_retention_ns
        last = self._dup_last
        while order and order[0][0] <= horizon:
            ts, old = order.popleft()
            if last.get(old) == ts:
                del last[old]

    # --- snapshot ----------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Plain, sorted data: limits per scope (Decimals as strings), send windows, duplicate memory, counters."""

        def windows(w: _Windows) -> list[list[int]]:
            return [list(w.orders), list(w.messages)]

        return {
            "limits": [[kind, name, msgspec.to_builtins(lim)] for (kind, name), lim in sorted(self._limits.items())],
            "firm_windows": windows(self._firm_windows),
            "strategy_windows": [[name, windows(w)] for name, w in sorted(self._strategy_windows.items())],
            "symbol_windows": [[name, windows(w)] for name, w in sorted(self._symbol_windows.items())],
            "duplicates": [[ts, list(key)] for ts, key in self._dup_order],
            "checks": self.checks,
            "denials": dict(sorted(self.denials.items())),
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace all state with a `snapshot()`; the result snapshots identically."""
        self._limits = {}
        for kind, name, lim in data["limits"]:
            self.set_limits(Scope(kind=ScopeKind(kind), name=name), msgspec.convert(lim, RiskLimits))

        def windows(data: list[list[int]]) -> _Windows:
            w = _Windows()
            w.orders.extend(data[0])
            w.messages.extend(data[1])
            return w

        self._firm_windows = windows(data["firm_windows"])
        self._strategy_windows = {name: windows(w) for name, w in data["strategy_windows"]}
        self._symbol_windows = {name: windows(w) for name, w in data["symbol_windows"]}
        self._dup_order = deque()
        self._dup_last = {}
        for ts, (strategy_id, symbol, side, price, quantity) in data["duplicates"]:
            key = (strategy_id, symbol, Side(side), price, quantity)
            self._dup_order.append((ts, key))
            self._dup_last[key] = ts
        self.checks = data["checks"]
        self.denials = dict(data["denials"])


# Internal marker: `_evaluate` returns it for a pass so the hot path needs no second branch; never escapes `check`.
_PASS = Denial("", "")

__all__ = ["DEFAULT_RATE_RETENTION_NS", "Denial", "RiskCode", "RiskError", "RiskGate"]
