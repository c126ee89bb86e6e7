"""Upkeep of the time-series tables: daily partitions ahead of time, retention, bar refresh.

Two storage paths (docs/storage.md), chosen once by migration 0003 and detected here at run time:
- TimescaleDB installed: the tables are hypertables; chunks appear on demand, the retention policy and the
  continuous-aggregate policies run inside the database. The functions below then only apply the configured
  retention (so a changed setting takes effect without a migration).
- Otherwise: native range partitioning by `ts`, one partition per UTC day plus a DEFAULT partition, so a row is
  never refused; the functions below create partitions ahead, drop expired ones and refresh the bar views.

Called by trading.tasks (Celery beat) and by migration 0003 (the first partitions). Each function takes an
optional connection so a migration can pass its schema editor's.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, transaction
from django.db import connection as default_connection
from psycopg.errors import LockNotAvailable

from compliance.chain import record_retention_anchors

log = logging.getLogger(__name__)

# Market data is kept for weeks; order events and fills are books and records (SEC 17a-4(b) six years,
# MiFID II RTS 6 art. 28 five years), so they have their own, much longer, retention.
MARKET_TABLES = ("trading_tick", "trading_trade")
ORDER_TABLES = ("trading_orderevent", "trading_fill")
PARTITIONED_TABLES = MARKET_TABLES + ORDER_TABLES
BAR_RESOLUTIONS = ("1s", "1m")

DEFAULT_MARKET_RETENTION_DAYS = 30
DEFAULT_ORDER_RETENTION_DAYS = 2557  # seven years
DEFAULT_PARTITIONS_AHEAD_DAYS = 3


def _setting(name: str, default: int) -> int:
    """A positive integer from Django settings (read from the environment, and checked, by console.settings)."""
    value = getattr(settings, name, default)
    if not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(f"settings.{name} must be a positive integer, got {value!r}")
    return value


def retention_days(table: str) -> int:
    if table in MARKET_TABLES:
        return _setting("TIMESERIES_RETENTION_DAYS", DEFAULT_MARKET_RETENTION_DAYS)
    if table in ORDER_TABLES:
        return _setting("ORDER_RETENTION_DAYS", DEFAULT_ORDER_RETENTION_DAYS)
    raise ValueError(f"{table} is not a time-series table")


def partitions_ahead_days() -> int:
    return _setting("TIMESERIES_PARTITIONS_AHEAD_DAYS", DEFAULT_PARTITIONS_AHEAD_DAYS)


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


# --- Which path ---------------------------------------------------------------------------------------------


def timescaledb_available(cursor) -> bool:
    """The extension is installable on this server (the migration then creates it)."""
    cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return cursor.fetchone() is not None


def timescaledb_installed(cursor) -> bool:
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    return cursor.fetchone() is not None


def uses_hypertables(connection=None) -> bool:
    """True when migration 0003 made hypertables (TimescaleDB path), False for native partitions."""
    connection = connection or default_connection
    with connection.cursor() as cursor:
        if not timescaledb_installed(cursor):
            return False
        cursor.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'trading_tick'",
        )
        return cursor.fetchone() is not None


# --- Native partitions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    table: str  # the partitioned parent
    name: str
    start: dt.datetime | None  # None for the DEFAULT partition
    end: dt.datetime | None


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def default_partition_name(table: str) -> str:
    return f"{table}_default"


# pg_get_expr(relpartbound) of a range partition on a timestamptz, e.g.
# FOR VALUES FROM ('2026-11-22 00:00:00+00') TO ('2026-11-23 00:00:00+00')
_BOUND = re.compile(r"FOR VALUES FROM \('([^']+)'\) TO \('([^']+)'\)")


def list_partitions(table: str, connection=None) -> list[Partition]:
    """The partitions of one parent, oldest first, the DEFAULT partition last."""
    connection = connection or default_connection
    with connection.cursor() as cursor:
        # The bounds are read from the catalog rather than parsed from names, so a partition made by hand counts.
        cursor.execute(
            """
            SELECT child.relname, pg_get_expr(child.relpartbound, child.oid)
            FROM pg_inherits
            JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
            JOIN pg_class child ON child.oid = pg_inherits.inhrelid
            WHERE parent.relname = %s
            """,
            [table],
        )
        rows = cursor.fetchall()
        partitions = []
        for name, bound in rows:
            if bound == "DEFAULT":
                partitions.append(Partition(table, name, None, None))
                continue
            match = _BOUND.fullmatch(bound)
            if match is None:
                raise ValueError(f"{name}: unexpected partition bound {bound!r}")
            start, end = (dt.datetime.fromisoformat(value) for value in match.groups())
            partitions.append(Partition(table, name, start, end))
    far_future = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(partitions, key=lambda p: p.start or far_future)


def _covered(partitions: list[Partition], start: dt.datetime, end: dt.datetime) -> bool:
    return any(p.start is not None and p.start < end and p.end > start for p in partitions)


def create_day_partition(table: str, day: dt.date, connection=None, *, lock_timeout_ms: int = 2000) -> bool:
    """Create `table`'s partition for one UTC day; False if that range is already covered.

    Creating a partition needs an ACCESS EXCLUSIVE lock on the parent, and while it waits for one every new
    insert queues behind it: the bridge would stall behind any long reader. So the wait is capped
    (`lock_timeout_ms`, then psycopg's LockNotAvailable); partitions are made days ahead, so giving up and
    trying again at the next run costs nothing.

    Rows of that day already sitting in the DEFAULT partition (the beat was down, or an event came with an old
    timestamp) are moved into the new partition: PostgreSQL refuses to create a partition whose range the DEFAULT
    partition holds rows for. The move deletes from the DEFAULT partition, which the append-only trigger of order
    events and fills would refuse, so that trigger is disabled for the DEFAULT partition inside this one
    transaction only; the rows are re-inserted unchanged (same id, payload and hashes), so the hash chain holds.
    """
    connection = connection or default_connection
    start, end = _midnight(day), _midnight(day + dt.timedelta(days=1))
    name, default = partition_name(table, day), default_partition_name(table)
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        # One creator at a time per table (beat and a migration may overlap); waits rather than fails.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"partition:{table}"])
        if _covered(list_partitions(table, connection), start, end):
            return False
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [f"{lock_timeout_ms}ms"]
        )
        previous_lock_timeout = cursor.fetchone()[0]
        cursor.execute(f"SELECT 1 FROM {default} WHERE ts >= %s AND ts < %s LIMIT 1", [start, end])
        stranded = cursor.fetchone() is not None
        if stranded:
            cursor.execute(
                f"CREATE TEMP TABLE _stranded ON COMMIT DROP AS SELECT * FROM {default} WHERE ts >= %s AND ts < %s",
                [start, end],
            )
            cursor.execute(f"ALTER TABLE {default} DISABLE TRIGGER USER")
            cursor.execute(f"DELETE FROM {default} WHERE ts >= %s AND ts < %s", [start, end])
            cursor.execute(f"ALTER TABLE {default} ENABLE TRIGGER USER")
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM (%s) TO (%s)", [start, end])
        if stranded:
            cursor.execute(f"INSERT INTO {table} SELECT * FROM _stranded")
            cursor.execute("DROP TABLE _stranded")
            log.warning("moved rows of %s from %s into the new partition %s", day, default, name)
        # Inside a caller's transaction (a migration) the setting would otherwise outlive this function.
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous_lock_timeout])
    return True


def ensure_partitions(
    *, start: dt.date | None = None, days_ahead: int | None = None, connection=None, lock_timeout_ms: int = 2000
) -> list[str]:
    """Native path: every partitioned table has a partition for each day from `start` (today) to today+N.

    Returns the names created. A table whose parent stays locked longer than `lock_timeout_ms` is skipped with
    a warning until the next run. On the TimescaleDB path this does nothing (chunks are created on insert).
    """
    connection = connection or default_connection
    if uses_hypertables(connection):
        return []
    start = start or _today()
    days_ahead = partitions_ahead_days() if days_ahead is None else days_ahead
    last = _today() + dt.timedelta(days=days_ahead)
    created = []
    for table in PARTITIONED_TABLES:
        day = start
        while day <= last:
            try:
                if create_day_partition(table, day, connection, lock_timeout_ms=lock_timeout_ms):
                    created.append(partition_name(table, day))
            except OperationalError as exc:
                if not isinstance(exc.__cause__, LockNotAvailable):
                    raise
                log.warning("%s is busy; its partition for %s will be created at the next run", table, day)
                break
            day += dt.timedelta(days=1)
    return created


def drop_expired_partitions(*, today: dt.date | None = None, connection=None, lock_timeout_ms: int = 2000) -> list[str]:
    """Drop whole partitions (chunks) older than each table's retention; returns what was dropped.

    Dropping a partition is not a row DELETE, so the append-only triggers do not fire: retention is the one
    sanctioned way order history leaves the database, and it only ever takes whole days past the retention. The
    order events are hash-chained, so compliance anchors each engine's last dropped event in the same transaction.
    Like creating one, dropping a partition locks the parent, so a busy table is left for the next run.
    """
    connection = connection or default_connection
    today = today or _today()
    dropped: list[str] = []
    hypertables = uses_hypertables(connection)
    for table in PARTITIONED_TABLES:
        cutoff = _midnight(today - dt.timedelta(days=retention_days(table)))
        if hypertables:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                # drop_chunks keeps a chunk that reaches past the cutoff: anchor where the dropped chunks end.
                cursor.execute(
                    "SELECT max(range_end) FROM timescaledb_information.chunks"
                    " WHERE hypertable_name = %s AND range_end <= %s",
                    [table, cutoff],
                )
                chunks_end = cursor.fetchone()[0]
                if chunks_end is not None:
                    _anchor_order_chain(table, chunks_end, connection)
                cursor.execute("SELECT drop_chunks(%s::regclass, older_than => %s::timestamptz)", [table, cutoff])
                dropped.extend(str(row[0]) for row in cursor.fetchall())
            continue
        try:
            dropped += _drop_expired_native(table, cutoff, connection, lock_timeout_ms)
        except OperationalError as exc:
            if not isinstance(exc.__cause__, LockNotAvailable):
                raise
            log.warning("%s is busy; its expired partitions will be dropped at the next run", table)
    if dropped:
        log.info("retention dropped %s", ", ".join(dropped))
    return dropped


def _anchor_order_chain(table: str, cutoff: dt.datetime, connection) -> None:
    # The order events are hash-chained per engine: the first event left after a drop links to one that is gone.
    # Compliance keeps the hash of the last event dropped per engine, in this same transaction, so verification
    # starts there instead of reporting a broken link for ever after.
    if table == "trading_orderevent":
        record_retention_anchors(before=cutoff, using=connection)


def _drop_expired_native(table: str, cutoff: dt.datetime, connection, lock_timeout_ms: int) -> list[str]:
    dropped = []
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"partition:{table}"])
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [f"{lock_timeout_ms}ms"]
        )
        previous_lock_timeout = cursor.fetchone()[0]
        _anchor_order_chain(table, cutoff, connection)
        for partition in list_partitions(table, connection):
            if partition.end is not None and partition.end <= cutoff:
                cursor.execute(f"DROP TABLE {partition.name}")
                dropped.append(partition.name)
        # Expired rows stranded in the DEFAULT partition go the same way as their day's partition would have.
        default = default_partition_name(table)
        cursor.execute(f"SELECT 1 FROM {default} WHERE ts < %s LIMIT 1", [cutoff])
        if cursor.fetchone() is not None:
            cursor.execute(f"ALTER TABLE {default} DISABLE TRIGGER USER")
            cursor.execute(f"DELETE FROM {default} WHERE ts < %s", [cutoff])
            cursor.execute(f"ALTER TABLE {default} ENABLE TRIGGER USER")
            dropped.append(f"{default} (rows before {cutoff:%Y-%m-%d})")
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous_lock_timeout])
    return dropped


# --- Bars --------------------------------------------------------------------------------------------------------


def refresh_bars(resolutions: tuple[str, ...] = BAR_RESOLUTIONS, connection=None) -> list[str]:
    """Native path: refresh the bar materialized views of the given resolutions ("1s", "1m").

    CONCURRENTLY keeps the views readable during the refresh (it needs the unique index on (symbol, bucket));
    a view never populated yet cannot be refreshed concurrently, so the first refresh is a plain one. Each view is
    recomputed in full over its window, so the two are refreshed at their own pace (trading/schedule.py). On the
    TimescaleDB path the continuous-aggregate policies refresh inside the database and this does nothing.
    """
    unknown = set(resolutions) - set(BAR_RESOLUTIONS)
    if unknown:
        raise ValueError(f"unknown bar resolution {', '.join(sorted(unknown))}; use {', '.join(BAR_RESOLUTIONS)}")
    connection = connection or default_connection
    if uses_hypertables(connection):
        return []
    refreshed = []
    for resolution in resolutions:
        view = f"trading_bar_{resolution}"
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            # The sort of the window's ticks and the concurrent refresh's diff both spill to disk at the default
            # 4 MB and then take several times longer; this transaction alone gets more.
            cursor.execute("SELECT set_config('work_mem', '64MB', true)")
            cursor.execute("SELECT relispopulated FROM pg_class WHERE relname = %s AND relkind = 'm'", [view])
            row = cursor.fetchone()
            if row is None:
                raise LookupError(f"materialized view {view} is missing; run migrations")
            concurrently = "CONCURRENTLY " if row[0] else ""
            cursor.execute(f"REFRESH MATERIALIZED VIEW {concurrently}{view}")
        refreshed.append(view)
    return refreshed
