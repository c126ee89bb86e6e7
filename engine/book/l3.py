"""Fast order-by-order (L3, market-by-order) book with price-time priority (engine thread: feed handler).

Each level's queue is a dict order_id -> remaining size: dicts keep insertion order, so iteration is FIFO,
removing any order is O(1), and assigning to an existing key keeps its place (a size reduction keeps
priority) while delete + insert sends an order to the back (a price change or size increase loses it).
The level totals live in the `PriceLevels` dicts shared with `L2Book`, so the L2 view of an L3 book is
maintained incrementally and the best bid/ask logic is the same code.
"""

from __future__ import annotations

from heapq import heappush

from engine.book.l2 import PriceLevels
from engine.book.reference import bad_price, bad_side, bad_size, duplicate_order, overfill, unknown_order


class L3Book(PriceLevels):
    """Orders by id, FIFO per price level, with L2 totals and the best bid/ask kept current.

    Preconditions (not checked, for speed): ids, prices and sizes are ints. Duplicate or unknown ids, bad
    sides, negative prices and non-positive sizes are refused with a BookError and change nothing.
    """

    __slots__ = ("_ask_queues", "_bid_queues", "_orders")

    def clear(self) -> None:
        super().clear()
        self._orders: dict[int, tuple[int, int]] = {}  # order_id -> (side, price); the size lives in the queue
        self._bid_queues: dict[int, dict[int, int]] = {}  # price -> {order_id: size}, front of queue first
        self._ask_queues: dict[int, dict[int, int]] = {}

    # -- writes --------------------------------------------------------------------------------

    def add(self, order_id: int, side: int, price: int, size: int) -> None:
        """A new order joins the back of its level's queue."""
        orders = self._orders
        if order_id in orders:
            raise duplicate_order(order_id)
        if side == 1:
            queues, totals = self._bid_queues, self._bids
        elif side == -1:
            queues, totals = self._ask_queues, self._asks
        else:
            raise bad_side(side)
        queue = queues.get(price)
        if queue is None:
            # A new level: the only place a price enters the book, so the only place it is validated.
            if price < 0:
                raise bad_price(price)
            if size <= 0:
                raise bad_size(size)
            queues[price] = {order_id: size}
            total = size
            if side == 1:
                heap = self._bid_heap
                if len(heap) >= self._bid_heap_cap:
                    # Rebuilt before the push: the new price is not in the dict yet, so a rebuild after
                    # it would drop it from the heap.
                    heap = self._rebuild_bid_heap()
                heappush(heap, -price)
            else:
                heap = self._ask_heap
                if len(heap) >= self._ask_heap_cap:
                    # Rebuilt before the push: the new price is not in the dict yet, so a rebuild after
                    # it would drop it from the heap.
                    heap = self._rebuild_ask_heap()
                heappush(heap, price)
        else:
            if size <= 0:
                raise bad_size(size)
            queue[order_id] = size
            total = totals[price] + size
        totals[price] = total
        orders[order_id] = (side, price)
        if side == 1:
            best = self.best_bid
            if best is None or price >= best:
                self.best_bid = price
                self.best_bid_size = total
        else:
            best = self.best_ask
            if best is None or price <= best:
                self.best_ask = price
                self.best_ask_size = total

    def cancel(self, order_id: int, size: int | None = None) -> None:
        """Remove the order (size None or >= remaining), or reduce it by `size` keeping its queue place."""
        try:
            side, price = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        if side == 1:
            queue, totals = self._bid_queues[price], self._bids
        else:
            queue, totals = self._ask_queues[price], self._asks
        remaining = queue[order_id]
        if size is None or size >= remaining:
            self._remove(order_id, side, price, queue, remaining)
            return
        if size <= 0:
            raise bad_size(size)
        queue[order_id] = remaining - size
        total = totals[price] - size
        totals[price] = total
        if side == 1:
            if price == self.best_bid:
                self.best_bid_size = total
        elif price == self.best_ask:
            self.best_ask_size = total

    def execute(self, order_id: int, size: int) -> None:
        """A fill of `size` against a resting order; the order leaves the book when exhausted."""
        try:
            side, price = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        if side == 1:
            queue, totals = self._bid_queues[price], self._bids
        else:
            queue, totals = self._ask_queues[price], self._asks
        remaining = queue[order_id]
        if size >= remaining:
            if size > remaining:
                raise overfill(order_id, size, remaining)
            self._remove(order_id, side, price, queue, remaining)
            return
        if size <= 0:
            raise bad_size(size)
        queue[order_id] = remaining - size
        total = totals[price] - size
        totals[price] = total
        if side == 1:
            if price == self.best_bid:
                self.best_bid_size = total
        elif price == self.best_ask:
            self.best_ask_size = total

    def modify(self, order_id: int, price: int, size: int) -> None:
        """Change price and/or size. Same price and no size increase keeps priority; otherwise the order
        goes to the back of the queue at its (new) price, as exchanges do."""
        try:
            side, old_price = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        if price < 0:
            raise bad_price(price)
        if size <= 0:
            raise bad_size(size)
        if side == 1:
            queue, totals = self._bid_queues[old_price], self._bids
        else:
            queue, totals = self._ask_queues[old_price], self._asks
        old_size = queue[order_id]
        if price == old_price and size <= old_size:
            queue[order_id] = size
            total = totals[price] - old_size + size
            totals[price] = total
            if side == 1:
                if price == self.best_bid:
                    self.best_bid_size = total
            elif price == self.best_ask:
                self.best_ask_size = total
            return
        # Validated above, so the add cannot fail and the book is never left half-modified.
        self._remove(order_id, side, old_price, queue, old_size)
        self.add(order_id, side, price, size)

    def _remove(self, order_id: int, side: int, price: int, queue: dict[int, int], size: int) -> None:
        del self._orders[order_id]
        del queue[order_id]
        if side == 1:
            if queue:
                total = self._bids[price] - size
                self._bids[price] = total
                if price == self.best_bid:
                    self.best_bid_size = total
            else:
                del self._bid_queues[price]
                del self._bids[price]
                if price == self.best_bid:
                    self._next_best_bid()
        elif queue:
            total = self._asks[price] - size
            self._asks[price] = total
            if price == self.best_ask:
                self.best_ask_size = total
        else:
            del self._ask_queues[price]
            del self._asks[price]
            if price == self.best_ask:
                self._next_best_ask()

    # -- reads ---------------------------------------------------------------------------------

    def order(self, order_id: int) -> tuple[int, int, int]:
        """(side, price, remaining size) of a resting order."""
        try:
            side, price = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        queues = self._bid_queues if side == 1 else self._ask_queues
        return side, price, queues[price][order_id]

    def orders_at(self, side: int, price: int) -> list[int]:
        """Order ids at one level, front of the queue first; empty when there is no such level."""
        if side == 1:
            return list(self._bid_queues.get(price, ()))
        if side == -1:
            return list(self._ask_queues.get(price, ()))
        raise bad_side(side)

    def queue_position(self, order_id: int) -> tuple[int, int]:
        """(orders ahead, size ahead) of this order in its level's queue; O(orders ahead)."""
        try:
            side, price = self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None
        queue = (self._bid_queues if side == 1 else self._ask_queues)[price]
        count = 0
        ahead = 0
        for other, size in queue.items():
            if other == order_id:
                break
            count += 1
            ahead += size
        return count, ahead

    def __len__(self) -> int:
        return len(self._orders)
