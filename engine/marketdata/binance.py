"""Reader for recorded Binance USD-M futures websocket captures (replay and backtest threads).

The capture format is hftbacktest's: a gzip text file, one message per line, `<local receive ns> <json>`, where
the JSON is either a combined-stream envelope `{"stream": ..., "data": {...}}` carrying a `depthUpdate`,
`bookTicker` or `trade` event, or a bare REST `GET /fapi/v1/depth` answer (`{"lastUpdateId", "bids", "asks"}`)
that the recorder fetched to seed the book.

Every record is normalised to integer ticks and lots of the given instrument. Decimal strings go through
`Instrument.price_to_ticks` / `qty_to_lots` (the only conversion in the engine), so an off-grid price stops the
read with a reason code instead of being rounded. The conversions are memoised per reader because a capture
repeats the same few thousand price strings hundreds of thousands of times.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec

from engine.enums import Side
from engine.errors import EngineError
from engine.instruments import Instrument, InstrumentError

_MS = 1_000_000  # Binance stamps events in milliseconds; the engine uses nanoseconds everywhere.

Level = tuple[int, int]  # (price ticks, size lots); size 0 means "level removed" in a diff


class BinanceReason(StrEnum):
    """Reason codes of `BinanceFormatError` (a StrEnum: each member is its string value)."""

    UNKNOWN_MESSAGE = "BINANCE_UNKNOWN_MESSAGE"
    WRONG_SYMBOL = "BINANCE_WRONG_SYMBOL"
    UNKNOWN_EVENT = "BINANCE_UNKNOWN_EVENT"
    BAD_LINE = "BINANCE_BAD_LINE"
    PRICE_NOT_POSITIVE = "PRICE_NOT_POSITIVE"
    QUANTITY_NEGATIVE = "QUANTITY_NEGATIVE"


class BinanceFormatError(EngineError):
    """A line of a Binance capture cannot be read (bad JSON, unknown event, wrong symbol, off-grid value)."""


class DepthDiff(msgspec.Struct, frozen=True, kw_only=True):
    """A `depthUpdate` event: absolute new sizes for the levels touched by update ids U..u."""

    recv_ns: int  # local receive time written by the recorder
    event_ns: int  # exchange event time E
    transact_ns: int  # matching-engine time T
    first_update_id: int  # U
    last_update_id: int  # u
    prev_last_update_id: int  # pu: the `u` of the previous event on this stream; equal to it when nothing was lost
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


class BookTicker(msgspec.Struct, frozen=True, kw_only=True):
    """A `bookTicker` event: the best bid and ask as of order-book update id `update_id`."""

    recv_ns: int
    event_ns: int
    transact_ns: int
    update_id: int  # u, in the same id space as the depth stream's U/u/pu
    bid: int
    bid_size: int
    ask: int
    ask_size: int


class Trade(msgspec.Struct, frozen=True, kw_only=True):
    """A `trade` event (one match)."""

    recv_ns: int
    event_ns: int
    transact_ns: int
    trade_id: int
    price: int
    quantity: int
    aggressor: Side  # `m` is "buyer is the maker": m=true means the seller took liquidity, so SELL
    kind: str  # X: MARKET, or INSURANCE_FUND / ADL liquidations that did not cross the public book


class DepthSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A REST depth snapshot: the full book (up to its depth limit) as of update id `last_update_id`."""

    recv_ns: int
    event_ns: int
    transact_ns: int
    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


BinanceRecord = DepthDiff | BookTicker | Trade | DepthSnapshot


class _Converter:
    """Memoised decimal-string -> int conversions through the instrument (one per reader, not shared)."""

    __slots__ = ("_instrument", "_lots", "_ticks")

    def __init__(self, instrument: Instrument) -> None:
        self._instrument = instrument
        self._ticks: dict[str, int] = {}
        self._lots: dict[str, int] = {}

    def ticks(self, text: str) -> int:
        value = self._ticks.get(text)
        if value is None:
            value = self._instrument.price_to_ticks(text)
            if value <= 0:
                raise InstrumentError(
                    BinanceReason.PRICE_NOT_POSITIVE, f"{self._instrument.symbol}: price {text} is not positive"
                )
            self._ticks[text] = value
        return value

    def lots(self, text: str) -> int:
        value = self._lots.get(text)
        if value is None:
            value = self._instrument.qty_to_lots(text)
            if value < 0:
                raise InstrumentError(
                    BinanceReason.QUANTITY_NEGATIVE, f"{self._instrument.symbol}: quantity {text} is negative"
                )
            self._lots[text] = value
        return value

    def levels(self, raw: list[list[str]]) -> tuple[Level, ...]:
        ticks = self.ticks
        lots = self.lots
        return tuple((ticks(price), lots(size)) for price, size in raw)


def parse_binance_line(line: str | bytes, converter: _Converter, symbol: str) -> BinanceRecord | None:
    """One capture line -> one record; None for events this reader deliberately ignores (none today)."""
    head, _, body = line.partition(b" " if isinstance(line, bytes) else " ")
    recv_ns = int(head)
    message: dict[str, Any] = msgspec.json.decode(body)
    data = message.get("data")
    if data is None:
        if "lastUpdateId" not in message:
            raise BinanceFormatError(
                BinanceReason.UNKNOWN_MESSAGE, f"neither a stream event nor a depth snapshot: {body!r}"
            )
        return DepthSnapshot(
            recv_ns=recv_ns,
            event_ns=message["E"] * _MS,
            transact_ns=message["T"] * _MS,
            last_update_id=message["lastUpdateId"],
            bids=converter.levels(message["bids"]),
            asks=converter.levels(message["asks"]),
        )
    if data.get("s") != symbol:
        raise BinanceFormatError(BinanceReason.WRONG_SYMBOL, f"event for {data.get('s')!r}, reading {symbol!r}")
    event = data.get("e")
    if event == "bookTicker":
        return BookTicker(
            recv_ns=recv_ns,
            event_ns=data["E"] * _MS,
            transact_ns=data["T"] * _MS,
            update_id=data["u"],
            bid=converter.ticks(data["b"]),
            bid_size=converter.lots(data["B"]),
            ask=converter.ticks(data["a"]),
            ask_size=converter.lots(data["A"]),
        )
    if event == "depthUpdate":
        return DepthDiff(
            recv_ns=recv_ns,
            event_ns=data["E"] * _MS,
            transact_ns=data["T"] * _MS,
            first_update_id=data["U"],
            last_update_id=data["u"],
            prev_last_update_id=data["pu"],
            bids=converter.levels(data["b"]),
            asks=converter.levels(data["a"]),
        )
    if event == "trade":
        return Trade(
            recv_ns=recv_ns,
            event_ns=data["E"] * _MS,
            transact_ns=data["T"] * _MS,
            trade_id=data["t"],
            price=converter.ticks(data["p"]),
            quantity=converter.lots(data["q"]),
            aggressor=Side.SELL if data["m"] else Side.BUY,
            kind=data.get("X", "MARKET"),
        )
    raise BinanceFormatError(BinanceReason.UNKNOWN_EVENT, f"unknown event type {event!r}")


def iter_binance_file(path: Path | str, instrument: Instrument) -> Iterator[BinanceRecord]:
    """Records of a capture in file (= local receive) order.

    Raises BinanceFormatError (with the line number) on a line that cannot be read; a recorded file that is
    partly garbage is not something to replay silently.
    """
    converter = _Converter(instrument)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse_binance_line(line, converter, instrument.symbol)
            except EngineError as exc:
                raise BinanceFormatError(exc.code, f"{path}:{number}: {exc.reason}") from None
            except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
                raise BinanceFormatError(BinanceReason.BAD_LINE, f"{path}:{number}: {exc!r}") from None
            if record is not None:
                yield record


class BinanceBookSync:
    """Keeps an L2 book in step with a USD-M futures diff-depth stream, by Binance's rules.

    Binance "How to manage a local order book correctly" (USD-M futures):
    1. buffer the stream's events, then fetch a REST snapshot (`lastUpdateId` = L);
    2. drop buffered events with u < L;
    3. the first event applied must have U <= L <= u;
    4. each later event must have pu == the previous event's u; otherwise the book is broken: re-initialise from
       step 1.
    Sizes are absolute (0 removes the level), so applying a diff is a series of `book.apply(side, price, size)`.

    Repeated and late diffs are expected on a replayed or re-sent stream and are not breaks of the chain: a diff
    whose `u` the book already covers (u <= last_update_id) is dropped and counted in `duplicates`, before the pu
    check, so it can neither be applied twice nor stall the book waiting for a snapshot a replay never gets. A
    diff that arrives ahead of a missing one breaks the chain (a gap) and waits in the buffer; if the missing diff
    then arrives (pu == last_update_id) it is applied, counted in `out_of_order`, and the buffered run after it
    re-syncs the book without a snapshot, as `engine.feed.SequencedFeed` does with a reordered pair.

    With `use_snapshot=False` (a capture without a REST snapshot) the book is filled in progressively from the
    first diff: levels that never change during the capture are simply never known. A break in the pu chain then
    clears the book and the fill starts again.

    Engine (replay) thread only.
    """

    __slots__ = (
        "_buffer",
        "_loaded_snapshot_id",
        "_resumable",
        "book",
        "diffs_applied",
        "diffs_dropped",
        "duplicates",
        "gaps",
        "last_update_id",
        "max_buffer",
        "out_of_order",
        "snapshots_applied",
        "synced",
        "use_snapshot",
    )

    def __init__(self, book: Any, *, use_snapshot: bool = True, max_buffer: int = 10_000) -> None:
        self.book = book
        self.use_snapshot = use_snapshot
        self.max_buffer = max_buffer
        self.synced = False  # True while the book is a faithful copy as of `last_update_id`
        self.last_update_id = 0
        self.gaps = 0
        self.diffs_applied = 0
        self.diffs_dropped = 0  # already covered by the snapshot, or evicted from a full buffer
        self.snapshots_applied = 0
        self.duplicates = 0  # already covered by the book (u <= last_update_id): a repeat or a late copy, dropped
        self.out_of_order = 0  # arrived after a later diff had broken the chain, then filled the hole
        self._buffer: list[DepthDiff] = []
        # True while the book is still a faithful copy as of `last_update_id` although the chain broke after it
        # (snapshot mode only: progressive mode clears the book on a break), so a late diff can still continue it.
        self._resumable = False
        # lastUpdateId of a loaded snapshot still waiting for the diff that spans it (rule 3); None otherwise.
        self._loaded_snapshot_id: int | None = None

    def on_diff(self, diff: DepthDiff) -> bool:
        """Feed one depthUpdate; True when it was applied to the book now."""
        if self.synced or self._resumable:
            if diff.last_update_id <= self.last_update_id:
                # A repeat or a late copy of what the book already holds: not a break in the pu chain.
                self.duplicates += 1
                return False
            if diff.prev_last_update_id == self.last_update_id:
                if self.synced:
                    self._apply(diff)
                    return True
                self.out_of_order += 1  # the late diff that the chain broke on: continue from it
                self._apply(diff)
                self._resume()
                return True
            if self.synced:
                self._lose_sync()
        if not self.use_snapshot:
            self._apply(diff)
            self.synced = True
            return True
        loaded = self._loaded_snapshot_id
        if loaded is not None:
            if diff.last_update_id < loaded:
                self.diffs_dropped += 1  # rule 2
                return False
            self._loaded_snapshot_id = None
            if diff.first_update_id <= loaded:
                self._apply(diff)  # rule 3: the first diff spanning the snapshot
                self.synced = True
                return True
            self.gaps += 1  # the snapshot is older than this diff: updates in between were never seen
        if len(self._buffer) >= self.max_buffer:
            self._buffer.pop(0)
            self.diffs_dropped += 1
        self._buffer.append(diff)
        return False

    def on_snapshot(self, snapshot: DepthSnapshot) -> int:
        """Load a REST snapshot and replay the buffered diffs that follow it; returns how many were applied."""
        if self.synced and snapshot.last_update_id <= self.last_update_id:
            return 0  # the live book is already newer than this snapshot
        self.book.load_snapshot(snapshot.bids, snapshot.asks)
        self.snapshots_applied += 1
        self._loaded_snapshot_id = None
        self._resumable = False
        self.last_update_id = snapshot.last_update_id
        self.synced = False
        pending, self._buffer = self._buffer, []
        applied = 0
        for diff in pending:
            if self.synced and diff.last_update_id <= self.last_update_id:
                self.duplicates += 1  # a second copy of a diff buffered while waiting for this snapshot
                continue
            if not self.synced:
                if diff.last_update_id < snapshot.last_update_id:
                    self.diffs_dropped += 1  # rule 2
                    continue
                if diff.first_update_id > snapshot.last_update_id:
                    # Rule 3 fails: events between the snapshot and this diff were never seen.
                    self._buffer.append(diff)
                    continue
                self._apply(diff)
                self.synced = True
            elif diff.prev_last_update_id == self.last_update_id:
                self._apply(diff)
            else:
                self._lose_sync()
                self._buffer.append(diff)
                continue
            applied += 1
        if not self.synced:
            if self._buffer:
                # The snapshot is older than the first buffered event: wait for a newer one.
                self.gaps += 1
            else:
                self._loaded_snapshot_id = snapshot.last_update_id
        return applied

    @property
    def needs_snapshot(self) -> bool:
        return self.use_snapshot and not self.synced

    def _apply(self, diff: DepthDiff) -> None:
        apply = self.book.apply
        for price, size in diff.bids:
            apply(1, price, size)
        for price, size in diff.asks:
            apply(-1, price, size)
        self.last_update_id = diff.last_update_id
        self.diffs_applied += 1

    def _resume(self) -> None:
        """After a late diff continued the broken chain: apply the buffered diffs that now follow on.

        The book is synced again once nothing is left buffered; a diff still not reachable means a real hole
        (a lost diff), and the book keeps waiting for it or for a snapshot.
        """
        pending = sorted(self._buffer, key=lambda d: d.last_update_id)
        self._buffer = []
        for index, diff in enumerate(pending):
            if diff.last_update_id <= self.last_update_id:
                self.duplicates += 1
            elif diff.prev_last_update_id == self.last_update_id:
                self._apply(diff)
            else:
                self._buffer = pending[index:]
                return
        self.synced = True
        self._resumable = False

    def _lose_sync(self) -> None:
        self.gaps += 1
        self.synced = False
        if self.use_snapshot:
            self._resumable = True
        else:
            # Progressive mode has no snapshot to come back to: start the fill again from an empty book.
            self.book.clear()
