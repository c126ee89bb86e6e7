"""Reading the three sides of a reconciliation: the engine (state snapshot), the venue (QueryVenueOrders, answered
on the event stream) and the database (trading_order, trading_position, trading_fill).

Runs in a Celery worker thread; opens its own engine sockets (never shared) and closes them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection

from compliance.reconciliation.compare import WORKING, OrderView, PositionKey, Sides, VenueView
from console.engine_client import EngineClient, EngineClientError, EventSubscriber, new_command_id
from engine.protocol import (
    CommandAccepted,
    QueryVenueOrders,
    Scope,
    ScopeKind,
    StateSnapshot,
    VenueOrderStatus,
    VenueStatusComplete,
)

OPERATOR = "compliance"


class CollectError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass
class EngineSide:
    engine_id: str
    seq: int
    orders: dict[str, OrderView]
    positions: dict[PositionKey, Decimal]


def engine_side(client: EngineClient) -> EngineSide:
    try:
        snapshot = client.snapshot(operator=OPERATOR)
    except EngineClientError as exc:
        raise CollectError(exc.code, exc.reason) from None
    if type(snapshot) is not StateSnapshot:
        raise CollectError(getattr(snapshot, "code", "ENGINE_REFUSED"), getattr(snapshot, "reason", "no snapshot"))
    instruments = client.codec.instruments
    orders = {}
    for order in snapshot.orders:
        lots = instruments.get(order.symbol).lots_to_qty
        orders[order.client_order_id] = OrderView(
            client_order_id=order.client_order_id,
            strategy_id=order.strategy_id,
            symbol=order.symbol,
            status=order.status.name,
            leaves=lots(order.leaves_quantity),
            cum=lots(order.cum_quantity),
        )
    positions = {
        (p.strategy_id, p.symbol): instruments.get(p.symbol).lots_to_qty(p.quantity) for p in snapshot.positions
    }
    return EngineSide(engine_id=snapshot.engine_id, seq=snapshot.seq, orders=orders, positions=positions)


def venue_side(client: EngineClient, *, after_seq: int, timeout_s: float) -> tuple[list[VenueView], tuple[str, ...]]:
    """Ask the venue (through the engine) about every working order; collect the answers from the event stream.

    The subscriber starts at the snapshot's seq, so every answer published after it is seen exactly once: live, or
    by replay when the subscription joined late (a ZeroMQ SUB misses what was published before it connected).
    """
    subscriber = EventSubscriber.from_settings(client, operator=OPERATOR, last_seq=after_seq)
    try:
        command = QueryVenueOrders(
            command_id=new_command_id(), operator=OPERATOR, ts=time.time_ns(), scope=Scope(kind=ScopeKind.FIRM)
        )
        try:
            reply = client.request(command)
        except EngineClientError as exc:
            raise CollectError(exc.code, exc.reason) from None
        if type(reply) is not CommandAccepted:
            raise CollectError(getattr(reply, "code", "ENGINE_REFUSED"), getattr(reply, "reason", ""))
        instruments = client.codec.instruments
        answers: list[VenueView] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            events = subscriber.poll(timeout_ms=200)
            if not events:
                # Nothing live: pull whatever the engine has published since (the answers may all be out already).
                events = [e for e in client.replay(subscriber.last_seq + 1, operator=OPERATOR)]
                if events:
                    subscriber.last_seq = events[-1].seq
            for envelope in events:
                event = envelope.event
                if getattr(event, "command_id", None) != command.command_id:
                    continue
                if type(event) is VenueOrderStatus:
                    lots = instruments.get(event.symbol).lots_to_qty
                    answers.append(
                        VenueView(
                            client_order_id=event.client_order_id,
                            strategy_id=event.strategy_id,
                            symbol=event.symbol,
                            known=event.known,
                            status=event.status.name,
                            leaves=lots(event.leaves_quantity),
                            cum=lots(event.cum_quantity),
                            engine_status=event.engine_status.name if event.engine_status is not None else "",
                            engine_leaves=lots(event.engine_leaves_quantity),
                            engine_cum=lots(event.engine_cum_quantity),
                        )
                    )
                elif type(event) is VenueStatusComplete:
                    return answers, tuple(event.unanswered)
        raise CollectError("VENUE_QUERY_TIMEOUT", f"no VenueStatusComplete within {timeout_s:g} s")
    finally:
        subscriber.close()


def wait_for_bridge(engine_id: str, seq: int, *, timeout_s: float) -> int | None:
    """The bridge's checkpoint for `engine_id` once it reaches `seq`, or the last one seen at the timeout (None when
    there is no bridge checkpoint at all): comparing against a database that lags would report in-flight rows."""
    deadline = time.monotonic() + timeout_s
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT last_seq FROM trading_bridgecheckpoint WHERE engine_id = %s", [engine_id])
            row = cursor.fetchone()
        if row is None or row[0] >= seq or time.monotonic() >= deadline:
            return row[0] if row else None
        time.sleep(0.1)


def db_side(engine_id: str, engine_orders: dict[str, OrderView], *, through_seq: int) -> Sides:
    """The database's orders, positions and fills for one engine (the Sides without the engine/venue parts)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT client_order_id, strategy_id, symbol, status, leaves_quantity, cum_quantity, last_seq"
            " FROM trading_order WHERE engine_id = %s AND (status = ANY(%s) OR client_order_id = ANY(%s))",
            [engine_id, sorted(WORKING), list(engine_orders)],
        )
        db_orders = {row[0]: OrderView(*row) for row in cursor.fetchall()}
        cursor.execute("SELECT strategy_id, symbol, quantity FROM trading_position WHERE engine_id = %s", [engine_id])
        db_positions = {(s, sym): qty for s, sym, qty in cursor.fetchall()}
        # Fills up to the snapshot's seq only: later ones are not in the engine's positions yet either.
        cursor.execute(
            "SELECT strategy_id, symbol, sum(CASE WHEN side = 'BUY' THEN quantity ELSE -quantity END)"
            " FROM trading_fill WHERE engine_id = %s AND seq <= %s GROUP BY strategy_id, symbol",
            [engine_id, through_seq],
        )
        fill_positions = {(s, sym): qty for s, sym, qty in cursor.fetchall()}
        window = int(getattr(settings, "COMPLIANCE_RECON_FILL_WINDOW_S", 86400))
        cursor.execute(
            "SELECT f.exec_id, f.client_order_id, f.strategy_id, f.symbol FROM trading_fill f"
            " WHERE f.engine_id = %s AND f.seq <= %s AND f.ts >= now() - make_interval(secs => %s)"
            " AND NOT EXISTS (SELECT 1 FROM trading_order o"
            "   WHERE o.engine_id = f.engine_id AND o.client_order_id = f.client_order_id)"
            " ORDER BY f.ts LIMIT 1000",
            [engine_id, through_seq, window],
        )
        orphans = [tuple(row) for row in cursor.fetchall()]
    return Sides(
        engine_seq=through_seq,
        engine_orders={},
        engine_positions={},
        db_orders=db_orders,
        db_positions={k: v for k, v in db_positions.items() if v != 0},
        fill_positions={k: v for k, v in fill_positions.items() if v != 0},
        fills_without_order=orphans,
    )
