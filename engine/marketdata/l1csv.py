"""Readers for top-of-book (L1) quote CSV files: TrueFX and the header-less HistData tick layout (replay thread).

- TrueFX (as shipped by NautilusTrader's test data): header `timestamp,bid,ask`, timestamps ISO 8601 with an
  explicit offset (`2013-01-01 22:00:00.295000+00:00`).
- HistData.com "tick data" layout: no header, `YYYYMMDD HHMMSSfff,bid,ask,volume`. HistData documents its
  timestamps as EST *without* daylight saving, i.e. a fixed UTC-05:00, so they are converted with that fixed
  offset (never with a DST-aware America/New_York zone, which would shift summer data by an hour).

Prices become ticks through `Instrument.price_to_ticks`; an off-grid price raises rather than rounds.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from enum import StrEnum
from pathlib import Path

import msgspec

from engine.errors import EngineError
from engine.instruments import Instrument

HISTDATA_TZ = timezone(timedelta(hours=-5), "EST")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class L1Reason(StrEnum):
    """Reason codes of `L1FormatError` (a StrEnum: each member is its string value)."""

    PRICE_NOT_POSITIVE = "L1_PRICE_NOT_POSITIVE"
    CROSSED_QUOTE = "L1_CROSSED_QUOTE"
    BAD_HEADER = "L1_BAD_HEADER"
    BAD_ROW = "L1_BAD_ROW"
    BAD_TIMESTAMP = "L1_BAD_TIMESTAMP"


class L1FormatError(EngineError):
    """A quote CSV row that cannot be read (bad timestamp, bad number, off-grid price, crossed quote)."""


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """A top-of-book quote in engine units; sizes are 0 when the source publishes none."""

    ts: int  # UTC, ns since the epoch
    bid: int
    ask: int
    bid_size: int = 0
    ask_size: int = 0


def _ns(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _quote(instrument: Instrument, ts: int, bid: str, ask: str, where: str) -> Quote:
    try:
        bid_ticks = instrument.price_to_ticks(bid)
        ask_ticks = instrument.price_to_ticks(ask)
    except EngineError as exc:
        raise L1FormatError(exc.code, f"{where}: {exc.reason}") from None
    if bid_ticks <= 0 or ask_ticks <= 0:
        raise L1FormatError(L1Reason.PRICE_NOT_POSITIVE, f"{where}: bid {bid} / ask {ask}")
    if bid_ticks > ask_ticks:
        # Locked quotes (bid == ask) do occur in FX aggregators; a crossed one is a broken record.
        raise L1FormatError(L1Reason.CROSSED_QUOTE, f"{where}: bid {bid} above ask {ask}")
    return Quote(ts=ts, bid=bid_ticks, ask=ask_ticks)


def iter_truefx_csv(path: Path | str, instrument: Instrument) -> Iterator[Quote]:
    """Quotes of a TrueFX-style CSV with header `timestamp,bid,ask`."""
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [name.strip() for name in header[:3]] != ["timestamp", "bid", "ask"]:
            raise L1FormatError(L1Reason.BAD_HEADER, f"{path}: expected header timestamp,bid,ask, got {header}")
        for number, row in enumerate(reader, start=2):
            where = f"{path}:{number}"
            if len(row) < 3:
                raise L1FormatError(L1Reason.BAD_ROW, f"{where}: {row}")
            try:
                moment = datetime.fromisoformat(row[0])
            except ValueError:
                raise L1FormatError(L1Reason.BAD_TIMESTAMP, f"{where}: {row[0]!r}") from None
            if moment.tzinfo is None:
                raise L1FormatError(L1Reason.BAD_TIMESTAMP, f"{where}: {row[0]!r} has no UTC offset")
            yield _quote(instrument, _ns(moment), row[1], row[2], where)


def iter_histdata_csv(path: Path | str, instrument: Instrument) -> Iterator[Quote]:
    """Quotes of a header-less HistData tick CSV (`YYYYMMDD HHMMSSfff,bid,ask,volume`), timestamps EST -> UTC."""
    with open(path, newline="") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            where = f"{path}:{number}"
            if len(row) < 3:
                raise L1FormatError(L1Reason.BAD_ROW, f"{where}: {row}")
            stamp = row[0]
            try:
                moment = datetime.strptime(stamp[:15], "%Y%m%d %H%M%S").replace(tzinfo=HISTDATA_TZ)
                millis = int(stamp[15:18])
            except ValueError:
                raise L1FormatError(L1Reason.BAD_TIMESTAMP, f"{where}: {stamp!r}") from None
            if len(stamp) != 18:
                raise L1FormatError(L1Reason.BAD_TIMESTAMP, f"{where}: {stamp!r} is not YYYYMMDD HHMMSSfff")
            yield _quote(instrument, _ns(moment) + millis * 1_000_000, row[1], row[2], where)
