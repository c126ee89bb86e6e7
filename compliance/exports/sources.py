"""What each export reads: one SQL query per kind, with its filters, streamed from a server-side cursor.

Every export reads on its own database connection in one REPEATABLE READ, READ ONLY transaction, so the row count
on the cover, the chain hashes at both ends and the rows themselves all come from the same snapshot, while the
job's progress is written on Django's connection in autocommit (the page sees it as it happens).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import connection

FETCH = 5000


@dataclass(frozen=True)
class Filters:
    """What the officer asked for. Empty strings mean "any"."""

    period_start: datetime
    period_end: datetime
    user: str = ""
    action: str = ""
    strategy_id: str = ""
    symbol: str = ""

    @classmethod
    def from_job(cls, job: Any) -> Filters:
        extra = job.filters or {}
        return cls(
            period_start=job.period_start,
            period_end=job.period_end,
            **{key: str(extra.get(key, "")) for key in ("user", "action", "strategy_id", "symbol")},
        )

    def described(self) -> list[tuple[str, str]]:
        pairs = [
            ("User", self.user),
            ("Action", self.action),
            ("Strategy", self.strategy_id),
            ("Instrument", self.symbol),
        ]
        return [(label, value) for label, value in pairs if value]


@dataclass(frozen=True)
class Source:
    title: str
    header: tuple[str, ...]
    select: str  # SELECT list, FROM and the time column's name are fixed per kind
    table: str
    time_column: str
    order_by: str
    hash_column: str | None  # the chain column whose first and last value go on the cover

    def where(self, filters: Filters) -> tuple[str, list[Any]]:
        clauses = [f"{self.time_column} >= %s", f"{self.time_column} < %s"]
        params: list[Any] = [filters.period_start, filters.period_end]
        if self.table == "compliance_auditevent":
            if filters.user:
                clauses.append("actor_username = %s")
                params.append(filters.user)
            if filters.action:
                clauses.append("action = %s")
                params.append(filters.action)
            # Desk services put the strategy / instrument in `details` or in the target ("strategy:as-btc").
            for key, value in (("strategy_id", filters.strategy_id), ("symbol", filters.symbol)):
                if value:
                    clauses.append(f"(details ->> '{key}' = %s OR details ->> 'scope_name' = %s OR target LIKE %s)")
                    params += [value, value, f"%:{value}"]
        else:
            if filters.strategy_id:
                clauses.append("strategy_id = %s")
                params.append(filters.strategy_id)
            if filters.symbol:
                clauses.append("symbol = %s")
                params.append(filters.symbol)
        return " AND ".join(clauses), params


SOURCES: dict[str, Source] = {
    "audit": Source(
        title="Audit trail",
        header=(
            "id",
            "occurred_at",
            "user",
            "action",
            "target",
            "reason",
            "ip_address",
            "details",
            "row_hash",
        ),
        select=(
            "SELECT id, occurred_at, actor_username, action, target, reason, host(ip_address), details::text,"
            " encode(row_hash, 'hex')"
        ),
        table="compliance_auditevent",
        time_column="occurred_at",
        order_by="id",
        hash_column="row_hash",
    ),
    "orders": Source(
        title="Order history",
        header=(
            "created_at",
            "updated_at",
            "engine_id",
            "client_order_id",
            "strategy_id",
            "symbol",
            "side",
            "order_type",
            "time_in_force",
            "price",
            "quantity",
            "leaves_quantity",
            "cum_quantity",
            "avg_fill_price",
            "status",
            "venue_order_id",
            "code",
            "reason",
        ),
        select=(
            "SELECT created_at, updated_at, engine_id, client_order_id, strategy_id, symbol, side, order_type,"
            " time_in_force, price, quantity, leaves_quantity, cum_quantity, avg_fill_price, status, venue_order_id,"
            " code, reason"
        ),
        table="trading_order",
        time_column="created_at",
        order_by="created_at, id",
        hash_column=None,
    ),
    "fills": Source(
        title="Fill history",
        header=(
            "ts",
            "engine_id",
            "seq",
            "exec_id",
            "client_order_id",
            "strategy_id",
            "symbol",
            "side",
            "price",
            "quantity",
            "commission",
            "is_maker",
            "venue_order_id",
            "leaves_quantity",
            "cum_quantity",
        ),
        select=(
            "SELECT ts, engine_id, seq, exec_id, client_order_id, strategy_id, symbol, side, price, quantity,"
            " commission, is_maker, venue_order_id, leaves_quantity, cum_quantity"
        ),
        table="trading_fill",
        time_column="ts",
        order_by="ts, engine_id, seq",
        hash_column=None,
    ),
    "order_events": Source(
        title="Order events",
        header=(
            "ts",
            "engine_id",
            "seq",
            "kind",
            "client_order_id",
            "strategy_id",
            "symbol",
            "side",
            "price",
            "quantity",
            "leaves_quantity",
            "cum_quantity",
            "code",
            "reason",
            "operator",
            "command_id",
            "row_hash",
        ),
        select=(
            "SELECT ts, engine_id, seq, kind, client_order_id, strategy_id, symbol, side, price, quantity,"
            " leaves_quantity, cum_quantity, code, reason, operator, command_id, encode(row_hash, 'hex')"
        ),
        table="trading_orderevent",
        time_column="ts",
        order_by="engine_id, seq",
        hash_column="row_hash",
    ),
}


@contextmanager
def snapshot_connection() -> Iterator[psycopg.Connection]:
    """A second connection to Django's database, in one read-only REPEATABLE READ transaction, times in UTC."""
    params = connection.get_connection_params()
    conninfo = {key: params[key] for key in ("dbname", "user", "password", "host", "port") if params.get(key)}
    conn = psycopg.connect(**conninfo, autocommit=False)
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SET TIME ZONE 'UTC'")
        yield conn
    finally:
        conn.rollback()
        conn.close()


@dataclass(frozen=True)
class Extent:
    rows: int
    first_hash: str
    last_hash: str


def extent(conn: psycopg.Connection, source: Source, filters: Filters) -> Extent:
    where, params = source.where(filters)
    rows = conn.execute(f"SELECT count(*) FROM {source.table} WHERE {where}", params).fetchone()[0]
    first = last = ""
    if source.hash_column and rows:
        descending = ", ".join(f"{column.strip()} DESC" for column in source.order_by.split(","))
        for order, out in ((source.order_by, "first"), (descending, "last")):
            sql = f"SELECT encode({source.hash_column}, 'hex') FROM {source.table} WHERE {where} ORDER BY {order}"
            value = conn.execute(f"{sql} LIMIT 1", params).fetchone()[0]
            if out == "first":
                first = value
            else:
                last = value
    return Extent(rows=rows, first_hash=first, last_hash=last)


def stream(conn: psycopg.Connection, source: Source, filters: Filters) -> Iterator[tuple]:
    """The rows, in order, FETCH at a time from a named (server-side) cursor: memory stays flat at any size."""
    where, params = source.where(filters)
    with conn.cursor(name=f"export_{source.table}") as cursor:
        cursor.itersize = FETCH
        cursor.execute(f"{source.select} FROM {source.table} WHERE {where} ORDER BY {source.order_by}", params)
        while batch := cursor.fetchmany(FETCH):
            yield from batch
