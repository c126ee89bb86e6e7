"""What the bridge tests compare: the engine's own events and state against the rows the bridge committed."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import psycopg

from engine.enums import OrderStatus, OrderType, Side, TimeInForce
from engine.protocol import (
    CancelOrder,
    InstrumentRegistry,
    MarketTrade,
    OrderFilled,
    SubmitOrder,
    TopOfBookChanged,
)
from tests.conftest import database_url_for_subprocesses
from tests.engine_process import INSTRUMENTS_FILE
from trading.bridge.rows import JOURNALED, ZERO_HASH
from trading.models import Order, OrderEvent

INSTRUMENTS = InstrumentRegistry.from_toml(INSTRUMENTS_FILE)
BTC = INSTRUMENTS.get("BTCUSDT")


def order(engine, cid: str, *, side=Side.BUY, price="60000.0", qty="0.002", tif=TimeInForce.GTC, **extra):
    return engine.command(
        SubmitOrder,
        operator="tina_trader",
        strategy_id="manual",
        client_order_id=cid,
        symbol="BTCUSDT",
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=tif,
        price=Decimal(price),
        quantity=Decimal(qty),
        **extra,
    )


def cancel(engine, cid: str):
    return engine.command(CancelOrder, operator="tina_trader", client_order_id=cid, symbol="BTCUSDT")


def persisted_events(engine, checkpoint: int) -> list:
    """The engine's events up to the bridge's checkpoint, from the engine's own replay."""
    return [env for env in engine.events(1) if env.seq <= checkpoint]


def assert_no_missing_and_no_duplicate_rows(
    engine_id: str, events: list, *, database_url: str | None = None, skip_symbols: tuple[str, ...] = ()
) -> None:
    """Every tick, trade, order event and fill the engine published up to the checkpoint is stored exactly once
    (read with SQL, so it works on any database the bridge wrote to)."""
    events = [e for e in events if getattr(e.event, "symbol", "") not in skip_symbols]
    expected = {
        "trading_tick": [e.seq for e in events if type(e.event) is TopOfBookChanged],
        "trading_trade": [e.seq for e in events if type(e.event) is MarketTrade],
        "trading_orderevent": [e.seq for e in events if type(e.event) in JOURNALED],
        "trading_fill": [e.seq for e in events if type(e.event) is OrderFilled],
    }
    with psycopg.connect(database_url or database_url_for_subprocesses()) as conn:
        for table, seqs in expected.items():
            stored = [
                row[0]
                for row in conn.execute(f"SELECT seq FROM {table} WHERE engine_id = %s ORDER BY seq", (engine_id,))
            ]
            assert stored == seqs, f"{table}: {len(stored)} rows for {len(seqs)} events"


def assert_hash_chain_holds(engine_id: str) -> None:
    prev = ZERO_HASH
    for row in OrderEvent.objects.filter(engine_id=engine_id).order_by("seq"):
        assert bytes(row.prev_hash) == prev, f"chain broken at seq {row.seq}"
        assert bytes(row.row_hash) == hashlib.sha256(prev + bytes(row.payload)).digest()
        prev = bytes(row.row_hash)


def working_orders_in_db(engine_id: str) -> dict[str, tuple]:
    working = [s.name for s in (OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)]
    working += [OrderStatus.PENDING_CANCEL.name, OrderStatus.PENDING_REPLACE.name]
    rows = Order.objects.filter(engine_id=engine_id, status__in=working)
    return {o.client_order_id: (o.status, o.side, o.price, o.quantity, o.leaves_quantity, o.cum_quantity) for o in rows}


def working_orders_in_engine(snapshot) -> dict[str, tuple]:
    out = {}
    for o in snapshot.orders:
        inst = INSTRUMENTS.get(o.symbol)
        out[o.client_order_id] = (
            OrderStatus(o.status).name,
            Side(o.side).name,
            inst.ticks_to_price(o.price),
            inst.lots_to_qty(o.quantity),
            inst.lots_to_qty(o.leaves_quantity),
            inst.lots_to_qty(o.cum_quantity),
        )
    return out
