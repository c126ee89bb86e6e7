"""A day of trading data loaded with COPY: 1 M ticks, 100 K orders with their events and fills, P&L snapshots.

Deterministic (seeded) and spread over the 24 hours before `end`, so it covers the partitions of two days and
the bar views' windows. Used by the query-plan test and by bench/selectors.py.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

SYMBOLS = ("BTCUSDT", "ETHUSDT", "ESM4", "USDJPY", "EURUSD")
MIDS = {"BTCUSDT": 65000.0, "ETHUSDT": 3500.0, "ESM4": 5300.0, "USDJPY": 155.0, "EURUSD": 1.08}
STRATEGIES = ("as-btc", "as-eth", "glft-es", "as-fx")
ENGINE = "engine-bench"
WORKING = 40  # orders still working at the end of the day


@dataclass(frozen=True)
class DayOfData:
    start: dt.datetime
    end: dt.datetime
    ticks: int
    orders: int
    events: int
    fills: int


def _copy(cursor, table: str, columns: str, rows) -> int:
    count = 0
    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def load_day(cursor, *, end: dt.datetime, ticks: int = 1_000_000, orders: int = 100_000, seed: int = 6) -> DayOfData:
    """COPY the day into the tables through `cursor` (a psycopg 3 cursor). Call ANALYZE afterwards."""
    rng = random.Random(seed)
    start = end - dt.timedelta(days=1)
    span_us = 86_400_000_000

    def at(fraction: float) -> dt.datetime:
        return start + dt.timedelta(microseconds=int(fraction * span_us))

    def tick_rows():
        mids = dict(MIDS)
        for i in range(ticks):
            symbol = SYMBOLS[i % len(SYMBOLS)]
            mids[symbol] *= 1 + rng.gauss(0, 0.0001)
            mid = mids[symbol]
            ts = at(i / ticks)
            yield (ENGINE, i + 1, ts, 0, symbol, f"{mid * 0.9999:.5f}", "1.5", f"{mid * 1.0001:.5f}", "2.25")

    tick_count = _copy(
        cursor,
        "trading_tick",
        "engine_id, seq, ts, ts_ns, symbol, bid_price, bid_size, ask_price, ask_size",
        tick_rows(),
    )

    order_rows, event_rows, fill_rows = [], [], []
    seq = ticks
    for i in range(orders):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        strategy = STRATEGIES[i % len(STRATEGIES)]
        side = "BUY" if rng.random() < 0.5 else "SELL"
        price = f"{MIDS[symbol]:.5f}"
        created = at(i / orders)
        working = i >= orders - WORKING
        filled = not working and i % 2 == 0
        status = "NEW" if working else ("FILLED" if filled else "CANCELED")
        cum = "1" if filled else "0"
        leaves = "1" if working else "0"
        updated = created + dt.timedelta(milliseconds=rng.randint(1, 500))
        clordid = f"o{i}"
        seq += 1
        order_rows.append(
            (
                ENGINE,
                clordid,
                strategy,
                symbol,
                side,
                "LIMIT",
                "GTC",
                price,
                "1",
                leaves,
                cum,
                price if filled else None,
                status,
                i + 1,
                False,
                created,
                updated,
                0,
                0,
                seq + 2,
                "",
                "",
                "",
            )
        )
        kinds = ["OrderSubmitted", "OrderAccepted"] + (
            [] if working else ["OrderFilled" if filled else "OrderCanceled"]
        )
        for n, kind in enumerate(kinds):
            ts = created if n == 0 else updated
            event_rows.append(
                (
                    ENGINE,
                    seq + n,
                    ts,
                    0,
                    kind,
                    clordid,
                    strategy,
                    symbol,
                    side,
                    price,
                    "1",
                    leaves,
                    cum,
                    b"{}",
                    bytes(32),
                    bytes(32),
                )
            )
        if filled:
            fill_rows.append(
                (
                    ENGINE,
                    seq + 2,
                    updated,
                    0,
                    f"x{i}",
                    clordid,
                    strategy,
                    symbol,
                    side,
                    price,
                    "1",
                    "0.01",
                    True,
                    i + 1,
                    "0",
                    "1",
                )
            )
        seq += len(kinds)

    _copy(
        cursor,
        "trading_order",
        "engine_id, client_order_id, strategy_id, symbol, side, order_type, time_in_force, price, quantity,"
        " leaves_quantity, cum_quantity, avg_fill_price, status, venue_order_id, post_only, created_at, updated_at,"
        " created_ts_ns, updated_ts_ns, last_seq, code, reason, command_id",
        order_rows,
    )
    _copy(
        cursor,
        "trading_orderevent",
        "engine_id, seq, ts, ts_ns, kind, client_order_id, strategy_id, symbol, side, price, quantity,"
        " leaves_quantity, cum_quantity, payload, prev_hash, row_hash",
        event_rows,
    )
    _copy(
        cursor,
        "trading_fill",
        "engine_id, seq, ts, ts_ns, exec_id, client_order_id, strategy_id, symbol, side, price, quantity, commission,"
        " is_maker, venue_order_id, leaves_quantity, cum_quantity",
        fill_rows,
    )

    scopes = [("FIRM", "")] + [("STRATEGY", s) for s in STRATEGIES] + [("INSTRUMENT", s) for s in SYMBOLS]
    pnl_rows = []
    for second in range(0, 86_400, 10):
        for kind, name in scopes:
            seq += 1
            pnl_rows.append(
                (ENGINE, seq, start + dt.timedelta(seconds=second), kind, name, str(second), "1.5", "0.2", "")
            )
    _copy(
        cursor,
        "trading_pnlsnapshot",
        "engine_id, seq, ts, scope_kind, scope_name, realized_pnl, unrealized_pnl, fees, currency",
        pnl_rows,
    )
    position_rows = [
        (ENGINE, strategy, symbol, str(n - 5), "100", "0", "0", "0", n, end)
        for n, (strategy, symbol) in enumerate((s, y) for s in STRATEGIES for y in SYMBOLS)
    ]
    _copy(
        cursor,
        "trading_position",
        "engine_id, strategy_id, symbol, quantity, avg_price, realized_pnl, unrealized_pnl, fees, last_seq, updated_at",
        position_rows,
    )
    return DayOfData(start, end, tick_count, len(order_rows), len(event_rows), len(fill_rows))
