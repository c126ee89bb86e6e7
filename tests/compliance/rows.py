"""Rows in the bridge's tables, written the way the bridge writes them (the bridge itself is another helper's)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection

from compliance.chain import GENESIS

BASE_NS = 1_790_000_000_000_000_000


def ts(ns: int) -> datetime:
    """As the bridge stores it: PostgreSQL keeps whole microseconds (the epoch + ns // 1000)."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


def insert_order(
    *,
    engine_id: str,
    client_order_id: str,
    strategy_id: str = "as-btc",
    symbol: str = "BTCUSDT",
    side: str = "BUY",
    price: str = "60000",
    quantity: str = "0.002",
    leaves: str | None = None,
    cum: str = "0",
    status: str = "NEW",
    created: datetime | None = None,
    last_seq: int = 1,
    order_type: str = "LIMIT",
    time_in_force: str = "GTC",
) -> None:
    created = created or datetime.now(UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_order (engine_id, client_order_id, strategy_id, symbol, side, order_type,"
            " time_in_force, price, quantity, leaves_quantity, cum_quantity, status, venue_order_id, post_only,"
            " created_at, updated_at, created_ts_ns, updated_ts_ns, last_seq, code, reason, command_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 0, false, %s, %s, %s, %s, %s, '', '', '')",
            [
                engine_id,
                client_order_id,
                strategy_id,
                symbol,
                side,
                order_type,
                time_in_force,
                Decimal(price),
                Decimal(quantity),
                Decimal(leaves if leaves is not None else quantity),
                Decimal(cum),
                status,
                created,
                created,
                int(created.timestamp() * 1e9),
                int(created.timestamp() * 1e9),
                last_seq,
            ],
        )


def insert_position(*, engine_id: str, strategy_id: str, symbol: str, quantity: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_position (engine_id, strategy_id, symbol, quantity, avg_price, realized_pnl,"
            " unrealized_pnl, fees, last_seq, updated_at) VALUES (%s, %s, %s, %s, 0, 0, 0, 0, 1, now())",
            [engine_id, strategy_id, symbol, Decimal(quantity)],
        )


def insert_fill(
    *,
    engine_id: str,
    seq: int,
    exec_id: str,
    client_order_id: str,
    quantity: str,
    side: str = "BUY",
    price: str = "60000",
    strategy_id: str = "as-btc",
    symbol: str = "BTCUSDT",
    when: datetime | None = None,
) -> None:
    when = when or datetime.now(UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_fill (engine_id, seq, ts, ts_ns, exec_id, client_order_id, strategy_id, symbol,"
            " side, price, quantity) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                engine_id,
                seq,
                when,
                int(when.timestamp() * 1e9),
                exec_id,
                client_order_id,
                strategy_id,
                symbol,
                side,
                Decimal(price),
                Decimal(quantity),
            ],
        )


class OrderEventWriter:
    """Appends chained order events for one engine, as the bridge does: row_hash = sha256(prev_hash || payload)."""

    def __init__(self, engine_id: str, *, start_ns: int = BASE_NS) -> None:
        self.engine_id = engine_id
        self.seq = 0
        self.prev = GENESIS
        self.ns = start_ns

    def add(self, kind: str, client_order_id: str, *, columns: dict | None = None, **event) -> int:
        self.seq += 1
        self.ns += 1_000_000
        columns = {"strategy_id": "as-btc", "symbol": "BTCUSDT", "side": ""} | (columns or {})
        body = {"type": kind, "v": 1, "client_order_id": client_order_id} | {
            key: columns[key] for key in ("strategy_id", "symbol")
        }
        payload = json.dumps(
            {
                "type": "EventEnvelope",
                "v": 1,
                "engine_id": self.engine_id,
                "seq": self.seq,
                "ts": self.ns,
                "event": body | event,
            }
        ).encode()
        row_hash = hashlib.sha256(self.prev + payload).digest()
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO trading_orderevent (engine_id, seq, ts, ts_ns, kind, client_order_id, strategy_id,"
                " symbol, side, price, quantity, leaves_quantity, cum_quantity, command_id, payload, prev_hash,"
                " row_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    self.engine_id,
                    self.seq,
                    ts(self.ns),
                    self.ns,
                    kind,
                    client_order_id,
                    columns["strategy_id"],
                    columns["symbol"],
                    columns["side"],
                    _dec(columns.get("price")),
                    _dec(columns.get("quantity")),
                    _dec(columns.get("leaves")),
                    _dec(columns.get("cum")),
                    columns.get("command_id", ""),
                    payload,
                    self.prev,
                    row_hash,
                ],
            )
        self.prev = row_hash
        return self.seq


def _dec(value) -> Decimal | None:
    return None if value is None else Decimal(value)
