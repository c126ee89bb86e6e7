"""Sequenced market-data feed handler: gap detection, snapshot recovery, duplicate dropping (engine thread only).

One `SequencedFeed` per symbol consumes the venue's market-data stream (`BookDeltas` and `TradePrinted` share one
contiguous sequence per symbol, starting at 1) plus `BookSnapshot` answers, and keeps an L2 book in step:

- seq == last applied + 1: apply, then drain anything buffered that has become contiguous;
- seq <= last applied, or already buffered: a duplicate or a late copy; drop and count;
- seq > expected: a gap. The book is marked stale, one snapshot is requested, and the message is buffered (bounded).
  A late packet that fills the hole recovers the feed without a snapshot (a reordered pair counts as a gap and an
  out-of-order packet, then recovers);
- a snapshot with seq S while stale: if S is not older than the book, load it, discard buffered <= S, apply the
  buffered S+1.. run; if a hole remains, stay stale and request again;
- a request whose answer never comes (the reply was lost) is repeated by `on_timer` once `snapshot_timeout_ns` has
  passed on the engine clock, for as long as the book stays stale.

Messages are read through their attributes only (`symbol`, `seq`, `ts`, `deltas` / trade fields / `bids`, `asks`), so
the handler works on `engine.protocol` structs without copying them. A malformed message is rejected with a reason
code before anything is applied: the book is never half-updated. Its sequence number is not consumed, so the next
message opens a gap and recovery goes through a snapshot, exactly as if the packet had been lost.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

from engine.errors import EngineError
from engine.instruments import Instrument, InstrumentError
from engine.protocol import SIDES

DEFAULT_SNAPSHOT_TIMEOUT_NS = 2_000_000_000


class FeedReason(StrEnum):
    """Reason codes of `FeedError` (a StrEnum: each member compares equal to its string value)."""

    BAD_CONFIG = "FEED_BAD_CONFIG"
    WRONG_SYMBOL = "FEED_WRONG_SYMBOL"
    BAD_SIDE = "FEED_BAD_SIDE"
    PRICE_NOT_POSITIVE = "FEED_PRICE_NOT_POSITIVE"
    SIZE_NOT_POSITIVE = "FEED_SIZE_NOT_POSITIVE"
    SIZE_NEGATIVE = "FEED_SIZE_NEGATIVE"


class FeedError(EngineError):
    """A market-data message that cannot be applied (wrong symbol, bad side, bad size, off-grid price)."""


class FeedOutcome(IntEnum):
    APPLIED = 1  # applied to the book (and possibly drained buffered messages after it)
    DUPLICATE = 2  # at or below the last applied sequence, or already buffered: dropped
    BUFFERED = 3  # held while the book is stale
    REJECTED = 4  # malformed; see `last_reject`
    SNAPSHOT_LOADED = 5
    SNAPSHOT_IGNORED = 6  # older than the book: cannot help


class FeedCounters:
    """Monotonic counters of one feed; plain attributes so the engine loop pays one attribute add per message."""

    __slots__ = (
        "applied",
        "buffered_dropped",
        "duplicates",
        "gaps",
        "out_of_order",
        "rejected",
        "snapshot_timeouts",
        "snapshots_applied",
        "snapshots_ignored",
        "snapshots_requested",
        "superseded",
        "trades",
    )

    def __init__(self) -> None:
        self.applied = 0  # book-delta and trade messages applied in sequence
        self.duplicates = 0
        self.out_of_order = 0  # arrived after a higher sequence number had been seen, then used
        self.gaps = 0  # times the feed went from live to stale
        self.snapshots_requested = 0
        self.snapshot_timeouts = 0  # requests repeated by on_timer because no usable answer came in time
        self.snapshots_applied = 0
        self.snapshots_ignored = 0
        self.buffered_dropped = 0  # evicted because the stale buffer was full
        self.superseded = 0  # buffered messages made redundant by a newer snapshot
        self.rejected = 0
        self.trades = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in sorted(self.__slots__)}

    def __repr__(self) -> str:
        return f"FeedCounters({self.as_dict()})"


class SequencedFeed:
    """Keeps `book` (an L2Book) consistent with one symbol's sequenced market-data stream.

    `request_snapshot(symbol)` is called when a snapshot is needed; the answer must come back through
    `on_snapshot`. `on_trade(message)` (optional) receives TradePrinted messages in sequence order.
    Call `on_timer(now_ns)` from the engine's timer with the engine clock: a request still unanswered
    `snapshot_timeout_ns` after the first tick that saw it is sent again.
    Engine thread only; not thread-safe.
    """

    __slots__ = (
        "_buffer",
        "_buffer_seqs",
        "_max_seen",
        "_on_trade",
        "_request_snapshot",
        "_requested_at",
        "_resend_requested",
        "book",
        "counters",
        "instrument",
        "last_reject",
        "last_seq",
        "max_buffer",
        "snapshot_timeout_ns",
        "stale",
        "symbol",
    )

    def __init__(
        self,
        *,
        symbol: str,
        book: Any,
        request_snapshot: Callable[[str], None],
        on_trade: Callable[[Any], None] | None = None,
        max_buffer: int = 10_000,
        last_seq: int = 0,
        instrument: Instrument | None = None,
        snapshot_timeout_ns: int = DEFAULT_SNAPSHOT_TIMEOUT_NS,
    ) -> None:
        if max_buffer < 1:
            raise FeedError(FeedReason.BAD_CONFIG, f"max_buffer must be at least 1, got {max_buffer}")
        if snapshot_timeout_ns < 1:
            raise FeedError(FeedReason.BAD_CONFIG, f"snapshot_timeout_ns must be at least 1, got {snapshot_timeout_ns}")
        self.symbol = symbol
        self.book = book
        self.instrument = instrument  # only needed by on_decimal_deltas
        self._request_snapshot = request_snapshot
        self._on_trade = on_trade
        self.max_buffer = max_buffer
        # last_seq=0 means "joined at the start of the stream with an empty book": the venue's first seq is 1.
        self.last_seq = last_seq
        self.stale = False
        self.counters = FeedCounters()
        self.last_reject: FeedError | None = None
        self._buffer: dict[int, Any] = {}
        self._buffer_seqs: list[int] = []  # min-heap over the buffer's keys, for drop-oldest on overflow
        self._max_seen = last_seq
        # One re-request per stale episode after an overflow; reset by a snapshot, so a buffer that keeps
        # overflowing does not turn into a snapshot request per message.
        self._resend_requested = False
        self.snapshot_timeout_ns = snapshot_timeout_ns
        # Engine time of the first timer tick after the last snapshot request; None until a tick has seen it, or
        # when no request is outstanding (the book is live). Stamped by the timer rather than by the request
        # because message handlers have no clock: the re-request therefore comes between one timeout and one
        # timeout plus a timer period after the request, never earlier.
        self._requested_at: int | None = None

    # --- stream messages ------------------------------------------------------------------------------------

    def on_book_deltas(self, message: Any) -> FeedOutcome:
        """A BookDeltas message: (side, price, new total size) per level, size 0 removing the level."""
        try:
            self._check_deltas(message)
        except FeedError as exc:
            return self._reject(exc)
        return self._sequence(message)

    def on_trade_printed(self, message: Any) -> FeedOutcome:
        """A TradePrinted message: does not change the book, but occupies a sequence number."""
        try:
            self._check_symbol(message)
            if message.quantity <= 0:
                raise FeedError(FeedReason.SIZE_NOT_POSITIVE, f"trade quantity {message.quantity} is not positive")
            if message.price <= 0:
                raise FeedError(FeedReason.PRICE_NOT_POSITIVE, f"trade price {message.price} is not positive")
        except FeedError as exc:
            return self._reject(exc)
        return self._sequence(message)

    def on_decimal_deltas(
        self, *, symbol: str, seq: int, ts: int, deltas: Iterable[tuple[int, Decimal | str, Decimal | str]]
    ) -> FeedOutcome:
        """Deltas still in decimals (a venue that publishes prices as text): converted through the instrument.

        An off-grid price or size rejects the whole message; nothing is rounded.
        """
        if self.instrument is None:
            raise FeedError(FeedReason.BAD_CONFIG, "on_decimal_deltas needs the feed to be built with an instrument")
        try:
            converted = tuple(
                (side, self.instrument.price_to_ticks(price), self.instrument.qty_to_lots(size))
                for side, price, size in deltas
            )
        except InstrumentError as exc:
            return self._reject(FeedError(exc.code, exc.reason))
        return self.on_book_deltas(_Deltas(symbol, seq, ts, converted))

    def on_snapshot(self, message: Any) -> FeedOutcome:
        """A BookSnapshot answering a request: `seq` is the last sequence number it includes."""
        try:
            self._check_symbol(message)
            for levels in (message.bids, message.asks):
                for price, size in levels:
                    if price <= 0:
                        raise FeedError(FeedReason.PRICE_NOT_POSITIVE, f"snapshot price {price} is not positive")
                    if size <= 0:
                        raise FeedError(
                            FeedReason.SIZE_NOT_POSITIVE, f"snapshot size {size} at {price} is not positive"
                        )
        except FeedError as exc:
            return self._reject(exc)
        counters = self.counters
        seq = message.seq
        self._resend_requested = False
        if seq < self.last_seq or (seq == self.last_seq and not self.stale):
            # Older than the book (or the same state while live): loading it would move the book back in time.
            counters.snapshots_ignored += 1
            if self.stale:
                self._request()
            return FeedOutcome.SNAPSHOT_IGNORED
        self.book.load_snapshot(message.bids, message.asks)
        counters.snapshots_applied += 1
        self.last_seq = seq
        self._max_seen = max(self._max_seen, seq)
        buffer = self._buffer
        if buffer:
            for old in [s for s in buffer if s <= seq]:
                del buffer[old]
                counters.superseded += 1
            self._buffer_seqs = list(buffer)
            heapq.heapify(self._buffer_seqs)
        self._drain()
        if buffer:
            # The snapshot did not reach the buffered run: a hole remains between them.
            self.stale = True
            self._request()
        else:
            self.stale = False
        return FeedOutcome.SNAPSHOT_LOADED

    def on_timer(self, now_ns: int) -> bool:
        """Engine timer tick (`now_ns` from the engine clock). Returns True when it re-requested a snapshot.

        While the book is stale a snapshot request is outstanding; if no answer has made the book live within
        `snapshot_timeout_ns`, the request (or its reply) is taken as lost and sent again, so a single lost packet
        cannot leave the book stale for ever.
        """
        if not self.stale:
            self._requested_at = None
            return False
        requested_at = self._requested_at
        if requested_at is None:
            self._requested_at = now_ns
            return False
        if now_ns - requested_at < self.snapshot_timeout_ns:
            return False
        self.counters.snapshot_timeouts += 1
        self._request()
        self._requested_at = now_ns
        return True

    def on_message(self, message: Any) -> FeedOutcome:
        """Dispatch a BookDeltas / TradePrinted / BookSnapshot by shape."""
        if hasattr(message, "deltas"):
            return self.on_book_deltas(message)
        if hasattr(message, "bids"):
            return self.on_snapshot(message)
        return self.on_trade_printed(message)

    # --- internals ------------------------------------------------------------------------------------------

    def _sequence(self, message: Any) -> FeedOutcome:
        seq = message.seq
        counters = self.counters
        if seq <= self.last_seq or seq in self._buffer:
            counters.duplicates += 1
            return FeedOutcome.DUPLICATE
        late = seq < self._max_seen
        self._max_seen = max(self._max_seen, seq)
        if seq == self.last_seq + 1:
            if late:
                counters.out_of_order += 1
            self._apply(message)
            if self._buffer:
                self._drain()
                if not self._buffer:
                    # The late packet filled the only hole: live again without waiting for the snapshot.
                    self.stale = False
            return FeedOutcome.APPLIED
        if late:
            counters.out_of_order += 1
        if not self.stale:
            counters.gaps += 1
            self.stale = True
            self._request()
        self._hold(message)
        return FeedOutcome.BUFFERED

    def _apply(self, message: Any) -> None:
        deltas = getattr(message, "deltas", None)
        if deltas is None:
            self.counters.trades += 1
            if self._on_trade is not None:
                self._on_trade(message)
        else:
            apply = self.book.apply
            for side, price, size in deltas:
                apply(side, price, size)
        self.last_seq = message.seq
        self.counters.applied += 1

    def _drain(self) -> None:
        buffer = self._buffer
        nxt = self.last_seq + 1
        while nxt in buffer:
            self._apply(buffer.pop(nxt))
            nxt += 1
        if self._buffer_seqs and len(self._buffer_seqs) != len(buffer):
            self._buffer_seqs = list(buffer)
            heapq.heapify(self._buffer_seqs)

    def _hold(self, message: Any) -> None:
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            # Drop the oldest: the snapshot in flight most likely already covers it, while the newest messages
            # are the ones needed to go live after that snapshot.
            oldest = heapq.heappop(self._buffer_seqs)
            del buffer[oldest]
            self.counters.buffered_dropped += 1
            if not self._resend_requested:
                # The snapshot in flight may now be older than everything kept: ask for a fresher one.
                self._resend_requested = True
                self._request()
        buffer[message.seq] = message
        heapq.heappush(self._buffer_seqs, message.seq)

    def _request(self) -> None:
        self.counters.snapshots_requested += 1
        self._requested_at = None  # a fresh request: its timeout starts at the next timer tick
        self._request_snapshot(self.symbol)

    def _reject(self, exc: FeedError) -> FeedOutcome:
        self.counters.rejected += 1
        self.last_reject = exc
        return FeedOutcome.REJECTED

    def _check_symbol(self, message: Any) -> None:
        if message.symbol != self.symbol:
            raise FeedError(FeedReason.WRONG_SYMBOL, f"message for {message.symbol!r} on the {self.symbol!r} feed")

    def _check_deltas(self, message: Any) -> None:
        self._check_symbol(message)
        for side, price, size in message.deltas:
            if side not in SIDES:
                raise FeedError(FeedReason.BAD_SIDE, f"side {side!r} is neither BUY (1) nor SELL (-1)")
            if price <= 0:
                raise FeedError(FeedReason.PRICE_NOT_POSITIVE, f"price {price} is not positive")
            if size < 0:
                raise FeedError(FeedReason.SIZE_NEGATIVE, f"size {size} at {price} is negative")


class _Deltas:
    """Internal carrier for deltas converted from decimals (same attributes as protocol.BookDeltas)."""

    __slots__ = ("deltas", "seq", "symbol", "ts")

    def __init__(self, symbol: str, seq: int, ts: int, deltas: tuple[tuple[int, int, int], ...]) -> None:
        self.symbol = symbol
        self.seq = seq
        self.ts = ts
        self.deltas = deltas
