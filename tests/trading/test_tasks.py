"""The time-series upkeep tasks run on a real Celery worker against the test database."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.db import connection

from trading import tasks, timeseries
from trading.models import Bar1s
from trading.schedule import BEAT


@pytest.fixture
def celery_symbol_cleanup(transactional_db):
    yield "CELERY"
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM trading_tick WHERE symbol = 'CELERY'")
    timeseries.refresh_bars()


def test_the_upkeep_tasks_are_on_the_beat_schedule():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert {entry["task"] for entry in BEAT.values()} <= scheduled
    assert {
        "trading.tasks.ensure_partitions",
        "trading.tasks.drop_expired_partitions",
        "trading.tasks.refresh_bars",
    } <= scheduled


@pytest.mark.slow
def test_the_worker_recreates_a_missing_partition_drops_an_expired_one_and_refreshes_bars(
    celery_worker_process, celery_symbol_cleanup
):
    today = dt.datetime.now(dt.UTC).date()
    ahead = timeseries.partition_name("trading_trade", today + dt.timedelta(days=3))
    expired_day = today - dt.timedelta(days=timeseries.retention_days("trading_tick") + 5)
    expired = timeseries.partition_name("trading_tick", expired_day)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {ahead}")
        timeseries.create_day_partition("trading_tick", expired_day)
        cursor.execute(
            "INSERT INTO trading_tick (engine_id, seq, ts, ts_ns, symbol, bid_price, ask_price)"
            " VALUES ('engine-1', 1, now() - interval '1 minute', 0, %s, 10, 12)",
            [celery_symbol_cleanup],
        )

    created = tasks.ensure_partitions.delay().get(timeout=60)
    dropped = tasks.drop_expired_partitions.delay().get(timeout=60)
    refreshed = tasks.refresh_bars.delay().get(timeout=60)

    assert ahead in created
    assert expired in dropped
    assert refreshed == ["trading_bar_1s", "trading_bar_1m"]
    names = {p.name for p in timeseries.list_partitions("trading_trade")}
    assert ahead in names
    assert Bar1s.objects.get(symbol=celery_symbol_cleanup).close == 11
