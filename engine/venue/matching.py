"""Price-time priority matching core for one symbol (venue thread only; not thread-safe).

This is the hot path, so it trades some readability for speed, on purpose:

* An order is an ``Order`` struct ``(oid, qty, account, level, tag)`` (``qty`` = remaining lots), built
  in C: a ``__slots__`` class with a Python ``__init__`` costs four times as much. The venue hangs its own
  per-order record on ``tag`` so it needs no second index.
* A level is a list ``[price, side, total, count, queue]``; ``queue`` is a deque in arrival order.
* A cancel does not search the deque: it zeroes the order's ``qty`` (a tombstone) and fixes the
  level totals; matching pops tombstones when it meets them, and a level whose tombstones outnumber
  its live orders is compacted, so memory stays bounded under cancel-heavy flow.
* Each side keeps a dict price -> level and a sorted list of prices with the best price last
  (asks are stored negated), so taking the best level is ``list.pop()``.
* Results are appended to two lists the caller drains: ``events`` (fills and self-trade cancels)
  and ``deltas`` ``(side, price, new_total)`` for market data. Nothing is formatted here.

Prices are int ticks, quantities int lots; side is +1 (buy) / -1 (sell) as in ``engine.enums.Side``.
Preconditions are the caller's job (the venue validates): qty > 0, ids unique, price > 0 for limits.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque

import msgspec

# Level list layout (the hot loops use the literal indices; these names are for readers and callers).
L_PRICE, L_SIDE, L_TOTAL, L_COUNT, L_QUEUE = 0, 1, 2, 3, 4


class Order(msgspec.Struct, gc=False):
    """A resting order. `qty` is the remaining lots (0 = a tombstone awaiting removal from its level's deque).

    A msgspec Struct because it is built in C (about as cheap as a list literal) and is 56 bytes against a
    5-item list's 112, which is what keeps 1 M resting orders under 200 MB. `gc=False` keeps a million orders out
    of the cyclic collector's passes; the one cycle they take part in (order -> level -> deque -> order) is
    broken by hand whenever a level is dropped (`queue.clear()`) and when the core is discarded (`__del__`).
    """

    oid: int
    qty: int
    account: object
    level: list
    tag: object


# Time-in-force behaviour of a submitted order, as the core sees it.
GTC = 0  # rest any remainder (GTC and DAY limits)
IOC = 1  # cancel any remainder (IOC limits and MARKET orders)
FOK = 2  # fill completely or do nothing
POST_ONLY = 3  # rest; rejected untouched if it would take liquidity

# Negative results of submit()/replace(): the order did nothing.
REJECTED_POST_ONLY = -1
KILLED_FOK = -2
UNKNOWN_ORDER = -3

# Event kinds in `events`.
EV_FILL = 1  # (EV_FILL, maker_order, price, qty): maker_order.qty is already the maker's leaves
EV_STP_CANCEL = 2  # (EV_STP_CANCEL, resting_order, canceled_qty): resting order canceled by self-trade prevention

# Price limits for MARKET orders: beyond any real tick price.
MARKET_BUY_PRICE = 1 << 62
MARKET_SELL_PRICE = -(1 << 62)

# Compact a level's deque when tombstones exceed live orders by this much.
_COMPACT_SLACK = 16


class MatchingCore:
    """One symbol's order book and matching rules.

    Self-trade prevention (when ``stp`` is true) is "cancel resting": when an incoming order would
    trade with a resting order of the same account, the resting order is canceled (an
    ``EV_STP_CANCEL`` event) and matching continues with the next resting order.
    """

    __slots__ = (
        "_ask_keys",
        "_asks",
        "_bid_keys",
        "_bids",
        "_orders",
        "best_ask",
        "best_bid",
        "deltas",
        "events",
        "stp",
    )

    def __init__(self, *, stp: bool = True) -> None:
        self.stp = stp
        self._bids: dict[int, list] = {}
        self._asks: dict[int, list] = {}
        self._bid_keys: list[int] = []  # ascending prices; best bid last
        self._ask_keys: list[int] = []  # ascending negated prices; best ask last
        self._orders: dict[int, list] = {}
        self.best_bid: int | None = None
        self.best_ask: int | None = None
        self.events: list[tuple] = []
        self.deltas: list[tuple[int, int, int]] = []

    # ------------------------------------------------------------------ commands

    def submit(  # noqa: PLR0917 -- positional on purpose: keyword passing costs ~10% of an add
        self, oid: int, account: object, side: int, price: int, qty: int, kind: int = GTC, tag: object = None
    ) -> int:
        """Match an incoming order and rest or cancel the remainder according to `kind`.

        Returns the remaining quantity: resting for GTC/POST_ONLY (0 = fully filled), canceled for
        IOC/FOK; or REJECTED_POST_ONLY / KILLED_FOK when the order did nothing at all.
        """
        if side == 1:
            best = self.best_ask
            if best is not None and best <= price:
                if kind == 3:
                    return REJECTED_POST_ONLY
                if kind == 2 and not self._fillable(account, 1, price, qty):
                    return KILLED_FOK
                qty = self._take_asks(account, price, qty)
        else:
            best = self.best_bid
            if best is not None and best >= price:
                if kind == 3:
                    return REJECTED_POST_ONLY
                if kind == 2 and not self._fillable(account, -1, price, qty):
                    return KILLED_FOK
                qty = self._take_bids(account, price, qty)
        if qty == 0:
            return 0
        if kind == 1:
            return qty
        if kind == 2:
            # Reached only when nothing crossed: a fillable FOK has taken everything above.
            return KILLED_FOK
        # Resting, inlined from _rest(): a method call is a measurable share of an add's cost.
        if side == 1:
            level = self._bids.get(price)
            if level is None:
                level = self._new_level(1, price)
        else:
            level = self._asks.get(price)
            if level is None:
                level = self._new_level(-1, price)
        order = Order(oid, qty, account, level, tag)
        level[4].append(order)
        level[3] += 1
        total = level[2] = level[2] + qty
        self._orders[oid] = order
        self.deltas.append((side, price, total))
        return qty

    def cancel(self, oid: int) -> int:
        """Remove a resting order; returns the canceled quantity, or UNKNOWN_ORDER."""
        order = self._orders.pop(oid, None)
        if order is None:
            return UNKNOWN_ORDER
        qty = order.qty
        order.qty = 0
        self._unlink(order.level, qty)
        return qty

    def replace(self, oid: int, price: int, qty: int, kind: int = GTC) -> int:
        """Change a resting order's price and/or remaining quantity (`qty` > 0, the new leaves).

        Same price and a smaller or equal quantity keeps time priority; anything else cancels and
        re-enters at the back of the new level, matching first if it now crosses. `kind` is
        GTC or POST_ONLY (a post-only replace that would cross is refused, order untouched).
        Returns like submit(), or UNKNOWN_ORDER.
        """
        order = self._orders.get(oid)
        if order is None:
            return UNKNOWN_ORDER
        level = order.level
        old = order.qty
        if price == level[0] and qty <= old:
            if qty < old:
                order.qty = qty
                level[2] -= old - qty
                self.deltas.append((level[1], price, level[2]))
            return qty
        side = level[1]
        if kind == 3 and (
            (side == 1 and self.best_ask is not None and self.best_ask <= price)
            or (side == -1 and self.best_bid is not None and self.best_bid >= price)
        ):
            return REJECTED_POST_ONLY
        del self._orders[oid]
        order.qty = 0
        self._unlink(level, old)
        return self.submit(oid, order.account, side, price, qty, GTC, order.tag)

    def __del__(self) -> None:
        # Orders are invisible to the cyclic gc, so a discarded core must break order -> level cycles itself.
        for levels in (self._bids, self._asks):
            for level in levels.values():
                level[4].clear()

    # ------------------------------------------------------------------ queries

    def order(self, oid: int) -> Order | None:
        """The live order (read-only for callers) or None."""
        return self._orders.get(oid)

    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, oid: object) -> bool:
        return oid in self._orders

    def depth(self, n: int | None = None) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best `n` aggregated levels per side (all when None): bids descending, asks ascending.

        The books' convention (`L2Book.depth`): 0 means no levels, not all of them; a negative `n` is a caller bug.
        """
        if n is None:
            bid_keys, ask_keys = self._bid_keys[::-1], self._ask_keys[::-1]
        elif n < 0:
            raise ValueError(f"depth must be None (all levels) or >= 0, got {n}")
        else:
            bid_keys, ask_keys = self._bid_keys[: -n - 1 : -1], self._ask_keys[: -n - 1 : -1]
        bids = [(p, self._bids[p][2]) for p in bid_keys]
        asks = [(-k, self._asks[-k][2]) for k in ask_keys]
        return bids, asks

    def size_at(self, side: int, price: int) -> int:
        level = (self._bids if side == 1 else self._asks).get(price)
        return level[2] if level is not None else 0

    def orders_at(self, side: int, price: int) -> list[int]:
        """Live order ids at a level, in time priority."""
        level = (self._bids if side == 1 else self._asks).get(price)
        if level is None:
            return []
        return [o.oid for o in level[4] if o.qty]

    def queue_position(self, oid: int) -> tuple[int, int]:
        """(orders ahead, lots ahead) of a resting order at its level."""
        order = self._orders[oid]
        ahead = size = 0
        for other in order.level[4]:
            if other is order:
                return ahead, size
            if other.qty:
                ahead += 1
                size += other.qty
        raise AssertionError(f"order {oid} missing from its level queue")

    def is_crossed(self) -> bool:
        return self.best_bid is not None and self.best_ask is not None and self.best_bid >= self.best_ask

    def level_count(self, side: int) -> int:
        return len(self._bids if side == 1 else self._asks)

    # ------------------------------------------------------------------ internals

    def _new_level(self, side: int, price: int) -> list:
        level = [price, side, 0, 0, deque()]
        if side == 1:
            self._bids[price] = level
            keys = self._bid_keys
            if not keys or price > keys[-1]:
                keys.append(price)
                self.best_bid = price
            else:
                insort(keys, price)
        else:
            self._asks[price] = level
            keys = self._ask_keys
            if not keys or -price > keys[-1]:
                keys.append(-price)
                self.best_ask = price
            else:
                insort(keys, -price)
        return level

    def _unlink(self, level: list, qty: int) -> None:
        """Account for a tombstoned order (its qty already zeroed) in its level."""
        level[2] -= qty
        level[3] -= 1
        if level[3] == 0:
            self._drop_level(level)
            return
        self.deltas.append((level[1], level[0], level[2]))
        queue = level[4]
        if len(queue) - level[3] > level[3] + _COMPACT_SLACK:
            level[4] = deque(o for o in queue if o.qty)

    def _drop_level(self, level: list) -> None:
        price = level[0]
        level[4].clear()  # tombstones still point at the level: break the cycle the collector cannot see
        if level[1] == 1:
            del self._bids[price]
            keys = self._bid_keys
            if keys[-1] == price:
                keys.pop()
                self.best_bid = keys[-1] if keys else None
            else:
                del keys[bisect_left(keys, price)]
            self.deltas.append((1, price, 0))
        else:
            del self._asks[price]
            keys = self._ask_keys
            if keys[-1] == -price:
                keys.pop()
                self.best_ask = -keys[-1] if keys else None
            else:
                del keys[bisect_left(keys, -price)]
            self.deltas.append((-1, price, 0))

    def _fillable(self, account: object, side: int, price: int, qty: int) -> bool:
        """Could an order take `qty` up to `price` without resting? Counts only what it would fill:
        same-account liquidity is canceled by STP, not traded."""
        if side == 1:
            levels, keys, sign = self._asks, self._ask_keys, -1
        else:
            levels, keys, sign = self._bids, self._bid_keys, 1
        stp = self.stp
        available = 0
        for i in range(len(keys) - 1, -1, -1):
            level_price = keys[i] * sign
            if (side == 1 and level_price > price) or (side == -1 and level_price < price):
                break
            level = levels[level_price]
            if not stp:
                available += level[2]
            else:
                for o in level[4]:
                    if o.qty and o.account != account:
                        available += o.qty
            if available >= qty:
                return True
        return False

    def _take_asks(self, account: object, limit: int, qty: int) -> int:
        """Buy aggressor: consume asks priced <= limit. Returns the untraded quantity."""
        asks = self._asks
        keys = self._ask_keys
        orders = self._orders
        events = self.events
        deltas = self.deltas
        stp = self.stp
        best = self.best_ask
        while qty and best is not None and best <= limit:
            level = asks[best]
            queue = level[4]
            total = level[2]
            count = level[3]
            while qty and count:
                order = queue[0]
                oq = order.qty
                if not oq:
                    queue.popleft()
                    continue
                if stp and order.account == account:
                    queue.popleft()
                    del orders[order.oid]
                    order.qty = 0
                    total -= oq
                    count -= 1
                    events.append((2, order, oq))
                    continue
                if oq <= qty:
                    queue.popleft()
                    del orders[order.oid]
                    order.qty = 0
                    qty -= oq
                    total -= oq
                    count -= 1
                    events.append((1, order, best, oq))
                else:
                    order.qty = oq - qty
                    total -= qty
                    events.append((1, order, best, qty))
                    qty = 0
            if count:
                level[2] = total
                level[3] = count
                deltas.append((-1, best, total))
                break
            del asks[best]
            queue.clear()  # break order -> level -> deque cycles (orders are untracked by the gc)
            keys.pop()
            deltas.append((-1, best, 0))
            best = -keys[-1] if keys else None
        self.best_ask = best
        return qty

    def _take_bids(self, account: object, limit: int, qty: int) -> int:
        """Sell aggressor: consume bids priced >= limit. Mirror of _take_asks."""
        bids = self._bids
        keys = self._bid_keys
        orders = self._orders
        events = self.events
        deltas = self.deltas
        stp = self.stp
        best = self.best_bid
        while qty and best is not None and best >= limit:
            level = bids[best]
            queue = level[4]
            total = level[2]
            count = level[3]
            while qty and count:
                order = queue[0]
                oq = order.qty
                if not oq:
                    queue.popleft()
                    continue
                if stp and order.account == account:
                    queue.popleft()
                    del orders[order.oid]
                    order.qty = 0
                    total -= oq
                    count -= 1
                    events.append((2, order, oq))
                    continue
                if oq <= qty:
                    queue.popleft()
                    del orders[order.oid]
                    order.qty = 0
                    qty -= oq
                    total -= oq
                    count -= 1
                    events.append((1, order, best, oq))
                else:
                    order.qty = oq - qty
                    total -= qty
                    events.append((1, order, best, qty))
                    qty = 0
            if count:
                level[2] = total
                level[3] = count
                deltas.append((1, best, total))
                break
            del bids[best]
            queue.clear()
            keys.pop()
            deltas.append((1, best, 0))
            best = keys[-1] if keys else None
        self.best_bid = best
        return qty
