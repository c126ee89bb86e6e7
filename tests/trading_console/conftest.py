"""Rows for the trading desk pages, written the way the bridge writes them (ORM for current state, SQL for the
append-only partitioned tables), so the pages are tested on the real schema without an engine."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

ENGINE_ID = "engine-t"


def insert_fill(
    *,
    seq: int,
    ts: dt.datetime,
    exec_id: str,
    client_order_id: str,
    side: str,
    price: str,
    quantity: str,
    strategy_id: str = "as-btc",
    symbol: str = "BTCUSDT",
    commission: str = "0.01",
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_fill (engine_id, seq, ts, ts_ns, exec_id, client_order_id, strategy_id, symbol, side,"
            " price, quantity, commission, is_maker, venue_order_id, leaves_quantity, cum_quantity)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, true, 7, 0, %s)",
            [
                ENGINE_ID,
                seq,
                ts,
                int(ts.timestamp() * 1e9),
                exec_id,
                client_order_id,
                strategy_id,
                symbol,
                side,
                price,
                quantity,
                commission,
                quantity,
            ],
        )


def insert_tick(*, seq: int, ts: dt.datetime, bid: str, ask: str, symbol: str = "BTCUSDT") -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol, bid_price, bid_size, ask_price, ask_size)"
            " VALUES (%s, %s, %s, %s, %s, %s, 1.5, %s, 2.25)",
            [ENGINE_ID, seq, ts, int(ts.timestamp() * 1e9), symbol, bid, ask],
        )


def make_order(
    client_order_id: str,
    *,
    status: str = "NEW",
    side: str = "BUY",
    price: str = "64999.9",
    created: dt.datetime | None = None,
    strategy_id: str = "as-btc",
    symbol: str = "BTCUSDT",
):
    from trading.models import Order

    created = created or timezone.now()
    ns = int(created.timestamp() * 1e9)
    filled = status == "FILLED"
    return Order.objects.create(
        engine_id=ENGINE_ID,
        client_order_id=client_order_id,
        strategy_id=strategy_id,
        symbol=symbol,
        side=side,
        order_type="LIMIT",
        time_in_force="GTC",
        price=Decimal(price),
        quantity=Decimal("0.002"),
        leaves_quantity=Decimal("0" if filled else "0.002"),
        cum_quantity=Decimal("0.002" if filled else "0"),
        status=status,
        created_at=created,
        updated_at=created,
        created_ts_ns=ns,
        updated_ts_ns=ns,
        last_seq=1,
    )


@pytest.fixture
def desk(db):
    """A small trading day: instruments and the configured strategy, a position with P&L, a working and a filled
    order, their fill, ticks, two parameter versions and a kill-switch change."""
    from trading.models import (
        PnlSnapshot,
        Position,
        PositionSnapshot,
        Strategy,
        StrategyParamVersion,
        TradingStateChange,
    )
    from trading.services.reference import sync_reference_data

    sync_reference_data()
    now = timezone.now()
    Strategy.objects.filter(strategy_id="as-btc").update(
        state="RUNNING",
        params={"gamma": "0.05", "order_size": 2, "max_inventory": 20, "horizon_mode": "cycle", "allow_cross": False},
        params_version=2,
    )
    Position.objects.create(
        engine_id=ENGINE_ID,
        strategy_id="as-btc",
        symbol="BTCUSDT",
        quantity=Decimal("0.004"),
        avg_price=Decimal("65000.1"),
        realized_pnl=Decimal("1234.5"),
        unrealized_pnl=Decimal("-3.25"),
        fees=Decimal("0.75"),
        last_seq=9,
    )
    PnlSnapshot.objects.create(
        engine_id=ENGINE_ID,
        seq=10,
        ts=now,
        scope_kind="FIRM",
        scope_name="",
        realized_pnl=Decimal("1234.5"),
        unrealized_pnl=Decimal("-3.25"),
        fees=Decimal("0.75"),
    )
    for seq, q in ((5, "0.002"), (9, "0.004")):
        PositionSnapshot.objects.create(
            engine_id=ENGINE_ID,
            seq=seq,
            ts=now - dt.timedelta(minutes=10 - seq),
            strategy_id="as-btc",
            symbol="BTCUSDT",
            quantity=Decimal(q),
        )
    make_order("w-1", status="NEW", side="SELL", price="65010.0")
    make_order("f-1", status="FILLED", side="BUY", price="64999.9", created=now - dt.timedelta(minutes=5))
    insert_fill(
        seq=8,
        ts=now - dt.timedelta(minutes=4),
        exec_id="x-1",
        client_order_id="f-1",
        side="BUY",
        price="64999.9",
        quantity="0.002",
    )
    for i in range(5):
        insert_tick(seq=20 + i, ts=now - dt.timedelta(minutes=5 - i), bid=f"6500{i}.0", ask=f"6500{i}.2")
    for version, gamma, who, why in ((1, "0.1", "system", "initial parameters"), (2, "0.05", "tina", "tighter")):
        StrategyParamVersion.objects.create(
            engine_id=ENGINE_ID,
            seq=version,
            ts=now - dt.timedelta(hours=3 - version),
            strategy_id="as-btc",
            version=version,
            params={"gamma": gamma, "order_size": 2},
            operator=who,
            reason=why,
        )
    TradingStateChange.objects.create(
        engine_id=ENGINE_ID,
        seq=11,
        ts=now,
        scope_kind="INSTRUMENT",
        scope_name="BTCUSDT",
        state="REDUCING",
        previous="ACTIVE",
        operator="rick_risk",
        reason="inventory review",
    )
    return now
