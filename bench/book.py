"""Order-book throughput: L2 updates/s with best bid/ask reads, side by side with NautilusTrader; L3 on Databento MBO.

Run from the repository root: `.venv/bin/python bench/book.py` (add `--quick` for a smoke run).

Streams:
- synthetic: 1,000,000 L2 level updates (absolute sizes, ~15% deletes) random-walking around a moving mid, the
  headline `l2_updates_per_s`;
- binance: every level update of the real BTCUSDT USD-M capture in ../shared/data (REST snapshot loaded first,
  then the 6,547 synced diffs, ~440k level updates);
- databento: the ESM4 MBO file (clear, 13.6k snapshot adds, then live adds/cancels/modifies) into our L3Book.

Fairness: both books get pre-parsed input built before the clock starts (ours: (side, price ticks, size lots) int
tuples; NautilusTrader 1.221's Rust `OrderBook(L2_MBP)`: its own pre-built `OrderBookDelta` objects with
ADD / UPDATE / DELETE chosen per level). The timed loop is only apply + reading best bid and best ask. Figures
are medians of 5 runs (ours and the peer alternating). The JSON figures are rates by process CPU time, as in
bench/matching.py: this 2-core machine is shared, and wall-clock rates (printed beside) swing with the neighbours.
The last line is JSON with `l2_updates_per_s`, `nautilus_l2_updates_per_s`, `l2_ratio_vs_nautilus`,
`l3_updates_per_s`, `binance_bbo_agreement_pct`.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrh.histogram import HdrHistogram

from engine.book import L2Book, L3Book
from engine.enums import BookAction
from engine.instruments import InstrumentRegistry
from engine.marketdata.binance import BinanceBookSync, DepthDiff, DepthSnapshot, iter_binance_file
from engine.marketdata.databento import iter_mbo_file
from engine.marketdata.paths import shared_data_dir
from engine.marketdata.replay import measure_binance_agreement

DATA = shared_data_dir()
BINANCE = DATA / "hftbacktest/examples/usdm/btcusdt_20240808.gz"
MBO = (
    DATA / "nautilus_trader/tests/test_data/databento/order_book_deltas_catalog/databento/"
    "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
)
MID = 600_000  # 60,000.0 in 0.1 ticks
WALL, CPU = 0, 1  # index of each rate in a run's (wall, cpu) tuple


def synthetic_stream(n: int, seed: int = 7) -> list[tuple[int, int, int]]:
    """n (side, price, size) level updates: most near the top, a drifting mid, ~15% deletes, never crossing."""
    rng = random.Random(seed)
    mid = MID
    live = {1: set(), -1: set()}
    stream: list[tuple[int, int, int]] = []
    append = stream.append
    while len(stream) < n:
        if rng.random() < 0.01:
            step = rng.choice((-1, 1))
            mid += step
            # New bids go up to mid-1 and new asks down to mid+1; a level the moving mid has passed is removed
            # first, as a venue would have done, so the book never crosses. One tick per move: one level to check.
            side, price = (-1, mid - 1) if step == 1 else (1, mid + 1)
            if price in live[side]:
                live[side].discard(price)
                append((side, price, 0))
        side = 1 if rng.random() < 0.5 else -1
        offset = int(rng.expovariate(0.15)) + 1  # distance from mid in ticks: heavy near the top
        price = mid - offset if side == 1 else mid + offset
        levels = live[side]
        if price in levels and rng.random() < 0.3:
            levels.discard(price)
            append((side, price, 0))
        else:
            levels.add(price)
            append((side, price, rng.randint(1, 5_000)))
    return stream[:n]


def binance_stream() -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int, int]], float]:
    """(snapshot bids, snapshot asks, synced level updates, agreement %) from the real capture."""
    btc = InstrumentRegistry.from_toml().get("BTCUSDT")
    recorder = _Recorder()
    sync = BinanceBookSync(recorder)
    snapshot = None
    for record in iter_binance_file(BINANCE, btc):
        if type(record) is DepthDiff:
            sync.on_diff(record)
        elif type(record) is DepthSnapshot:
            snapshot = record
            recorder.updates.clear()
            sync.on_snapshot(record)
    agreement = measure_binance_agreement(BINANCE, btc)
    return list(snapshot.bids), list(snapshot.asks), recorder.updates, 100 * agreement.rate


class _Recorder:
    """Stands in for a book while the sync decides which diffs apply, recording the level updates in order."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, int, int]] = []

    def apply(self, side: int, price: int, size: int) -> None:
        self.updates.append((side, price, size))

    def load_snapshot(self, bids, asks) -> None:
        pass

    def clear(self) -> None:
        pass


def run_ours(stream, bids=(), asks=()) -> tuple[float, float]:
    book = L2Book("BTCUSDT")
    book.load_snapshot(bids, asks)
    apply = book.apply
    gc.collect()
    gc.disable()
    start, cpu_start = time.perf_counter(), time.process_time()
    for side, price, size in stream:
        apply(side, price, size)
        book.best_bid  # noqa: B018 - the read is what is being measured
        book.best_ask  # noqa: B018
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gc.enable()
    return len(stream) / elapsed, len(stream) / cpu


def latency_ours(stream) -> HdrHistogram:
    book = L2Book("BTCUSDT")
    apply = book.apply
    clock = time.perf_counter_ns
    hist = HdrHistogram(1, 10_000_000_000, 3)
    record = hist.record_value
    for side, price, size in stream:
        t0 = clock()
        apply(side, price, size)
        book.best_bid  # noqa: B018
        book.best_ask  # noqa: B018
        record(clock() - t0)
    return hist


def nautilus_deltas(stream, bids=(), asks=()):
    """The same stream as NautilusTrader OrderBookDelta objects (snapshot as ADDs first), built before timing."""
    from nautilus_trader.model.data import BookOrder, OrderBookDelta
    from nautilus_trader.model.enums import BookAction as NBookAction
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import InstrumentId
    from nautilus_trader.model.objects import Price, Quantity

    instrument_id = InstrumentId.from_str("BTCUSDT.BINANCE")
    sides = {1: OrderSide.BUY, -1: OrderSide.SELL}
    prices: dict[int, Price] = {}
    quantities: dict[int, Quantity] = {}

    def delta(action, side, price, size):
        p = prices.get(price)
        if p is None:
            p = prices[price] = Price(price / 10, 1)
        q = quantities.get(size)
        if q is None:
            q = quantities[size] = Quantity(size / 1000, 3)
        return OrderBookDelta(instrument_id, action, BookOrder(sides[side], p, q, 0), 0, 0, 0, 0)

    live: set[tuple[int, int]] = set()
    setup = []
    for side, levels in ((1, bids), (-1, asks)):
        for price, size in levels:
            live.add((side, price))
            setup.append(delta(NBookAction.ADD, side, price, size))
    body = []
    for side, price, size in stream:
        key = (side, price)
        if size == 0:
            live.discard(key)
            body.append(delta(NBookAction.DELETE, side, price, 0))
        elif key in live:
            body.append(delta(NBookAction.UPDATE, side, price, size))
        else:
            live.add(key)
            body.append(delta(NBookAction.ADD, side, price, size))
    return instrument_id, setup, body


def run_nautilus(instrument_id, setup, body) -> tuple[float, float]:
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType

    book = OrderBook(instrument_id, BookType.L2_MBP)
    for d in setup:
        book.apply_delta(d)
    apply = book.apply_delta
    best_bid, best_ask = book.best_bid_price, book.best_ask_price
    gc.collect()
    gc.disable()
    start, cpu_start = time.perf_counter(), time.process_time()
    for d in body:
        apply(d)
        best_bid()
        best_ask()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gc.enable()
    return len(body) / elapsed, len(body) / cpu


def check_same_top(stream, instrument_id, setup, body, bids=(), asks=()) -> None:
    """Both books must end with the same top of book, or the comparison is not of the same work."""
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType

    ours = L2Book()
    ours.load_snapshot(bids, asks)
    for side, price, size in stream:
        ours.apply(side, price, size)
    peer = OrderBook(instrument_id, BookType.L2_MBP)
    for d in (*setup, *body):
        peer.apply_delta(d)
    theirs = (round(peer.best_bid_price().as_double() * 10), round(peer.best_ask_price().as_double() * 10))
    if (ours.best_bid, ours.best_ask) != theirs:
        raise SystemExit(f"books disagree at the end: ours {(ours.best_bid, ours.best_ask)}, nautilus {theirs}")


def mbo_ops() -> tuple[list[tuple], dict[str, int]]:
    esm4 = InstrumentRegistry.from_toml().get("ESM4")
    ops = []
    mix: dict[str, int] = {}
    for e in iter_mbo_file(MBO, esm4):
        if e.action in (BookAction.TRADE, BookAction.FILL):
            continue  # prints: no book change (see engine/marketdata/databento.py)
        ops.append((e.action, e.order_id, e.side, e.price, e.size))
        mix[e.action.name] = mix.get(e.action.name, 0) + 1
    return ops, mix


def run_l3(ops, passes: int) -> tuple[float, float]:
    book = L3Book("ESM4")
    add, cancel, modify, clear = book.add, book.cancel, book.modify, book.clear
    ADD, CANCEL, MODIFY = BookAction.ADD, BookAction.CANCEL, BookAction.MODIFY
    gc.collect()
    gc.disable()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(passes):
        for action, order_id, side, price, size in ops:
            if action is ADD:
                add(order_id, side, price, size)
            elif action is CANCEL:
                cancel(order_id, size)
            elif action is MODIFY:
                modify(order_id, price, size)
            else:
                clear()
            book.best_bid  # noqa: B018
            book.best_ask  # noqa: B018
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    gc.enable()
    n = len(ops) * passes
    return n / elapsed, n / cpu


def book_memory(stream) -> float:
    gc.collect()
    tracemalloc.start()
    book = L2Book()
    for side, price, size in stream:
        book.apply(side, price, size)
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    levels = book.level_count(1) + book.level_count(-1)
    print(f"  memory after the synthetic stream: {current / 1e6:.2f} MB traced for {levels} live levels")
    return current


def fmt(rates: list[tuple[float, float]]) -> str:
    wall = statistics.median(r[0] for r in rates)
    cpu = statistics.median(r[1] for r in rates)
    spread = ", ".join(f"{r[0] / 1e6:.2f}" for r in rates)
    return f"{wall / 1e6:.3f} M/s wall (runs: {spread}), {cpu / 1e6:.3f} M/s CPU"


def main() -> None:
    quick = "--quick" in sys.argv
    n = 100_000 if quick else 1_000_000
    repeats = 3 if quick else 5

    print("Inputs are pre-parsed before timing (ours: int tuples; NautilusTrader: its own OrderBookDelta objects);")
    print("the timed loop is apply + read best bid + read best ask, nothing else.\n")

    t0 = time.perf_counter()
    synthetic = synthetic_stream(n)
    snap_bids, snap_asks, real, agreement_pct = binance_stream()
    print(
        f"built synthetic stream ({len(synthetic):,} updates) and Binance stream ({len(real):,} level updates "
        f"after a {len(snap_bids)}+{len(snap_asks)} level snapshot) in {time.perf_counter() - t0:.1f} s"
    )

    try:
        iid, n_setup, n_body = nautilus_deltas(synthetic)
        check_same_top(synthetic, iid, n_setup, n_body)
        riid, r_setup, r_body = nautilus_deltas(real, snap_bids, snap_asks)
        check_same_top(real, riid, r_setup, r_body, snap_bids, snap_asks)
    except ImportError as exc:
        raise SystemExit(f"nautilus_trader is required for the side-by-side run: {exc}") from None
    print("both books end each stream with the same best bid and ask\n")

    # Ours and the peer alternate run by run, so a burst of load from the other tenants of this shared machine
    # lands on both rather than on one side of the ratio.
    ours_synth, peer_synth, ours_real, peer_real = [], [], [], []
    for _ in range(repeats):
        ours_synth.append(run_ours(synthetic))
        peer_synth.append(run_nautilus(iid, n_setup, n_body))
        ours_real.append(run_ours(real, snap_bids, snap_asks))
        peer_real.append(run_nautilus(riid, r_setup, r_body))
    del n_setup, n_body, r_setup, r_body
    print(f"ours L2Book, synthetic {n:,}: {fmt(ours_synth)}")
    print(f"NautilusTrader 1.221 OrderBook(L2_MBP), synthetic {n:,}: {fmt(peer_synth)}")
    print(f"ours L2Book, Binance BTCUSDT capture: {fmt(ours_real)}")
    print(f"NautilusTrader 1.221 OrderBook(L2_MBP), Binance capture: {fmt(peer_real)}")
    hist = latency_ours(synthetic)
    print(
        "ours per-update latency incl. ~60 ns timer cost (HDR, ns): "
        + ", ".join(f"p{p} {hist.get_value_at_percentile(p)}" for p in (50, 90, 99, 99.9))
        + f", max {hist.get_max_value()}"
    )
    book_memory(synthetic)

    def median(runs: list[tuple[float, float]], which: int) -> float:
        return statistics.median(r[which] for r in runs)

    wall_ratio = median(ours_synth, WALL) / median(peer_synth, WALL)
    wall_ratio_b = median(ours_real, WALL) / median(peer_real, WALL)
    print(f"ratio ours / NautilusTrader (wall): synthetic {wall_ratio:.2f}x, Binance {wall_ratio_b:.2f}x")
    ours, peer = median(ours_synth, CPU), median(peer_synth, CPU)
    cpu_ratio_b = median(ours_real, CPU) / median(peer_real, CPU)
    print(f"ratio ours / NautilusTrader (CPU, headline): synthetic {ours / peer:.2f}x, Binance {cpu_ratio_b:.2f}x")

    ops, mix = mbo_ops()
    passes = 5 if quick else 40
    l3 = [run_l3(ops, passes) for _ in range(repeats)]
    print(f"ours L3Book, Databento ESM4 MBO ({len(ops):,} ops {mix}, x{passes} passes): {fmt(l3)}")
    print(f"Binance bookTicker agreement (update-id aligned, after sync): {agreement_pct:.4f}%")

    print(
        json.dumps(
            {
                "l2_updates_per_s": round(ours),
                "nautilus_l2_updates_per_s": round(peer),
                "l2_ratio_vs_nautilus": round(ours / peer, 3),
                "l3_updates_per_s": round(median(l3, CPU)),
                "binance_bbo_agreement_pct": round(agreement_pct, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
