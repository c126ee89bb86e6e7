"""Turns a strategy's desired quotes into the fewest order actions against its working orders (engine thread only).

Rules, per side, for a single-level quoter:
- Desired quantity 0: cancel every working order on the side.
- Any order on the side in flight (PENDING_NEW, PENDING_CANCEL, PENDING_REPLACE): no action on that side until the
  venue answers. Acting on an order whose state is unknown would put two requests for one order in flight (a
  replace racing a cancel, a second new while the first may still fill), which is how a quoter ends up with two
  orders on a side or a position past its limit; and requoting on every book update while an ack is outstanding
  is a message storm that throttles and exchange message-rate limits punish. The next event after the answer
  reconciles again.
- One order: kept if its price is within the requote threshold (|new - old| < max(threshold, 1) ticks) and its
  quantity is unchanged; otherwise replaced (one message, and the venue may keep priority on a size decrease),
  never canceled and re-sent.
- No order: one New. Several orders (after an operator's manual order, or recovery): the one nearest the desired
  price is kept or replaced, the others are canceled, so a side never has two working orders.
Quantities: `desired` quantities are what should rest (leaves). A partially filled order whose remainder is below
the desired size and whose price is kept is kept: topping it up would send it to the back of the queue for a few
lots. `Replace.quantity` is the order's new *total* (FIX OrderQty, filled part included), as `Oms.request_replace`
takes it, so after the replace the remainder resting is the desired size.
Own-cross guard: a bid is never placed or moved to a price at or above an ask of ours that stays working (and vice
versa), since the two would trade with each other; such an action waits for the next reconcile. Actions are ordered
cancels first, then the side moving away from the other side, then the side moving toward it.
"""

from __future__ import annotations

import msgspec

from engine.enums import OrderStatus, Side
from engine.strategies.base import Quotes

_PENDING = frozenset((OrderStatus.PENDING_NEW, OrderStatus.PENDING_CANCEL, OrderStatus.PENDING_REPLACE))
_LIVE = frozenset((OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED))
_BUY = Side.BUY
_SELL = Side.SELL
_TERMINAL = frozenset((OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED))


class New(msgspec.Struct, frozen=True, gc=False):
    side: Side
    price: int  # ticks
    quantity: int  # lots


class Cancel(msgspec.Struct, frozen=True, gc=False):
    client_order_id: str


class Replace(msgspec.Struct, frozen=True, gc=False):
    client_order_id: str
    price: int  # ticks
    quantity: int  # lots, new total order quantity (filled part included)


Action = New | Cancel | Replace


class QuoteManager:
    """Reconciles desired `Quotes` with the working orders of one strategy on one symbol.

    `working` is what `Oms.working_orders(strategy_id=..., symbol=...)` returns (objects with `client_order_id`,
    `side`, `price`, `quantity`, `leaves_quantity`, `cum_quantity`, `status`, `pending_price`); orders of other
    strategies or symbols and terminal orders are ignored. Stateless between calls: the OMS is the only record.
    """

    __slots__ = ("requote_threshold_ticks", "strategy_id", "symbol")

    def __init__(self, strategy_id: str, symbol: str, *, requote_threshold_ticks: int = 0) -> None:
        self.strategy_id = strategy_id
        self.symbol = symbol
        self.requote_threshold_ticks = requote_threshold_ticks

    def reconcile(self, desired: Quotes, working: list) -> list[Action]:
        step = self.requote_threshold_ticks or 1
        if len(working) == 2:
            # Fast path for the usual state, checked on every book update: one live order per side, both to be
            # kept. Anything else falls through to the general rules below, which give the same answer here.
            bid, ask = working
            if bid.side is _SELL:
                bid, ask = ask, bid
            if (
                bid.side is _BUY
                and ask.side is _SELL
                and bid.status in _LIVE
                and ask.status in _LIVE
                and bid.strategy_id == self.strategy_id
                and ask.strategy_id == self.strategy_id
                and bid.symbol == self.symbol
                and ask.symbol == self.symbol
                and -step < bid.price - desired.bid_price < step
                and -step < ask.price - desired.ask_price < step
                and desired.bid_quantity > 0
                and desired.ask_quantity > 0
                and (
                    bid.leaves_quantity == desired.bid_quantity
                    or (0 < bid.cum_quantity and 0 < bid.leaves_quantity < desired.bid_quantity)
                )
                and (
                    ask.leaves_quantity == desired.ask_quantity
                    or (0 < ask.cum_quantity and 0 < ask.leaves_quantity < desired.ask_quantity)
                )
            ):
                return []
        bids = []
        asks = []
        strategy_id = self.strategy_id
        symbol = self.symbol
        for order in working:
            if order.strategy_id != strategy_id or order.symbol != symbol or order.status in _TERMINAL:
                continue
            (bids if order.side > 0 else asks).append(order)
        bid_cancels, bid_move, bid_keep = _side(bids, desired.bid_price, desired.bid_quantity, Side.BUY, step)
        ask_cancels, ask_move, ask_keep = _side(asks, desired.ask_price, desired.ask_quantity, Side.SELL, step)
        # Own-cross guard: prices of the other side that will still be working after this batch's cancels.
        bid_blocked = bid_move is not None and bool(ask_keep) and bid_move.price >= min(ask_keep)
        ask_blocked = ask_move is not None and bool(bid_keep) and ask_move.price <= max(bid_keep)
        if bid_blocked and ask_blocked:
            # Only possible if our own orders are already crossed (a venue without self-trade prevention would
            # have matched them): holding both would freeze them forever, so both move, the retreating one first.
            bid_blocked = ask_blocked = False
        if bid_blocked:
            bid_move = None
        if ask_blocked:
            ask_move = None
        actions: list[Action] = [*bid_cancels, *ask_cancels]
        if bid_move is not None and ask_move is not None:
            # Both sides move: the one retreating from the other goes first so the pair never crosses in between.
            bid_retreats = not bids or bid_move.price <= _price_of(bids)
            actions += (bid_move, ask_move) if bid_retreats else (ask_move, bid_move)
        elif bid_move is not None:
            actions.append(bid_move)
        elif ask_move is not None:
            actions.append(ask_move)
        return actions


def _price_of(orders: list) -> int:
    return max(o.price for o in orders)


def _side(
    orders: list, price: int, quantity: int, side: Side, step: int
) -> tuple[list[Cancel], New | Replace | None, list[int]]:
    """(cancels, the new/replace for the side or None, prices that stay working on the side after the batch)."""
    if not orders:
        if quantity > 0:
            return [], New(side, price, quantity), [price]
        return [], None, []
    for order in orders:
        if order.status in _PENDING:
            # Frozen side: nothing sent; everything here may still rest at its old or its pending price.
            stays = [o.price for o in orders] + [o.pending_price for o in orders if o.pending_price]
            return [], None, stays
    if quantity <= 0:
        return [Cancel(o.client_order_id) for o in orders], None, []
    # Keep the order nearest the desired price (the first on ties: the oldest, with the best queue place).
    keeper = min(orders, key=lambda o: abs(o.price - price))
    cancels = [Cancel(o.client_order_id) for o in orders if o is not keeper]
    leaves = keeper.leaves_quantity
    if abs(keeper.price - price) < step and (leaves == quantity or (keeper.cum_quantity > 0 and 0 < leaves < quantity)):
        return cancels, None, [keeper.price]
    return cancels, Replace(keeper.client_order_id, price, keeper.cum_quantity + quantity), [price, keeper.price]
