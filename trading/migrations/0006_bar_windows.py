"""Native-path bar views over shorter windows: 1 s bars over the last 2 hours, 1 m bars over the last 24 hours.

A materialized view is recomputed in full on every refresh. Measured on a day of data (1 M ticks), the 6-hour
1 s view took 6-13 s to refresh concurrently, too long for a 10 s schedule; 2 hours is a third of it, and the
1 m view now has its own, slower schedule (trading/schedule.py). The TimescaleDB path (continuous aggregates,
incremental, full history) is untouched.
"""

from django.db import migrations

from trading import timeseries


def bars_sql(width: str, window: str, suffix: str) -> str:
    return f"""
DROP MATERIALIZED VIEW IF EXISTS trading_bar_{suffix};
CREATE MATERIALIZED VIEW trading_bar_{suffix} AS
WITH mid AS (
    SELECT symbol, date_trunc('{width}', ts) AS bucket, ts, id, (bid_price + ask_price) / 2 AS mid
    FROM trading_tick
    WHERE ts >= now() - interval '{window}' AND bid_price IS NOT NULL AND ask_price IS NOT NULL
), quotes AS (
    SELECT symbol, bucket,
           (array_agg(mid ORDER BY ts, id))[1] AS open, max(mid) AS high, min(mid) AS low,
           (array_agg(mid ORDER BY ts DESC, id DESC))[1] AS close
    FROM mid GROUP BY symbol, bucket
), volume AS (
    SELECT symbol, date_trunc('{width}', ts) AS bucket, sum(quantity) AS volume, count(*) AS trades
    FROM trading_trade WHERE ts >= now() - interval '{window}'
    GROUP BY symbol, date_trunc('{width}', ts)
)
SELECT coalesce(q.symbol, v.symbol)::varchar(32) AS symbol, coalesce(q.bucket, v.bucket) AS bucket,
       q.open, q.high, q.low, q.close,
       coalesce(v.volume, 0) AS volume, coalesce(v.trades, 0) AS trades
FROM quotes q FULL OUTER JOIN volume v ON v.symbol = q.symbol AND v.bucket = q.bucket;
CREATE UNIQUE INDEX trading_bar_{suffix}_key ON trading_bar_{suffix} (symbol, bucket);
"""


def forwards(apps, schema_editor):
    if timeseries.uses_hypertables(schema_editor.connection):
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(bars_sql("second", "2 hours", "1s"))
        cursor.execute(bars_sql("minute", "24 hours", "1m"))


def backwards(apps, schema_editor):
    if timeseries.uses_hypertables(schema_editor.connection):
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(bars_sql("second", "6 hours", "1s"))
        cursor.execute(bars_sql("minute", "3 days", "1m"))


class Migration(migrations.Migration):
    dependencies = [("trading", "0005_pnl_snapshot_index_with_seq")]

    operations = [migrations.RunPython(forwards, backwards)]
