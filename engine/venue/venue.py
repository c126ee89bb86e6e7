"""The simulated venue: order entry, execution reports and sequenced market data over MatchingCore (venue thread only).

`Venue` accepts the protocol's `Venue*` commands (`handle`) or the same calls as keyword methods, and returns the
messages they cause, in causal order: execution reports for every order touched, one `TradePrinted` per fill, and at
most one `BookDeltas` per symbol holding the net change of every level the command touched. `BookDeltas` and
`TradePrinted` share one market-data sequence per symbol, contiguous from 1, so `snapshot()` taken between two
commands, plus every later delta, reproduces the book.

Nothing is raised on venue input: a bad order becomes a REJECTED (or CANCEL_REJECTED) report with a reason code
from `Reason`, and the book is unchanged. What a report cannot carry (an empty or over-long id, a snapshot request
for an unlisted symbol, an object that is not a venue command) is answered by a `VenueCommandRejected`. Every
client_order_id an account sends, on new orders, cancels, replaces and mass cancels alike, is used once: a command
reusing one is refused with DUPLICATE_CLIENT_ORDER_ID (a cancel/replace may repeat its own order's id), so no
report can carry one order's id for another. The venue never reads the wall clock: a command's `ts` is used when
positive, otherwise the `clock` passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.protocol import (
    CODE_MAX_LENGTH,
    FULL_DEPTH,
    ID_MAX_LENGTH,
    MAX_INT64,
    SIDES,
    SYMBOL_MAX_LENGTH,
    TEXT_MAX_LENGTH,
    BookDeltas,
    BookSnapshot,
    ExecutionReport,
    MassCancelReport,
    TradePrinted,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
    VenueRequestSnapshot,
)
from engine.venue.matching import (
    EV_FILL,
    FOK,
    GTC,
    IOC,
    KILLED_FOK,
    MARKET_BUY_PRICE,
    MARKET_SELL_PRICE,
    POST_ONLY,
    REJECTED_POST_ONLY,
    MatchingCore,
)
from engine.venue.orders import Reason, VenueError, VenueOrder, placeholder, status_after_fill, status_open

_ORDER_TYPES = frozenset(OrderType)
_TIMES_IN_FORCE = frozenset(TimeInForce)


def _id_problem(name: str, value: object, max_length: int = ID_MAX_LENGTH) -> str:
    """Why `value` cannot travel as a protocol id (so no report could echo it), or "" when it can."""
    if type(value) is str and 0 < len(value) <= max_length:
        return ""
    shown = repr(value)[:40]
    return f"{name} {shown} is not 1 to {max_length} characters of text"


class _SymbolState:
    __slots__ = ("core", "md_seq", "symbol", "trade_id")

    def __init__(self, symbol: str, stp: bool) -> None:
        self.symbol = symbol
        self.core = MatchingCore(stp=stp)
        self.md_seq = 0
        self.trade_id = 0


class Venue:
    """In-process venue for a set of symbols. Venue thread only; not thread-safe.

    Self-trade prevention (default on) is "cancel resting": see `MatchingCore`.
    """

    def __init__(
        self, symbols: Iterable[str], *, clock: Callable[[], int], stp: bool = True, exec_id_prefix: str = ""
    ) -> None:
        self._clock = clock
        # Exec ids are "<prefix><n>". A venue started afresh under an engine that remembers the last session's exec
        # ids (the in-process venue dies with the engine process and the journal brings the OMS back) needs a new
        # prefix, or its first reports repeat old ids and the OMS drops them as duplicates.
        self._exec_id_prefix = exec_id_prefix
        self._symbols: dict[str, _SymbolState] = {s: _SymbolState(s, stp) for s in symbols}
        if not self._symbols:
            raise VenueError("VENUE_NO_SYMBOLS", "a venue needs at least one symbol")
        # Per account, not keyed by (account, id) tuples: a tuple per order costs ~60 bytes twice over.
        self._open: dict[str, dict[str, VenueOrder]] = {}  # account -> client_order_id -> open order
        self._used_ids: dict[str, set[str]] = {}  # account -> every client_order_id it sent (accepted or rejected)
        self._next_order_id = 0
        self._next_exec_id = 0
        self._handlers: dict[type, Callable[[Any], list]] = {
            VenuePlaceOrder: self._on_place,
            VenueCancelOrder: self._on_cancel,
            VenueReplaceOrder: self._on_replace,
            VenueMassCancel: self._on_mass_cancel,
            VenueQueryOrder: self._on_query,
            VenueRequestSnapshot: self._on_snapshot,
        }

    # ------------------------------------------------------------------ entry points

    def handle(self, command: Any) -> list:
        """Apply one protocol command; returns the messages it caused (reports, trades, deltas, snapshot)."""
        handler = self._handlers.get(type(command))
        if handler is None:
            return [
                self._command_reject(
                    type(command).__name__,
                    Reason.UNKNOWN_COMMAND,
                    f"the venue does not handle {type(command).__name__}",
                    self._clock(),
                )
            ]
        return handler(command)

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._symbols)

    def core(self, symbol: str) -> MatchingCore:
        """The symbol's matching core (read it; never mutate it behind the venue's back)."""
        return self._state(symbol).core

    def md_seq(self, symbol: str) -> int:
        """Last market-data sequence number published for `symbol` (0 = none yet)."""
        return self._state(symbol).md_seq

    def open_order(self, account: str, client_order_id: str) -> VenueOrder | None:
        return self._open.get(account, {}).get(client_order_id)

    def open_orders(self, account: str | None = None) -> list[VenueOrder]:
        if account is not None:
            return list(self._open.get(account, {}).values())
        return [o for orders in self._open.values() for o in orders.values()]

    def snapshot(self, symbol: str, depth: int | None = None, ts: int = 0) -> BookSnapshot:
        """The book of a listed symbol: the best `depth` levels per side, all of them when None (the books'
        convention; a wire `VenueRequestSnapshot.depth` of FULL_DEPTH is translated by `handle`). In-process query:
        raises VenueError for a symbol the venue does not list."""
        state = self._state(symbol)
        bids, asks = state.core.depth(depth)
        return BookSnapshot(
            symbol=symbol, seq=state.md_seq, ts=ts if ts > 0 else self._clock(), bids=tuple(bids), asks=tuple(asks)
        )

    def place_order(
        self,
        *,
        client_order_id: str,
        account: str,
        symbol: str,
        side: int,
        order_type: OrderType,
        time_in_force: TimeInForce,
        price: int,
        quantity: int,
        post_only: bool = False,
        ts: int = 0,
    ) -> list:
        ts = ts if ts > 0 else self._clock()
        problem = self._ids_problem(client_order_id, account, symbol)
        if problem:
            return [
                self._command_reject(
                    "VenuePlaceOrder", Reason.INVALID_ID, problem, ts, client_order_id=client_order_id, symbol=symbol
                )
            ]
        side_member = SIDES.get(side)
        order = VenueOrder(
            venue_order_id=0,
            client_order_id=client_order_id,
            account=account,
            symbol=symbol,
            side=side_member or Side.BUY,
            order_type=order_type,
            time_in_force=time_in_force,
            price=price,
            quantity=quantity,
            post_only=post_only,
        )
        out: list = []
        reason = self._check_new(order) if side_member is not None else Reason.INVALID_SIDE
        if reason:
            self._use_id(account, client_order_id)
            out.append(self._new_reject(order, reason, ts, side))
            return out
        side = side_member
        state = self._symbols[symbol]
        core = state.core
        self._use_id(account, client_order_id)
        self._next_order_id += 1
        order.venue_order_id = oid = self._next_order_id
        if order_type == OrderType.MARKET:
            limit = MARKET_BUY_PRICE if side == 1 else MARKET_SELL_PRICE
            kind = FOK if time_in_force == TimeInForce.FOK else IOC
        else:
            limit = price
            if post_only:
                kind = POST_ONLY
            elif time_in_force == TimeInForce.IOC:
                kind = IOC
            elif time_in_force == TimeInForce.FOK:
                kind = FOK
            else:
                kind = GTC
        result = core.submit(oid, account, side, limit, quantity, kind, order)
        if result == REJECTED_POST_ONLY:
            out.append(
                self._report(
                    order, ExecType.REJECTED, OrderStatus.REJECTED, ts, leaves=0, reason=Reason.POST_ONLY_WOULD_CROSS
                )
            )
            return out
        if result == KILLED_FOK:
            out.append(
                self._report(order, ExecType.NEW, OrderStatus.NEW, ts, leaves=quantity),
            )
            out.append(
                self._report(order, ExecType.EXPIRED, OrderStatus.EXPIRED, ts, leaves=0, reason=Reason.FOK_NOT_FILLABLE)
            )
            return out
        out.append(self._report(order, ExecType.NEW, OrderStatus.NEW, ts, leaves=quantity))
        if result and kind in (GTC, POST_ONLY):
            self._register(order)
        self._drain(state, order, ts, out)
        if result and kind in (IOC, FOK):
            out.append(
                self._report(order, ExecType.EXPIRED, OrderStatus.EXPIRED, ts, leaves=0, reason=Reason.IOC_REMAINDER)
            )
        self._publish_deltas(state, ts, out)
        return out

    def cancel_order(
        self, *, client_order_id: str, orig_client_order_id: str, account: str, symbol: str, ts: int = 0
    ) -> list:
        ts = ts if ts > 0 else self._clock()
        problem = self._ids_problem(client_order_id, account, symbol, orig_client_order_id)
        if problem:
            return [
                self._command_reject(
                    "VenueCancelOrder", Reason.INVALID_ID, problem, ts, client_order_id=client_order_id, symbol=symbol
                )
            ]
        order, reason = self._find(account, orig_client_order_id, symbol)
        if order is not None and self._reused(account, client_order_id, orig_client_order_id):
            reason = Reason.DUPLICATE_CLIENT_ORDER_ID
        if reason:
            return [
                self._cancel_reject(
                    cl_id=client_order_id,
                    orig_cl_id=orig_client_order_id,
                    account=account,
                    symbol=symbol,
                    reason=reason,
                    ts=ts,
                    order=order,
                )
            ]
        state = self._symbols[order.symbol]
        state.core.cancel(order.venue_order_id)
        self._unregister(order)
        self._use_id(account, client_order_id)
        out = [
            self._report(
                order,
                ExecType.CANCELED,
                OrderStatus.CANCELED,
                ts,
                leaves=0,
                client_order_id=client_order_id,
                orig_client_order_id=orig_client_order_id,
            )
        ]
        self._publish_deltas(state, ts, out)
        return out

    def replace_order(
        self,
        *,
        client_order_id: str,
        orig_client_order_id: str,
        account: str,
        symbol: str,
        price: int,
        quantity: int,
        ts: int = 0,
    ) -> list:
        """Cancel/replace. `quantity` is the new total order quantity (filled part included, as FIX OrderQty).

        Same price and a lower quantity keep time priority; a price change or a larger quantity loses it; a
        quantity at or below the filled quantity cancels the order; a price that now crosses trades at once.
        """
        ts = ts if ts > 0 else self._clock()
        problem = self._ids_problem(client_order_id, account, symbol, orig_client_order_id)
        if problem:
            return [
                self._command_reject(
                    "VenueReplaceOrder", Reason.INVALID_ID, problem, ts, client_order_id=client_order_id, symbol=symbol
                )
            ]
        order, reason = self._find(account, orig_client_order_id, symbol)
        if order is None:
            return [
                self._cancel_reject(
                    cl_id=client_order_id,
                    orig_cl_id=orig_client_order_id,
                    account=account,
                    symbol=symbol,
                    reason=reason,
                    ts=ts,
                )
            ]
        if not 0 < quantity <= MAX_INT64:
            reason = Reason.INVALID_QUANTITY
        elif not 0 < price <= MAX_INT64:
            reason = Reason.INVALID_PRICE
        elif self._reused(account, client_order_id, orig_client_order_id):
            reason = Reason.DUPLICATE_CLIENT_ORDER_ID
        if reason:
            return [
                self._cancel_reject(
                    cl_id=client_order_id,
                    orig_cl_id=orig_client_order_id,
                    account=account,
                    symbol=symbol,
                    reason=reason,
                    ts=ts,
                    order=order,
                )
            ]
        state = self._symbols[order.symbol]
        core = state.core
        oid = order.venue_order_id
        out: list = []
        if quantity <= order.cum_quantity:
            core.cancel(oid)
            self._unregister(order)
            self._use_id(account, client_order_id)
            out.append(
                self._report(
                    order,
                    ExecType.CANCELED,
                    OrderStatus.CANCELED,
                    ts,
                    leaves=0,
                    reason=Reason.REPLACE_BELOW_FILLED,
                    client_order_id=client_order_id,
                    orig_client_order_id=orig_client_order_id,
                )
            )
            self._publish_deltas(state, ts, out)
            return out
        result = core.replace(oid, price, quantity - order.cum_quantity, POST_ONLY if order.post_only else GTC)
        if result == REJECTED_POST_ONLY:
            return [
                self._cancel_reject(
                    cl_id=client_order_id,
                    orig_cl_id=orig_client_order_id,
                    account=account,
                    symbol=symbol,
                    reason=Reason.POST_ONLY_WOULD_CROSS,
                    ts=ts,
                    order=order,
                )
            ]
        self._use_id(account, client_order_id)
        self._unregister(order)
        order.orig_client_order_id = orig_client_order_id
        order.client_order_id = client_order_id
        order.price = price
        order.quantity = quantity
        out.append(
            self._report(order, ExecType.REPLACED, status_open(order), ts, leaves=order.quantity - order.cum_quantity)
        )
        if result:
            self._register(order)
        self._drain(state, order, ts, out)
        self._publish_deltas(state, ts, out)
        return out

    def mass_cancel(
        self, *, client_order_id: str, account: str, symbol: str = "", ts: int = 0, per_order_reports: bool = False
    ) -> list:
        """Cancel every open order of `account` (on `symbol`, or on every symbol when it is ""). Answered by one
        `MassCancelReport` naming them all, or with `per_order_reports` by one CANCELED report per order (naming
        the mass cancel's id and the order's as orig): what a session that never asked for it gets, such as the
        cancel-on-disconnect's, since a FIX 35=r cannot name the account."""
        ts = ts if ts > 0 else self._clock()
        problem = self._ids_problem(client_order_id, account, symbol or "*")
        if problem:
            return [
                self._command_reject(
                    "VenueMassCancel", Reason.INVALID_ID, problem, ts, client_order_id=client_order_id, symbol=symbol
                )
            ]
        reason = ""
        if symbol and symbol not in self._symbols:
            reason = Reason.UNKNOWN_SYMBOL
        elif client_order_id in self._used_ids.get(account, ()):
            reason = Reason.DUPLICATE_CLIENT_ORDER_ID
        if reason and not symbol:
            # An ExecutionReport must name a symbol; an all-symbols mass cancel has none, so it is refused with the
            # message made for commands a report cannot describe (building the report would raise instead).
            return [
                self._command_reject(
                    "VenueMassCancel", reason, f"mass cancel refused: {reason}", ts, client_order_id=client_order_id
                )
            ]
        if reason:
            return [
                self._cancel_reject(
                    cl_id=client_order_id,
                    orig_cl_id="",
                    account=account,
                    symbol=symbol,
                    reason=reason,
                    ts=ts,
                )
            ]
        self._use_id(account, client_order_id)
        open_orders = self._open.get(account, {})
        victims = [o for o in open_orders.values() if not symbol or o.symbol == symbol]
        canceled: list[tuple[str, int]] = []
        touched: dict[str, _SymbolState] = {}
        symbols = self._symbols
        out: list = []
        for order in victims:
            state = symbols[order.symbol]
            state.core.cancel(order.venue_order_id)
            del open_orders[order.client_order_id]  # `_unregister`, inlined: every victim came from this dict
            touched[order.symbol] = state
            if per_order_reports:
                out.append(
                    self._report(
                        order,
                        ExecType.CANCELED,
                        OrderStatus.CANCELED,
                        ts,
                        leaves=0,
                        reason=Reason.MASS_CANCEL,
                        client_order_id=client_order_id,
                        orig_client_order_id=order.client_order_id,
                    )
                )
            else:
                canceled.append((order.client_order_id, order.venue_order_id))
        if not per_order_reports:
            # One report for the whole mass cancel (FIX 35=r with its affected orders) rather than one CANCELED
            # report per order: a kill of 1,000 orders is then one message to build, send, parse and journal.
            out.append(
                MassCancelReport(
                    client_order_id=client_order_id,
                    account=account,
                    symbol=symbol,
                    canceled=tuple(canceled),
                    reason_code=Reason.MASS_CANCEL,
                    ts=ts,
                )
            )
        for state in touched.values():
            self._publish_deltas(state, ts, out)
        return out

    def query_order(self, *, client_order_id: str, account: str, symbol: str, ts: int = 0) -> list:
        ts = ts if ts > 0 else self._clock()
        problem = self._ids_problem(client_order_id, account, symbol)
        if problem:
            return [
                self._command_reject(
                    "VenueQueryOrder", Reason.INVALID_ID, problem, ts, client_order_id=client_order_id, symbol=symbol
                )
            ]
        order, reason = self._find(account, client_order_id, symbol)
        if order is None:
            return [
                self._report(
                    placeholder(client_order_id, account, symbol),
                    ExecType.ORDER_STATUS,
                    OrderStatus.REJECTED,
                    ts,
                    leaves=0,
                    reason=reason,
                )
            ]
        return [self._report(order, ExecType.ORDER_STATUS, status_open(order), ts, leaves=order.leaves_quantity)]

    def expire_day_orders(self, ts: int = 0) -> list:
        """End of the trading day: every open DAY order expires."""
        ts = ts if ts > 0 else self._clock()
        out: list = []
        touched: dict[str, _SymbolState] = {}
        for order in [o for o in self.open_orders() if o.time_in_force == TimeInForce.DAY]:
            state = self._symbols[order.symbol]
            state.core.cancel(order.venue_order_id)
            self._unregister(order)
            touched[order.symbol] = state
            out.append(
                self._report(order, ExecType.EXPIRED, OrderStatus.EXPIRED, ts, leaves=0, reason=Reason.DAY_EXPIRY)
            )
        for state in touched.values():
            self._publish_deltas(state, ts, out)
        return out

    # ------------------------------------------------------------------ protocol adapters

    def _on_place(self, c: VenuePlaceOrder) -> list:
        return self.place_order(
            client_order_id=c.client_order_id,
            account=c.account,
            symbol=c.symbol,
            side=c.side,
            order_type=c.order_type,
            time_in_force=c.time_in_force,
            price=c.price,
            quantity=c.quantity,
            post_only=c.post_only,
            ts=c.ts,
        )

    def _on_cancel(self, c: VenueCancelOrder) -> list:
        return self.cancel_order(
            client_order_id=c.client_order_id,
            orig_client_order_id=c.orig_client_order_id,
            account=c.account,
            symbol=c.symbol,
            ts=c.ts,
        )

    def _on_replace(self, c: VenueReplaceOrder) -> list:
        return self.replace_order(
            client_order_id=c.client_order_id,
            orig_client_order_id=c.orig_client_order_id,
            account=c.account,
            symbol=c.symbol,
            price=c.price,
            quantity=c.quantity,
            ts=c.ts,
        )

    def _on_mass_cancel(self, c: VenueMassCancel) -> list:
        return self.mass_cancel(client_order_id=c.client_order_id, account=c.account, symbol=c.symbol, ts=c.ts)

    def _on_query(self, c: VenueQueryOrder) -> list:
        return self.query_order(client_order_id=c.client_order_id, account=c.account, symbol=c.symbol)

    def _on_snapshot(self, c: VenueRequestSnapshot) -> list:
        if c.symbol not in self._symbols:
            return [
                self._command_reject(
                    "VenueRequestSnapshot",
                    Reason.UNKNOWN_SYMBOL,
                    f"the venue does not list {c.symbol!r}",
                    self._clock(),
                    symbol=c.symbol,
                )
            ]
        # The wire's 0 means every level; the core (like the books) reads 0 as none and None as all.
        return [self.snapshot(c.symbol, None if c.depth == FULL_DEPTH else c.depth)]

    # ------------------------------------------------------------------ internals

    def _state(self, symbol: str) -> _SymbolState:
        state = self._symbols.get(symbol)
        if state is None:
            raise VenueError(Reason.UNKNOWN_SYMBOL, f"the venue does not list {symbol!r}")
        return state

    def _check_new(self, order: VenueOrder) -> str:
        if order.symbol not in self._symbols:
            return Reason.UNKNOWN_SYMBOL
        if order.order_type not in _ORDER_TYPES or order.time_in_force not in _TIMES_IN_FORCE:
            return Reason.INVALID_ORDER
        if not 0 < order.quantity <= MAX_INT64:
            return Reason.INVALID_QUANTITY
        if order.order_type == OrderType.MARKET:
            if order.price != 0:
                return Reason.INVALID_PRICE
        elif not 0 < order.price <= MAX_INT64:
            return Reason.INVALID_PRICE
        if order.post_only and (
            order.order_type == OrderType.MARKET or order.time_in_force in (TimeInForce.IOC, TimeInForce.FOK)
        ):
            return Reason.INVALID_ORDER
        if order.client_order_id in self._used_ids.get(order.account, ()):
            return Reason.DUPLICATE_CLIENT_ORDER_ID
        return ""

    def _find(self, account: str, client_order_id: str, symbol: str) -> tuple[VenueOrder | None, str]:
        order = self._open.get(account, {}).get(client_order_id)
        if order is None:
            if symbol not in self._symbols:
                return None, Reason.UNKNOWN_SYMBOL
            # The miss path only: a scan over accounts (few) is cheaper than a second index over every order.
            if any(client_order_id in orders for other, orders in self._open.items() if other != account):
                return None, Reason.WRONG_ACCOUNT
            return None, Reason.UNKNOWN_ORDER
        if order.symbol != symbol:
            return None, Reason.SYMBOL_MISMATCH
        return order, ""

    def _reused(self, account: str, client_order_id: str, orig_client_order_id: str) -> bool:
        """Would a cancel/replace's own id name a second order? Repeating the target order's id is allowed."""
        return client_order_id != orig_client_order_id and client_order_id in self._used_ids.get(account, ())

    @staticmethod
    def _ids_problem(client_order_id: object, account: object, symbol: object, orig: object = "-") -> str:
        """Why the ids of a command cannot be echoed in an ExecutionReport, or "" (the usual case, cheaply)."""
        return (
            _id_problem("client_order_id", client_order_id)
            or _id_problem("account", account)
            or _id_problem("symbol", symbol, SYMBOL_MAX_LENGTH)
            or _id_problem("orig_client_order_id", orig)
        )

    def _use_id(self, account: str, client_order_id: str) -> None:
        ids = self._used_ids.get(account)
        if ids is None:
            ids = self._used_ids[account] = set()
        ids.add(client_order_id)

    def _register(self, order: VenueOrder) -> None:
        orders = self._open.get(order.account)
        if orders is None:
            orders = self._open[order.account] = {}
        orders[order.client_order_id] = order

    def _unregister(self, order: VenueOrder) -> None:
        orders = self._open.get(order.account)
        if orders is not None and orders.get(order.client_order_id) is order:
            del orders[order.client_order_id]

    def _drain(self, state: _SymbolState, taker: VenueOrder, ts: int, out: list) -> None:
        """Turn the core's fills and self-trade cancels into reports and trades (deltas are published after)."""
        core = state.core
        events = core.events
        if events:
            aggressor = taker.side
            for event in events:
                resting = event[1]
                maker: VenueOrder = resting.tag
                if event[0] == EV_FILL:
                    price = event[2]
                    qty = event[3]
                    maker.cum_quantity += qty
                    leaves = resting.qty
                    if not leaves:
                        self._unregister(maker)
                    out.append(
                        self._report(
                            maker,
                            ExecType.TRADE,
                            status_after_fill(leaves),
                            ts,
                            leaves=leaves,
                            last_price=price,
                            last_quantity=qty,
                            is_maker=True,
                        )
                    )
                    taker.cum_quantity += qty
                    taker_leaves = taker.quantity - taker.cum_quantity
                    out.append(
                        self._report(
                            taker,
                            ExecType.TRADE,
                            status_after_fill(taker_leaves),
                            ts,
                            leaves=taker_leaves,
                            last_price=price,
                            last_quantity=qty,
                        )
                    )
                    state.md_seq += 1
                    state.trade_id += 1
                    out.append(
                        TradePrinted(
                            symbol=state.symbol,
                            seq=state.md_seq,
                            ts=ts,
                            trade_id=state.trade_id,
                            price=price,
                            quantity=qty,
                            aggressor=aggressor,
                        )
                    )
                else:
                    self._unregister(maker)
                    out.append(
                        self._report(
                            maker,
                            ExecType.CANCELED,
                            OrderStatus.CANCELED,
                            ts,
                            leaves=0,
                            reason=Reason.SELF_TRADE_PREVENTED,
                        )
                    )
            events.clear()

    def _publish_deltas(self, state: _SymbolState, ts: int, out: list) -> None:
        deltas = state.core.deltas
        if not deltas:
            return
        if len(deltas) == 1:
            net = (deltas[0],)
        else:
            # Net change per level: a command can touch one level several times (a replace that leaves and
            # re-joins it, a sweep that also cancels a self-trade); subscribers only need the final size.
            final: dict[tuple[int, int], int] = {}
            for side, price, size in deltas:
                final[(side, price)] = size
            net = tuple((side, price, size) for (side, price), size in final.items())
        deltas.clear()
        state.md_seq += 1
        out.append(
            BookDeltas(
                symbol=state.symbol, seq=state.md_seq, ts=ts, deltas=tuple((SIDES[d[0]], d[1], d[2]) for d in net)
            )
        )

    def _new_reject(self, order: VenueOrder, reason: str, ts: int, side: object) -> ExecutionReport:
        """REJECTED report for a new order. The order record is never stored, so fields a report cannot carry
        (unknown order type or TIF, out-of-range price or quantity) are replaced by placeholders here."""
        text = ""
        if reason == Reason.INVALID_SIDE:
            text = f"side {repr(side)[:40]} is neither BUY (1) nor SELL (-1); the report's side is a placeholder"
        if order.order_type not in _ORDER_TYPES:
            order.order_type = OrderType.LIMIT
        if order.time_in_force not in _TIMES_IN_FORCE:
            order.time_in_force = TimeInForce.GTC
        if not 0 <= order.price <= MAX_INT64:
            order.price = 0
        if not 0 <= order.quantity <= MAX_INT64:
            order.quantity = 0
        report = self._report(order, ExecType.REJECTED, OrderStatus.REJECTED, ts, leaves=0, reason=reason)
        return msgspec.structs.replace(report, text=text) if text else report

    def _command_reject(
        self, command: str, code: str, reason: str, ts: int, *, client_order_id: object = "", symbol: object = ""
    ) -> VenueCommandRejected:
        """A command no report can answer; ids that are not valid protocol values are left out of the echo."""
        return VenueCommandRejected(
            command=command[:CODE_MAX_LENGTH],
            code=code,
            symbol=symbol if not _id_problem("", symbol, SYMBOL_MAX_LENGTH) else "",
            client_order_id=client_order_id if not _id_problem("", client_order_id) else "",
            reason=reason[:TEXT_MAX_LENGTH],
            ts=ts,
        )

    def _cancel_reject(
        self,
        *,
        cl_id: str,
        orig_cl_id: str,
        account: str,
        symbol: str,
        reason: str,
        ts: int,
        order: VenueOrder | None = None,
    ) -> ExecutionReport:
        """A refused cancel/replace. For an order the caller may not see, the order fields are placeholders."""
        if order is None:
            order = placeholder(cl_id, account, symbol)
            status, leaves = OrderStatus.REJECTED, 0
        else:
            status, leaves = status_open(order), order.leaves_quantity
        return self._report(
            order,
            ExecType.CANCEL_REJECTED,
            status,
            ts,
            leaves=leaves,
            reason=reason,
            client_order_id=cl_id,
            orig_client_order_id=orig_cl_id,
        )

    def _report(
        self,
        order: VenueOrder,
        exec_type: ExecType,
        status: OrderStatus,
        ts: int,
        *,
        leaves: int,
        reason: str = "",
        last_price: int = 0,
        last_quantity: int = 0,
        is_maker: bool = False,
        client_order_id: str | None = None,
        orig_client_order_id: str | None = None,
    ) -> ExecutionReport:
        self._next_exec_id += 1
        return ExecutionReport(
            exec_id=f"{self._exec_id_prefix}{self._next_exec_id}",
            client_order_id=order.client_order_id if client_order_id is None else client_order_id,
            orig_client_order_id=order.orig_client_order_id if orig_client_order_id is None else orig_client_order_id,
            venue_order_id=order.venue_order_id,
            account=order.account,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            exec_type=exec_type,
            status=status,
            # A rejected order may carry a negative price or quantity; the report shows 0 rather than fail.
            price=max(order.price, 0),
            quantity=max(order.quantity, 0),
            last_price=last_price,
            last_quantity=last_quantity,
            leaves_quantity=leaves,
            cum_quantity=order.cum_quantity,
            is_maker=is_maker,
            reason_code=reason,
            ts=ts,
        )
