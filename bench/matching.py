"""Matching engine throughput on a realistic order mix, and memory for 1 M resting orders.

Run from the repository root: `.venv/bin/python bench/matching.py` (add `--quick` for a smoke run).

Layers measured:
- core: `engine.venue.matching.MatchingCore` driven directly, the consumer draining its compact fill/STP events and
  level deltas after every order (the headline `match_orders_per_s`);
- protocol: `engine.venue.Venue.handle` taking `VenuePlaceOrder` / `VenueCancelOrder` structs and returning full
  `ExecutionReport` / `TradePrinted` / `BookDeltas` messages (commands built beforehand: decoding is not the venue's);
- peer: NautilusTrader 1.221's Rust L3 `OrderBook` applying the same stream as book updates (adds, deletes, and the
  maker-side updates our fills imply). It does no matching, so it is a floor for the bookkeeping, not a rival venue.

The mix is generated once against a shadow core, so cancels target orders that are really resting and crossing
orders are priced off the live best price. The last line is JSON with `match_orders_per_s` (median of the core runs,
by process CPU time: the machine is shared; the wall-clock median is printed next to it) and `mem_mb_per_1m_orders`:
the RSS growth of a fresh interpreter whose full `Venue` holds 1,000,000 resting orders placed through
`place_order` (core orders and levels, the venue's `VenueOrder` records, its open-order and used-id indexes and the
id strings they keep). RSS rather than tracemalloc for that one: tracing a million venue orders takes about 95 s
here, against about 15 s untraced, and the whole script must stay under three minutes. tracemalloc figures are
printed beside it: the bare core at 1 M orders (the figure this key held before) and the venue on a 100,000 sample.
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrh.histogram import HdrHistogram

from engine.enums import OrderType, Side, TimeInForce
from engine.protocol import VenueCancelOrder, VenuePlaceOrder
from engine.venue import Venue
from engine.venue.matching import EV_FILL, GTC, IOC, MARKET_BUY_PRICE, MARKET_SELL_PRICE, MatchingCore

ADD, CANCEL, CROSS_LIMIT, CROSS_MARKET = 0, 1, 2, 3
MIX = {ADD: 0.55, CANCEL: 0.35, CROSS_LIMIT: 0.07, CROSS_MARKET: 0.03}
MIX_NAMES = {ADD: "add (passive limit)", CANCEL: "cancel", CROSS_LIMIT: "crossing IOC limit", CROSS_MARKET: "market"}
MID = 600_000  # BTCUSDT 60,000.0 in 0.1 ticks
ACCOUNTS = [f"ACC{i}" for i in range(50)]
PRELOAD = 20_000  # resting orders before the measured stream, so cancels and sweeps meet a real book


def generate(n: int, seed: int = 42) -> tuple[list[tuple], list[tuple], dict[int, str]]:
    """(preload adds, op stream, account of each oid): (kind, oid, account, side, price, qty) for orders,
    (CANCEL, oid) for cancels."""
    rng = random.Random(seed)
    shadow = MatchingCore()
    live: list[int] = []
    account_of: dict[int, str] = {}
    ops: list[tuple] = []
    oid = 0

    def add() -> tuple:
        nonlocal oid
        oid += 1
        side = 1 if rng.random() < 0.5 else -1
        # Passive: 1 + Exp(mean 8) ticks away from the opposite best (or the mid), so adds never cross.
        ref = shadow.best_ask if side == 1 else shadow.best_bid
        ref = ref if ref is not None else MID
        distance = 1 + int(rng.expovariate(1 / 8))
        price = ref - distance if side == 1 else ref + distance
        account = ACCOUNTS[rng.randrange(len(ACCOUNTS))]
        account_of[oid] = account
        live.append(oid)
        return (ADD, oid, account, side, price, 1 + int(rng.expovariate(1 / 5)))

    preload = []
    for _ in range(PRELOAD):
        op = add()
        shadow.submit(*op[1:], GTC)
        preload.append(op)
    shadow.events.clear()
    shadow.deltas.clear()
    kinds = list(MIX)
    weights = list(MIX.values())
    while len(ops) < n:
        kind = rng.choices(kinds, weights)[0]
        if kind == ADD:
            op = add()
            shadow.submit(*op[1:], GTC)
        elif kind == CANCEL:
            while live:
                k = rng.randrange(len(live))
                live[k], live[-1] = live[-1], live[k]
                victim = live.pop()
                if victim in shadow:
                    break
            else:
                continue
            op = (CANCEL, victim)
            shadow.cancel(victim)
        else:
            oid += 1
            side = 1 if rng.random() < 0.5 else -1
            best = shadow.best_ask if side == 1 else shadow.best_bid
            if best is None:
                continue
            account = "TAKER"
            account_of[oid] = account
            qty = 1 + int(rng.expovariate(1 / 8))
            if kind == CROSS_LIMIT:
                price = best + 2 if side == 1 else best - 2
            else:
                price = MARKET_BUY_PRICE if side == 1 else MARKET_SELL_PRICE
            op = (kind, oid, account, side, price, qty)
            shadow.submit(oid, account, side, price, qty, IOC)
        shadow.events.clear()
        shadow.deltas.clear()
        ops.append(op)
    return preload, ops, account_of


def fresh_core(preload: list[tuple]) -> MatchingCore:
    core = MatchingCore()
    for op in preload:
        core.submit(op[1], op[2], op[3], op[4], op[5], GTC)
    core.events.clear()
    core.deltas.clear()
    return core


def run_core(ops: list[tuple], preload: list[tuple]) -> tuple[float, float, int]:
    """(orders/s by wall clock, orders/s by process CPU time, fills)."""
    core = fresh_core(preload)
    submit, cancel, events, deltas = core.submit, core.cancel, core.events, core.deltas
    fills = 0
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    for op in ops:
        kind = op[0]
        if kind == 0:
            submit(op[1], op[2], op[3], op[4], op[5], 0)
        elif kind == 1:
            cancel(op[1])
        else:
            submit(op[1], op[2], op[3], op[4], op[5], 1)
            fills += len(events)
        # The consumer drains both outputs after every order, as the venue layer does.
        events.clear()
        deltas.clear()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return len(ops) / elapsed, len(ops) / cpu, fills


def core_latency(ops: list[tuple], preload: list[tuple]) -> HdrHistogram:
    core = fresh_core(preload)
    submit, cancel, events, deltas = core.submit, core.cancel, core.events, core.deltas
    hist = HdrHistogram(1, 10_000_000_000, 3)
    clock = time.perf_counter_ns
    for op in ops:
        kind = op[0]
        t0 = clock()
        if kind == 0:
            submit(op[1], op[2], op[3], op[4], op[5], 0)
        elif kind == 1:
            cancel(op[1])
        else:
            submit(op[1], op[2], op[3], op[4], op[5], 1)
        events.clear()
        deltas.clear()
        hist.record_value(max(1, clock() - t0))
    return hist


def protocol_commands(ops: list[tuple], preload: list[tuple], account_of: dict[int, str]) -> tuple[list, list]:
    def place(op: tuple) -> VenuePlaceOrder:
        kind, oid, account, side, price, qty = op
        market = kind == CROSS_MARKET
        return VenuePlaceOrder(
            client_order_id=str(oid),
            account=account,
            symbol="BTCUSDT",
            side=Side(side),
            order_type=OrderType.MARKET if market else OrderType.LIMIT,
            time_in_force=TimeInForce.GTC if kind == ADD else TimeInForce.IOC,
            price=0 if market else price,
            quantity=qty,
            ts=1,
        )

    setup = [place(op) for op in preload]
    commands = []
    for op in ops:
        if op[0] == CANCEL:
            commands.append(
                VenueCancelOrder(
                    client_order_id=f"c{op[1]}",
                    orig_client_order_id=str(op[1]),
                    account=account_of[op[1]],
                    symbol="BTCUSDT",
                    ts=1,
                )
            )
        else:
            commands.append(place(op))
    return setup, commands


def run_protocol(setup: list, commands: list) -> tuple[float, float, float]:
    """(orders/s wall, orders/s CPU, messages/s CPU)."""
    venue = Venue(["BTCUSDT"], clock=lambda: 1)
    for c in setup:
        venue.handle(c)
    handle = venue.handle
    messages = 0
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    for c in commands:
        messages += len(handle(c))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return len(commands) / elapsed, len(commands) / cpu, messages / cpu


def nautilus_stream(ops: list[tuple], preload: list[tuple]):
    """Nautilus book actions equivalent to the op stream: (fn_name, BookOrder) built before timing."""
    from nautilus_trader.model.data import BookOrder
    from nautilus_trader.model.enums import OrderSide

    sides = {1: OrderSide.BUY, -1: OrderSide.SELL}
    core = fresh_core([])
    actions = []
    prices: dict[int, object] = {}
    qtys: dict[int, object] = {}

    def price_of(p: int):
        obj = prices.get(p)
        if obj is None:
            obj = prices[p] = _price(p)
        return obj

    def qty_of(q: int):
        obj = qtys.get(q)
        if obj is None:
            obj = qtys[q] = _qty(q)
        return obj

    for op in preload:
        core.submit(op[1], op[2], op[3], op[4], op[5], GTC)
    core.events.clear()
    core.deltas.clear()
    for op in preload:
        actions.append((0, BookOrder(sides[op[3]], price_of(op[4]), qty_of(op[5]), op[1])))
    body_start = len(actions)
    for op in ops:
        kind = op[0]
        if kind == ADD:
            core.submit(op[1], op[2], op[3], op[4], op[5], GTC)
            actions.append((0, BookOrder(sides[op[3]], price_of(op[4]), qty_of(op[5]), op[1])))
        elif kind == CANCEL:
            order = core.order(op[1])
            side, price = order.level[1], order.level[0]
            core.cancel(op[1])
            actions.append((2, BookOrder(sides[side], price_of(price), qty_of(1), op[1])))
        else:
            core.submit(op[1], op[2], op[3], op[4], op[5], IOC)
            for event in core.events:
                resting = event[1]
                side, price = resting.level[1], resting.level[0]
                if event[0] == EV_FILL and resting.qty:
                    actions.append((1, BookOrder(sides[side], price_of(price), qty_of(resting.qty), resting.oid)))
                else:
                    actions.append((2, BookOrder(sides[side], price_of(price), qty_of(1), resting.oid)))
        core.events.clear()
        core.deltas.clear()
    return actions[:body_start], actions[body_start:]


def _price(ticks: int):
    from nautilus_trader.model.objects import Price

    return Price(ticks / 10, 1)


def _qty(lots: int):
    from nautilus_trader.model.objects import Quantity

    return Quantity(lots / 1000, 3)


def run_nautilus(setup: list, actions: list, n_orders: int) -> tuple[float, float]:
    from nautilus_trader.model.book import OrderBook
    from nautilus_trader.model.enums import BookType
    from nautilus_trader.model.identifiers import InstrumentId

    book = OrderBook(InstrumentId.from_str("BTCUSDT.SIM"), BookType.L3_MBO)
    for _, order in setup:
        book.add(order, 0)
    add, update, delete = book.add, book.update, book.delete
    gc.collect()
    start, cpu_start = time.perf_counter(), time.process_time()
    for action, order in actions:
        if action == 0:
            add(order, 0)
        elif action == 1:
            update(order, 0)
        else:
            delete(order, 0)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    # Rate in *orders of the mix* per second, the same unit as ours (one crossing order may be several book actions).
    return n_orders / elapsed, n_orders / cpu


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * 4096 / 1e6


def build_resting(n: int) -> MatchingCore:
    core = MatchingCore()
    submit = core.submit
    deltas = core.deltas
    for oid in range(1, n + 1):
        side = 1 if oid & 1 else -1
        distance = 1 + (oid * 7919) % 5000  # 5,000 price levels a side, about 100 orders each
        submit(oid, ACCOUNTS[oid % 50], side, MID - distance if side == 1 else MID + distance, 1 + oid % 50, GTC)
        if len(deltas) > 4096:
            deltas.clear()
    deltas.clear()
    assert len(core) == n
    return core


def build_venue(n: int) -> Venue:
    """A Venue holding n resting orders on the same price grid as `build_resting`, placed through `place_order`."""
    venue = Venue(["BTCUSDT"], clock=lambda: 1)
    place = venue.place_order
    for oid in range(1, n + 1):
        side = 1 if oid & 1 else -1
        distance = 1 + (oid * 7919) % 5000
        place(
            client_order_id=f"o{oid}",
            account=ACCOUNTS[oid % 50],
            symbol="BTCUSDT",
            side=side,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=MID - distance if side == 1 else MID + distance,
            quantity=1 + oid % 50,
        )
    assert len(venue.core("BTCUSDT")) == n
    return venue


def venue_memory_child(n: int) -> None:
    """Run in a fresh interpreter (`--venue-memory-child N`): RSS growth of a full Venue holding n resting orders,
    and the seconds the build took (untraced: see the module docstring)."""
    gc.collect()
    rss0 = rss_mb()
    start = time.perf_counter()
    venue = build_venue(n)
    gc.collect()
    elapsed = time.perf_counter() - start
    rss = rss_mb() - rss0
    assert venue.core("BTCUSDT").best_bid is not None  # alive until measured
    print(json.dumps({"rss_mb": rss, "seconds": elapsed}))


def memory_child(n: int) -> None:
    """Run in a fresh interpreter (`--memory-child N`): RSS growth of a core holding n resting orders, measured
    without tracemalloc (whose own bookkeeping would inflate RSS), then the tracemalloc figure on a second build."""
    gc.collect()
    rss0 = rss_mb()
    core = build_resting(n)
    gc.collect()
    rss = rss_mb() - rss0
    del core
    gc.collect()
    tracemalloc.start()
    core = build_resting(n)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    assert core.best_bid is not None  # alive until measured
    print(json.dumps({"traced_mb": traced, "rss_mb": rss}))


def _child(flag: str, n: int) -> dict:
    child = subprocess.run([sys.executable, __file__, flag, str(n)], capture_output=True, text=True, check=True)
    return json.loads(child.stdout.strip().splitlines()[-1])


def core_memory(n: int) -> tuple[float, float]:
    """(tracemalloc MB, RSS growth MB) of a core holding n resting orders, ids and prices included."""
    result = _child("--memory-child", n)
    return result["traced_mb"], result["rss_mb"]


def venue_rss(n: int) -> tuple[float, float]:
    """(RSS growth MB, build seconds) of a fresh interpreter's full Venue holding n resting orders."""
    result = _child("--venue-memory-child", n)
    return result["rss_mb"], result["seconds"]


def venue_memory(n: int) -> float:
    """tracemalloc MB per order of the full Venue (order records, id indexes) holding n resting orders."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    venue = build_venue(n)
    gc.collect()
    used = (tracemalloc.get_traced_memory()[0] - before) / 1e6
    tracemalloc.stop()
    del venue
    return used / n


def main() -> None:
    if "--memory-child" in sys.argv:
        memory_child(int(sys.argv[sys.argv.index("--memory-child") + 1]))
        return
    if "--venue-memory-child" in sys.argv:
        venue_memory_child(int(sys.argv[sys.argv.index("--venue-memory-child") + 1]))
        return
    wall_start = time.perf_counter()
    quick = "--quick" in sys.argv
    n_ops = 100_000 if quick else 1_000_000
    n_protocol = 20_000 if quick else 200_000
    n_mem = 100_000 if quick else 1_000_000
    repeats = 3

    print(f"generating {n_ops:,} orders (seed 42) on top of {PRELOAD:,} resting ...")
    preload, ops, account_of = generate(n_ops)
    counts = {k: sum(1 for op in ops if op[0] == k) for k in MIX}
    print("mix: " + ", ".join(f"{MIX_NAMES[k]} {counts[k] / len(ops):.1%}" for k in MIX))

    # Two clocks: this 2-core machine is shared with other jobs, so wall-clock rates measure the CPU share we were
    # given as much as the engine. Process CPU time is the engine's own cost; both are printed, CPU time is the
    # headline because it is what the same code does on a dedicated core.
    core_runs = []
    fills = 0
    for _ in range(repeats):
        wall, cpu, fills = run_core(ops, preload)
        core_runs.append((wall, cpu))
    core_wall = statistics.median(w for w, _ in core_runs)
    core_cpu = statistics.median(c for _, c in core_runs)
    print(f"fills produced by the crossing orders: {fills:,} ({fills / len(ops):.2f} per order of the mix)")
    print(
        f"core (MatchingCore + draining events/deltas), median of {repeats}: {core_cpu:,.0f} orders/s by CPU time, "
        f"{core_wall:,.0f} by wall clock; runs (cpu/wall) {[f'{c:,.0f}/{w:,.0f}' for w, c in core_runs]}"
    )
    hist = core_latency(ops, preload)
    print(
        "core latency per order, wall ns incl. ~50 ns timer cost (HDR): "
        + ", ".join(f"p{p} {hist.get_value_at_percentile(p):,}" for p in (50, 90, 99, 99.9))
        + f", max {hist.get_max_value():,}"
    )

    setup, commands = protocol_commands(ops[:n_protocol], preload, account_of)
    proto = [run_protocol(setup, commands) for _ in range(repeats)]
    proto_wall = statistics.median(r[0] for r in proto)
    proto_cpu = statistics.median(r[1] for r in proto)
    proto_msgs = statistics.median(r[2] for r in proto)
    print(
        f"protocol (Venue.handle -> ExecutionReport/TradePrinted/BookDeltas structs), median of {repeats} x "
        f"{n_protocol:,} orders: {proto_cpu:,.0f} orders/s by CPU time ({proto_msgs:,.0f} messages/s), "
        f"{proto_wall:,.0f} by wall clock"
    )

    try:
        n_setup, n_actions = nautilus_stream(ops, preload)
    except ImportError as exc:
        print(f"peer skipped: nautilus_trader not importable ({exc})")
    else:
        peer = [run_nautilus(n_setup, n_actions, len(ops)) for _ in range(repeats)]
        peer_wall = statistics.median(p[0] for p in peer)
        peer_cpu = statistics.median(p[1] for p in peer)
        del n_setup, n_actions
        print(
            f"peer NautilusTrader 1.221 L3 OrderBook (Rust, book updates only, no matching), median of {repeats}: "
            f"{peer_cpu:,.0f} orders/s by CPU time, {peer_wall:,.0f} by wall clock; "
            f"ours / peer = {core_cpu / peer_cpu:.2f} (CPU), {core_wall / peer_wall:.2f} (wall)"
        )
    print(f"core / protocol layer = {core_cpu / proto_cpu:.1f}x")

    del ops, commands, setup
    gc.collect()
    traced, rss = core_memory(n_mem)
    per_1m = traced * 1_000_000 / n_mem
    print(
        f"memory, core with {n_mem:,} resting orders (fresh interpreter): tracemalloc {traced:,.1f} MB "
        f"({traced * 1e6 / n_mem:,.0f} B/order) -> {per_1m:,.1f} MB per 1 M orders; RSS growth {rss:,.1f} MB "
        f"(pymalloc rounds each block up to 16 bytes, which tracemalloc does not count)"
    )
    n_sample = 20_000 if quick else 100_000
    venue_per_order = venue_memory(n_sample)
    print(
        f"memory, full Venue (core + order records + client-id indexes), tracemalloc on a {n_sample:,} sample: "
        f"{venue_per_order * 1e6:,.0f} B/order -> {venue_per_order * 1e6:,.0f} MB per 1 M orders"
    )
    venue_mb, venue_seconds = venue_rss(n_mem)
    venue_per_1m = venue_mb * 1_000_000 / n_mem
    print(
        f"memory, full Venue with {n_mem:,} resting orders placed through place_order (fresh interpreter, built in "
        f"{venue_seconds:,.0f} s): RSS growth {venue_mb:,.1f} MB -> {venue_per_1m:,.1f} MB per 1 M orders "
        f"(the bare core: {rss * 1_000_000 / n_mem:,.1f} MB RSS, {per_1m:,.1f} MB tracemalloc)"
    )
    print(
        f"headline: match_orders_per_s {core_cpu:,.0f} (median by CPU time; median by wall clock {core_wall:,.0f}), "
        f"mem_mb_per_1m_orders {venue_per_1m:,.1f} (full Venue, RSS); "
        f"script ran {time.perf_counter() - wall_start:,.0f} s"
    )
    print(
        json.dumps(
            {"match_orders_per_s": round(core_cpu), "mem_mb_per_1m_orders": round(venue_per_1m, 1)},
        )
    )


if __name__ == "__main__":
    main()
