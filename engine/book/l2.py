"""Fast price-level (L2) order book (engine thread: feed handler and strategies, never shared across threads).

Per side a dict price -> total size holds the truth; the best price and its size are plain attributes,
touched only when an update lands at or through the best, so reading the top of book costs one attribute
load. A heap per side (bids negated) finds the next best when the best level is deleted. The heap is
cleaned lazily: a deleted level stays in it until it surfaces at the top, and the heap is rebuilt from
the dict when stale entries outnumber live ones, so memory stays proportional to the book.

`apply` is deliberately one flat function with the side branches written out: on CPython every helper
call, attribute lookup and enum comparison on the hot path costs more than the dict update itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from heapq import heapify, heappop, heappush, nlargest, nsmallest

from engine.book.reference import bad_depth, bad_level_size, bad_price, bad_side, validated_snapshot

# A heap may hold this many entries beyond twice the live levels before it is rebuilt; keeps small books
# from being rebuilt on every few inserts.
_HEAP_SLACK = 64


def _walk(levels: dict, best: int | None, n: int, step: int) -> list[int] | None:
    """Up to `n` prices of `levels` from `best` outward one tick at a time (step -1 for bids, +1 for asks), or
    None when that would take more probes than a selection over all the levels is worth."""
    wanted = min(n, len(levels))
    prices: list[int] = []
    if not wanted:
        return prices
    budget = 4 * wanted + 16
    price = best
    while budget:
        if price in levels:
            prices.append(price)
            if len(prices) == wanted:
                return prices
        price += step
        budget -= 1
    return None


class PriceLevels:
    """Price -> level per side, the best prices as attributes, the heaps, and the reads both books share.

    Subclasses write `_bids` / `_asks` and keep the best_* attributes current; when a write deletes the best
    level they call `_next_best_bid` / `_next_best_ask`, and when they add a level they push it on the heap.
    Here a level is its total size; a subclass that keeps a richer level (L3Book) overrides the reads that
    look inside it: `_next_best_*`, `depth` and `size_at`.
    """

    __slots__ = (
        "_ask_heap",
        "_ask_heap_cap",
        "_asks",
        "_bid_heap",
        "_bid_heap_cap",
        "_bids",
        "best_ask",
        "best_ask_size",
        "best_bid",
        "best_bid_size",
        "symbol",
    )

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self.clear()

    def clear(self) -> None:
        self._bids: dict[int, int] = {}
        self._asks: dict[int, int] = {}
        self._bid_heap: list[int] = []  # negated bid prices
        self._ask_heap: list[int] = []
        self._bid_heap_cap = _HEAP_SLACK
        self._ask_heap_cap = _HEAP_SLACK
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.best_bid_size = 0
        self.best_ask_size = 0

    # Cold paths: the best level was deleted, or the heap has too many stale entries.

    def _next_best_bid(self) -> None:
        heap, bids = self._bid_heap, self._bids
        while heap:
            price = -heap[0]
            size = bids.get(price)
            if size:
                self.best_bid = price
                self.best_bid_size = size
                return
            heappop(heap)
        self.best_bid = None
        self.best_bid_size = 0

    def _next_best_ask(self) -> None:
        heap, asks = self._ask_heap, self._asks
        while heap:
            price = heap[0]
            size = asks.get(price)
            if size:
                self.best_ask = price
                self.best_ask_size = size
                return
            heappop(heap)
        self.best_ask = None
        self.best_ask_size = 0

    def _rebuild_bid_heap(self) -> list[int]:
        heap = [-price for price in self._bids]
        heapify(heap)
        self._bid_heap = heap
        self._bid_heap_cap = 2 * len(heap) + _HEAP_SLACK
        return heap

    def _rebuild_ask_heap(self) -> list[int]:
        heap = list(self._asks)
        heapify(heap)
        self._ask_heap = heap
        self._ask_heap_cap = 2 * len(heap) + _HEAP_SLACK
        return heap

    # Reads off the hot path.

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `n` levels per side (all when None): bids descending, asks ascending, as (price, size)."""
        bids, asks = self._bids, self._asks
        if n is None:
            return sorted(bids.items(), reverse=True), sorted(asks.items())
        bid_prices, ask_prices = self._top_prices(n)
        return [(price, bids[price]) for price in bid_prices], [(price, asks[price]) for price in ask_prices]

    def _top_prices(self, n: int) -> tuple[list[int], list[int]]:
        """The best `n` prices per side, best first.

        Strategies ask for a few levels on every tick, so this walks tick by tick out from the best price, which
        costs O(n) dict probes in a dense book instead of O(levels) for a selection over the whole side; if the
        book is too sparse near the top for that to pay (the probe budget runs out), it falls back to selection.
        """
        if n < 0:
            raise bad_depth(n)
        bids, asks = self._bids, self._asks
        bid_prices = _walk(bids, self.best_bid, n, -1)
        if bid_prices is None:
            bid_prices = nlargest(n, bids)
        ask_prices = _walk(asks, self.best_ask, n, 1)
        if ask_prices is None:
            ask_prices = nsmallest(n, asks)
        return bid_prices, ask_prices

    def size_at(self, side: int, price: int) -> int:
        if side == 1:
            return self._bids.get(price, 0)
        if side == -1:
            return self._asks.get(price, 0)
        raise bad_side(side)

    def level_count(self, side: int) -> int:
        if side == 1:
            return len(self._bids)
        if side == -1:
            return len(self._asks)
        raise bad_side(side)

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid, self.best_ask
        return bid is not None and ask is not None and bid > ask

    def is_locked(self) -> bool:
        bid = self.best_bid
        return bid is not None and bid == self.best_ask


class L2Book(PriceLevels):
    """Price level -> total size per side with the best bid/ask kept current on every update.

    Read `best_bid`, `best_ask` (int ticks or None) and `best_bid_size`, `best_ask_size` (lots, 0 when the
    side is empty) as attributes. Preconditions (not checked on the hot path, for speed): prices and sizes
    are ints. Bad sides, negative prices and negative sizes are refused with a BookError.
    """

    __slots__ = ()

    def apply(self, side: int, price: int, size: int) -> None:
        """Set the total size at one level; size 0 deletes it (deleting an absent level does nothing)."""
        if side == 1:
            bids = self._bids
            if size > 0:
                if price not in bids:
                    # A new level: the only place a price enters the book, so the only place it is validated.
                    if price < 0:
                        raise bad_price(price)
                    heap = self._bid_heap
                    if len(heap) >= self._bid_heap_cap:
                        # Rebuilt before the push: the new price is not in the dict yet, so a rebuild after
                        # it would drop it from the heap.
                        heap = self._rebuild_bid_heap()
                    heappush(heap, -price)
                bids[price] = size
                best = self.best_bid
                if best is None or price >= best:
                    self.best_bid = price
                    self.best_bid_size = size
            elif size == 0:
                # `in` + `del` costs fewer instructions than `dict.pop(price, 0)` on CPython 3.11.
                if price in bids:
                    del bids[price]
                    if price == self.best_bid:
                        self._next_best_bid()
                elif price < 0:
                    raise bad_price(price)
            else:
                raise bad_price(price) if price < 0 else bad_level_size(size)
        elif side == -1:
            asks = self._asks
            if size > 0:
                if price not in asks:
                    if price < 0:
                        raise bad_price(price)
                    heap = self._ask_heap
                    if len(heap) >= self._ask_heap_cap:
                        # Rebuilt before the push: the new price is not in the dict yet, so a rebuild after
                        # it would drop it from the heap.
                        heap = self._rebuild_ask_heap()
                    heappush(heap, price)
                asks[price] = size
                best = self.best_ask
                if best is None or price <= best:
                    self.best_ask = price
                    self.best_ask_size = size
            elif size == 0:
                if price in asks:
                    del asks[price]
                    if price == self.best_ask:
                        self._next_best_ask()
                elif price < 0:
                    raise bad_price(price)
            else:
                raise bad_price(price) if price < 0 else bad_level_size(size)
        else:
            raise bad_side(side)

    def apply_deltas(self, deltas: Iterable[tuple[int, int, int]]) -> None:
        """`apply` each (side, price, size) in order (e.g. `BookDeltas.deltas`).

        Stops at the first bad delta with a BookError; the deltas before it stay applied. The loop repeats
        `apply`'s body instead of calling it: on CPython the call costs about as much as the update itself, so a
        batch takes about half the instructions per delta. Keep the two bodies identical (the tests run both).
        """
        bids, asks = self._bids, self._asks
        for side, price, size in deltas:
            if side == 1:
                if size > 0:
                    if price not in bids:
                        # A new level: the only place a price enters the book, so the only place it is validated.
                        if price < 0:
                            raise bad_price(price)
                        heap = self._bid_heap
                        if len(heap) >= self._bid_heap_cap:
                            # Rebuilt before the push: the new price is not in the dict yet, so a rebuild after
                            # it would drop it from the heap.
                            heap = self._rebuild_bid_heap()
                        heappush(heap, -price)
                    bids[price] = size
                    best = self.best_bid
                    if best is None or price >= best:
                        self.best_bid = price
                        self.best_bid_size = size
                elif size == 0:
                    # `in` + `del` costs fewer instructions than `dict.pop(price, 0)` on CPython 3.11.
                    if price in bids:
                        del bids[price]
                        if price == self.best_bid:
                            self._next_best_bid()
                    elif price < 0:
                        raise bad_price(price)
                else:
                    raise bad_price(price) if price < 0 else bad_level_size(size)
            elif side == -1:
                if size > 0:
                    if price not in asks:
                        if price < 0:
                            raise bad_price(price)
                        heap = self._ask_heap
                        if len(heap) >= self._ask_heap_cap:
                            # Rebuilt before the push: the new price is not in the dict yet, so a rebuild after
                            # it would drop it from the heap.
                            heap = self._rebuild_ask_heap()
                        heappush(heap, price)
                    asks[price] = size
                    best = self.best_ask
                    if best is None or price <= best:
                        self.best_ask = price
                        self.best_ask_size = size
                elif size == 0:
                    if price in asks:
                        del asks[price]
                        if price == self.best_ask:
                            self._next_best_ask()
                    elif price < 0:
                        raise bad_price(price)
                else:
                    raise bad_price(price) if price < 0 else bad_level_size(size)
            else:
                raise bad_side(side)

    def load_snapshot(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> None:
        """Replace the whole book with these levels (iterables of (price, size); size 0 means no level)."""
        new_bids, new_asks = validated_snapshot(bids, asks)
        self._bids = new_bids
        self._asks = new_asks
        self._rebuild_bid_heap()
        self._rebuild_ask_heap()
        self.best_bid = None
        self.best_ask = None
        self._next_best_bid()
        self._next_best_ask()
