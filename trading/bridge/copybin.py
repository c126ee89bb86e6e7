"""Binary COPY records for trading_tick, built straight from TopOfBookChanged events (the commit thread only).

Ticks are most of the stream, and psycopg's `Copy.write_row` costs several microseconds a row (Python layers,
then a dumper per value). A tick row is nine fields, and the expensive ones repeat: the engine id and the symbol
are constant, and prices and sizes come from a small set of tick and lot counts. So each field is encoded once
(numerics by psycopg's own numeric binary dumper, so the bytes are psycopg's), memoised with its length prefix,
and a row is one `struct.pack` for the three integers plus a join. The records go out through the public
`Copy.write` inside the same `COPY ... FROM STDIN (FORMAT BINARY)`, framed with the header and trailer of
PostgreSQL's binary COPY format (https://www.postgresql.org/docs/15/sql-copy.html, "Binary Format").
"""

from __future__ import annotations

import struct
from decimal import Decimal

import psycopg
from psycopg.adapt import PyFormat

from trading.bridge.rows import Units

# PostgreSQL's binary COPY framing: signature, flags (0), header extension length (0) ... trailer (-1 as int16).
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
TICK_COLUMNS = ("engine_id", "seq", "ts", "ts_ns", "symbol", "bid_price", "bid_size", "ask_price", "ask_size")
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z, where timestamptz counts microseconds from
NULL = struct.pack(">i", -1)
_INTEGERS = struct.Struct(">iqiqiq")  # seq (int8), ts (timestamptz: int8 us since 2000), ts_ns (int8)
MEMO_LIMIT = 100_000


def _field(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


class TickEncoder:
    """One binary COPY record per TopOfBookChanged, columns in TICK_COLUMNS order."""

    def __init__(self, engine_id: str, units: Units) -> None:
        self._dump_numeric = psycopg.adapters.get_dumper(Decimal, PyFormat.BINARY)(Decimal).dump
        self._row_head = struct.pack(">h", len(TICK_COLUMNS)) + _field(engine_id.encode())
        self.units = units
        # symbol -> (its encoded field, {ticks: encoded price}, {lots: encoded size})
        self._memo: dict[str, tuple[bytes, dict[int, bytes], dict[int, bytes]]] = {}

    def _numeric(self, value: Decimal) -> bytes:
        return _field(bytes(self._dump_numeric(value)))

    def _symbol(self, symbol: str) -> tuple[bytes, dict[int, bytes], dict[int, bytes]]:
        memo = self._memo[symbol] = (_field(symbol.encode()), {}, {})
        return memo

    def _price(self, symbol: str, ticks: int) -> bytes:
        prices = self._memo[symbol][1]
        if len(prices) >= MEMO_LIMIT:
            prices.clear()
        price = prices[ticks] = self._numeric(self.units.price(symbol, ticks))
        return price

    def _qty(self, symbol: str, lots: int) -> bytes:
        qtys = self._memo[symbol][2]
        if len(qtys) >= MEMO_LIMIT:
            qtys.clear()
        qty = qtys[lots] = self._numeric(self.units.qty(symbol, lots))
        return qty

    def record(self, seq: int, ts_ns: int, event, _pack=_INTEGERS.pack, _epoch=PG_EPOCH_US) -> bytes:
        # The hot path of the commit thread (one call per tick): straight-line, memo hits only.
        symbol = event.symbol
        memo = self._memo.get(symbol) or self._symbol(symbol)
        encoded_symbol, prices, qtys = memo
        ticks, lots = event.bid_price, event.bid_size
        if ticks or lots:
            bid = prices.get(ticks) or self._price(symbol, ticks)
            bid_size = qtys.get(lots) or self._qty(symbol, lots)
        else:  # an empty side: NULL price and size
            bid = bid_size = NULL
        ticks, lots = event.ask_price, event.ask_size
        if ticks or lots:
            ask = prices.get(ticks) or self._price(symbol, ticks)
            ask_size = qtys.get(lots) or self._qty(symbol, lots)
        else:
            ask = ask_size = NULL
        integers = _pack(8, seq, 8, ts_ns // 1000 - _epoch, 8, ts_ns)
        return b"".join((self._row_head, integers, encoded_symbol, bid, bid_size, ask, ask_size))
