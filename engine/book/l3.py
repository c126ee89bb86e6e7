"""Fast order-by-order (L3, market-by-order) book with price-time priority (engine thread: feed handler).

Each price level is one small list, `[total size, queue, side, price]`, shared by the per-side dict
price -> level and by every order resting in it (order_id -> level). A list, because CPython 3.11
specialises integer indexing into it and it can be updated in place: an add at an existing level is then
a dict lookup and a few list stores, with no per-order tuple to allocate and no second dict of totals.

The queue is a dict order_id -> remaining size. Dicts keep insertion order, so iteration is FIFO, removing
any order is O(1), assigning to an existing key keeps its place (a size reduction keeps priority), and
delete + insert sends an order to the back (a price change or size increase loses it).
"""

from __future__ import annotations

from heapq import heappop, heappush

from engine.book.l2 import PriceLevels
from engine.book.reference import (
    bad_price,
    bad_side,
    bad_size,
    duplicate_order,
    overfill,
    unknown_order,
)

# Level layout, spelled as literal indexes on the hot paths (a global constant costs a lookup per use):
# level[0] total size, level[1] queue {order_id: size}, level[2] side, level[3] price.


class L3Book(PriceLevels):
    """Orders by id, FIFO per price level, with level totals and the best bid/ask kept current.

    Preconditions (not checked, for speed): ids, prices and sizes are ints. Duplicate or unknown ids, bad
    sides, negative prices and non-positive sizes are refused with a BookError and change nothing.
    """

    __slots__ = ("_orders",)

    def clear(self) -> None:
        super().clear()
        self._orders: dict[int, list] = {}  # order_id -> its level

    # -- writes --------------------------------------------------------------------------------

    def add(self, order_id: int, side: int, price: int, size: int) -> None:
        """A new order joins the back of its level's queue."""
        orders = self._orders
        if order_id in orders:
            raise duplicate_order(order_id)
        if side == 1:
            levels = self._bids
            level = levels.get(price)
            if level is not None:
                if size <= 0:
                    raise bad_size(size)
                level[1][order_id] = size
                total = level[0] + size
                level[0] = total
            else:
                # A new level: the only place a price enters the book, so the only place it is validated.
                if price < 0:
                    raise bad_price(price)
                if size <= 0:
                    raise bad_size(size)
                heap = self._bid_heap
                if len(heap) >= self._bid_heap_cap:
                    # Rebuilt before the new level is in the dict, or the rebuilt heap would miss it.
                    heap = self._rebuild_bid_heap()
                heappush(heap, -price)
                level = levels[price] = [size, {order_id: size}, side, price]
                total = size
            orders[order_id] = level
            best = self.best_bid
            if best is None or price >= best:
                self.best_bid = price
                self.best_bid_size = total
        elif side == -1:
            levels = self._asks
            level = levels.get(price)
            if level is not None:
                if size <= 0:
                    raise bad_size(size)
                level[1][order_id] = size
                total = level[0] + size
                level[0] = total
            else:
                if price < 0:
                    raise bad_price(price)
                if size <= 0:
                    raise bad_size(size)
                heap = self._ask_heap
                if len(heap) >= self._ask_heap_cap:
                    heap = self._rebuild_ask_heap()
                heappush(heap, price)
                level = levels[price] = [size, {order_id: size}, side, price]
                total = size
            orders[order_id] = level
            best = self.best_ask
            if best is None or price <= best:
                self.best_ask = price
                self.best_ask_size = total
        else:
            raise bad_side(side)

    def cancel(self, order_id: int, size: int | None = None) -> None:
        """Remove the order (size None or >= remaining), or reduce it by `size` keeping its queue place."""
        orders = self._orders
        try:
            level = orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        queue = level[1]
        remaining = queue[order_id]
        if size is None or size >= remaining:
            # `_remove` written out: a full cancel is the commonest operation after an add on MBO feeds.
            del orders[order_id]
            del queue[order_id]
            if queue:
                total = level[0] - remaining
                level[0] = total
                if level[2] == 1:
                    if level[3] == self.best_bid:
                        self.best_bid_size = total
                elif level[3] == self.best_ask:
                    self.best_ask_size = total
                return
            price = level[3]
            if level[2] == 1:
                del self._bids[price]
                if price == self.best_bid:
                    self._next_best_bid()
            else:
                del self._asks[price]
                if price == self.best_ask:
                    self._next_best_ask()
            return
        if size <= 0:
            raise bad_size(size)
        queue[order_id] = remaining - size
        total = level[0] - size
        level[0] = total
        if level[2] == 1:
            if level[3] == self.best_bid:
                self.best_bid_size = total
        elif level[3] == self.best_ask:
            self.best_ask_size = total

    def execute(self, order_id: int, size: int) -> None:
        """A fill of `size` against a resting order; the order leaves the book when exhausted."""
        orders = self._orders
        try:
            level = orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        queue = level[1]
        remaining = queue[order_id]
        if size >= remaining:
            if size > remaining:
                raise overfill(order_id, size, remaining)
            # `_remove` written out, as in `cancel`: a fill that exhausts the order is frequent too.
            del orders[order_id]
            del queue[order_id]
            if queue:
                total = level[0] - remaining
                level[0] = total
                if level[2] == 1:
                    if level[3] == self.best_bid:
                        self.best_bid_size = total
                elif level[3] == self.best_ask:
                    self.best_ask_size = total
                return
            price = level[3]
            if level[2] == 1:
                del self._bids[price]
                if price == self.best_bid:
                    self._next_best_bid()
            else:
                del self._asks[price]
                if price == self.best_ask:
                    self._next_best_ask()
            return
        if size <= 0:
            raise bad_size(size)
        queue[order_id] = remaining - size
        total = level[0] - size
        level[0] = total
        if level[2] == 1:
            if level[3] == self.best_bid:
                self.best_bid_size = total
        elif level[3] == self.best_ask:
            self.best_ask_size = total

    def modify(self, order_id: int, price: int, size: int) -> None:
        """Change price and/or size. Same price and no size increase keeps priority; otherwise the order
        goes to the back of the queue at its (new) price, as exchanges do."""
        try:
            level = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        if price < 0:
            raise bad_price(price)
        if size <= 0:
            raise bad_size(size)
        queue = level[1]
        old_size = queue[order_id]
        if price == level[3] and size <= old_size:
            queue[order_id] = size
            self._resize_level(level, level[0] - old_size + size)
            return
        # Validated above, so the add cannot fail and the book is never left half-modified.
        side = level[2]
        self._remove(order_id, level, old_size)
        self.add(order_id, side, price, size)

    def _resize_level(self, level: list, total: int) -> None:
        # Written out inline on the hotter paths (cancel, execute, _remove) to save a call there.
        level[0] = total
        if level[2] == 1:
            if level[3] == self.best_bid:
                self.best_bid_size = total
        elif level[3] == self.best_ask:
            self.best_ask_size = total

    def _remove(self, order_id: int, level: list, size: int) -> None:
        # `cancel` and `execute` repeat this body inline (a call costs as much as the removal); keep them alike.
        del self._orders[order_id]
        queue = level[1]
        del queue[order_id]
        if queue:
            total = level[0] - size
            level[0] = total
            if level[2] == 1:
                if level[3] == self.best_bid:
                    self.best_bid_size = total
            elif level[3] == self.best_ask:
                self.best_ask_size = total
            return
        price = level[3]
        if level[2] == 1:
            del self._bids[price]
            if price == self.best_bid:
                self._next_best_bid()
        else:
            del self._asks[price]
            if price == self.best_ask:
                self._next_best_ask()

    # -- reads ---------------------------------------------------------------------------------

    def order(self, order_id: int) -> tuple[int, int, int]:
        """(side, price, remaining size) of a resting order."""
        try:
            level = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        return level[2], level[3], level[1][order_id]

    def orders_at(self, side: int, price: int) -> list[int]:
        """Order ids at one level, front of the queue first; empty when there is no such level."""
        if side == 1:
            level = self._bids.get(price)
        elif side == -1:
            level = self._asks.get(price)
        else:
            raise bad_side(side)
        return list(level[1]) if level is not None else []

    def queue_position(self, order_id: int) -> tuple[int, int]:
        """(orders ahead, size ahead) of this order in its level's queue; O(orders ahead)."""
        try:
            level = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        count = 0
        ahead = 0
        for other, size in level[1].items():
            if other == order_id:
                break
            count += 1
            ahead += size
        return count, ahead

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `n` levels per side (all when None): bids descending, asks ascending, as (price, size)."""
        bids, asks = self._bids, self._asks
        if n is None:
            bid_prices, ask_prices = sorted(bids, reverse=True), sorted(asks)
        else:
            bid_prices, ask_prices = self._top_prices(n)
        return [(price, bids[price][0]) for price in bid_prices], [(price, asks[price][0]) for price in ask_prices]

    def size_at(self, side: int, price: int) -> int:
        if side == 1:
            level = self._bids.get(price)
        elif side == -1:
            level = self._asks.get(price)
        else:
            raise bad_side(side)
        return level[0] if level is not None else 0

    def _next_best_bid(self) -> None:
        heap, bids = self._bid_heap, self._bids
        while heap:
            price = -heap[0]
            level = bids.get(price)
            if level is not None:
                self.best_bid = price
                self.best_bid_size = level[0]
                return
            heappop(heap)
        self.best_bid = None
        self.best_bid_size = 0

    def _next_best_ask(self) -> None:
        heap, asks = self._ask_heap, self._asks
        while heap:
            price = heap[0]
            level = asks.get(price)
            if level is not None:
                self.best_ask = price
                self.best_ask_size = level[0]
                return
            heappop(heap)
        self.best_ask = None
        self.best_ask_size = 0

    def __len__(self) -> int:
        return len(self._orders)
