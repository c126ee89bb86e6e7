"""Alpha signals computed from the book and the trade prints, used to skew quotes (engine thread only).

All prices are in ticks (floats where a weighted price falls between ticks); all functions read an
`engine.book.L2Book` (or anything with its attributes and `depth`) and never modify it.
"""

from __future__ import annotations

from collections import deque


def weighted_mid(book) -> float | None:
    """Size-weighted mid at the top of book, in ticks; None when a side is empty.

    (bid * ask_size + ask * bid_size) / (bid_size + ask_size): a large bid queue pulls the price toward the ask,
    because the ask is the queue more likely to be consumed next. This is the micro-price's first-order form
    (Stoikov 2018, "The micro-price: a high-frequency estimator of future prices", Quantitative Finance 18(12),
    the "weighted mid-price" of section 2); the full micro-price adds an adjustment g(I, S) fitted on history.
    """
    bid = book.best_bid
    ask = book.best_ask
    if bid is None or ask is None:
        return None
    bid_size = book.best_bid_size
    ask_size = book.best_ask_size
    return (bid * ask_size + ask * bid_size) / (bid_size + ask_size)


def microprice_offset(book) -> float:
    """Weighted mid minus mid, in ticks (0.0 when a side is empty): the signal the strategy skews by."""
    return top_microprice_offset(book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size)


def top_microprice_offset(bid: int | None, bid_size: int, ask: int | None, ask_size: int) -> float:
    """`microprice_offset` from a top of book given as values (e.g. `market_top`'s, without our own orders)."""
    if bid is None or ask is None or bid_size + ask_size <= 0:
        return 0.0
    # Same as weighted_mid - (bid + ask) / 2, simplified: (ask - bid) / 2 * imbalance.
    return (ask - bid) * 0.5 * (bid_size - ask_size) / (bid_size + ask_size)


def book_imbalance(book, levels: int = 1, own: tuple[dict[int, int], dict[int, int]] | None = None) -> float:
    """(bid volume - ask volume) / (bid volume + ask volume) over the best `levels` levels per side, in [-1, 1].

    +1 means only bids, -1 only asks; 0.0 for an empty book. `own` (from `own_levels`) is subtracted first, so
    the signal describes everyone else's liquidity; levels that were only ours do not count as levels.
    One level without `own` reads the best sizes without sorting.
    """
    if own is None:
        if levels == 1:
            bid_volume = book.best_bid_size
            ask_volume = book.best_ask_size
        else:
            bids, asks = book.depth(levels)
            bid_volume = sum(size for _, size in bids)
            ask_volume = sum(size for _, size in asks)
    else:
        own_bids, own_asks = own
        bids, asks = book.depth(levels + max(len(own_bids), len(own_asks)))
        bid_volume = _volume_ex_own(bids, own_bids, levels)
        ask_volume = _volume_ex_own(asks, own_asks, levels)
    total = bid_volume + ask_volume
    if total == 0:
        return 0.0
    return (bid_volume - ask_volume) / total


class TradeFlowImbalance:
    """(buy-initiated - sell-initiated volume) / total over the trades of the last `window_ns`, in [-1, 1].

    Running sums plus a deque of (ts, signed quantity) make an update O(1) amortised: each trade enters once and
    leaves once. Timestamps come from the trades (or the caller's clock) and must not go backwards.
    """

    __slots__ = ("_buy", "_sell", "_trades", "window_ns")

    def __init__(self, window_ns: int) -> None:
        if window_ns <= 0:
            raise ValueError("window_ns must be positive")
        self.window_ns = window_ns
        self._trades: deque[tuple[int, int]] = deque()
        self._buy = 0
        self._sell = 0

    def on_trade(self, quantity: int, aggressor: int, now: int) -> None:
        """A print of `quantity` lots; `aggressor` +1 (buyer lifted the offer) or -1 (seller hit the bid)."""
        signed = quantity if aggressor > 0 else -quantity
        self._trades.append((now, signed))
        if signed > 0:
            self._buy += signed
        else:
            self._sell -= signed
        self._expire(now)

    def _expire(self, now: int) -> None:
        trades = self._trades
        horizon = now - self.window_ns
        while trades and trades[0][0] <= horizon:
            _, signed = trades.popleft()
            if signed > 0:
                self._buy -= signed
            else:
                self._sell += signed

    def value(self, now: int) -> float:
        self._expire(now)
        total = self._buy + self._sell
        if total == 0:
            return 0.0
        return (self._buy - self._sell) / total


def _volume_ex_own(levels: list[tuple[int, int]], own: dict[int, int], count: int) -> int:
    volume = 0
    for price, size in levels:
        rest = size - own.get(price, 0)
        if rest > 0:
            volume += rest
            count -= 1
            if count == 0:
                break
    return volume


# The market without our own orders. A quoter that reads its own resting quotes back as the market's best bid or
# ask chases itself: joining the touch moves the mid, which moves the quotes, which move the mid again. Our working
# orders are subtracted at the price the OMS knows them by; an order the venue has not placed yet (or has already
# moved) is then subtracted from a level it is not in, which at worst hides that much of someone else's size.

_PROBES = 8  # neighbouring prices tried with dict lookups before falling back to sorting the side


def own_levels(own) -> tuple[dict[int, int], dict[int, int]]:
    """Price -> our leaves per side (bids, asks), from our working orders (`Order`-like objects).

    An order with a replace in flight is counted at its old and at its new price: the market data may already
    show it moved while the OMS still waits for the venue's answer (or the reverse), and counting it once at the
    wrong price would let the strategy see its own quote as the market and chase it.
    """
    bids: dict[int, int] = {}
    asks: dict[int, int] = {}
    for order in own:
        leaves = order.leaves_quantity
        side = bids if order.side > 0 else asks
        if leaves > 0:
            side[order.price] = side.get(order.price, 0) + leaves
        pending_price = order.pending_price
        if pending_price and pending_price != order.price:
            pending_leaves = order.pending_quantity - order.cum_quantity
            if pending_leaves > 0:
                side[pending_price] = side.get(pending_price, 0) + pending_leaves
    return bids, asks


def market_top(book, own_bids: dict[int, int], own_asks: dict[int, int]) -> tuple[int | None, int, int | None, int]:
    """(best bid, its size, best ask, its size) of everyone but us; None / 0 for a side with nothing else."""
    bid, bid_size = _best_ex_own(book, 1, book.best_bid, book.best_bid_size, own_bids)
    ask, ask_size = _best_ex_own(book, -1, book.best_ask, book.best_ask_size, own_asks)
    return bid, bid_size, ask, ask_size


def _best_ex_own(book, side: int, price: int | None, size: int, own: dict[int, int]) -> tuple[int | None, int]:
    if price is None:
        return None, 0
    rest = size - own.get(price, 0)
    if rest > 0:
        return price, rest
    # The best level is all ours. Books are dense near the touch, so probing the next few prices is cheaper
    # than sorting every level.
    step = -side
    probe = price
    for _ in range(_PROBES):
        probe += step
        if probe < 0:
            return None, 0
        size = book.size_at(side, probe)
        if size:
            rest = size - own.get(probe, 0)
            if rest > 0:
                return probe, rest
    bids, asks = book.depth()
    for level, size in bids if side == 1 else asks:
        rest = size - own.get(level, 0)
        if rest > 0:
            return level, rest
    return None, 0
