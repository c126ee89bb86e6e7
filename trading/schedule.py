"""Celery beat entries of the trading app, merged into CELERY_BEAT_SCHEDULE by console.settings.base.

Plain data only: settings import this module before Django is set up.
"""

from celery.schedules import crontab

BEAT: dict[str, dict] = {
    # Hourly although partitions are made days ahead: a missed run (beat down, deploy) costs nothing, and
    # the DEFAULT partition catches anything that still arrives before its day's partition exists.
    "trading-ensure-partitions": {
        "task": "trading.tasks.ensure_partitions",
        "schedule": crontab(minute=5),
        "options": {"expires": 3000},
    },
    # Once a day, early UTC: retention works in whole days.
    "trading-drop-expired-partitions": {
        "task": "trading.tasks.drop_expired_partitions",
        "schedule": crontab(hour=0, minute=20),
        "options": {"expires": 3000},
    },
    # Bars on the native path are as fresh as these refreshes. Each recomputes its whole window (1 s bars: the
    # last 2 hours of ticks; 1 m bars: the last 24 hours), so 1 m bars, ten times the ticks, refresh six times
    # less often. `expires` keeps a backlog from piling up behind a slow refresh: only the latest is worth it.
    "trading-refresh-bars-1s": {
        "task": "trading.tasks.refresh_bars",
        "schedule": 10.0,
        "args": (["1s"],),
        "options": {"expires": 9},
    },
    "trading-refresh-bars-1m": {
        "task": "trading.tasks.refresh_bars",
        "schedule": 60.0,
        "args": (["1m"],),
        "options": {"expires": 55},
    },
}
