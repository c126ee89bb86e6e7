"""The time-series tables on the native path: daily partitions, the DEFAULT partition, retention, append-only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction

from trading import timeseries
from trading.models import OrderEvent, Tick

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def native_path() -> bool:
    return not timeseries.uses_hypertables()


def insert_tick(ts: dt.datetime, *, symbol: str = "BTCUSDT", seq: int = 1) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol, bid_price, bid_size, ask_price, ask_size)"
            " VALUES ('engine-1', %s, %s, %s, %s, 100.0, 1, 100.2, 2)",
            [seq, ts, int(ts.timestamp() * 1e9), symbol],
        )


def insert_order_event(ts: dt.datetime, *, seq: int = 1) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_orderevent (engine_id, seq, ts, ts_ns, kind, client_order_id, payload, prev_hash,"
            " row_hash) VALUES ('engine-1', %s, %s, %s, 'OrderAccepted', 'c1', '\\x01', %s, '\\x02')",
            [seq, ts, int(ts.timestamp() * 1e9), bytes(32)],
        )


def partition_of(table: str, **where) -> str:
    column, value = next(iter(where.items()))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE {column} = %s", [value])
        return cursor.fetchone()[0]


def today() -> dt.date:
    return dt.datetime.now(UTC).date()


def test_migrate_creates_a_partition_per_day_from_yesterday_to_three_days_ahead_and_a_default_one():
    if not native_path():
        pytest.skip("TimescaleDB is installed: hypertables instead of native partitions")

    names = {p.name for p in timeseries.list_partitions("trading_tick")}

    for offset in range(-1, 4):
        assert timeseries.partition_name("trading_tick", today() + dt.timedelta(days=offset)) in names
    assert "trading_tick_default" in names


def test_a_row_is_stored_in_its_day_partition():
    now = dt.datetime.now(UTC)

    insert_tick(now, seq=7)

    assert partition_of("trading_tick", seq=7) == timeseries.partition_name("trading_tick", now.date())
    assert Tick.objects.get(seq=7).bid_price == 100


def test_a_row_beyond_the_last_partition_lands_in_the_default_partition_instead_of_being_refused():
    far = dt.datetime.now(UTC) + dt.timedelta(days=40)

    insert_tick(far, seq=8)

    assert partition_of("trading_tick", seq=8) == "trading_tick_default"


def test_ensure_partitions_moves_stranded_rows_out_of_the_default_partition_into_the_new_day():
    day = today() + dt.timedelta(days=40)
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    insert_tick(noon, seq=9)
    insert_order_event(noon, seq=9)
    before = OrderEvent.objects.get(seq=9)

    created = timeseries.ensure_partitions(start=day, days_ahead=40)

    assert timeseries.partition_name("trading_tick", day) in created
    assert partition_of("trading_tick", seq=9) == timeseries.partition_name("trading_tick", day)
    assert partition_of("trading_orderevent", seq=9) == timeseries.partition_name("trading_orderevent", day)
    after = OrderEvent.objects.get(seq=9)
    assert (after.id, bytes(after.payload), bytes(after.prev_hash)) == (
        before.id,
        bytes(before.payload),
        bytes(before.prev_hash),
    )


def test_the_default_partition_refuses_changes_again_after_rows_were_moved_out_of_it():
    far = dt.datetime.now(UTC) + dt.timedelta(days=60)
    insert_order_event(far, seq=11)
    day = today() + dt.timedelta(days=50)
    timeseries.ensure_partitions(start=day, days_ahead=50)

    with pytest.raises(DatabaseError, match="AUDIT_IMMUTABLE"), transaction.atomic():
        OrderEvent.objects.filter(seq=11).delete()


def test_ensure_partitions_is_idempotent():
    timeseries.ensure_partitions()

    assert timeseries.ensure_partitions() == []


@pytest.mark.parametrize("table", ["trading_orderevent", "trading_fill"])
def test_order_events_and_fills_refuse_update_and_delete(table):
    now = dt.datetime.now(UTC)
    with connection.cursor() as cursor:
        if table == "trading_orderevent":
            insert_order_event(now, seq=21)
        else:
            cursor.execute(
                "INSERT INTO trading_fill (engine_id, seq, ts, ts_ns, exec_id, client_order_id, strategy_id, symbol,"
                " side, price, quantity) VALUES ('engine-1', 21, %s, 1, 'x1', 'c1', 's', 'BTCUSDT', 'BUY', 1, 1)",
                [now],
            )

    for statement in (f"UPDATE {table} SET seq = 22 WHERE seq = 21", f"DELETE FROM {table} WHERE seq = 21"):
        with pytest.raises(DatabaseError, match="AUDIT_IMMUTABLE"), transaction.atomic(), connection.cursor() as c:
            c.execute(statement)


def test_an_event_replayed_with_the_same_engine_and_seq_is_refused_by_the_unique_key():
    now = dt.datetime.now(UTC)
    insert_order_event(now, seq=31)

    with pytest.raises(DatabaseError, match="duplicate key"), transaction.atomic():
        insert_order_event(now, seq=31)


def test_retention_drops_whole_expired_days_and_expired_default_rows_and_keeps_the_rest(settings):
    if not native_path():
        pytest.skip("TimescaleDB is installed: drop_chunks is tested in test_timescaledb")
    settings.TIMESERIES_RETENTION_DAYS = 2
    settings.ORDER_RETENTION_DAYS = 3650
    old_day = today() - dt.timedelta(days=10)
    timeseries.ensure_partitions(start=old_day, days_ahead=0)
    insert_tick(dt.datetime(old_day.year, old_day.month, old_day.day, 1, tzinfo=UTC), seq=41)
    insert_order_event(dt.datetime(old_day.year, old_day.month, old_day.day, 1, tzinfo=UTC), seq=41)
    ancient = dt.datetime(2001, 1, 1, tzinfo=UTC)
    insert_tick(ancient, seq=42)
    insert_tick(dt.datetime.now(UTC), seq=43)

    dropped = timeseries.drop_expired_partitions()

    assert timeseries.partition_name("trading_tick", old_day) in dropped
    assert timeseries.partition_name("trading_orderevent", old_day) not in dropped
    assert not Tick.objects.filter(seq__in=[41, 42]).exists()
    assert Tick.objects.filter(seq=43).exists()
    assert OrderEvent.objects.filter(seq=41).exists()


def test_a_bad_retention_setting_is_refused_with_its_name(settings):
    settings.TIMESERIES_RETENTION_DAYS = 0

    with pytest.raises(ImproperlyConfigured, match="TIMESERIES_RETENTION_DAYS"):
        timeseries.retention_days("trading_tick")


def test_refresh_bars_builds_mid_price_ohlc_and_traded_volume_per_second_and_minute():
    base = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    quotes = [(0.1, "100.0", "100.2"), (0.5, "101.0", "101.2"), (0.7, "99.0", "99.2"), (0.9, "100.4", "100.6")]
    with connection.cursor() as cursor:
        for i, (offset, bid, ask) in enumerate(quotes):
            ts = base + dt.timedelta(seconds=offset)
            cursor.execute(
                "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol, bid_price, bid_size, ask_price,"
                " ask_size) VALUES ('engine-1', %s, %s, 0, 'BARS', %s, 1, %s, 1)",
                [100 + i, ts, bid, ask],
            )
        for i, quantity in enumerate(["0.5", "1.25"]):
            cursor.execute(
                "INSERT INTO trading_trade (engine_id, seq, ts, ts_ns, symbol, price, quantity, aggressor_side)"
                " VALUES ('engine-1', %s, %s, 0, 'BARS', 100, %s, 'BUY')",
                [200 + i, base + dt.timedelta(seconds=0.3 + i / 10), quantity],
            )

    timeseries.refresh_bars()

    from trading.selectors import bars

    second = list(bars(symbol="BARS", start=base, end=base + dt.timedelta(seconds=1), resolution="1s"))
    minute = list(bars(symbol="BARS", start=base - dt.timedelta(minutes=1), end=base + dt.timedelta(minutes=1)))
    assert len(second) == 1
    bar = second[0]
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
        Decimal("100.1"),
        Decimal("101.1"),
        Decimal("99.1"),
        Decimal("100.5"),
    )
    assert (bar["volume"], bar["trades"]) == (Decimal("1.75"), 2)
    assert [(b["open"], b["close"], b["volume"]) for b in minute] == [
        (Decimal("100.1"), Decimal("100.5"), Decimal("1.75"))
    ]


def test_refresh_bars_runs_again_concurrently_once_the_views_are_populated():
    first = timeseries.refresh_bars()

    second = timeseries.refresh_bars()

    assert first == second == ["trading_bar_1s", "trading_bar_1m"]


def test_ensure_partitions_gives_up_on_a_table_another_session_holds_and_still_does_the_others():
    import psycopg

    from tests.conftest import database_url_for_subprocesses

    day = today() + dt.timedelta(days=70)
    with psycopg.connect(database_url_for_subprocesses()) as other:
        other.execute("LOCK TABLE trading_trade IN ACCESS SHARE MODE")  # a long reader, say

        created = timeseries.ensure_partitions(start=day, days_ahead=70, lock_timeout_ms=100)

    assert timeseries.partition_name("trading_trade", day) not in created
    assert timeseries.partition_name("trading_tick", day) in created


def test_retention_leaves_a_table_another_session_holds_for_the_next_run(settings, transactional_db):
    import psycopg

    from tests.conftest import database_url_for_subprocesses

    # Committed partitions (transactional_db): the other session could not lock a parent this test's
    # transaction had just changed.
    settings.TIMESERIES_RETENTION_DAYS = 2
    old_day = today() - dt.timedelta(days=12)
    timeseries.ensure_partitions(start=old_day, days_ahead=0)
    try:
        with psycopg.connect(database_url_for_subprocesses()) as other:
            other.execute("LOCK TABLE trading_tick IN ACCESS SHARE MODE")

            dropped = timeseries.drop_expired_partitions(lock_timeout_ms=100)

        assert timeseries.partition_name("trading_tick", old_day) not in dropped
        assert timeseries.partition_name("trading_trade", old_day) in dropped
    finally:
        timeseries.drop_expired_partitions()


def test_refresh_bars_can_refresh_one_resolution_and_refuses_an_unknown_one():
    refreshed = timeseries.refresh_bars(("1s",))

    assert refreshed == ["trading_bar_1s"]
    with pytest.raises(ValueError, match="5m"):
        timeseries.refresh_bars(("5m",))
