"""Backtest events per second: our engine (AS acting on every book event) and hftbacktest on the same Binance data.

Run from the repo root: .venv/bin/python bench/backtest.py [--runs 3] [--max-events N]

Data: ../shared/data/hftbacktest/examples/usdm/btcusdt_20240808.gz (Binance USD-M BTCUSDT, ~6 minutes, 6.5 K depth
diffs carrying ~440 K level changes, 21 K trades). Both sides load and convert the file before the clock starts.

What an "event" is, on each side:
- ours: one market-data message handled by the engine (a depth diff, however many levels it carries, or a trade);
  the Avellaneda-Stoikov strategy runs on every depth diff, then the quote manager, the full risk gate, the OMS and
  the queue-position fill model. We also print level changes per second, the unit hftbacktest's data is stored in.
- hftbacktest: one return of `wait_next_feed` with a market feed (each return runs its njit-compiled AS market
  maker once). Its Rust core processes rows (one per level change); how many rows a return covers is printed.
The ratio is ours / hftbacktest's events per second, each in its own unit as above; the wall times for the whole file
are printed too, since that is the like-for-like figure.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.backtest import BacktestConfig, binance_file, load_binance, run_recorded
from engine.instruments import InstrumentRegistry
from engine.protocol import BookDeltas

GAMMA, K, SIGMA, HORIZON_S = 0.001, 0.3, 20.0, 1.0
ORDER_LOTS, MAX_INVENTORY = 1, 10
LATENCY_NS = 5_000_000


def ours(runs: int, max_events: int | None) -> tuple[list[float], float, int, int]:
    instruments = InstrumentRegistry.from_toml()
    instrument = instruments.get("BTCUSDT")
    events = load_binance(binance_file(), instrument, max_events=max_events)
    rows = sum(len(m.deltas) if type(m) is BookDeltas else 1 for _, m in events)
    config = BacktestConfig(
        params={
            "gamma": Decimal(str(GAMMA)),
            "k": Decimal(str(K)),
            "sigma": Decimal(str(SIGMA)),
            "horizon_s": Decimal(str(HORIZON_S)),
            "order_size": ORDER_LOTS,
            "max_inventory": MAX_INVENTORY,
            "requote_threshold_ticks": 1,
        },
        entry_latency_ns=LATENCY_NS,
        response_latency_ns=LATENCY_NS,
        md_latency_ns=LATENCY_NS,
    )
    rates, walls = [], []
    for i in range(runs):
        report = run_recorded(events, instruments, "BTCUSDT", config)
        rates.append(report.events_per_s)
        walls.append(report.elapsed_s)
        print(
            f"ours run {i + 1}: {report.events:,} events in {report.elapsed_s:.3f} s = {report.events_per_s:,.0f}/s "
            f"({rows / report.elapsed_s:,.0f} level changes/s); {report.orders_submitted} orders, "
            f"{report.fills} fills, P&L {report.total_pnl}"
        )
    return rates, statistics.median(walls), len(events), rows


def theirs(runs: int) -> tuple[list[float], float, int] | None:
    try:
        import numpy as np
        from hftbacktest import BacktestAsset, HashMapMarketDepthBacktest
        from hftbacktest.data.utils import binancefutures
        from numba import njit
    except ImportError as exc:  # bench-only dependency
        print(f"hftbacktest unavailable: {exc}")
        return None

    @njit
    def as_market_maker(hbt, gamma, k, sigma, horizon, order_qty, max_inventory):
        # The same model as ours: AS reservation price and spread in ticks, one bid and one ask, requote on a move.
        half_floor = math.log1p(gamma / k) / gamma
        risk = gamma * sigma * sigma * horizon
        feeds = 0
        next_id = 1
        bid_id = 0
        ask_id = 0
        bid_px = 0
        ask_px = 0
        while True:
            result = hbt.wait_next_feed(True, 60_000_000_000)
            if result == 1:
                break
            if result != 2:
                continue
            feeds += 1
            depth = hbt.depth(0)
            best_bid = depth.best_bid_tick
            best_ask = depth.best_ask_tick
            if best_bid <= 0 or best_ask <= best_bid or best_ask > 1_000_000_000:
                continue
            mid = (best_bid + best_ask) * 0.5
            q = hbt.position(0) / order_qty
            reservation = mid - q * risk
            half = 0.5 * risk + half_floor
            new_bid = min(math.floor(reservation - half), best_bid)
            new_ask = max(math.ceil(reservation + half), best_ask)
            hbt.clear_inactive_orders(0)
            orders = hbt.orders(0)
            if bid_id != 0 and orders.get(bid_id) is None:
                bid_id = 0
            if ask_id != 0 and orders.get(ask_id) is None:
                ask_id = 0
            tick = depth.tick_size
            if q < max_inventory and (bid_id == 0 or bid_px != new_bid):
                if bid_id != 0:
                    hbt.cancel(0, bid_id, False)
                bid_id = next_id
                next_id += 1
                bid_px = new_bid
                hbt.submit_buy_order(0, bid_id, new_bid * tick, order_qty, 1, 0, False)
            if q > -max_inventory and (ask_id == 0 or ask_px != new_ask):
                if ask_id != 0:
                    hbt.cancel(0, ask_id, False)
                ask_id = next_id
                next_id += 1
                ask_px = new_ask
                hbt.submit_sell_order(0, ask_id, new_ask * tick, order_qty, 1, 0, False)
        return feeds

    data = binancefutures.convert(str(binance_file()))
    print(f"hftbacktest data: {len(data):,} rows after conversion")

    def build(arr):
        asset = (
            BacktestAsset()
            .data([arr])
            .linear_asset(1.0)
            .constant_order_latency(LATENCY_NS, LATENCY_NS)
            .risk_adverse_queue_model()
            .no_partial_fill_exchange()
            .trading_value_fee_model(0.0, 0.0)
            .tick_size(0.1)
            .lot_size(0.001)
        )
        return HashMapMarketDepthBacktest([asset])

    warm = build(np.ascontiguousarray(data[:5_000]))
    as_market_maker(warm, GAMMA, K, SIGMA, HORIZON_S, 0.001, MAX_INVENTORY)  # compile outside the timing
    warm.close()
    rates, walls, feeds = [], [], 0
    for i in range(runs):
        hbt = build(data)
        started = time.perf_counter()
        feeds = as_market_maker(hbt, GAMMA, K, SIGMA, HORIZON_S, 0.001, MAX_INVENTORY)
        elapsed = time.perf_counter() - started
        position = hbt.position(0)
        hbt.close()
        rates.append(feeds / elapsed)
        walls.append(elapsed)
        print(
            f"hftbacktest run {i + 1}: {feeds:,} feed events in {elapsed:.3f} s = {feeds / elapsed:,.0f}/s "
            f"({len(data) / elapsed:,.0f} rows/s, {len(data) / max(feeds, 1):.1f} rows per event); "
            f"final position {position}"
        )
    return rates, statistics.median(walls), feeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-events", type=int, default=None, help="cut our side's data (smoke runs)")
    args = parser.parse_args()
    rates, wall, n_events, rows = ours(args.runs, args.max_events)
    ours_rate = statistics.median(rates)
    print(f"ours: median {ours_rate:,.0f} events/s, {wall:.3f} s for {n_events:,} events ({rows:,} level changes)")
    print(
        "both sides act on every market-data event: ours applies every depth diff to the engine's book and to the "
        "fill model's, runs the AS strategy, quote manager and full risk gate on every diff and the strategy's "
        "trade hook on every print; hftbacktest runs its AS loop body on every feed return"
    )
    peer = theirs(args.runs) if args.max_events is None else None
    theirs_rate = None
    if peer is not None:
        peer_rates, peer_wall, feeds = peer
        theirs_rate = statistics.median(peer_rates)
        print(f"hftbacktest: median {theirs_rate:,.0f} events/s, {peer_wall:.3f} s for {feeds:,} events")
        print(f"whole file wall time: ours {wall:.3f} s vs hftbacktest {peer_wall:.3f} s ({peer_wall / wall:.2f}x)")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"max RSS {rss_mb:.1f} MB")
    print(
        json.dumps(
            {
                "backtest_events_per_s": round(ours_rate),
                "hftbacktest_events_per_s": round(theirs_rate) if theirs_rate else None,
                "backtest_ratio_vs_hftbacktest": round(ours_rate / theirs_rate, 3) if theirs_rate else None,
            }
        )
    )


if __name__ == "__main__":
    main()
