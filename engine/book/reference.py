"""Reference order books: the executable specification the fast books are tested against (engine thread).

Written to be obviously right, not fast: plain dicts and lists, best prices recomputed from scratch after
every change, queues as Python lists scanned linearly. The fast books in `l2.py` and `l3.py` must behave
identically, down to which operation raises which `BookError` code; the shared test suite checks both.

Both books are passive views of a market: they never match, so a crossed or locked book is representable
(it is how a feed gap shows itself) and is reported by `is_crossed()` / `is_locked()`, not refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import EngineError

BUY = 1
SELL = -1

# Reason codes. Every rejected operation leaves the book exactly as it was.
BAD_SIDE = "BOOK_BAD_SIDE"
BAD_PRICE = "BOOK_BAD_PRICE"
BAD_SIZE = "BOOK_BAD_SIZE"
BAD_DEPTH = "BOOK_BAD_DEPTH"
DUPLICATE_ORDER = "BOOK_DUPLICATE_ORDER"
UNKNOWN_ORDER = "BOOK_UNKNOWN_ORDER"
OVERFILL = "BOOK_OVERFILL"


class BookError(EngineError):
    """A book operation was refused; `code` is one of the BOOK_* reason codes and the book is unchanged."""


def bad_side(side: object) -> BookError:
    return BookError(BAD_SIDE, f"side must be 1 (buy) or -1 (sell), got {side!r}")


def bad_price(price: object) -> BookError:
    return BookError(BAD_PRICE, f"price must be a non-negative number of ticks, got {price!r}")


def bad_size(size: object) -> BookError:
    return BookError(BAD_SIZE, f"size must be a positive number of lots, got {size!r}")


def bad_level_size(size: object) -> BookError:
    return BookError(BAD_SIZE, f"level size must be zero (delete) or a positive number of lots, got {size!r}")


def bad_depth(n: object) -> BookError:
    return BookError(BAD_DEPTH, f"depth must be None (all levels) or a non-negative count, got {n!r}")


def duplicate_order(order_id: int) -> BookError:
    return BookError(DUPLICATE_ORDER, f"order {order_id} is already in the book")


def unknown_order(order_id: int) -> BookError:
    return BookError(UNKNOWN_ORDER, f"order {order_id} is not in the book")


def overfill(order_id: int, size: int, remaining: int) -> BookError:
    return BookError(OVERFILL, f"fill of {size} against order {order_id} exceeds its remaining {remaining}")


def validated_snapshot(
    bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]
) -> tuple[dict[int, int], dict[int, int]]:
    """Both sides of a snapshot as price -> size dicts, applied in order as `apply` would; size 0 means no level.

    Raises BookError before anything is changed, so a bad snapshot leaves the book as it was.
    """
    sides = []
    for levels in (bids, asks):
        book_side: dict[int, int] = {}
        for price, size in levels:
            if price < 0:
                raise bad_price(price)
            if size > 0:
                book_side[price] = size
            elif size == 0:
                book_side.pop(price, None)
            else:
                raise bad_level_size(size)
        sides.append(book_side)
    return sides[0], sides[1]


def _depth(bids: dict[int, int], asks: dict[int, int], n: int | None) -> tuple[list, list]:
    if n is not None and n < 0:
        raise bad_depth(n)
    bid_levels = sorted(bids.items(), reverse=True)
    ask_levels = sorted(asks.items())
    if n is not None:
        bid_levels, ask_levels = bid_levels[:n], ask_levels[:n]
    return bid_levels, ask_levels


class ReferenceL2Book:
    """Price level -> total size per side, the best prices recomputed by max/min after every change."""

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self._sides: dict[int, dict[int, int]] = {BUY: {}, SELL: {}}
        self._refresh()

    def _side(self, side: int) -> dict[int, int]:
        if side not in (BUY, SELL):
            raise bad_side(side)
        return self._sides[side]

    def _refresh(self) -> None:
        bids, asks = self._sides[BUY], self._sides[SELL]
        self.best_bid = max(bids) if bids else None
        self.best_ask = min(asks) if asks else None
        self.best_bid_size = bids[self.best_bid] if bids else 0
        self.best_ask_size = asks[self.best_ask] if asks else 0

    def apply(self, side: int, price: int, size: int) -> None:
        """Set the total size at one level; size 0 deletes it (deleting an absent level does nothing)."""
        self._set_level(side, price, size)
        self._refresh()

    def apply_deltas(self, deltas: Iterable[tuple[int, int, int]]) -> None:
        """`apply` each (side, price, size) in order; stops at the first bad delta, keeping the ones before it."""
        # One refresh per batch, not per delta, so a real feed replays through the reference in reasonable time.
        try:
            for side, price, size in deltas:
                self._set_level(side, price, size)
        finally:
            self._refresh()

    def _set_level(self, side: int, price: int, size: int) -> None:
        levels = self._side(side)
        if price < 0:
            raise bad_price(price)
        if size < 0:
            raise bad_level_size(size)
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = size

    def load_snapshot(self, bids: Iterable[tuple[int, int]], asks: Iterable[tuple[int, int]]) -> None:
        """Replace the whole book with these levels (iterables of (price, size))."""
        new_bids, new_asks = validated_snapshot(bids, asks)
        self._sides = {BUY: new_bids, SELL: new_asks}
        self._refresh()

    def clear(self) -> None:
        self._sides = {BUY: {}, SELL: {}}
        self._refresh()

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `n` levels per side (all when None): bids descending, asks ascending, as (price, size)."""
        return _depth(self._sides[BUY], self._sides[SELL], n)

    def size_at(self, side: int, price: int) -> int:
        return self._side(side).get(price, 0)

    def level_count(self, side: int) -> int:
        return len(self._side(side))

    def is_crossed(self) -> bool:
        return self.best_bid is not None and self.best_ask is not None and self.best_bid > self.best_ask

    def is_locked(self) -> bool:
        return self.best_bid is not None and self.best_bid == self.best_ask


class ReferenceL3Book:
    """Order by order, price-time priority: each level is a FIFO list of order ids, scanned linearly."""

    def __init__(self, symbol: str = "") -> None:
        self.symbol = symbol
        self.clear()

    def clear(self) -> None:
        # order_id -> [side, price, remaining size]
        self._orders: dict[int, list[int]] = {}
        # side -> price -> FIFO list of order ids (front = first in the queue)
        self._queues: dict[int, dict[int, list[int]]] = {BUY: {}, SELL: {}}
        self._refresh()

    # -- reads ---------------------------------------------------------------------------------

    def _aggregate(self, side: int) -> dict[int, int]:
        return {
            price: sum(self._orders[order_id][2] for order_id in queue) for price, queue in self._queues[side].items()
        }

    def _level_size(self, side: int, price: int | None) -> int:
        queue = self._queues[side].get(price, ())
        return sum(self._orders[order_id][2] for order_id in queue)

    def _refresh(self) -> None:
        # Only the best levels are summed: summing the whole book after every change makes replaying a real
        # feed through the reference impractically slow, and is no simpler.
        bids, asks = self._queues[BUY], self._queues[SELL]
        self.best_bid = max(bids) if bids else None
        self.best_ask = min(asks) if asks else None
        self.best_bid_size = self._level_size(BUY, self.best_bid)
        self.best_ask_size = self._level_size(SELL, self.best_ask)

    def _check_side(self, side: int) -> None:
        if side not in (BUY, SELL):
            raise bad_side(side)

    def _get(self, order_id: int) -> list[int]:
        try:
            return self._orders[order_id]
        except KeyError:
            raise unknown_order(order_id) from None

    def order(self, order_id: int) -> tuple[int, int, int]:
        """(side, price, remaining size) of a resting order."""
        side, price, size = self._get(order_id)
        return side, price, size

    def orders_at(self, side: int, price: int) -> list[int]:
        """Order ids at one level, front of the queue first; empty when there is no such level."""
        self._check_side(side)
        return list(self._queues[side].get(price, ()))

    def queue_position(self, order_id: int) -> tuple[int, int]:
        """(orders ahead, size ahead) of this order in its level's queue."""
        side, price, _ = self._get(order_id)
        queue = self._queues[side][price]
        ahead = queue[: queue.index(order_id)]
        return len(ahead), sum(self._orders[other][2] for other in ahead)

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return _depth(self._aggregate(BUY), self._aggregate(SELL), n)

    def size_at(self, side: int, price: int) -> int:
        self._check_side(side)
        return self._level_size(side, price)

    def level_count(self, side: int) -> int:
        self._check_side(side)
        return len(self._queues[side])

    def __len__(self) -> int:
        return len(self._orders)

    def is_crossed(self) -> bool:
        return self.best_bid is not None and self.best_ask is not None and self.best_bid > self.best_ask

    def is_locked(self) -> bool:
        return self.best_bid is not None and self.best_bid == self.best_ask

    # -- writes --------------------------------------------------------------------------------

    def _enqueue(self, order_id: int, side: int, price: int, size: int) -> None:
        self._orders[order_id] = [side, price, size]
        self._queues[side].setdefault(price, []).append(order_id)

    def _remove(self, order_id: int) -> None:
        side, price, _ = self._orders.pop(order_id)
        queue = self._queues[side][price]
        queue.remove(order_id)
        if not queue:
            del self._queues[side][price]

    def add(self, order_id: int, side: int, price: int, size: int) -> None:
        """A new order joins the back of its level's queue."""
        if order_id in self._orders:
            raise duplicate_order(order_id)
        self._check_side(side)
        if price < 0:
            raise bad_price(price)
        if size <= 0:
            raise bad_size(size)
        self._enqueue(order_id, side, price, size)
        self._refresh()

    def cancel(self, order_id: int, size: int | None = None) -> None:
        """Remove the order (size None or >= remaining), or reduce it by `size` keeping its queue place."""
        record = self._get(order_id)
        if size is not None and size <= 0:
            raise bad_size(size)
        if size is None or size >= record[2]:
            self._remove(order_id)
        else:
            record[2] -= size
        self._refresh()

    def modify(self, order_id: int, price: int, size: int) -> None:
        """Change price and/or size. Same price and no size increase keeps priority; otherwise the order
        goes to the back of the queue at its (new) price, as exchanges do."""
        record = self._get(order_id)
        if price < 0:
            raise bad_price(price)
        if size <= 0:
            raise bad_size(size)
        side, old_price, old_size = record
        if price == old_price and size <= old_size:
            record[2] = size
        else:
            self._remove(order_id)
            self._enqueue(order_id, side, price, size)
        self._refresh()

    def execute(self, order_id: int, size: int) -> None:
        """A fill of `size` against a resting order; the order leaves the book when exhausted."""
        record = self._get(order_id)
        if size <= 0:
            raise bad_size(size)
        if size > record[2]:
            raise overfill(order_id, size, record[2])
        if size == record[2]:
            self._remove(order_id)
        else:
            record[2] -= size
        self._refresh()
