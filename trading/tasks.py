"""Celery tasks of the trading app: upkeep of the time-series tables (scheduled in trading/schedule.py)."""

from __future__ import annotations

from celery import shared_task

from trading import timeseries


@shared_task(ignore_result=False)
def ensure_partitions() -> list[str]:
    """Create the daily partitions up to TIMESERIES_PARTITIONS_AHEAD_DAYS ahead; returns the names created."""
    return timeseries.ensure_partitions()


@shared_task(ignore_result=False)
def drop_expired_partitions() -> list[str]:
    """Drop partitions (chunks) past TIMESERIES_RETENTION_DAYS / ORDER_RETENTION_DAYS; returns what went."""
    return timeseries.drop_expired_partitions()


@shared_task(ignore_result=False)
def refresh_bars(resolutions: list[str] | None = None) -> list[str]:
    """Refresh the bar views (native path): the given resolutions, or 1 s and 1 m; returns the views refreshed."""
    return timeseries.refresh_bars(tuple(resolutions or timeseries.BAR_RESOLUTIONS))
