"""Reader for Databento MBO (market-by-order) files and their replay into an L3 book (replay thread).

Files are DBN (Databento Binary Encoding), usually zstd-compressed (`.dbn.zst`). `databento_dbn.DBNDecoder`
decompresses zstd itself (`compression=Compression.ZSTD`), so no separate zstd package is needed.

DBN prices are int64 fixed point at 1e-9 (`UNDEF_PRICE` = int64 max when absent); they become instrument ticks
through `Instrument.price_to_ticks`, which refuses an off-grid price instead of rounding it.

Action semantics (Databento MBO, as published for CME Globex / GLBX.MDP3):
- R clear: empty the book (a snapshot follows as A records flagged F_SNAPSHOT);
- A add, C cancel (size = the amount cancelled, possibly partial), M modify (new price and size; a price change
  or size increase loses queue priority);
- T trade (the aggressor's side; the aggressor never rested) and F fill (the resting order's side) are prints
  only: they do NOT change the book. CME sends the resulting reduction of the resting order as a separate C or
  M record right after the F, so applying F as well would remove the liquidity twice.
Records carry F_LAST on the last record of one venue event; the book is only guaranteed consistent (e.g.
uncrossed) at those boundaries.

Sequence numbers (`MboSequenceCheck`, one per replayed stream): `sequence` is the venue's message sequence number,
shared by every record of one venue message, so live records come in non-decreasing order. As in the other feeds, a
record that repeats one already applied (same sequence, same content) is a duplicate and a record below the last
sequence is late: both are dropped and counted, never applied twice or out of order. A skip forward is counted as a
gap but not acted on: a file has no snapshot to ask for, and on CME the sequence is the channel's, so a
single-instrument file also skips numbers taken by other instruments' messages (the counter is an upper bound on
loss). Snapshot records (F_SNAPSHOT) carry each order's own last sequence, not a stream position, and are exempt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import databento_dbn
import msgspec

from engine.book import BookError, L3Book
from engine.enums import BookAction, Side
from engine.errors import EngineError
from engine.instruments import Instrument

_ACTIONS = {
    "A": BookAction.ADD,
    "C": BookAction.CANCEL,
    "M": BookAction.MODIFY,
    "R": BookAction.CLEAR,
    "T": BookAction.TRADE,
    "F": BookAction.FILL,
}
_SIDE_BY_LETTER = {"B": Side.BUY, "A": Side.SELL, "N": 0}  # DBN side letters; N (none) on clears and some trades
F_LAST = databento_dbn.F_LAST
F_SNAPSHOT = databento_dbn.F_SNAPSHOT
UNDEF_PRICE = databento_dbn.UNDEF_PRICE


class DatabentoReason(StrEnum):
    """Reason codes of `DatabentoFormatError` (a StrEnum: each member is its string value)."""

    WRONG_SCHEMA = "DBN_WRONG_SCHEMA"
    MIXED_INSTRUMENTS = "DBN_MIXED_INSTRUMENTS"
    UNKNOWN_ACTION = "DBN_UNKNOWN_ACTION"


class DatabentoFormatError(EngineError):
    """A DBN file or record this reader cannot use (wrong schema, unknown action, off-grid price)."""


class MboEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One MBO record in engine units."""

    ts_recv: int  # capture-server receive time, UNIX ns
    ts_event: int  # matching-engine time, UNIX ns
    action: BookAction
    side: int  # 1 bid, -1 ask, 0 none (clear records, some trades)
    order_id: int
    price: int | None  # ticks; None when the record has no price (UNDEF_PRICE)
    size: int  # lots
    flags: int  # F_LAST, F_SNAPSHOT, ... bit set as published
    sequence: int  # venue message sequence number
    instrument_id: int


def _decode(path: Path | str) -> list[Any]:
    raw = Path(path).read_bytes()
    compression = databento_dbn.Compression.ZSTD if str(path).endswith(".zst") else databento_dbn.Compression.NONE
    decoder = databento_dbn.DBNDecoder(compression=compression)
    decoder.write(raw)
    return decoder.decode()


def iter_mbo_file(path: Path | str, instrument: Instrument, *, instrument_id: int | None = None) -> Iterator[MboEvent]:
    """MBO records of a DBN file in file order, converted to ticks/lots of `instrument`.

    `instrument_id` filters a multi-instrument file; None accepts a single-instrument file only (a second id
    raises, since mixing two instruments into one book would be silent corruption).
    """
    records = _decode(path)
    metadata = records[0] if records and isinstance(records[0], databento_dbn.Metadata) else None
    if metadata is not None and metadata.schema != databento_dbn.Schema.MBO:
        raise DatabentoFormatError(DatabentoReason.WRONG_SCHEMA, f"{path}: schema {metadata.schema}, expected mbo")
    ticks_by_price: dict[int, int] = {}
    seen_id = instrument_id
    for record in records[1:] if metadata is not None else records:
        if not isinstance(record, databento_dbn.MBOMsg):
            continue  # system / symbol-mapping records carry no book information
        if seen_id is None:
            seen_id = record.instrument_id
        elif record.instrument_id != seen_id:
            if instrument_id is not None:
                continue
            raise DatabentoFormatError(
                DatabentoReason.MIXED_INSTRUMENTS,
                f"{path}: instrument ids {seen_id} and {record.instrument_id} in one file",
            )
        action = _ACTIONS.get(str(record.action.value))
        if action is None:
            raise DatabentoFormatError(DatabentoReason.UNKNOWN_ACTION, f"{path}: action {record.action!r}")
        raw_price = record.price
        if raw_price == UNDEF_PRICE:
            price = None
        else:
            price = ticks_by_price.get(raw_price)
            if price is None:
                # Exact: 1e-9 fixed point scaled as a Decimal, then the instrument refuses anything off its grid.
                price = instrument.price_to_ticks(Decimal(raw_price).scaleb(-9))
                ticks_by_price[raw_price] = price
        yield MboEvent(
            ts_recv=record.ts_recv,
            ts_event=record.ts_event,
            action=action,
            side=_SIDE_BY_LETTER[str(record.side.value)],
            order_id=record.order_id,
            price=price,
            size=record.size,
            flags=int(record.flags),
            sequence=record.sequence,
            instrument_id=record.instrument_id,
        )


@dataclass
class MboReplayStats:
    """What a replay did: records per action, what was applied, what was refused, and the book's health."""

    actions: Counter[str] = field(default_factory=Counter)  # per action letter, as SOURCES.md counts them
    snapshot_records: int = 0
    applied: int = 0  # book operations performed (A, C, M, R)
    prints: int = 0  # T and F records (not applied to the book)
    refused: Counter[str] = field(default_factory=Counter)  # BookError code -> count
    modify_of_unknown_order: int = 0
    crossed_at_event_end: int = 0  # F_LAST boundaries at which the book was crossed
    events: int = 0  # F_LAST boundaries seen
    sequence_gaps: int = 0  # live records whose sequence skipped past last + 1 (an upper bound on lost messages)
    duplicates: int = 0  # live records repeating one already applied under the same sequence: dropped
    out_of_order: int = 0  # live records with a sequence below the last one seen: dropped


_LETTER = {value: key for key, value in _ACTIONS.items()}


class MboSequenceCheck:
    """Sequence check of one MBO stream (one instrument's records, in file order); replay thread only.

    `admit(event, stats)` says whether a record may be applied, counting gaps, duplicates and late records in
    `stats` (see the module docstring for the rules).
    """

    __slots__ = ("_seen", "last_sequence")

    def __init__(self) -> None:
        self.last_sequence = 0  # highest live sequence seen; 0 = none yet
        # Identities of the records applied under `last_sequence`: one venue message yields several records with the
        # same sequence, so a repeat is recognised by content, not by number alone.
        self._seen: set[tuple] = set()

    def admit(self, event: MboEvent, stats: MboReplayStats) -> bool:
        if event.flags & F_SNAPSHOT:
            return True
        sequence = event.sequence
        last = self.last_sequence
        # ts_recv is left out: a re-received copy is stamped again by the capture server.
        identity = (event.action, event.side, event.order_id, event.price, event.size, event.flags, event.ts_event)
        if sequence == last:
            # Trade prints are not deduplicated: an aggressor sweeping equal orders at one price legitimately
            # yields identical T records in one message, and a print never changes the book.
            if identity in self._seen and event.action is not BookAction.TRADE:
                stats.duplicates += 1
                return False
            self._seen.add(identity)
            return True
        if sequence < last:
            stats.out_of_order += 1
            return False
        if last and sequence > last + 1:
            stats.sequence_gaps += 1
        self.last_sequence = sequence
        self._seen = {identity}
        return True


def replay_mbo(
    path: Path | str, instrument: Instrument, *, book: Any = None, instrument_id: int | None = None
) -> tuple[Any, MboReplayStats]:
    """Drive an L3 book (a new L3Book unless given) from an MBO file; returns (book, stats).

    A record the book refuses (BookError) is counted by reason code and skipped: the book is left unchanged by
    the refused operation, and a clean file produces none. Duplicate and late records are dropped by sequence.
    """
    book = L3Book(instrument.symbol) if book is None else book
    stats = MboReplayStats()
    sequence = MboSequenceCheck()
    for event in iter_mbo_file(path, instrument, instrument_id=instrument_id):
        apply_mbo_event(book, event, stats, sequence=sequence)
    return book, stats


def apply_mbo_event(
    book: Any, event: MboEvent, stats: MboReplayStats, *, sequence: MboSequenceCheck | None = None
) -> None:
    """Apply one MBO record to an L3 book with Databento's semantics, counting it in `stats`.

    With `sequence` (the stream's MboSequenceCheck) a duplicate or late record is counted and not applied.
    """
    if sequence is not None and not sequence.admit(event, stats):
        return
    action = event.action
    stats.actions[_LETTER[action]] += 1
    if event.flags & F_SNAPSHOT:
        stats.snapshot_records += 1
    try:
        if action is BookAction.ADD:
            book.add(event.order_id, event.side, event.price, event.size)
            stats.applied += 1
        elif action is BookAction.CANCEL:
            book.cancel(event.order_id, event.size)
            stats.applied += 1
        elif action is BookAction.MODIFY:
            try:
                book.order(event.order_id)
            except BookError:
                # Databento: a modify for an order not in the book means it rested before the data began
                # (no snapshot): treat it as an add.
                stats.modify_of_unknown_order += 1
                book.add(event.order_id, event.side, event.price, event.size)
            else:
                book.modify(event.order_id, event.price, event.size)
            stats.applied += 1
        elif action is BookAction.CLEAR:
            book.clear()
            stats.applied += 1
        else:
            stats.prints += 1
    except BookError as exc:
        stats.refused[exc.code] += 1
    if event.flags & F_LAST:
        stats.events += 1
        if book.is_crossed():
            stats.crossed_at_event_end += 1
