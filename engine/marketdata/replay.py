"""Replay a Binance capture through an L2 book and measure agreement with the file's own bookTicker (replay thread).

Two streams are in the capture: `depth@0ms` diffs (each covering update ids U..u) and `bookTicker` (the best bid and
ask as of one update id u, pushed on every change of the best prices or sizes). They share one update-id space but
travel separately, so their local receive order says little about which book state a ticker describes.

The measurement therefore aligns them by update id, not by receive time: after each diff D is applied, the book is
the venue's book as of D.u, and the venue's best bid/ask at D.u is the last ticker with u <= D.u (the ticker stream
is complete: any change of the top produces one). That comparison is exact; a disagreement is a bug in the book,
the sync or the reader. A ticker whose u falls inside a diff that also holds later top-of-book changes describes a
state the diff stream never exposes (the diff only gives the state at its end); such tickers are counted as
unobservable, not compared.

For contrast the naive live comparison (each ticker against the book as received at that moment) is measured too,
with its disagreements classified by how the two streams were ordered; see docs/market-data.md.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from engine.book import L2Book
from engine.instruments import Instrument
from engine.marketdata.binance import BinanceBookSync, BookTicker, DepthDiff, DepthSnapshot, Trade, iter_binance_file

# Progressive fill (no snapshot): the book counts as filled in once both sides hold at least this many levels
# and the ticker's prices lie inside the price range the book has seen. 20 levels is several ticks of depth on
# BTCUSDT, far more than the top of book needs, and is reached within the first diff of this capture.
DEFAULT_MIN_LEVELS = 20


@dataclass
class AgreementStats:
    """Result of `measure_binance_agreement`. `rate` is the headline figure (update-id aligned, after fill-in)."""

    use_snapshot: bool
    records: Counter[str] = field(default_factory=Counter)  # per record type read from the file
    diffs_applied: int = 0
    diffs_dropped: int = 0  # covered by the snapshot (Binance rule 2)
    gaps: int = 0  # breaks of the pu == previous u chain
    filled_in_after_diffs: int | None = None  # diffs applied when comparisons started
    compared: int = 0
    agreed: int = 0
    exact_id_compared: int = 0  # the subset where the ticker's u equals the diff's u
    exact_id_agreed: int = 0
    disagreements: Counter[str] = field(default_factory=Counter)
    not_compared: Counter[str] = field(default_factory=Counter)
    tickers_unobservable: int = 0  # superseded by a later ticker inside the same diff
    receive_order_compared: int = 0
    receive_order_agreed: int = 0
    receive_order_classes: Counter[str] = field(default_factory=Counter)
    ticker_lead_ns: list[int] = field(default_factory=list)  # ticker receive time -> its diff's receive time

    @property
    def rate(self) -> float:
        return self.agreed / self.compared if self.compared else 0.0

    @property
    def receive_order_rate(self) -> float:
        return self.receive_order_agreed / self.receive_order_compared if self.receive_order_compared else 0.0

    def lead_percentile_ns(self, pct: float) -> int:
        values = sorted(self.ticker_lead_ns)
        if not values:
            return 0
        return values[min(len(values) - 1, int(len(values) * pct / 100))]

    def summary(self) -> str:
        lines = [
            f"mode: {'REST snapshot + Binance sync rules' if self.use_snapshot else 'progressive fill, no snapshot'}",
            f"records: {dict(self.records)}",
            f"diffs applied {self.diffs_applied}, dropped before sync {self.diffs_dropped}, pu gaps {self.gaps}, "
            f"filled in after {self.filled_in_after_diffs} diffs",
            f"update-id aligned agreement: {self.agreed}/{self.compared} = {100 * self.rate:.4f}% "
            f"(exact same id: {self.exact_id_agreed}/{self.exact_id_compared})",
            f"  disagreements: {dict(self.disagreements) or 'none'}",
            f"  not compared: {dict(self.not_compared) or 'none'}; "
            f"tickers superseded inside one diff (unobservable): {self.tickers_unobservable}",
            f"receive-order agreement: {self.receive_order_agreed}/{self.receive_order_compared} = "
            f"{100 * self.receive_order_rate:.2f}%",
            f"  classes: {dict(sorted(self.receive_order_classes.items()))}",
            f"ticker leads its depth diff by median {self.lead_percentile_ns(50) / 1e6:.1f} ms, "
            f"p99 {self.lead_percentile_ns(99) / 1e6:.1f} ms",
        ]
        return "\n".join(lines)


def classify_top(book: Any, ticker: BookTicker) -> str:
    """'' when the book's top equals the ticker's, else the disagreement class (first that applies).

    crossed: the book is crossed (a level the venue has removed is still held on one side);
    stale_level: the book's best is better than the venue's: we hold a level the venue no longer has;
    missing_level: the venue's best is better than ours and absent from our book: never seen (no snapshot);
    behind_level: the venue's best price is in our book but not at the top (our book is ahead or behind in time);
    size: same prices, different size at the top.
    """
    bid, ask = book.best_bid, book.best_ask
    if (
        bid == ticker.bid
        and ask == ticker.ask
        and book.best_bid_size == ticker.bid_size
        and book.best_ask_size == ticker.ask_size
    ):
        return ""
    if bid is not None and ask is not None and bid >= ask:
        return "crossed"
    if bid != ticker.bid:
        if bid is not None and bid > ticker.bid:
            return "stale_level"
        return "behind_level" if book.size_at(1, ticker.bid) else "missing_level"
    if ask != ticker.ask:
        if ask is not None and ask < ticker.ask:
            return "stale_level"
        return "behind_level" if book.size_at(-1, ticker.ask) else "missing_level"
    return "size"


def measure_binance_agreement(
    path: Path | str,
    instrument: Instrument,
    *,
    use_snapshot: bool = True,
    min_levels: int = DEFAULT_MIN_LEVELS,
    book: Any = None,
) -> AgreementStats:
    """Replay the capture at `path` and compare the book's best bid/ask with the file's bookTicker messages.

    `book` defaults to a new L2Book; pass another implementation with the same API (e.g. ReferenceL2Book) to
    check it. The whole file is read first because the alignment needs, for each diff, the last ticker at or
    before its update id, and that ticker may be received after the diff.
    """
    records = list(iter_binance_file(path, instrument))
    stats = AgreementStats(use_snapshot=use_snapshot)
    tickers = [r for r in records if type(r) is BookTicker]
    ticker_ids = [t.update_id for t in tickers]
    if any(b <= a for a, b in pairwise(ticker_ids)):
        raise ValueError("bookTicker update ids are not strictly increasing in this capture")
    diff_ids = [r.last_update_id for r in records if type(r) is DepthDiff]
    diff_recv = [r.recv_ns for r in records if type(r) is DepthDiff]
    _measure_ticker_lead(stats, tickers, diff_ids, diff_recv)

    book = L2Book(instrument.symbol) if book is None else book
    sync = BinanceBookSync(book, use_snapshot=use_snapshot)
    last_diff: DepthDiff | None = None
    low_bid: int | None = None  # price range seen so far, for the progressive "filled in" test
    high_ask: int | None = None
    for record in records:
        kind = type(record)
        stats.records[kind.__name__] += 1
        if kind is DepthDiff:
            if not sync.on_diff(record):
                continue
            last_diff = record
            if not use_snapshot:
                low_bid, high_ask = _widen(record, low_bid, high_ask)
            _compare_aligned(
                stats,
                sync=sync,
                book=book,
                diff=record,
                tickers=tickers,
                ticker_ids=ticker_ids,
                min_levels=min_levels,
                low_bid=low_bid,
                high_ask=high_ask,
            )
        elif kind is DepthSnapshot:
            if use_snapshot and sync.on_snapshot(record):
                last_diff = None  # the replayed buffer was compared by nobody: align from the next diff on
        elif kind is BookTicker:
            _compare_receive_order(stats, sync, book, record, last_diff)
        elif kind is not Trade:
            raise TypeError(f"unexpected record {record!r}")
    stats.diffs_applied = sync.diffs_applied
    stats.diffs_dropped = sync.diffs_dropped
    stats.gaps = sync.gaps
    # Tickers inside a diff window that are followed by another ticker in the same window: never observable.
    for pu_end, u_end in zip([None, *diff_ids], diff_ids):
        lo = 0 if pu_end is None else bisect_right(ticker_ids, pu_end)
        hi = bisect_right(ticker_ids, u_end)
        if hi - lo > 1:
            stats.tickers_unobservable += hi - lo - 1
    return stats


def _widen(diff: DepthDiff, low_bid: int | None, high_ask: int | None) -> tuple[int | None, int | None]:
    for price, _ in diff.bids:
        if low_bid is None or price < low_bid:
            low_bid = price
    for price, _ in diff.asks:
        if high_ask is None or price > high_ask:
            high_ask = price
    return low_bid, high_ask


def _compare_aligned(
    stats: AgreementStats,
    *,
    sync: BinanceBookSync,
    book: Any,
    diff: DepthDiff,
    tickers: list[BookTicker],
    ticker_ids: list[int],
    min_levels: int,
    low_bid: int | None,
    high_ask: int | None,
) -> None:
    index = bisect_right(ticker_ids, diff.last_update_id) - 1
    if index < 0:
        stats.not_compared["no_ticker_at_or_before_diff"] += 1
        return
    ticker = tickers[index]
    if stats.filled_in_after_diffs is None:
        if not sync.use_snapshot and (
            book.level_count(1) < min_levels
            or book.level_count(-1) < min_levels
            or low_bid is None
            or high_ask is None
            or not low_bid <= ticker.bid
            or not ticker.ask <= high_ask
        ):
            stats.not_compared["not_filled_in"] += 1
            return
        stats.filled_in_after_diffs = sync.diffs_applied
    exact = ticker.update_id == diff.last_update_id
    verdict = classify_top(book, ticker)
    stats.compared += 1
    stats.exact_id_compared += exact
    if verdict:
        stats.disagreements[verdict] += 1
    else:
        stats.agreed += 1
        stats.exact_id_agreed += exact


def _compare_receive_order(
    stats: AgreementStats, sync: BinanceBookSync, book: Any, ticker: BookTicker, last_diff: DepthDiff | None
) -> None:
    if not sync.synced or last_diff is None:
        stats.receive_order_classes["no_synced_book_yet"] += 1
        return
    if ticker.update_id > last_diff.last_update_id:
        relation = "ticker_ahead_of_depth"
    elif ticker.update_id == last_diff.last_update_id:
        relation = "same_update_id"
    else:
        relation = "depth_ahead_of_ticker"
    verdict = classify_top(book, ticker)
    stats.receive_order_compared += 1
    if verdict:
        stats.receive_order_classes[f"{relation}:{verdict}"] += 1
    else:
        stats.receive_order_agreed += 1
        stats.receive_order_classes[f"{relation}:agree"] += 1


def _measure_ticker_lead(
    stats: AgreementStats, tickers: list[BookTicker], diff_ids: list[int], diff_recv: list[int]
) -> None:
    """How long after a ticker the diff carrying the same update arrives (negative: the diff came first)."""
    for ticker in tickers:
        index = bisect_right(diff_ids, ticker.update_id - 1)  # first diff with u >= ticker.u
        if index < len(diff_ids):
            stats.ticker_lead_ns.append(diff_recv[index] - ticker.recv_ns)
