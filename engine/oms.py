"""Order management: the order state machine, client order ids, cancel/replace and reconciliation (engine thread only).

The OMS is the engine's record of every order it sent. It turns engine intents into `Venue*` commands and venue
execution reports into protocol events, and it never raises on venue input: a report that does not fit the state
machine (a fill on a filled order, a report for an unknown id, a duplicate ack) changes nothing, returns no event and
is counted in `anomalies` under an `OMS_*` code, because a venue bug or a resend must not corrupt the books.

Identity. FIX gives every cancel and replace request its own client order id; after an accepted replace the order is
known at the venue by the replace's id (`Order.client_order_id` follows it). Every id ever issued for an order maps
back to it (`get` accepts any of them), so a report naming the original, the replace or the cancel id finds the order.
Ids come from `next_client_order_id`, a per-OMS counter (no clock, no randomness), so a replay regenerates them.

Two statuses. `Order.status` is what the engine shows, including the in-flight PENDING_CANCEL / PENDING_REPLACE;
`Order.base_status` is the order's state at the venue as last reported (PENDING_NEW, NEW, PARTIALLY_FILLED or
terminal). Reports move `base_status`; `status` equals it unless a request is in flight, and a cancel reject restores
it. See docs/oms.md for the transition table.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec

from engine.clock import Clock
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.errors import EngineError
from engine.protocol import (
    CancelRejected,
    ExecutionReport,
    MassCancelReport,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderSummary,
    VenueCancelOrder,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
)


class OmsCode(StrEnum):
    """Reason codes: raised in `OmsError` for bad engine requests, counted in `Oms.anomalies` for venue input."""

    # Engine-side request errors (raised).
    DUPLICATE_CLIENT_ORDER_ID = "OMS_DUPLICATE_CLIENT_ORDER_ID"
    INVALID_ORDER = "OMS_INVALID_ORDER"
    UNKNOWN_ORDER = "OMS_UNKNOWN_ORDER"
    ORDER_NOT_WORKING = "OMS_ORDER_NOT_WORKING"
    ORDER_NOT_PENDING_NEW = "OMS_ORDER_NOT_PENDING_NEW"
    CANCEL_PENDING = "OMS_CANCEL_PENDING"
    REPLACE_PENDING = "OMS_REPLACE_PENDING"
    INVALID_REPLACE = "OMS_INVALID_REPLACE"
    # Venue-input anomalies (counted, never raised). UNKNOWN_ORDER is shared with the list above.
    DUPLICATE_EXEC_ID = "OMS_DUPLICATE_EXEC_ID"
    WRONG_ACCOUNT = "OMS_WRONG_ACCOUNT"
    SYMBOL_MISMATCH = "OMS_SYMBOL_MISMATCH"
    UNEXPECTED_NEW = "OMS_UNEXPECTED_NEW"
    FILL_ON_TERMINAL_ORDER = "OMS_FILL_ON_TERMINAL_ORDER"
    OVERFILL = "OMS_OVERFILL"
    CUM_MISMATCH = "OMS_CUM_MISMATCH"
    CANCEL_ON_TERMINAL_ORDER = "OMS_CANCEL_ON_TERMINAL_ORDER"
    EXPIRE_ON_TERMINAL_ORDER = "OMS_EXPIRE_ON_TERMINAL_ORDER"
    UNEXPECTED_REJECT = "OMS_UNEXPECTED_REJECT"
    UNEXPECTED_REPLACE = "OMS_UNEXPECTED_REPLACE"
    UNEXPECTED_CANCEL_REJECT = "OMS_UNEXPECTED_CANCEL_REJECT"
    NOT_A_STATUS_REPORT = "OMS_NOT_A_STATUS_REPORT"
    RECONCILED = "OMS_RECONCILED"  # a status report changed our state (the events explain how)
    RECONCILED_FILL = "OMS_RECONCILED_FILL"  # ... including fills we never saw a TRADE report for
    RECONCILE_NOT_AT_VENUE = "OMS_RECONCILE_NOT_AT_VENUE"  # we think it is live, the venue does not know it
    RECONCILE_OPEN_AT_VENUE = "OMS_RECONCILE_OPEN_AT_VENUE"  # we think it is done, the venue says it is open
    RECONCILE_STALE_ID = "OMS_RECONCILE_STALE_ID"  # "not held" for an id a replace has moved (or may have moved) off
    RECONCILE_CUM_BELOW_OURS = "OMS_RECONCILE_CUM_BELOW_OURS"  # the venue counts fewer fills than we booked
    RECONCILE_FILL_PRICE_UNKNOWN = "OMS_RECONCILE_FILL_PRICE_UNKNOWN"
    VENUE_REJECTED = "OMS_VENUE_REJECTED"  # code of an OrderRejected whose report carried none
    BAD_SNAPSHOT = "OMS_BAD_SNAPSHOT"  # restore() of another account's snapshot (raised)


def is_stale_status(order: Order, client_order_id: str) -> bool:
    """Whether a status answer for `client_order_id` may predate a replace of `order`: it names an id the order no
    longer goes by, or a replace is still in flight (the venue may already hold the order under the new id)."""
    return client_order_id != order.client_order_id or bool(order.pending_replace_id)


class OmsError(EngineError):
    """A request the engine itself got wrong (duplicate id, cancel of a finished order). Never raised on venue input."""


_PENDING_NEW = OrderStatus.PENDING_NEW
_NEW = OrderStatus.NEW
_PARTIAL = OrderStatus.PARTIALLY_FILLED
_FILLED = OrderStatus.FILLED
_CANCELED = OrderStatus.CANCELED
_REJECTED = OrderStatus.REJECTED
_EXPIRED = OrderStatus.EXPIRED
_PENDING_CANCEL = OrderStatus.PENDING_CANCEL
_PENDING_REPLACE = OrderStatus.PENDING_REPLACE
TERMINAL_STATUSES = frozenset((_FILLED, _CANCELED, _REJECTED, _EXPIRED))
_TERMINAL = TERMINAL_STATUSES
_ZERO = Decimal(0)

_MARKET_TYPE = OrderType.MARKET
_CANCEL_REJECTED = ExecType.CANCEL_REJECTED

MASS_CANCEL_ID_PREFIX = "MASS"
"""Mass cancel ids are `"MASS-{n}"` from the same counter as every other id (so a replay regenerates them)."""
# A mass cancel report has no exec id; its request id and a digest of what it lists, marked so they can never equal
# a venue's exec id, stand in for one in the duplicate window.
_MASS_REPORT_KEY = "35=r:"

FeeModel = Callable[["Order", int, int, bool], Decimal]
"""(order, last_price ticks, last_quantity lots, is_maker) -> commission in money, for `OrderFilled.commission`."""


class Order(msgspec.Struct, kw_only=True, eq=False, gc=False):
    """One order as the engine knows it. Mutated only by `Oms`; read by risk, strategies and the console feed.

    `client_order_id` is the id the venue knows the order by now (the last accepted replace's id);
    `origin_client_order_id` is the id it was created with and never changes. `quantity` is the total order
    quantity (FIX OrderQty, filled part included), `leaves_quantity = quantity - cum_quantity` while it is live.
    `pending_price`/`pending_quantity` are the values of an in-flight replace (0 when none). `aliases` are the ids
    issued for its cancel and replace requests, None until the first (so a plain new order allocates no list).

    A msgspec Struct rather than a plain `__slots__` class: same slotted layout, but built in C (about a third of
    the cost of a Python `__init__` on the order path), `gc=False` keeps millions of finished orders out of the
    cycle collector (they hold only strs, ints and the alias list), and it serialises itself for snapshots.
    `eq=False`: orders compare by identity, like any mutable record. Build orders with `Oms.new_order`; direct
    construction (tests) must set `origin_client_order_id` and `leaves_quantity` itself.
    """

    client_order_id: str
    strategy_id: str
    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int
    quantity: int
    post_only: bool = False
    created_ns: int = 0
    origin_client_order_id: str = ""
    leaves_quantity: int = 0
    cum_quantity: int = 0
    status: OrderStatus = OrderStatus.PENDING_NEW
    base_status: OrderStatus = OrderStatus.PENDING_NEW
    venue_order_id: int = 0
    updated_ns: int = 0
    pending_price: int = 0
    pending_quantity: int = 0
    pending_cancel_id: str = ""
    pending_replace_id: str = ""
    aliases: list[str] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in _TERMINAL

    def worst_case_leaves(self) -> int:
        """Lots that could still fill: with a replace in flight the venue may fill either the old or the new size."""
        if self.status in _TERMINAL:
            return 0
        if self.pending_replace_id and self.pending_quantity > self.quantity:
            return self.pending_quantity - self.cum_quantity
        return self.leaves_quantity

    def summary(self) -> OrderSummary:
        return OrderSummary(
            strategy_id=self.strategy_id,
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=self.side,
            order_type=self.order_type,
            time_in_force=self.time_in_force,
            status=self.status,
            price=self.price,
            quantity=self.quantity,
            leaves_quantity=self.leaves_quantity,
            cum_quantity=self.cum_quantity,
            venue_order_id=self.venue_order_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (ints, strs, bools, a list), keys sorted, for snapshots and state hashes."""
        return msgspec.to_builtins(self, order="sorted")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Order:
        return msgspec.convert(data, cls)


class WorkingSide:
    """Working orders of one strategy (or, for the net view, of every strategy) in one symbol on one side, as the
    risk gate counts them, kept up to date by the OMS on every change so a check reads them in O(1) instead of
    passing over every working order of the account.

    `lots` is the worst case (`Order.worst_case_leaves`: the larger size while a replace is in flight); `value` is
    the sum of lots x price (ticks x lots) over orders with a price, `zero_lots` the lots of orders without one (a
    MARKET order, which the gate values at the reference price of the order it checks). `market` counts MARKET
    orders; `prices` (per strategy only, None in the net view) is the multiset {price: orders} of every order's
    price and of every in-flight replace's price, for the self-match check: a replace may rest at either.
    Read-only outside the OMS.
    """

    __slots__ = ("count", "lots", "market", "prices", "value", "zero_lots")

    def __init__(self, *, with_prices: bool) -> None:
        self.count = 0
        self.lots = 0
        self.value = 0
        self.zero_lots = 0
        self.market = 0
        self.prices: dict[int, int] | None = {} if with_prices else None

    def as_tuple(self) -> tuple[int, int, int, int, int, dict[int, int] | None]:
        """For comparisons in tests (the counters against a recount)."""
        return (self.count, self.lots, self.value, self.zero_lots, self.market, self.prices)


class Tally:
    """A count of working orders (the firm's, one strategy's or one symbol's); `n` is read-only outside the OMS."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class RiskView:
    """Everything the risk gate reads about working orders for orders of one strategy in one symbol: stable
    references into the OMS's counters (`restore` refills them in place), so the gate looks them up once per
    (strategy, symbol) and a check reads attributes, with no call into the OMS.

    `sides[side]` = (this strategy's WorkingSide on `side`, every strategy's on `side`, {strategy id: WorkingSide}
    on the opposite side, for self-match); `firm`, `strategy`, `symbol` are the open-order Tallies.
    """

    __slots__ = ("firm", "sides", "strategy", "symbol")

    def __init__(
        self,
        sides: dict[Side, tuple[WorkingSide, WorkingSide, dict[str, WorkingSide]]],
        firm: Tally,
        strategy: Tally,
        symbol: Tally,
    ) -> None:
        self.sides = sides
        self.firm = firm
        self.strategy = strategy
        self.symbol = symbol


# What one order moves: (its strategy's WorkingSide, the net WorkingSide, its strategy's Tally, its symbol's Tally,
# the working orders of its strategy in its symbol).
_Entry = tuple[WorkingSide, WorkingSide, Tally, Tally, dict[str, "Order"]]


class Oms:
    """The order book of record for one venue account. Engine thread only; never reads the wall clock.

    `max_terminal_orders` finished orders (and their ids) are kept so late or repeated reports about them are
    recognised; older ones are forgotten, after which a report naming them counts as OMS_UNKNOWN_ORDER.
    `exec_id_window` is how many recent exec ids are remembered for duplicate detection (resends come soon after
    the original). Both bounds are counted in reports, not time, so replay forgets exactly what live forgot.
    """

    __slots__ = (
        "_account",
        "_by_id",
        "_clock",
        "_counted",
        "_entries",
        "_exec_id_set",
        "_exec_id_window",
        "_exec_ids",
        "_fee_model",
        "_max_terminal",
        "_next_id",
        "_open_by_strategy",
        "_open_by_symbol",
        "_open_firm",
        "_pairs",
        "_sides",
        "_sides_net",
        "_terminal",
        "_working",
        "anomalies",
    )

    def __init__(
        self,
        clock: Clock,
        account: str,
        *,
        fee_model: FeeModel | None = None,
        max_terminal_orders: int = 10_000,
        exec_id_window: int = 100_000,
    ) -> None:
        if max_terminal_orders < 1 or exec_id_window < 1:
            raise ValueError("max_terminal_orders and exec_id_window must be positive")
        self._clock = clock
        self._account = account
        self._fee_model = fee_model
        self._max_terminal = max_terminal_orders
        self._exec_id_window = exec_id_window
        self._by_id: dict[str, Order] = {}  # every id ever issued for a remembered order -> the order
        self._working: dict[str, Order] = {}  # origin id -> live order, in creation order
        self._terminal: deque[Order] = deque()  # finished orders still remembered, oldest first
        self._exec_ids: deque[str] = deque()
        self._exec_id_set: set[str] = set()
        self._next_id = 0
        self.anomalies: dict[str, int] = {}
        self._reset_counters()

    def _reset_counters(self) -> None:
        # Derived from `_working` (never snapshotted: `restore` rebuilds them): what the risk gate would otherwise
        # count in a pass over every working order on each check (RTS 6 Art. 15(2): every working order counts).
        # Entries are created on first use and never removed (a few per strategy and symbol), so the references a
        # `RiskView` holds stay valid.
        self._open_firm = Tally()
        self._open_by_strategy: dict[str, Tally] = {}
        self._open_by_symbol: dict[str, Tally] = {}
        # (symbol, side) -> strategy id -> that strategy's working side; (symbol, side) -> every strategy's.
        self._sides: dict[tuple[str, Side], dict[str, WorkingSide]] = {}
        self._sides_net: dict[tuple[str, Side], WorkingSide] = {}
        # (strategy, symbol) -> its working orders (origin id -> order, in creation order): what the engine's
        # requote asks for on every book update, without a pass over the account's working orders.
        self._pairs: dict[tuple[str, str], dict[str, Order]] = {}
        # (strategy, symbol, side) -> the counters an order there moves.
        self._entries: dict[tuple[str, str, Side], _Entry] = {}
        # origin id -> the order's entry and what it added (lots, price, pending price), so taking it out is exact.
        self._counted: dict[str, tuple[_Entry, int, int, int]] = {}

    def _zero_counters(self) -> None:
        """Empty every counter in place (for `restore`): a risk gate's `RiskView`s keep pointing at live ones."""
        self._open_firm.n = 0
        for tally in (*self._open_by_strategy.values(), *self._open_by_symbol.values()):
            tally.n = 0
        for side in (*self._sides_net.values(), *(w for sides in self._sides.values() for w in sides.values())):
            side.count = side.lots = side.value = side.zero_lots = side.market = 0
            if side.prices is not None:
                side.prices.clear()
        for orders in self._pairs.values():
            orders.clear()
        self._counted.clear()

    def _tally(self, table: dict[str, Tally], name: str) -> Tally:
        tally = table.get(name)
        if tally is None:
            tally = table[name] = Tally()
        return tally

    def _side_of(self, strategy_id: str, symbol: str, side: Side) -> tuple[WorkingSide, WorkingSide]:
        """The strategy's and the net WorkingSide of (symbol, side), created empty on first use."""
        key = (symbol, side)
        sides = self._sides.get(key)
        if sides is None:
            sides = self._sides[key] = {}
            net = self._sides_net[key] = WorkingSide(with_prices=False)
        else:
            net = self._sides_net[key]
        mine = sides.get(strategy_id)
        if mine is None:
            mine = sides[strategy_id] = WorkingSide(with_prices=True)
        return mine, net

    def risk_view(self, strategy_id: str, symbol: str) -> RiskView:
        """The counters the risk gate reads for orders of `strategy_id` in `symbol` (see `RiskView`)."""
        buy, net_buy = self._side_of(strategy_id, symbol, Side.BUY)
        sell, net_sell = self._side_of(strategy_id, symbol, Side.SELL)
        sides = {
            Side.BUY: (buy, net_buy, self._sides[(symbol, Side.SELL)]),
            Side.SELL: (sell, net_sell, self._sides[(symbol, Side.BUY)]),
        }
        return RiskView(
            sides,
            self._open_firm,
            self._tally(self._open_by_strategy, strategy_id),
            self._tally(self._open_by_symbol, symbol),
        )

    @property
    def account(self) -> str:
        return self._account

    # ------------------------------------------------------------------ engine requests

    def next_client_order_id(self, strategy_id: str) -> str:
        """A fresh id `"{strategy_id}-{n}"`; skips ids already used (an operator may have typed one)."""
        by_id = self._by_id
        while True:
            self._next_id += 1
            cid = f"{strategy_id}-{self._next_id}"
            if cid not in by_id:
                return cid

    def new_order(
        self,
        *,
        strategy_id: str,
        client_order_id: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        price: int,
        quantity: int,
        post_only: bool = False,
    ) -> Order:
        """Record a new order in PENDING_NEW. It counts as working (risk sees it) from now on; send it with
        `place_message`, or drop it with `on_order_denied` if the risk gate refuses it."""
        if client_order_id in self._by_id:
            raise OmsError(OmsCode.DUPLICATE_CLIENT_ORDER_ID, f"client order id {client_order_id!r} already used")
        if quantity <= 0:
            raise OmsError(OmsCode.INVALID_ORDER, f"quantity must be positive, got {quantity}")
        now = self._clock.now()
        order = Order(
            client_order_id=client_order_id,
            strategy_id=strategy_id,
            symbol=symbol,
            side=side,
            order_type=order_type,
            time_in_force=time_in_force,
            price=price,
            quantity=quantity,
            post_only=post_only,
            created_ns=now,
            origin_client_order_id=client_order_id,
            leaves_quantity=quantity,
            updated_ns=now,
        )
        self._by_id[client_order_id] = order
        self._working[client_order_id] = order
        self._add_working(order)
        return order

    def place_message(self, order: Order) -> VenuePlaceOrder:
        """The venue command for a PENDING_NEW order returned by `new_order`."""
        return VenuePlaceOrder(
            client_order_id=order.origin_client_order_id,
            account=self._account,
            symbol=order.symbol,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            price=order.price,
            quantity=order.quantity,
            post_only=order.post_only,
            ts=order.created_ns,
        )

    def on_order_denied(self, client_order_id: str) -> None:
        """Forget a PENDING_NEW order the risk gate refused before it was sent: it never existed for the venue."""
        order = self._by_id.get(client_order_id)
        if order is None:
            raise OmsError(OmsCode.UNKNOWN_ORDER, f"no order {client_order_id!r}")
        if order.status != _PENDING_NEW or order.aliases:
            raise OmsError(OmsCode.ORDER_NOT_PENDING_NEW, f"order {client_order_id!r} is {order.status.name}")
        del self._by_id[client_order_id]
        del self._working[order.origin_client_order_id]
        self._drop_working(order)

    def request_cancel(self, client_order_id: str) -> VenueCancelOrder:
        """Ask the venue to cancel a live order (any of its ids). The order goes PENDING_CANCEL until the venue
        answers. With a replace in flight the cancel names the replace's id, as FIX chains them: if the venue takes
        the replace first, the cancel finds the order under its new id."""
        order = self._live(client_order_id)
        if order.pending_cancel_id:
            raise OmsError(OmsCode.CANCEL_PENDING, f"order {client_order_id!r} already has a cancel in flight")
        now = self._clock.now()
        cancel_id = self.next_client_order_id(order.strategy_id)
        # The message first: if it cannot be built (an id past the protocol's length), the order is left untouched.
        msg = VenueCancelOrder(
            client_order_id=cancel_id,
            orig_client_order_id=order.pending_replace_id or order.client_order_id,
            account=self._account,
            symbol=order.symbol,
            ts=now,
        )
        self._issue_id(order, cancel_id)
        order.pending_cancel_id = cancel_id
        order.status = _PENDING_CANCEL
        order.updated_ns = now
        return msg

    def request_replace(
        self, client_order_id: str, price: int, quantity: int, *, new_client_order_id: str | None = None
    ) -> VenueReplaceOrder:
        """Ask the venue to change price and/or total quantity (filled part included, FIX OrderQty) of a live
        LIMIT order. PENDING_REPLACE until the venue answers; fills meanwhile apply to the old terms.
        `new_client_order_id` is for an operator's ReplaceOrder that names the id itself; otherwise one is issued."""
        order = self._live(client_order_id)
        if order.pending_cancel_id:
            raise OmsError(OmsCode.CANCEL_PENDING, f"order {client_order_id!r} has a cancel in flight")
        if order.pending_replace_id:
            raise OmsError(OmsCode.REPLACE_PENDING, f"order {client_order_id!r} already has a replace in flight")
        if order.order_type != OrderType.LIMIT or price <= 0 or quantity <= 0:
            raise OmsError(
                OmsCode.INVALID_REPLACE, f"cannot replace {order.order_type.name} order to {quantity}@{price}"
            )
        if new_client_order_id is not None and new_client_order_id in self._by_id:
            raise OmsError(OmsCode.DUPLICATE_CLIENT_ORDER_ID, f"client order id {new_client_order_id!r} already used")
        now = self._clock.now()
        replace_id = new_client_order_id or self.next_client_order_id(order.strategy_id)
        msg = VenueReplaceOrder(
            client_order_id=replace_id,
            orig_client_order_id=order.client_order_id,
            account=self._account,
            symbol=order.symbol,
            price=price,
            quantity=quantity,
            ts=now,
        )
        self._issue_id(order, replace_id)
        order.pending_replace_id = replace_id
        order.pending_price = price
        order.pending_quantity = quantity
        order.status = _PENDING_REPLACE
        order.updated_ns = now
        self._recount(order)  # in flight at either price, and at the larger size
        return msg

    def cancel_all(self, *, strategy_id: str | None = None, symbol: str | None = None) -> list[VenueCancelOrder]:
        """Cancel every live order in scope (None = any), in creation order; orders already being canceled are
        skipped (their cancel is in flight). Used by the kill switch: call again after a `CancelRejected` in a
        halted scope, since a cancel chained on a replace the venue then rejected finds nothing to cancel."""
        out = []
        for order in list(self._working.values()):
            if order.pending_cancel_id:
                continue
            if strategy_id is not None and order.strategy_id != strategy_id:
                continue
            if symbol is not None and order.symbol != symbol:
                continue
            out.append(self.request_cancel(order.origin_client_order_id))
        return out

    def request_mass_cancel(
        self, *, symbol: str | None = None
    ) -> tuple[VenueMassCancel | None, list[VenueCancelOrder]]:
        """Cancel every live order of the account (on `symbol`, or on every symbol when None) with one venue mass
        cancel, for the kill switch of a firm or instrument scope. Never for a strategy scope: the venue cancels by
        account, and other strategies share it. Call only when the gateway can send a `VenueMassCancel`.

        Returns (the mass cancel, or None when no order in scope needs it; individual cancels to send *before* it).
        Orders already being canceled are skipped, as in `cancel_all`. Orders the venue acknowledged go
        PENDING_CANCEL with `pending_cancel_id` = the mass cancel's id, which maps to no single order: the venue
        answers with one `MassCancelReport` listing the orders (`on_mass_cancel_report`), or, as FIX 4.4 describes,
        with one CANCELED report per order naming the mass cancel's id and the order's id as orig, which
        `on_execution_report` finds by the orig. A PENDING_NEW order gets an individual cancel instead:
        its place may not have reached the venue yet, and a mass cancel that arrives first would miss it for good
        (an individual cancel the venue refuses comes back as a `CancelRejected`, which a halted scope re-issues).
        A fill racing the mass cancel is booked as usual; an order it fully fills gets no CANCELED."""
        covered: list[Order] = []
        cancels: list[VenueCancelOrder] = []
        for order in list(self._working.values()):
            if order.pending_cancel_id or (symbol is not None and order.symbol != symbol):
                continue
            if order.base_status is _PENDING_NEW:
                cancels.append(self.request_cancel(order.origin_client_order_id))
            else:
                covered.append(order)
        if not covered:
            return None, cancels
        now = self._clock.now()
        mass_id = self.next_client_order_id(MASS_CANCEL_ID_PREFIX)
        msg = VenueMassCancel(client_order_id=mass_id, account=self._account, symbol=symbol or "", ts=now)
        for order in covered:
            # Not an alias: one id for many orders cannot go in `_by_id`; the reports name each order as orig.
            order.pending_cancel_id = mass_id
            order.status = _PENDING_CANCEL
            order.updated_ns = now
        return msg, cancels

    def query_message(self, client_order_id: str, *, under: str = "") -> VenueQueryOrder:
        """A status query for an order (any of its ids), under the id the venue knows it by (or `under`, one of the
        order's ids, when the caller knows better: a replace in flight the venue may have applied). Feed the
        ORDER_STATUS answer to `on_execution_report` (or `reconcile`). Worth sending when a cancel or replace of a
        live order is refused as unknown: the venue has finished the order and we missed the report that said how."""
        order = self._by_id.get(client_order_id)
        if order is None:
            raise OmsError(OmsCode.UNKNOWN_ORDER, f"no order {client_order_id!r}")
        return VenueQueryOrder(
            client_order_id=under or order.client_order_id, account=self._account, symbol=order.symbol
        )

    # ------------------------------------------------------------------ queries

    def get(self, client_order_id: str) -> Order | None:
        """The order any of whose ids (origin, replace, cancel) is `client_order_id`."""
        return self._by_id.get(client_order_id)

    def working_orders(self, *, strategy_id: str | None = None, symbol: str | None = None) -> list[Order]:
        """Orders live at the venue or in flight (not terminal), in creation order."""
        if strategy_id is None and symbol is None:
            return list(self._working.values())
        if strategy_id is not None and symbol is not None:
            orders = self._pairs.get((strategy_id, symbol))
            return [] if orders is None else list(orders.values())
        return [
            o
            for o in self._working.values()
            if (strategy_id is None or o.strategy_id == strategy_id) and (symbol is None or o.symbol == symbol)
        ]

    def open_order_count(self, *, strategy_id: str | None = None, symbol: str | None = None) -> int:
        if symbol is None:
            if strategy_id is None:
                return len(self._working)
            tally = self._open_by_strategy.get(strategy_id)
            return 0 if tally is None else tally.n
        if strategy_id is None:
            tally = self._open_by_symbol.get(symbol)
            return 0 if tally is None else tally.n
        n = 0
        for o in self._working.values():
            if (strategy_id is None or o.strategy_id == strategy_id) and (symbol is None or o.symbol == symbol):
                n += 1
        return n

    def working_side(self, strategy_id: str, symbol: str, side: Side) -> WorkingSide | None:
        """`strategy_id`'s working orders in `symbol` on `side`, counted (None if it never had one there)."""
        sides = self._sides.get((symbol, side))
        return None if sides is None else sides.get(strategy_id)

    def net_working_side(self, symbol: str, side: Side) -> WorkingSide | None:
        """Every strategy's working orders in `symbol` on `side`, counted (no `prices`)."""
        return self._sides_net.get((symbol, side))

    def working_sides(self, symbol: str, side: Side) -> dict[str, WorkingSide]:
        """strategy id -> its working side in `symbol` on `side` (entries may have count 0). Read-only."""
        return self._sides.get((symbol, side), _NO_SIDES)

    def working_quantity(self, *, strategy_id: str | None = None, symbol: str | None = None, side: Side) -> int:
        """Lots that could still fill on `side` (worst case: the larger of old and new size while a replace is in
        flight), for position limits that count working orders (RTS 6 Art. 15(2))."""
        total = 0
        for o in self._working.values():
            if (
                o.side == side
                and (strategy_id is None or o.strategy_id == strategy_id)
                and (symbol is None or o.symbol == symbol)
            ):
                total += o.worst_case_leaves()
        return total

    # ------------------------------------------------------------------ venue input

    def on_execution_report(self, report: ExecutionReport) -> list:
        """Apply one execution report; return the protocol events it causes (empty for a duplicate or an anomaly).
        Never raises on venue input."""
        exec_id = report.exec_id
        seen = self._exec_id_set
        if exec_id in seen:
            return self._anomaly(OmsCode.DUPLICATE_EXEC_ID)
        seen.add(exec_id)
        ids = self._exec_ids
        ids.append(exec_id)
        if len(ids) > self._exec_id_window:
            seen.discard(ids.popleft())
        if report.account != self._account:
            return self._anomaly(OmsCode.WRONG_ACCOUNT)
        by_id = self._by_id
        order = by_id.get(report.client_order_id)
        if order is None:
            # A mass cancel names its own request id and the order's id as orig.
            orig = report.orig_client_order_id
            order = by_id.get(orig) if orig else None
            if order is None:
                if report.exec_type == _CANCEL_REJECTED:
                    return self._on_mass_cancel_rejected(report)
                return self._anomaly(OmsCode.UNKNOWN_ORDER)
        if report.symbol != order.symbol:
            return self._anomaly(OmsCode.SYMBOL_MISMATCH)
        exec_type = report.exec_type
        if exec_type == ExecType.TRADE:
            return self._on_trade(order, report)
        if exec_type == ExecType.NEW:
            return self._on_new(order, report)
        if exec_type == ExecType.CANCELED:
            return self._on_canceled(order, report)
        if exec_type == ExecType.REPLACED:
            return self._on_replaced(order, report)
        if exec_type == ExecType.CANCEL_REJECTED:
            return self._on_cancel_rejected(order, report)
        if exec_type == ExecType.REJECTED:
            return self._on_rejected(order, report)
        if exec_type == ExecType.EXPIRED:
            return self._on_expired(order, report)
        return self._reconcile(order, report)  # ORDER_STATUS, the only ExecType left

    def on_mass_cancel_report(self, report: MassCancelReport) -> list:
        """Apply a venue mass cancel's report: cancel every order it names, as one CANCELED report per order would.
        Returns their `OrderCanceled` events, in the report's order. An order it names that we do not hold, or that
        already ended (a fill won the race, or a venue that also sent the per-order reports), is counted as the
        per-order report would be and skipped. A repeated report (a FIX resend of the same content) changes nothing;
        another report under the same request id listing other orders is applied (docs/fix.md)."""
        listed = "|".join(f"{cid}:{vid}" for cid, vid in report.canceled)
        digest = hashlib.blake2b(listed.encode(), digest_size=12).hexdigest()
        key = f"{_MASS_REPORT_KEY}{report.client_order_id}:{report.symbol}:{digest}"
        seen = self._exec_id_set
        if key in seen:
            return self._anomaly(OmsCode.DUPLICATE_EXEC_ID)
        seen.add(key)
        ids = self._exec_ids
        ids.append(key)
        if len(ids) > self._exec_id_window:
            seen.discard(ids.popleft())
        if report.account != self._account:
            return self._anomaly(OmsCode.WRONG_ACCOUNT)
        by_id = self._by_id
        symbol = report.symbol
        code = report.reason_code
        ts = report.ts
        events: list = []
        for client_order_id, _venue_order_id in report.canceled:
            order = by_id.get(client_order_id)
            if order is None:
                self._count(OmsCode.UNKNOWN_ORDER)
            elif symbol and order.symbol != symbol:
                self._count(OmsCode.SYMBOL_MISMATCH)
            elif order.base_status in _TERMINAL:
                self._count(OmsCode.CANCEL_ON_TERMINAL_ORDER)
            else:
                self._cancel(order, code, ts, events)
        return events

    def reconcile(self, report: ExecutionReport) -> list:
        """Adopt the venue's view from an ORDER_STATUS report (a reply to `VenueQueryOrder`): missed fills become
        `OrderFilled` events, a missed ack `OrderAccepted`, a missed end `OrderCanceled`/`OrderExpired`/... so the
        event stream explains every difference. Each reconciling change is also counted as an anomaly."""
        if report.exec_type != ExecType.ORDER_STATUS:
            return self._anomaly(OmsCode.NOT_A_STATUS_REPORT)
        return self.on_execution_report(report)

    # ------------------------------------------------------------------ transitions

    def _on_new(self, order: Order, r: ExecutionReport) -> list:
        if order.base_status != _PENDING_NEW:
            return self._anomaly(OmsCode.UNEXPECTED_NEW)
        events: list = []
        self._accept(order, r, events)
        order.updated_ns = self._clock.now()
        return events

    def _on_trade(self, order: Order, r: ExecutionReport) -> list:
        if order.base_status in _TERMINAL or order.leaves_quantity <= 0:
            return self._anomaly(OmsCode.FILL_ON_TERMINAL_ORDER)
        events: list = []
        if order.base_status == _PENDING_NEW:  # a venue that fills before it acks: the fill implies the ack
            self._accept(order, r, events)
        qty = r.last_quantity
        if qty > order.leaves_quantity:
            # Overfill: book no more than the order allows, so cum never exceeds quantity; the count flags it for
            # an operator, who must reconcile the position with the venue.
            self._count(OmsCode.OVERFILL)
            qty = order.leaves_quantity
        self._fill(order, qty, r.last_price, r.exec_id, r.is_maker, r.ts, events)
        if r.cum_quantity != order.cum_quantity:
            self._count(OmsCode.CUM_MISMATCH)
        return events

    def _on_canceled(self, order: Order, r: ExecutionReport) -> list:
        if order.base_status in _TERMINAL:
            return self._anomaly(OmsCode.CANCEL_ON_TERMINAL_ORDER)
        events: list = []
        self._cancel(order, r.reason_code, r.ts, events)
        return events

    def _on_expired(self, order: Order, r: ExecutionReport) -> list:
        if order.base_status in _TERMINAL:
            return self._anomaly(OmsCode.EXPIRE_ON_TERMINAL_ORDER)
        events: list = []
        self._expire(order, r.ts, events)
        return events

    def _on_rejected(self, order: Order, r: ExecutionReport) -> list:
        if order.base_status != _PENDING_NEW:
            return self._anomaly(OmsCode.UNEXPECTED_REJECT)
        events: list = []
        self._reject(order, r.reason_code or OmsCode.VENUE_REJECTED, r.text, r.ts, events)
        return events

    def _on_replaced(self, order: Order, r: ExecutionReport) -> list:
        replace_id = order.pending_replace_id
        if not replace_id or r.client_order_id != replace_id or order.base_status in _TERMINAL:
            return self._anomaly(OmsCode.UNEXPECTED_REPLACE)
        events: list = []
        self._apply_replace(order, r.price, r.quantity, r.ts, events)
        if r.cum_quantity != order.cum_quantity:
            self._count(OmsCode.CUM_MISMATCH)
        return events

    def _on_cancel_rejected(self, order: Order, r: ExecutionReport) -> list:
        request_id = r.client_order_id
        code = r.reason_code or OmsCode.VENUE_REJECTED
        if order.base_status in _TERMINAL:
            # The usual race: the order filled (or was canceled) before our request reached the venue. Nothing
            # changes, but the requester hears why its request failed.
            if order.aliases is None or request_id not in order.aliases:
                return self._anomaly(OmsCode.UNEXPECTED_CANCEL_REJECT)
        elif request_id == order.pending_cancel_id:
            order.pending_cancel_id = ""
        elif request_id == order.pending_replace_id:
            order.pending_replace_id = ""
            order.pending_price = 0
            order.pending_quantity = 0
            self._recount(order)  # back to its current terms only
        else:
            return self._anomaly(OmsCode.UNEXPECTED_CANCEL_REJECT)
        if order.base_status not in _TERMINAL:
            self._restore_status(order)
            order.updated_ns = self._clock.now()
        return [
            CancelRejected(
                strategy_id=order.strategy_id,
                client_order_id=request_id,
                orig_client_order_id=r.orig_client_order_id or order.client_order_id,
                symbol=order.symbol,
                code=code,
                reason=r.text,
                venue_ts=r.ts,
            )
        ]

    def _on_mass_cancel_rejected(self, r: ExecutionReport) -> list:
        """The venue refused a whole mass cancel (it names no order): every order still waiting on it goes back to
        its venue status, each with a `CancelRejected` naming the mass cancel, so a halted scope re-issues
        individual cancels. A reject naming no request of ours is an unknown order."""
        events = self.mass_cancel_refused(
            r.client_order_id, code=r.reason_code or OmsCode.VENUE_REJECTED, reason=r.text, ts=r.ts
        )
        if not events:
            return self._anomaly(OmsCode.UNKNOWN_ORDER)
        return events

    def mass_cancel_refused(self, request_id: str, *, code: str, reason: str, ts: int) -> list:
        """A mass cancel of ours was refused (a CANCEL_REJECTED report, or a `VenueCommandRejected` from the venue or
        the gateway that never sent it): every order still waiting on `request_id` goes back to its venue status,
        each with a `CancelRejected` naming the mass cancel, so a halted scope re-issues individual cancels and a
        later halt covers them again. Empty when no order waits on `request_id`."""
        now = self._clock.now()
        events: list = []
        for order in self._working.values():
            if order.pending_cancel_id != request_id:
                continue
            order.pending_cancel_id = ""
            self._restore_status(order)
            order.updated_ns = now
            events.append(
                CancelRejected(
                    strategy_id=order.strategy_id,
                    client_order_id=request_id,
                    orig_client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    code=code,
                    reason=reason,
                    venue_ts=ts,
                )
            )
        return events

    def _reconcile(self, order: Order, r: ExecutionReport) -> list:
        events: list = []
        venue_status = r.status
        open_at_venue = venue_status in (_NEW, _PARTIAL, _PENDING_CANCEL, _PENDING_REPLACE)
        if order.base_status in _TERMINAL:
            if open_at_venue:
                # Cannot be revived safely from a status line; an operator has to look at it.
                self._count(OmsCode.RECONCILE_OPEN_AT_VENUE)
            return events
        if not open_at_venue and is_stale_status(order, r.client_order_id):
            # Asked under an id a replace in flight (or already applied) moves the order off: the venue applied the
            # replace first and holds the order under the new id, so "not held" says nothing about the order.
            self._count(OmsCode.RECONCILE_STALE_ID)
            return events
        if venue_status == _REJECTED and r.cum_quantity == 0:
            # The venue does not know the order (or no longer shows it). A PENDING_NEW order was refused; a working
            # one is gone without a trace, which we book as canceled so nothing counts it as working any more.
            self._count(OmsCode.RECONCILE_NOT_AT_VENUE)
            if order.base_status == _PENDING_NEW:
                self._reject(order, r.reason_code or OmsCode.RECONCILE_NOT_AT_VENUE, r.text, r.ts, events)
            else:
                self._cancel(order, OmsCode.RECONCILE_NOT_AT_VENUE, r.ts, events)
            return events
        if order.base_status == _PENDING_NEW:
            self._accept(order, r, events)
        if open_at_venue and r.quantity > 0 and r.price > 0 and (r.price, r.quantity) != (order.price, order.quantity):
            # A replace whose REPLACED report we missed (or the venue's terms differ): adopt the venue's terms.
            if order.pending_replace_id and (r.price, r.quantity) == (order.pending_price, order.pending_quantity):
                self._apply_replace(order, r.price, r.quantity, r.ts, events)
            elif r.quantity > order.cum_quantity:
                order.price = r.price
                order.quantity = r.quantity
                order.leaves_quantity = r.quantity - order.cum_quantity
                self._recount(order)
        missing = r.cum_quantity - order.cum_quantity
        if missing > 0:
            price = r.last_price or order.price
            if price <= 0:
                self._count(OmsCode.RECONCILE_FILL_PRICE_UNKNOWN)
            else:
                self._count(OmsCode.RECONCILED_FILL)
                missing = min(missing, order.leaves_quantity)
                if missing > 0:
                    exec_id = f"{OmsCode.RECONCILED_FILL}-{r.exec_id}"
                    self._fill(order, missing, price, exec_id, r.is_maker, r.ts, events)
        elif missing < 0:
            self._count(OmsCode.RECONCILE_CUM_BELOW_OURS)
        if order.base_status not in _TERMINAL:
            if venue_status in (_CANCELED, _REJECTED):
                self._cancel(order, r.reason_code or OmsCode.RECONCILED, r.ts, events)
            elif venue_status == _EXPIRED:
                self._expire(order, r.ts, events)
            elif venue_status == _FILLED:
                # The venue says filled but reports fewer lots than the order: we cannot invent the price of the
                # rest, so the order ends as canceled for the remainder and the count asks for a human.
                self._count(OmsCode.RECONCILE_CUM_BELOW_OURS)
                self._cancel(order, OmsCode.RECONCILED, r.ts, events)
        if events:
            self._count(OmsCode.RECONCILED)
            order.updated_ns = self._clock.now()
        return events

    # ------------------------------------------------------------------ state changes shared by the transitions

    def _accept(self, order: Order, r: ExecutionReport, events: list) -> None:
        order.base_status = _NEW
        if r.venue_order_id:
            order.venue_order_id = r.venue_order_id
        if not order.pending_cancel_id and not order.pending_replace_id:
            order.status = _NEW
        events.append(
            OrderAccepted(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                venue_order_id=order.venue_order_id,
                venue_ts=r.ts,
            )
        )

    def _fill(  # noqa: PLR0917 - positional on the fill path: keyword passing costs ~10 % of the call
        self, order: Order, qty: int, price: int, exec_id: str, is_maker: bool, venue_ts: int, events: list
    ) -> None:
        cum = order.cum_quantity + qty
        leaves = order.leaves_quantity - qty
        order.cum_quantity = cum
        order.leaves_quantity = leaves
        order.updated_ns = self._clock.now()
        if leaves:
            order.base_status = _PARTIAL
            if not order.pending_cancel_id and not order.pending_replace_id:
                order.status = _PARTIAL
            self._recount(order)
        else:
            order.base_status = _FILLED
            self._finish(order, _FILLED)
        fee_model = self._fee_model
        events.append(
            OrderFilled(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                side=order.side,
                exec_id=exec_id,
                venue_order_id=order.venue_order_id,
                last_price=price,
                last_quantity=qty,
                leaves_quantity=leaves,
                cum_quantity=cum,
                is_maker=is_maker,
                commission=_ZERO if fee_model is None else fee_model(order, price, qty, is_maker),
                venue_ts=venue_ts,
            )
        )

    def _cancel(self, order: Order, code: str, venue_ts: int, events: list) -> None:
        canceled = order.leaves_quantity
        order.base_status = _CANCELED
        self._finish(order, _CANCELED)
        order.updated_ns = self._clock.now()
        events.append(
            OrderCanceled(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                canceled_quantity=canceled,
                code=code,
                venue_ts=venue_ts,
            )
        )

    def _expire(self, order: Order, venue_ts: int, events: list) -> None:
        expired = order.leaves_quantity
        order.base_status = _EXPIRED
        self._finish(order, _EXPIRED)
        order.updated_ns = self._clock.now()
        events.append(
            OrderExpired(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                expired_quantity=expired,
                venue_ts=venue_ts,
            )
        )

    def _reject(self, order: Order, code: str, text: str, venue_ts: int, events: list) -> None:
        order.base_status = _REJECTED
        self._finish(order, _REJECTED)
        order.updated_ns = self._clock.now()
        events.append(
            OrderRejected(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                code=code,
                reason=text,
                venue_ts=venue_ts,
            )
        )

    def _apply_replace(self, order: Order, price: int, quantity: int, venue_ts: int, events: list) -> None:
        orig = order.client_order_id
        order.client_order_id = order.pending_replace_id
        order.price = price
        order.quantity = quantity
        order.leaves_quantity = max(quantity - order.cum_quantity, 0)
        order.pending_replace_id = ""
        order.pending_price = 0
        order.pending_quantity = 0
        if order.base_status == _PENDING_NEW:
            order.base_status = _NEW
        self._restore_status(order)
        order.updated_ns = self._clock.now()
        self._recount(order)
        events.append(
            OrderReplaced(
                strategy_id=order.strategy_id,
                client_order_id=order.client_order_id,
                orig_client_order_id=orig,
                symbol=order.symbol,
                price=price,
                quantity=quantity,
                leaves_quantity=order.leaves_quantity,
                venue_ts=venue_ts,
            )
        )

    @staticmethod
    def _restore_status(order: Order) -> None:
        """The shown status of a live order: the in-flight request if any (cancel outranks replace), else the
        venue's."""
        if order.pending_cancel_id:
            order.status = _PENDING_CANCEL
        elif order.pending_replace_id:
            order.status = _PENDING_REPLACE
        else:
            order.status = order.base_status

    def _finish(self, order: Order, status: OrderStatus) -> None:
        order.status = status
        order.leaves_quantity = 0
        order.pending_cancel_id = ""
        order.pending_replace_id = ""
        order.pending_price = 0
        order.pending_quantity = 0
        if self._working.pop(order.origin_client_order_id, None) is not None:
            self._drop_working(order)
        terminal = self._terminal
        terminal.append(order)
        if len(terminal) > self._max_terminal:
            old = terminal.popleft()
            by_id = self._by_id
            by_id.pop(old.origin_client_order_id, None)
            for alias in old.aliases or ():
                by_id.pop(alias, None)

    def _entry(self, strategy_id: str, symbol: str, side: Side) -> _Entry:
        """The counters an order of (strategy, symbol, side) moves, created on first use."""
        mine, net = self._side_of(strategy_id, symbol, side)
        orders = self._pairs.get((strategy_id, symbol))
        if orders is None:
            orders = self._pairs[(strategy_id, symbol)] = {}
        entry = (
            mine,
            net,
            self._tally(self._open_by_strategy, strategy_id),
            self._tally(self._open_by_symbol, symbol),
            orders,
        )
        self._entries[(strategy_id, symbol, side)] = entry
        return entry

    # The four below run on every new order, fill, replace and end: one dict lookup finds every counter an order
    # moves, and they are written out rather than factored further, since each call costs ~0.1 us here.

    def _add_working(self, order: Order) -> None:
        """A new working order (new, or restored): count it."""
        entry = self._entries.get((order.strategy_id, order.symbol, order.side))
        if entry is None:
            entry = self._entry(order.strategy_id, order.symbol, order.side)
        mine, net, by_strategy, by_symbol, orders = entry
        orders[order.origin_client_order_id] = order
        self._open_firm.n += 1
        by_strategy.n += 1
        by_symbol.n += 1
        mine.count += 1
        net.count += 1
        if order.order_type is _MARKET_TYPE:
            mine.market += 1
            net.market += 1
        self._count_terms(order, entry)

    def _drop_working(self, order: Order) -> None:
        """An order that stopped working (finished, or denied before it was sent): uncount it."""
        mine, net, by_strategy, by_symbol, orders = self._uncount_terms(order)
        del orders[order.origin_client_order_id]
        self._open_firm.n -= 1
        by_strategy.n -= 1
        by_symbol.n -= 1
        mine.count -= 1
        net.count -= 1
        if order.order_type is _MARKET_TYPE:
            mine.market -= 1
            net.market -= 1

    def _recount(self, order: Order) -> None:
        """A working order's size, price or in-flight replace changed: count it on its new terms. Every change to
        those fields of a working order goes through here; tests check the counters against a recount."""
        self._count_terms(order, self._uncount_terms(order))

    def _count_terms(self, order: Order, entry: _Entry) -> None:
        mine, net = entry[0], entry[1]
        # `Order.worst_case_leaves` of a working order, inlined.
        lots = order.leaves_quantity
        pending_quantity = order.pending_quantity
        if pending_quantity > order.quantity and order.pending_replace_id:
            lots = pending_quantity - order.cum_quantity
        price = order.price
        pending = order.pending_price
        if price:
            value = lots * price
            mine.value += value
            net.value += value
        else:
            mine.zero_lots += lots
            net.zero_lots += lots
        mine.lots += lots
        net.lots += lots
        prices = mine.prices
        prices[price] = prices.get(price, 0) + 1
        if pending:
            prices[pending] = prices.get(pending, 0) + 1
        self._counted[order.origin_client_order_id] = (entry, lots, price, pending)

    def _uncount_terms(self, order: Order) -> _Entry:
        entry, lots, price, pending = self._counted.pop(order.origin_client_order_id)
        mine, net = entry[0], entry[1]
        if price:
            value = lots * price
            mine.value -= value
            net.value -= value
        else:
            mine.zero_lots -= lots
            net.zero_lots -= lots
        mine.lots -= lots
        net.lots -= lots
        prices = mine.prices
        left = prices[price] - 1
        if left:
            prices[price] = left
        else:
            del prices[price]
        if pending:
            left = prices[pending] - 1
            if left:
                prices[pending] = left
            else:
                del prices[pending]
        return entry

    def _live(self, client_order_id: str) -> Order:
        order = self._by_id.get(client_order_id)
        if order is None:
            raise OmsError(OmsCode.UNKNOWN_ORDER, f"no order {client_order_id!r}")
        if order.status in _TERMINAL:
            raise OmsError(OmsCode.ORDER_NOT_WORKING, f"order {client_order_id!r} is {order.status.name}")
        return order

    def _issue_id(self, order: Order, cid: str) -> None:
        """Map a request's id back to its order, so reports naming it find the order."""
        self._by_id[cid] = order
        if order.aliases is None:
            order.aliases = [cid]
        else:
            order.aliases.append(cid)

    def _count(self, code: str) -> None:
        anomalies = self.anomalies
        anomalies[code] = anomalies.get(code, 0) + 1

    def _anomaly(self, code: str) -> list:
        self._count(code)
        return []

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """Plain, msgspec-serialisable data; equal states give equal snapshots (keys sorted, orders in creation
        order, which is itself state: it fixes the order `cancel_all` walks)."""
        return {
            "account": self._account,
            "anomalies": {str(k): v for k, v in sorted(self.anomalies.items())},
            "exec_ids": list(self._exec_ids),
            "next_id": self._next_id,
            "terminal": [o.to_dict() for o in self._terminal],
            "working": [o.to_dict() for o in self._working.values()],
        }

    def restore(self, data: dict[str, Any]) -> None:
        """Replace the whole state with a `snapshot()`; the account must match."""
        if data["account"] != self._account:
            raise OmsError(OmsCode.BAD_SNAPSHOT, f"snapshot of account {data['account']!r}, not {self._account!r}")
        self._by_id = {}
        self._working = {}
        self._terminal = deque()
        for source, live in ((data["terminal"], False), (data["working"], True)):
            for item in source:
                order = Order.from_dict(item)
                self._by_id[order.origin_client_order_id] = order
                for alias in order.aliases or ():
                    self._by_id[alias] = order
                if live:
                    self._working[order.origin_client_order_id] = order
                else:
                    self._terminal.append(order)
        self._zero_counters()
        for order in self._working.values():
            self._add_working(order)
        self._exec_ids = deque(data["exec_ids"])
        self._exec_id_set = set(self._exec_ids)
        self._next_id = data["next_id"]
        self.anomalies = dict(data["anomalies"])


_NO_SIDES: dict[str, WorkingSide] = {}

__all__ = [
    "MASS_CANCEL_ID_PREFIX",
    "TERMINAL_STATUSES",
    "FeeModel",
    "Oms",
    "OmsCode",
    "OmsError",
    "Order",
    "RiskView",
    "Tally",
    "WorkingSide",
]
