"""The pre-trade risk gate: every new order passes it inline before it leaves for the venue (engine thread only).

Controls (SEC 15c3-5(c)(1), MiFID II RTS 6 Art. 15-17), each with its own code (`RiskCode`), applied at every level
of the hierarchy that sets the limit: an order must pass the firm's limits, its strategy's and its instrument's.
Per-order limits (quantity, notional, collar) reduce to the tightest level, the reason naming the level that
bound; aggregate limits count what belongs to their level (docs/risk.md has the table).

Order of operations (RTS 6 Art. 15(2): an order counts against the limits the moment it is sent):
1. the engine registers the order in the OMS (`Oms.new_order`, PENDING_NEW), so every OMS count already includes it;
2. `RiskGate.check(order, reference_price=...)`: None = passed. A pass *is* the send decision: the gate records
   the order in its order-rate, message-rate and duplicate windows and tells the trading states (reject-rate
   denominator) before returning, so the engine must then send it (`Oms.place_message`);
3. on a `Denial` the engine calls `Oms.on_order_denied` and publishes `OrderDenied(code, reason)`. Nothing was
   recorded, so a denied order counts against nothing.
Cancels and replaces are messages: the engine calls `on_message_sent` for each one it sends (new orders are
counted by `check` itself). Cancels are never denied: they only ever reduce risk. Replaces are checked with
`check_replace` before they are sent.

Speed (the gate runs inline, tick-to-quote budget 10 us): limits are compiled at `set_limits` time and resolved
per (strategy, symbol) on first use into ints — lots, ticks, tick*lot units and an exact integer money unit — so a
check is integer compares and deque appends. Working orders are read from the OMS's per-(strategy, symbol, side)
counters (`Oms.working_side`), which the OMS keeps on every order change, so a check costs the same with 2 or 500
working orders. Exposures are valued in that integer money unit from the portfolio's integer positions and marks
(the order's symbol at the reference price, others at the portfolio's mark), and the daily loss limit compares
the portfolio's integer daily P&L with the limit compiled into the portfolio's money unit: no Decimal on a check
that passes.
"""

from __future__ import annotations

import math
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
from engine.oms import RiskView
from engine.protocol import RiskLimits, Scope, ScopeKind, ScopeLimits
from engine.trading_state import TradingStates

_BUY = Side.BUY
_SELL = Side.SELL
_MARKET = OrderType.MARKET
_HALTED = TradingState.HALTED
_REDUCING = TradingState.REDUCING
_FIRM, _STRATEGY, _INSTRUMENT = ScopeKind.FIRM, ScopeKind.STRATEGY, ScopeKind.INSTRUMENT

# Orders and messages are remembered this long at a level with no rate limit, so a limit set at run time with a
# window up to this long counts what was sent before it was set.
DEFAULT_RATE_RETENTION_NS = 1_000_000_000


class RiskCode(StrEnum):
    """Reason codes on `OrderDenied` (and on `RiskError` for limit commands that cannot be applied)."""

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
    """A limit command that cannot be applied. Denials are `Denial`s, not errors."""


class Denial(msgspec.Struct, frozen=True):
    """Why the gate refused an order; the engine publishes it as `OrderDenied(code=..., reason=...)`."""

    code: str
    reason: str


class _Oms(Protocol):
    def working_orders(self, *, strategy_id: str | None = None, symbol: str | None = None) -> list[Any]: ...

    def risk_view(self, strategy_id: str, symbol: str) -> RiskView: ...


class _Portfolio(Protocol):
    money_scale: int

    def position(self, strategy_id: str, symbol: str) -> int: ...

    def net_position(self, symbol: str) -> int: ...

    def mark2(self, symbol: str) -> int | None: ...

    def daily_pnl(self, *, strategy_id: str | None = None) -> Decimal: ...

    def daily_pnl_units(self, strategy_id: str | None = None) -> int: ...


def _key(scope: Scope) -> tuple[int, str]:
    return (int(scope.kind), scope.name)


def _floor_div(value: Decimal, step: Decimal | int) -> int:
    """Whole steps within `value`, exactly: a limit off the grid rounds towards safety (down)."""
    return int(Fraction(value) // Fraction(step))


class _Windows:
    """Send timestamps of orders and of messages at one level (the firm, one strategy or one symbol)."""

    __slots__ = ("messages", "orders")

    def __init__(self) -> None:
        self.orders: deque[int] = deque()
        self.messages: deque[int] = deque()


def _prune(window: deque[int], horizon: int) -> int:
    """Drop timestamps at or before `horizon` (outside a sliding window ending now); return what is left."""
    while window and window[0] <= horizon:
        window.popleft()
    return len(window)


def _count_after(window: deque[int], horizon: int) -> int:
    """Timestamps after `horizon` (the newest are at the right: count from there and stop at the first older)."""
    n = 0
    for ts in reversed(window):
        if ts <= horizon:
            break
        n += 1
    return n


def _reduces(position: int, side: Side, worst_case_lots: int) -> bool:
    """Whether filling `worst_case_lots` on `side` brings |position| down without crossing through zero."""
    if position > 0:
        return side == _SELL and worst_case_lots <= position
    if position < 0:
        return side == _BUY and worst_case_lots <= -position
    return False


def _figures(
    position: int, side: tuple[int, int], signed: int, price2: int, half_unit: int
) -> tuple[int, int, int, int, int, int]:
    """One scope's exposure figures in this symbol, in money units: (working lots, |position| value, position value,
    how much the working lots grow |position|, their gross value x lots, their signed value)."""
    lots, notional = side
    grow = abs(position + signed * lots) - abs(position)
    working = notional * 2 * half_unit
    return (
        lots,
        abs(position) * price2 * half_unit,
        position * price2 * half_unit,
        grow,
        grow * working,
        signed * working,
    )


class _Resolved:
    """Everything the gate needs for orders of one strategy in one symbol, compiled once per limit change.

    Per-order limits hold the tightest value over the three levels and the name of the level that set it;
    aggregate limits are lists holding only the levels that set them, so an unset limit costs nothing per check.
    """

    __slots__ = (
        "collar_pct",
        "collar_pct_level",
        "collar_ticks",
        "collar_ticks_level",
        "dup_level",
        "dup_window_ns",
        "exposures",
        "half_unit",
        "instrument",
        "loss_firm",
        "loss_firm_units",
        "loss_strategy",
        "loss_strategy_units",
        "max_notional_units",
        "max_qty",
        "notional_level",
        "open_firm",
        "open_strategy",
        "open_symbol",
        "position_net",
        "position_strategy",
        "qty_level",
        "rate_checks",
        "record",
        "restricted_by",
        "send_record",
        "strategy_name",
        "view",
    )

    def __init__(
        self,
        instrument: Instrument,
        levels: tuple[tuple[ScopeKind, str, RiskLimits | None, _Windows], ...],
        *,
        half_unit: int,
        money_scale: int,
        pnl_scale: int,
    ) -> None:
        self.instrument = instrument
        self.half_unit = half_unit  # money units per (half tick * lot): value = lots * twice-ticks * half_unit
        tick_lot = instrument.tick_size * instrument.lot_size * instrument.multiplier  # money per tick * lot
        symbol = instrument.symbol
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
        self.rate_checks: list[tuple[_Windows, int, int | None, int | None, str]] = []
        self.record: list[tuple[_Windows, int]] = []
        # For a passing order, per level: its order and message windows, the retention, and whether each window
        # still needs pruning (a window the rate check just pruned at the same horizon does not).
        self.send_record: list[tuple[deque[int], deque[int], int, bool, bool]] = []
        self.open_firm = self.open_strategy = self.open_symbol = None
        self.position_strategy: tuple[int, str] | None = None
        self.position_net: tuple[int, str] | None = None  # firm and instrument count the same net position
        self.exposures: list[tuple[ScopeKind, int | None, int | None, str]] = []
        self.loss_firm: Decimal | None = None
        self.loss_strategy: Decimal | None = None
        # The same floors in the portfolio's integer money unit (10**-pnl_scale): daily P&L <= floor exactly when
        # its units <= floor(floor * 10**pnl_scale), since the units are whole.
        self.loss_firm_units: int | None = None
        self.loss_strategy_units: int | None = None
        self.strategy_name = levels[1][1]
        self.view: RiskView | None = None  # the OMS's counters for this (strategy, symbol), set by the gate
        for kind, name, limits, windows in levels:
            window_ns = None if limits is None else limits.rate_window_ns
            retention_ns = window_ns if window_ns is not None else DEFAULT_RATE_RETENTION_NS
            self.record.append((windows, retention_ns))
            checked_orders = window_ns is not None and limits.max_orders_per_window is not None
            checked_messages = window_ns is not None and limits.max_messages_per_window is not None
            self.send_record.append(
                (windows.orders, windows.messages, retention_ns, not checked_orders, not checked_messages)
            )
            if limits is None:
                continue
            if self.restricted_by is None and symbol in limits.restricted_symbols:
                self.restricted_by = name
            if limits.max_order_quantity is not None:
                lots = _floor_div(limits.max_order_quantity, instrument.lot_size)
                if self.max_qty is None or lots < self.max_qty:
                    self.max_qty, self.qty_level = lots, name
            if limits.max_order_notional is not None:
                units = _floor_div(limits.max_order_notional, tick_lot)
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
            if window_ns is not None:
                self.rate_checks.append(
                    (windows, window_ns, limits.max_orders_per_window, limits.max_messages_per_window, name)
                )
            if limits.max_open_orders is not None:
                if kind is _FIRM:
                    self.open_firm = (limits.max_open_orders, name)
                elif kind is _STRATEGY:
                    self.open_strategy = (limits.max_open_orders, name)
                else:
                    self.open_symbol = (limits.max_open_orders, name)
            if limits.max_position is not None:
                lots = _floor_div(limits.max_position, instrument.lot_size)
                if kind is _STRATEGY:
                    self.position_strategy = (lots, name)
                elif self.position_net is None or lots < self.position_net[0]:
                    self.position_net = (lots, name)
            if limits.max_gross_exposure is not None or limits.max_net_exposure is not None:
                gross, net = limits.max_gross_exposure, limits.max_net_exposure
                self.exposures.append(
                    (
                        kind,
                        None if gross is None else _floor_div(gross.scaleb(money_scale), 1),
                        None if net is None else _floor_div(net.scaleb(money_scale), 1),
                        name,
                    )
                )
            if limits.max_daily_loss is not None:
                floor = -limits.max_daily_loss
                units = math.floor(Fraction(floor) * 10**pnl_scale)
                if kind is _FIRM:
                    self.loss_firm, self.loss_firm_units = floor, units
                else:
                    self.loss_strategy, self.loss_strategy_units = floor, units


class RiskGate:
    """Pre-trade checks for one account (one `Oms`). Engine thread only; never reads the wall clock."""

    __slots__ = (
        "_clock",
        "_dup_last",
        "_dup_order",
        "_dup_retention_ns",
        "_firm_windows",
        "_half_units",
        "_instruments",
        "_limits",
        "_money_scale",
        "_oms",
        "_others",
        "_pnl_scale",
        "_portfolio",
        "_resolved",
        "_states",
        "_strategy_windows",
        "_symbol_windows",
        "_symbols",
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
        # One exact integer money unit for every instrument (they are assumed to share a currency, as the portfolio
        # assumes): 10**-scale, fine enough that half a tick times a lot of any instrument is a whole number of it.
        halves = {i.symbol: i.tick_size * i.lot_size * i.multiplier / 2 for i in instruments}
        self._money_scale = max((max(-h.normalize().as_tuple().exponent, 0) for h in halves.values()), default=0)
        self._half_units = {s: int(h.scaleb(self._money_scale)) for s, h in halves.items()}
        self._symbols = tuple(halves)
        # Per symbol, the other symbols (whose positions count in firm and strategy exposures).
        self._others = {s: tuple(o for o in halves if o != s) for s in halves}
        self._pnl_scale = portfolio.money_scale
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
        """Replace the whole limit set of `scope` (None removes it). Takes effect on the next check: the compiled
        per-(strategy, symbol) limits are dropped and rebuilt on first use. Raises RiskError (nothing changes) for
        an unknown instrument or a limit the scope cannot carry."""
        if scope.kind == _INSTRUMENT:
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
        return tuple(ScopeLimits(scope=scope, limits=lim) for scope, lim in self.limits())

    def _windows(self, table: dict[str, _Windows], name: str) -> _Windows:
        windows = table.get(name)
        if windows is None:
            windows = table[name] = _Windows()
        return windows

    def _resolve(self, strategy_id: str, symbol: str) -> _Resolved | None:
        if symbol not in self._instruments:
            return None
        get = self._limits.get
        resolved = _Resolved(
            self._instruments.get(symbol),
            (
                (_FIRM, "firm", get((int(_FIRM), "")), self._firm_windows),
                (
                    _STRATEGY,
                    f"strategy {strategy_id}",
                    get((int(_STRATEGY), strategy_id)),
                    self._windows(self._strategy_windows, strategy_id),
                ),
                (
                    _INSTRUMENT,
                    f"instrument {symbol}",
                    get((int(_INSTRUMENT), symbol)),
                    self._windows(self._symbol_windows, symbol),
                ),
            ),
            half_unit=self._half_units[symbol],
            money_scale=self._money_scale,
            pnl_scale=self._pnl_scale,
        )
        resolved.view = self._oms.risk_view(strategy_id, symbol)
        self._resolved[(strategy_id, symbol)] = resolved
        return resolved

    # --- the checks ------------------------------------------------------------------------------------------------

    def check(self, order: Any, *, reference_price: int | None) -> Denial | None:
        """None if `order` may be sent, else the first control it fails.

        Preconditions: `order` is registered in the OMS (PENDING_NEW), so OMS counts include it; a None result
        means the engine sends it now (the gate has already counted it as sent). `reference_price` is the mid or
        last trade in ticks, None when the book has neither.
        """
        self.checks += 1
        denial = self._evaluate(order, reference_price, 0, 0)
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
        that adds no risk is never refused by them. Nothing is recorded: the engine reports the replace it sends
        through `on_message_sent`, like a cancel.
        """
        self.checks += 1
        denial = self._evaluate(order, reference_price, price, quantity)
        if denial is _PASS:
            return None
        denials = self.denials
        denials[denial.code] = denials.get(denial.code, 0) + 1
        return denial

    def _evaluate(self, order: Any, reference_price: int | None, new_price: int, new_quantity: int) -> Denial:
        """The controls, cheapest and most decisive first; `_PASS` when the order may go."""
        strategy_id = order.strategy_id
        symbol = order.symbol
        resolved = self._resolved.get((strategy_id, symbol))
        if resolved is None:
            resolved = self._resolve(strategy_id, symbol)
            if resolved is None:
                return Denial(RiskCode.UNKNOWN_SYMBOL, f"no instrument {symbol!r}")
        side = order.side
        replace = new_quantity > 0
        if replace:
            price = new_price
            quantity = new_quantity
            # Worst-case leaves once the replace is in flight vs now (as `Order.worst_case_leaves` counts them).
            new_leaves = max(order.leaves_quantity, new_quantity - order.cum_quantity)
            adds_risk = new_leaves > order.worst_case_leaves()
        else:
            price = order.price
            quantity = order.quantity
            new_leaves = quantity
            adds_risk = True
        is_market = order.order_type == _MARKET

        # The kill switch first: HALTED denies everything new; REDUCING is decided once positions are known.
        states = self._states
        reducing_strategy = reducing_net = False
        if states.non_active:
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
            return Denial(
                RiskCode.MAX_ORDER_NOTIONAL,
                f"notional {resolved.instrument.notional(notional_price, quantity)} above "
                f"{resolved.instrument.notional(1, max_units)} ({resolved.notional_level})",
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

        # Rates: the order would be one more order and one more message in each limited level's window.
        now = self._clock.now()
        for windows, window_ns, max_orders, max_messages, name in resolved.rate_checks:
            horizon = now - window_ns
            if max_orders is not None and not replace:
                sent = windows.orders
                while sent and sent[0] <= horizon:  # `_prune`, inlined: this runs per level on every check
                    sent.popleft()
                if len(sent) >= max_orders:
                    return Denial(RiskCode.ORDER_RATE, f"{max_orders} orders already sent in {window_ns} ns ({name})")
            if max_messages is not None:
                sent = windows.messages
                while sent and sent[0] <= horizon:
                    sent.popleft()
                if len(sent) >= max_messages:
                    return Denial(
                        RiskCode.MESSAGE_RATE, f"{max_messages} messages already sent in {window_ns} ns ({name})"
                    )

        dup_window = resolved.dup_window_ns
        dup_key = None
        if dup_window is not None and not replace:
            dup_key = (strategy_id, symbol, side, price, quantity)
            last = self._dup_last.get(dup_key)
            if last is not None and now - last < dup_window:
                return Denial(
                    RiskCode.DUPLICATE_ORDER,
                    f"same {side.name} {quantity}@{price} sent {now - last} ns ago, window {dup_window} ns "
                    f"({resolved.dup_level})",
                )

        # Working orders (this one included: it is PENDING_NEW in the OMS, or live for a replace), from the OMS's
        # counters: the same-side worst-case lots and their notional, this strategy's and every strategy's. A
        # working order without a price (MARKET) is valued at this order's notional price.
        view = resolved.view
        mine, every, opposite = view.sides[side]
        strategy_lots = mine.lots
        strategy_notional = mine.value + mine.zero_lots * notional_price
        net_lots = every.lots
        net_notional = every.value + every.zero_lots * notional_price
        # Self-match: would this order trade against a resting order of another strategy of the same account (a
        # wash trade)? A replace in flight may rest at either price, so both are in `prices`.
        buying = side == _BUY
        for other_id, other in opposite.items():
            if other_id == strategy_id or not other.count:
                continue
            if is_market or other.market or (min(other.prices) <= price if buying else max(other.prices) >= price):
                return self._self_match(strategy_id, symbol, side, price, is_market)
        if replace:
            # The pass counted the order on its current terms; count it on the new ones instead.
            current = order.worst_case_leaves()
            change = new_leaves * price - current * order.price
            net_lots += new_leaves - current
            strategy_lots += new_leaves - current
            net_notional += change
            strategy_notional += change

        if not replace:
            limit = resolved.open_firm
            if limit is not None and (count := view.firm.n) > limit[0]:
                return Denial(RiskCode.MAX_OPEN_ORDERS, f"{count} open orders above {limit[0]} ({limit[1]})")
            limit = resolved.open_strategy
            if limit is not None and (count := view.strategy.n) > limit[0]:
                return Denial(RiskCode.MAX_OPEN_ORDERS, f"{count} open orders above {limit[0]} ({limit[1]})")
            limit = resolved.open_symbol
            if limit is not None and (count := view.symbol.n) > limit[0]:
                return Denial(RiskCode.MAX_OPEN_ORDERS, f"{count} open orders above {limit[0]} ({limit[1]})")

        if not adds_risk:
            return _PASS  # a replace that adds no lots: nothing below can object to it

        # Positions: worst case = current position + every same-side working lot (this order's included). A
        # strategy counts its own; the firm and the instrument count the symbol's net over all strategies.
        portfolio = self._portfolio
        signed = int(side)
        strategy_position = net_position = None
        limit = resolved.position_strategy
        if limit is not None:
            strategy_position = portfolio.position(strategy_id, symbol)
            worst = strategy_position + signed * strategy_lots
            if signed * worst > limit[0]:
                return Denial(
                    RiskCode.MAX_POSITION, f"worst-case position {worst} lots beyond {limit[0]} lots ({limit[1]})"
                )
        limit = resolved.position_net
        if limit is not None:
            net_position = portfolio.net_position(symbol)
            worst = net_position + signed * net_lots
            if signed * worst > limit[0]:
                return Denial(
                    RiskCode.MAX_POSITION, f"worst-case position {worst} lots beyond {limit[0]} lots ({limit[1]})"
                )

        if resolved.exposures:
            denial = self._check_exposures(  # positional: keyword passing costs measurably here
                resolved,
                strategy_id,
                symbol,
                signed,
                2 * (reference_price if reference_price is not None else notional_price),
                (strategy_lots, strategy_notional),
                (net_lots, net_notional),
                strategy_position,
                net_position,
            )
            if denial is not None:
                return denial

        # REDUCING and the daily loss limit let through only orders whose worst case reduces the position: the
        # strategy's own for a strategy scope, the symbol's net for the firm and instrument scopes.
        loss_strategy = resolved.loss_strategy_units
        loss_firm = resolved.loss_firm_units
        if reducing_strategy or loss_strategy is not None:
            if strategy_position is None:
                strategy_position = portfolio.position(strategy_id, symbol)
            if not _reduces(strategy_position, side, strategy_lots):
                if reducing_strategy:
                    return Denial(
                        RiskCode.STATE_REDUCING,
                        f"strategy {strategy_id} is REDUCING: worst case {side.name} {strategy_lots} lots does not "
                        f"reduce its position {strategy_position}",
                    )
                if portfolio.daily_pnl_units(strategy_id) <= loss_strategy:
                    return Denial(
                        RiskCode.DAILY_LOSS,
                        f"daily P&L {portfolio.daily_pnl(strategy_id=strategy_id)} at or below "
                        f"{resolved.loss_strategy} ({resolved.strategy_name})",
                    )
        if reducing_net or loss_firm is not None:
            if net_position is None:
                net_position = portfolio.net_position(symbol)
            if not _reduces(net_position, side, net_lots):
                if reducing_net:
                    return Denial(
                        RiskCode.STATE_REDUCING,
                        f"REDUCING: worst case {side.name} {net_lots} lots does not reduce the {symbol} position "
                        f"{net_position}",
                    )
                if portfolio.daily_pnl_units() <= loss_firm:
                    return Denial(
                        RiskCode.DAILY_LOSS,
                        f"daily P&L {portfolio.daily_pnl()} at or below {resolved.loss_firm} (firm)",
                    )

        if replace:
            return _PASS

        # Passed: from here on the order counts as sent (RTS 6 Art. 15(2)). Every level records it, limited or
        # not, so a rate limit set later counts what was already sent.
        for orders, messages, retention_ns, prune_orders, prune_messages in resolved.send_record:
            orders.append(now)
            messages.append(now)
            horizon = now - retention_ns
            if prune_orders:
                while orders[0] <= horizon:
                    orders.popleft()
            if prune_messages:
                while messages[0] <= horizon:
                    messages.popleft()
        if self._dup_retention_ns:
            # Duplicate memory: last send per key, and the sends in time order so expired keys go in O(1).
            key = dup_key or (strategy_id, symbol, side, price, quantity)
            last = self._dup_last
            last[key] = now
            sends = self._dup_order
            sends.append((now, key))
            horizon = now - self._dup_retention_ns
            while sends[0][0] <= horizon:
                ts, old = sends.popleft()
                if last.get(old) == ts:
                    del last[old]
        if states.counts_orders:
            states.on_order_sent(strategy_id=strategy_id, symbol=symbol)
        return _PASS

    def _check_exposures(  # noqa: PLR0917 - positional on the order path
        self,
        resolved: _Resolved,
        strategy_id: str,
        symbol: str,
        signed: int,
        price2: int,
        strategy_side: tuple[int, int],
        net_side: tuple[int, int],
        strategy_position: int | None,
        net_position: int | None,
    ) -> Denial | None:
        """Gross and net exposure in integer money units, worst case: positions valued at the mark (this symbol at
        the reference price, which is the freshest mark) plus this side's working orders in this symbol at their
        own prices. For gross, working lots count only as far as they grow |position|: a fill that shrinks a
        position cannot raise gross exposure."""
        portfolio = self._portfolio
        position_of = portfolio.position
        net_position_of = portfolio.net_position
        half_units = self._half_units
        half_unit = resolved.half_unit
        others = self._others[symbol]
        # This symbol's figures per kind of scope, computed once: the firm and the instrument count the same net
        # position and working lots (the firm adds its other symbols below).
        strategy_figures = net_figures = None
        for kind, max_gross, max_net, name in resolved.exposures:
            if kind is _STRATEGY:
                if strategy_figures is None:
                    if strategy_position is None:
                        strategy_position = position_of(strategy_id, symbol)
                    strategy_figures = _figures(strategy_position, strategy_side, signed, price2, half_unit)
                lots, gross, net, grow, working_gross, working_net = strategy_figures
            else:
                if net_figures is None:
                    if net_position is None:
                        net_position = net_position_of(symbol)
                    net_figures = _figures(net_position, net_side, signed, price2, half_unit)
                lots, gross, net, grow, working_gross, working_net = net_figures
            if others and kind is not _INSTRUMENT:
                # The scope's positions in the other symbols, at the portfolio's marks (a symbol with a position
                # has been marked, at least at its fill price).
                for other in others:
                    held = position_of(strategy_id, other) if kind is _STRATEGY else net_position_of(other)
                    if held:
                        value = held * (portfolio.mark2(other) or 0) * half_units[other]
                        gross += abs(value)
                        net += value
            if max_gross is not None and grow > 0:
                # gross + grow * (average working price) > limit, cross-multiplied by `lots` to stay in ints.
                worst_times_lots = gross * lots + working_gross
                if worst_times_lots > max_gross * lots:
                    scale = -self._money_scale
                    return Denial(
                        RiskCode.MAX_GROSS_EXPOSURE,
                        f"worst-case gross exposure {(Decimal(worst_times_lots) / lots).scaleb(scale):f} above "
                        f"{Decimal(max_gross).scaleb(scale)} ({name})",
                    )
            if max_net is not None:
                worst_net = net + working_net
                if signed * worst_net > max_net:
                    return Denial(
                        RiskCode.MAX_NET_EXPOSURE,
                        f"worst-case net exposure {Decimal(worst_net).scaleb(-self._money_scale)} beyond "
                        f"{Decimal(max_net).scaleb(-self._money_scale)} ({name})",
                    )
        return None

    def _self_match(self, strategy_id: str, symbol: str, side: Side, price: int, is_market: bool) -> Denial:
        """The denial for a self-match the counters found, naming the first crossing order in creation order (off
        the hot path: only a denied order pays for the pass)."""
        buying = side == _BUY
        for working in self._oms.working_orders(symbol=symbol):
            if working.side == side or working.strategy_id == strategy_id:
                continue
            other = working.price
            pending = working.pending_price
            if buying:
                crosses = other <= price or (pending and pending <= price)
            else:
                crosses = other >= price or (pending and pending >= price)
            if is_market or working.order_type == _MARKET or crosses:
                return Denial(
                    RiskCode.SELF_MATCH,
                    f"{side.name} @{price or 'MKT'} would cross {working.client_order_id} of strategy "
                    f"{working.strategy_id} @{working.price}",
                )
        raise AssertionError("the OMS's counters and its working orders disagree")  # a broken invariant: stop

    # --- sends -----------------------------------------------------------------------------------------------------

    def on_message_sent(self, now: int, *, strategy_id: str | None = None, symbol: str | None = None) -> None:
        """A cancel or replace left for the venue: one more message in the firm's window, and the strategy's and
        symbol's when given. New orders are counted by `check` itself; do not report them here."""
        if strategy_id is not None and symbol is not None:
            resolved = self._resolved.get((strategy_id, symbol))
            if resolved is not None:
                # The compiled levels hold the same three windows with the same retentions: no limit lookups.
                for windows, retention_ns in resolved.record:
                    messages = windows.messages
                    messages.append(now)
                    horizon = now - retention_ns
                    while messages[0] <= horizon:  # never empties: `now` is past the horizon
                        messages.popleft()
                return
        self._record_message(self._firm_windows, (int(_FIRM), ""), now)
        if strategy_id is not None:
            self._record_message(self._windows(self._strategy_windows, strategy_id), (int(_STRATEGY), strategy_id), now)
        if symbol is not None:
            self._record_message(self._windows(self._symbol_windows, symbol), (int(_INSTRUMENT), symbol), now)

    def _record_message(self, windows: _Windows, key: tuple[int, str], now: int) -> None:
        limits = self._limits.get(key)
        retention = DEFAULT_RATE_RETENTION_NS
        if limits is not None and limits.rate_window_ns is not None:
            retention = limits.rate_window_ns
        windows.messages.append(now)
        _prune(windows.messages, now - retention)

    def rate_counts(self, scope: Scope, now: int) -> tuple[int, int, int]:
        """(orders, messages) the scope sent within its rate window ending at `now`, and that window in ns (the
        scope's `rate_window_ns`, else the retention every level keeps): what its rate limits compare with. Reads
        only, off the order path (the utilisation timer and state snapshots, which are not journaled, so nothing
        here may change state: the windows are counted, not pruned)."""
        kind = scope.kind
        if kind == _FIRM:
            windows = self._firm_windows
        elif kind == _STRATEGY:
            windows = self._strategy_windows.get(scope.name)
        else:
            windows = self._symbol_windows.get(scope.name)
        limits = self._limits.get(_key(scope))
        window_ns = DEFAULT_RATE_RETENTION_NS
        if limits is not None and limits.rate_window_ns is not None:
            window_ns = limits.rate_window_ns
        if windows is None:
            return 0, 0, window_ns
        horizon = now - window_ns
        return _count_after(windows.orders, horizon), _count_after(windows.messages, horizon), window_ns

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
        self._resolved.clear()  # compiled limits hold the window objects just replaced
        self._dup_order = deque()
        self._dup_last = {}
        for ts, (strategy_id, symbol, side, price, quantity) in data["duplicates"]:
            key = (strategy_id, symbol, Side(side), price, quantity)
            self._dup_order.append((ts, key))
            self._dup_last[key] = ts
        self.checks = data["checks"]
        self.denials = dict(data["denials"])


# `_evaluate` returns this for a pass so the hot path has one return type; it never leaves the gate.
_PASS = Denial("", "")

__all__ = ["DEFAULT_RATE_RETENTION_NS", "Denial", "RiskCode", "RiskError", "RiskGate"]
