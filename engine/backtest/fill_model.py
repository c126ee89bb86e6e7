"""A simulated exchange for our orders against recorded market data, with queue positions (backtest thread only).

The recorded book and prints are the market; our orders are not in it (they were never sent), so the model decides
when they would have filled:

- Joining: a resting order's `queue_ahead` is the recorded L2 size at its price when it arrives at the exchange
  (everyone already there was first). A marketable order takes the recorded liquidity at once, level by level up to
  its limit, as a taker; its remainder rests.
- Trades at our price consume the queue ahead first; only the part of a print beyond `queue_ahead` fills us (as a
  maker, at our price).
- Trades through our price (a sell printing below our bid, a buy above our ask) fill all our leaves at our price:
  the aggressor had to take us before reaching that price.
- The opposite side's recorded quotes crossing our price (an ask at or below our bid) fill us too: someone was
  willing to trade at our price and we were in the book.
- Cancels: a level that shrinks by more than the prints at that price explain lost volume to cancels. Which orders
  were canceled is unknown; by default (`cancel_model="proportional"`) cancels are spread evenly over the queue,
  so the volume ahead of us shrinks by the same fraction as the level. `"behind"` assumes every cancel came from
  behind us (the queue ahead only shrinks when the level becomes smaller than it), the pessimistic bound.
- Replacing to another price, or up in size, loses the place in the queue (re-joins at the back); a size decrease
  at the same price keeps it, as on most venues.

Latency is not modelled here: the backtest loop delivers commands to `on_command` when they reach the exchange and
the reports back to the engine after the response latency.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.book import L2Book
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.protocol import ExecutionReport, VenueCancelOrder, VenuePlaceOrder, VenueReplaceOrder

_NO_ASK = 2**63


class SimOrder:
    __slots__ = (
        "client_order_id",
        "cum",
        "order_type",
        "price",
        "quantity",
        "queue_ahead",
        "side",
        "time_in_force",
        "venue_order_id",
    )

    def __init__(self, cmd: VenuePlaceOrder, venue_order_id: int) -> None:
        self.client_order_id = cmd.client_order_id
        self.side = cmd.side
        self.price = cmd.price
        self.quantity = cmd.quantity
        self.cum = 0
        self.queue_ahead = 0
        self.venue_order_id = venue_order_id
        self.order_type = cmd.order_type
        self.time_in_force = cmd.time_in_force


class QueueFillModel:
    """Our orders at a simulated exchange fed by a recorded L2 stream and prints. One symbol, one account.

    Exchange side of the backtest: `on_depth` / `on_trade` apply the recorded market, `on_command` our orders;
    each returns the execution reports that result (time-stamped `ts`).
    """

    def __init__(self, symbol: str, account: str, *, cancel_model: str = "proportional") -> None:
        if cancel_model not in ("proportional", "behind"):
            raise ValueError(f"cancel_model must be 'proportional' or 'behind', got {cancel_model!r}")
        self.symbol = symbol
        self.account = account
        self.proportional = cancel_model == "proportional"
        # The recorded book as the exchange sees it (without our orders). An L2Book, not two dicts: it keeps the
        # best prices as it goes, which a marketable order needs, where a dict needed a min()/max() over every level
        # (that scan was a third of the backtest's time).
        self.book = L2Book(symbol)
        self._our_best_bid = -1  # highest price of our resting bids (-1: none), lowest of our asks (huge: none)
        self._our_best_ask = _NO_ASK
        self.orders: dict[str, SimOrder] = {}
        self._levels: dict[tuple[int, int], list[SimOrder]] = {}  # (side, price) -> our orders resting there
        self._traded: dict[tuple[int, int], int] = {}  # prints at a level not yet seen in its depth update
        self._next_order_id = 0
        self._next_exec_id = 0
        self.maker_fills = 0
        self.taker_fills = 0

    # ------------------------------------------------------------------ recorded market

    def on_depth(self, deltas: Any, ts: int) -> list[ExecutionReport]:
        """A recorded depth update: (side, price, new size) levels."""
        book = self.book
        levels = self._levels
        traded = self._traded
        if not levels:
            # Nothing of ours rests: only the book changes (one batched call).
            book.apply_deltas(deltas)
            if traded:
                traded.clear()
            return []
        size_at = book.size_at
        # Only levels where we rest, or with prints not yet seen in a depth update, need a look; they all sit within
        # a few prices of each other, while most of a Binance diff is deep in the book: two integer comparisons
        # skip those without building a key.
        prices = [p for _, p in levels]
        prices.extend(p for _, p in traded)
        low, high = min(prices), max(prices)
        for side, price, size in deltas:
            if price < low or price > high:
                continue
            key = (side, price)
            resting = levels.get(key)
            if resting is not None:
                old = size_at(side, price)
                canceled = old - size - traded.pop(key, 0)
                if canceled > 0 and old > 0:
                    for order in resting:
                        if self.proportional:
                            order.queue_ahead -= order.queue_ahead * canceled // old
                        order.queue_ahead = min(order.queue_ahead, size)
            elif traded:
                traded.pop(key, None)
        book.apply_deltas(deltas)
        # No recorded ask rests at or below our bid between updates (a marketable order took them when it arrived),
        # so the other side reaching our price now can only be this update's doing.
        out: list[ExecutionReport] = []
        best_ask, best_bid = book.best_ask, book.best_bid
        low_ask = best_ask if best_ask is not None and best_ask <= self._our_best_bid else _NO_ASK
        high_bid = best_bid if best_bid is not None and best_bid >= self._our_best_ask else -1
        if low_ask != _NO_ASK or high_bid != -1:
            # The other side's quotes reaching our price: we were in the book there, so we would have traded.
            for (side, price), resting in list(levels.items()):
                if (side == 1 and price >= low_ask) or (side == -1 and price <= high_bid):
                    for order in list(resting):
                        self._fill(order, order.price, order.quantity - order.cum, True, ts, out)
        return out

    def on_trade(self, price: int, quantity: int, aggressor: int, ts: int) -> list[ExecutionReport]:
        """A recorded print; `aggressor` SELL hits bids, BUY lifts asks."""
        levels = self._levels
        side = -aggressor  # the resting side
        key = (side, price)
        self._traded[key] = self._traded.get(key, 0) + quantity
        if not levels:
            return []
        out: list[ExecutionReport] = []
        for (s, p), resting in list(levels.items()):
            if s != side:
                continue
            if (side == 1 and p > price) or (side == -1 and p < price):
                for order in list(resting):  # traded through: all of it
                    self._fill(order, p, order.quantity - order.cum, True, ts, out)
            elif p == price:
                volume = quantity
                for order in list(resting):
                    ahead = order.queue_ahead
                    if volume <= ahead:
                        order.queue_ahead = ahead - volume
                        continue
                    order.queue_ahead = 0
                    fill = min(volume - ahead, order.quantity - order.cum)
                    if fill > 0:
                        self._fill(order, p, fill, True, ts, out)
                    # Volume that reached us was split between the orders ahead and us.
                    volume = max(volume - ahead - fill, 0)
        return out

    # ------------------------------------------------------------------ our orders

    def on_command(self, cmd: Any, ts: int) -> list[ExecutionReport]:
        kind = type(cmd)
        if kind is VenuePlaceOrder:
            return self._place(cmd, ts)
        if kind is VenueCancelOrder:
            return self._cancel(cmd, ts)
        if kind is VenueReplaceOrder:
            return self._replace(cmd, ts)
        return []  # snapshot requests and queries: the recorded stream has no gaps to fill

    def _place(self, cmd: VenuePlaceOrder, ts: int) -> list[ExecutionReport]:
        self._next_order_id += 1
        order = SimOrder(cmd, self._next_order_id)
        out = [self._report(order, ExecType.NEW, OrderStatus.NEW, ts)]
        self.orders[order.client_order_id] = order
        self._take(order, ts, out)
        leaves = order.quantity - order.cum
        if leaves > 0:
            if cmd.order_type == OrderType.MARKET or cmd.time_in_force in (TimeInForce.IOC, TimeInForce.FOK):
                del self.orders[order.client_order_id]
                out.append(self._report(order, ExecType.EXPIRED, OrderStatus.EXPIRED, ts, leaves=0))
            else:
                self._rest(order)
        return out

    def _take(self, order: SimOrder, ts: int, out: list) -> None:
        """Take recorded liquidity up to the order's limit price (a marketable order)."""
        side = order.side
        book = self.book
        buy = side == Side.BUY
        limit = order.order_type == OrderType.LIMIT
        while order.cum < order.quantity:
            if buy:
                best, available = book.best_ask, book.best_ask_size
            else:
                best, available = book.best_bid, book.best_bid_size
            if best is None or (limit and ((buy and best > order.price) or (not buy and best < order.price))):
                return
            fill = min(available, order.quantity - order.cum)
            # Our take removes the liquidity for the next order too, until the recorded stream says otherwise.
            book.apply(-side, best, available - fill)
            self._fill(order, best, fill, False, ts, out)

    def _rest(self, order: SimOrder) -> None:
        order.queue_ahead = self.book.size_at(order.side, order.price)
        self._join(order)

    def _join(self, order: SimOrder) -> None:
        self._levels.setdefault((order.side, order.price), []).append(order)
        self._refresh_bests()

    def _unrest(self, order: SimOrder) -> None:
        key = (order.side, order.price)
        resting = self._levels.get(key)
        if resting is not None and order in resting:
            resting.remove(order)
            if not resting:
                del self._levels[key]
                self._refresh_bests()

    def _refresh_bests(self) -> None:
        bid, ask = -1, _NO_ASK
        for side, price in self._levels:
            if side == 1:
                bid = max(bid, price)
            else:
                ask = min(ask, price)
        self._our_best_bid, self._our_best_ask = bid, ask

    def _cancel(self, cmd: VenueCancelOrder, ts: int) -> list[ExecutionReport]:
        order = self.orders.pop(cmd.orig_client_order_id, None)
        if order is None:
            return [self._cancel_reject(cmd, ts)]
        self._unrest(order)
        report = self._report(order, ExecType.CANCELED, OrderStatus.CANCELED, ts, leaves=0)
        return [_with_ids(report, cmd.client_order_id, cmd.orig_client_order_id)]

    def _replace(self, cmd: VenueReplaceOrder, ts: int) -> list[ExecutionReport]:
        order = self.orders.get(cmd.orig_client_order_id)
        if order is None or cmd.quantity <= order.cum:
            return [self._cancel_reject(cmd, ts)]
        keeps_place = cmd.price == order.price and cmd.quantity <= order.quantity
        del self.orders[order.client_order_id]
        self._unrest(order)
        order.client_order_id = cmd.client_order_id
        order.price = cmd.price
        order.quantity = cmd.quantity
        self.orders[order.client_order_id] = order
        status = OrderStatus.PARTIALLY_FILLED if order.cum else OrderStatus.NEW
        report = self._report(order, ExecType.REPLACED, status, ts)
        out = [_with_ids(report, cmd.client_order_id, cmd.orig_client_order_id)]
        if keeps_place:
            self._join(order)  # same price, smaller: keeps its queue_ahead
            return out
        self._take(order, ts, out)
        if order.cum < order.quantity:
            self._rest(order)
        return out

    # ------------------------------------------------------------------ reports

    def _fill(self, order: SimOrder, price: int, quantity: int, maker: bool, ts: int, out: list) -> None:  # noqa: PLR0917 - hot path
        if quantity <= 0:
            return
        order.cum += quantity
        leaves = order.quantity - order.cum
        if maker:
            self.maker_fills += 1
        else:
            self.taker_fills += 1
        status = OrderStatus.FILLED if leaves == 0 else OrderStatus.PARTIALLY_FILLED
        if leaves == 0:
            self.orders.pop(order.client_order_id, None)
            self._unrest(order)
        out.append(
            self._report(
                order, ExecType.TRADE, status, ts, leaves=leaves, last_price=price, last_quantity=quantity, maker=maker
            )
        )

    def _report(
        self,
        order: SimOrder,
        exec_type: ExecType,
        status: OrderStatus,
        ts: int,
        *,
        leaves: int | None = None,
        last_price: int = 0,
        last_quantity: int = 0,
        maker: bool = False,
    ) -> ExecutionReport:
        self._next_exec_id += 1
        return ExecutionReport(
            exec_id=f"S{self._next_exec_id}",
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id,
            account=self.account,
            symbol=self.symbol,
            side=order.side,
            order_type=order.order_type,
            time_in_force=order.time_in_force,
            exec_type=exec_type,
            status=status,
            price=order.price,
            quantity=order.quantity,
            last_price=last_price,
            last_quantity=last_quantity,
            leaves_quantity=order.quantity - order.cum if leaves is None else leaves,
            cum_quantity=order.cum,
            is_maker=maker,
            ts=ts,
        )

    def _cancel_reject(self, cmd: Any, ts: int) -> ExecutionReport:
        self._next_exec_id += 1
        order = self.orders.get(cmd.orig_client_order_id)
        return ExecutionReport(
            exec_id=f"S{self._next_exec_id}",
            client_order_id=cmd.client_order_id,
            orig_client_order_id=cmd.orig_client_order_id,
            venue_order_id=order.venue_order_id if order is not None else 0,
            account=self.account,
            symbol=self.symbol,
            side=order.side if order is not None else Side.BUY,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            exec_type=ExecType.CANCEL_REJECTED,
            status=OrderStatus.REJECTED if order is None else OrderStatus.NEW,
            price=order.price if order is not None else 0,
            quantity=order.quantity if order is not None else 0,
            leaves_quantity=order.quantity - order.cum if order is not None else 0,
            cum_quantity=order.cum if order is not None else 0,
            reason_code="UNKNOWN_ORDER",
            ts=ts,
        )


def _with_ids(report: ExecutionReport, client_order_id: str, orig: str) -> ExecutionReport:
    """Cancel and replace reports name the request's id and the order's previous id, as the venue's do."""
    return msgspec.structs.replace(report, client_order_id=client_order_id, orig_client_order_id=orig)
