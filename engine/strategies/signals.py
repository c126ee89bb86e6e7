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
    bid = book.best_bid
    ask = book.best_ask
    if bid is None or ask is None:
        return 0.0
    bid_size = book.best_bid_size
    ask_size = book.best_ask_size
    # Same as weighted_mid - (bid + ask) / 2, simplified: (ask - bid) / 2 * imbalance.
    return (ask - bid) * 0.5 * (bid_size - ask_size) / (bid_size + ask_size)


def book_imbalance(book, levels: int = 1) -> float:
    """(bid volume - ask volume) / (bid volume + ask volume) over the best `levels` levels per side, in [-1, 1].

    +1 means only bids, -1 only asks; 0.0 for an empty book. One level reads the best sizes without sorting.
    """
    if levels == 1:
        bid_volume = book.best_bid_size
        ask_volume = book.best_ask_size
    else:
        bids, asks = book.depth(levels)
        bid_volume = sum(size for _, size in bids)
        ask_volume = sum(size for _, size in asks)
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
