"""The TimescaleDB path: hypertables, compression and retention policies, continuous aggregates.

Runs only where the PostgreSQL server has the extension (the production compose file); on these machines the
migration takes the native-partition path, which tests/trading/test_timeseries.py covers.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from trading import timeseries
from trading.selectors import bars

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def hypertables(db):
    with connection.cursor() as cursor:
        available = timeseries.timescaledb_available(cursor)
    if not available:
        pytest.skip(
            "TimescaleDB is not installed on this PostgreSQL server (no 'timescaledb' in pg_available_extensions), "
            "so the migration built native partitions; the native path is tested in test_timeseries.py"
        )
    assert timeseries.uses_hypertables()


def test_the_four_time_series_tables_are_compressed_hypertables_with_a_retention_policy():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_name LIKE 'trading_%%'"
        )
        tables = dict(cursor.fetchall())
        cursor.execute(
            "SELECT hypertable_name, proc_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name LIKE 'trading_%%'"
        )
        jobs = set(cursor.fetchall())

    assert tables == dict.fromkeys(timeseries.PARTITIONED_TABLES, True)
    for table in timeseries.PARTITIONED_TABLES:
        assert (table, "policy_compression") in jobs
        assert (table, "policy_retention") in jobs


def test_bars_come_from_real_time_continuous_aggregates():
    base = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=2)
    with connection.cursor() as cursor:
        for i, (bid, ask) in enumerate([("100", "102"), ("104", "106"), ("98", "100")]):
            cursor.execute(
                "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol, bid_price, ask_price)"
                " VALUES ('engine-1', %s, %s, 0, 'TSDB', %s, %s)",
                [i + 1, base + dt.timedelta(milliseconds=100 * (i + 1)), bid, ask],
            )
        cursor.execute(
            "INSERT INTO trading_trade (engine_id, seq, ts, ts_ns, symbol, price, quantity, aggressor_side)"
            " VALUES ('engine-1', 9, %s, 0, 'TSDB', 101, 3, 'SELL')",
            [base + dt.timedelta(milliseconds=500)],
        )

    (bar,) = bars(symbol="TSDB", start=base, end=base + dt.timedelta(seconds=1), resolution="1s")

    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
        Decimal(101),
        Decimal(105),
        Decimal(99),
        Decimal(99),
    )
    assert (bar["volume"], bar["trades"]) == (Decimal(3), 1)


def test_order_events_on_a_hypertable_refuse_update():
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_orderevent (engine_id, seq, ts, ts_ns, kind, payload, prev_hash, row_hash)"
            " VALUES ('engine-1', 1, now(), 0, 'OrderAccepted', '\\x00', '\\x00', '\\x00')"
        )

    with pytest.raises(DatabaseError, match="AUDIT_IMMUTABLE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE trading_orderevent SET kind = 'x'")


def test_retention_drops_chunks_older_than_the_setting(settings):
    settings.TIMESERIES_RETENTION_DAYS = 2
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol) VALUES ('engine-1', 1, now() - interval"
            " '10 days', 0, 'OLD'), ('engine-1', 2, now(), 0, 'NEW')"
        )

    dropped = timeseries.drop_expired_partitions()

    assert dropped
    with connection.cursor() as cursor:
        cursor.execute("SELECT symbol FROM trading_tick WHERE symbol IN ('OLD', 'NEW')")
        assert cursor.fetchall() == [("NEW",)]
