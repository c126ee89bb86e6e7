"""Read-side latency on a day of data: each trading.selectors query, p50/p99 over repeated runs.

Run from the repo root: .venv/bin/python bench/read_side.py [--runs 50] [--keep]

Builds a scratch database (`<DATABASE_URL's name>_bench_selectors`, migrated; dropped at the end unless --keep),
loads the same day as tests/trading/test_selector_plans.py with COPY (1 M ticks, 100 K orders with their events
and fills, P&L snapshots), ANALYZEs, refreshes the bar views, then times each selector. Issue 6 asks for every
selector under 50 ms on a day of data; the tests check the plans (EXPLAIN), this prints the times. No peer: the
figure to compare against is the 50 ms budget.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUDGET_MS = 50.0


def scratch_url(base: str) -> tuple[str, str]:
    parsed = urlparse(base)
    name = f"{parsed.path.strip('/') or 'hft'}_bench_selectors"
    return urlunparse(parsed._replace(path=f"/{name}")), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hft")
    url, name = scratch_url(base)
    import psycopg

    admin_url = urlunparse(urlparse(base)._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "console.settings.test"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="console.settings.test")
    import django

    django.setup()
    from django.db import connection
    from hdrh.histogram import HdrHistogram

    from tests.trading.dataset import ENGINE, STRATEGIES, SYMBOLS, load_day
    from trading import selectors, timeseries
    from trading.selectors import BlotterFilter

    try:
        end = dt.datetime.now(dt.UTC).replace(microsecond=0)
        timeseries.ensure_partitions(start=(end - dt.timedelta(days=1)).date())
        started = time.perf_counter()
        with connection.cursor() as cursor:
            day = load_day(cursor.cursor, end=end)
            cursor.execute("ANALYZE")
        loaded_s = time.perf_counter() - started
        timeseries.refresh_bars()
        print(
            f"loaded {day.ticks:,} ticks, {day.orders:,} orders, {day.events:,} events, {day.fills:,} fills "
            f"in {loaded_s:.1f} s"
        )

        hour_ago = end - dt.timedelta(hours=1)
        cursor_page = selectors.order_blotter(limit=100).next_cursor
        calls = {
            "positions": lambda: list(selectors.current_positions()),
            "pnl_firm_hour_1m": lambda: selectors.pnl_series(scope_kind="FIRM", start=hour_ago, end=end),
            "pnl_strategy_day_5m": lambda: selectors.pnl_series(
                scope_kind="STRATEGY",
                scope_name=STRATEGIES[1],
                start=day.start,
                end=end,
                bucket=dt.timedelta(minutes=5),
            ),
            "orders_first_page": lambda: selectors.order_blotter(limit=100),
            "orders_next_page": lambda: selectors.order_blotter(limit=100, cursor=cursor_page),
            "orders_offset_5000": lambda: selectors.order_blotter(limit=100, offset=5000),
            "orders_symbol_side": lambda: selectors.order_blotter(
                filters=BlotterFilter(symbol=SYMBOLS[2], side="SELL")
            ),
            "orders_status": lambda: selectors.order_blotter(filters=BlotterFilter(statuses=("CANCELED",))),
            "fills_first_page": lambda: selectors.fill_blotter(limit=100),
            "fills_symbol_hour": lambda: selectors.fill_blotter(
                filters=BlotterFilter(symbol=SYMBOLS[0], start=hour_ago, end=end)
            ),
            "events_first_page": lambda: selectors.order_event_blotter(limit=100),
            "order_history": lambda: list(selectors.order_history(engine_id=ENGINE, client_order_id="o777")),
            "latest_fills": lambda: selectors.latest_fills(limit=50),
            "working_orders": selectors.working_orders,
            "bars_1s_10min": lambda: list(
                selectors.bars(symbol=SYMBOLS[0], start=end - dt.timedelta(minutes=10), end=end, resolution="1s")
            ),
            "bars_1m_day": lambda: list(selectors.bars(symbol=SYMBOLS[1], start=day.start, end=end)),
        }
        results = {}
        for label, call in calls.items():
            call()  # warm the cache: the figure is the steady state a desk page sees
            hist = HdrHistogram(1, 60_000_000_000, 3)
            for _ in range(args.runs):
                t0 = time.perf_counter_ns()
                call()
                hist.record_value(max(1, time.perf_counter_ns() - t0))
            p50, p99 = (hist.get_value_at_percentile(p) / 1e6 for p in (50, 99))
            results[label] = (p50, p99)
            flag = "" if p99 <= BUDGET_MS else f"  over the {BUDGET_MS:.0f} ms budget"
            print(f"{label:<22} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms{flag}")
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"max RSS {rss_mb:.1f} MB")
        worst = max(p99 for _, p99 in results.values())
        print(
            json.dumps(
                {
                    "selectors_worst_p99_ms": round(worst, 2),
                    "selectors_over_budget": sum(p99 > BUDGET_MS for _, p99 in results.values()),
                }
            )
        )
    finally:
        connection.close()
        if not args.keep:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
