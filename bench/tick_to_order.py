"""Tick-to-order across processes: the venue publishes a book change -> the engine process -> the order arrives at
the venue, on the ZeroMQ path (and on the FIX path when the FIX gateway is available).

Run from the repo root: .venv/bin/python bench/tick_to_order.py [--ticks 3000] [--warmup 300]

This process plays the venue. It binds a market-data PUB and an order ROUTER (the engine's `venue.kind = "zmq"`
link connects a SUB and a DEALER), starts `python -m engine` with one Avellaneda-Stoikov strategy on BTCUSDT, and
answers the engine's snapshot request. Then, tick after tick, it publishes one `BookDeltas` that moves the whole
book 10 ticks up or back down (so the strategy's quotes must move), stamps it with perf_counter_ns just before the
send, and stamps the first venue command that arrives after it: tick_to_order = arrival - publish, both read in this
process (no cross-process clock). Orders go to a real `engine.venue.Venue`, whose execution reports are sent back, so
the engine's orders are acknowledged and the next tick finds them live (it replaces them). The venue's own market
data for our resting orders is not published (the synthetic book is the market; the engine is configured with
`market_data_includes_own_orders = false`). Between ticks the venue keeps answering for 3 ms, untimed.

FIX path: this process runs `engine.fix.acceptor.VenueService` (the venue of `python -m engine.venue`) with a tick
driver that moves its resting BENCH book 10 ticks every 5 ms (mass cancel + re-place, stamped just before the venue
thread publishes the deltas), and the engine runs with `venue.kind = "fix"`. The arrival stamp is taken when the
venue's FIX application has decoded the engine's order (QuickFIX's thread), so it includes FIX encode, the session
layer both sides and the venue's parse.

The last line is JSON: tick_to_order_p50_us / _p99_us (ZeroMQ path) and tick_to_order_fix_p50_us (null when
engine.fix is missing or no tick caused an order over FIX).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import zmq  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402
from roundtrip import EngineRun, us  # noqa: E402

from engine.instruments import InstrumentRegistry  # noqa: E402
from engine.protocol import (  # noqa: E402
    BookDeltas,
    BookSnapshot,
    Codec,
    ExecutionReport,
    VenueCommandRejected,
    VenueRequestSnapshot,
)
from engine.venue import Venue  # noqa: E402

SYMBOL = "BTCUSDT"
MID = 650_000
LEVELS = 5
SIZE = 50
MD_PORT, ORDER_PORT = 17201, 17202

STRATEGY = """
[[strategies]]
strategy_id = "as-btc"
symbol = "BTCUSDT"
autostart = true
params = { gamma = 0.05, k = 1.5, sigma = 2.0, horizon_s = 60.0, order_size = 1, max_inventory = 50 }
"""
VENUE = f"""
market_data = "tcp://127.0.0.1:{MD_PORT}"
orders = "tcp://127.0.0.1:{ORDER_PORT}"
"""


def book(mid: int) -> tuple[list, list]:
    bids = [(mid - 5 - i, SIZE) for i in range(LEVELS)]
    asks = [(mid + 5 + i, SIZE) for i in range(LEVELS)]
    return bids, asks


def deltas(old_mid: int, new_mid: int) -> tuple:
    """(side, price, size) changes from one book to the other: removed levels at 0, new levels at SIZE."""
    out = []
    for side, index in ((1, 0), (-1, 1)):
        old = {p for p, _ in book(old_mid)[index]}
        new = {p for p, _ in book(new_mid)[index]}
        out += [(side, p, 0) for p in sorted(old - new)]
        out += [(side, p, SIZE) for p in sorted(new - old)]
    return tuple(out)


class StubVenue:
    def __init__(self, context: zmq.Context, codec: Codec) -> None:
        self.codec = codec
        self.pub = context.socket(zmq.PUB)
        self.pub.linger = 0
        self.pub.bind(f"tcp://127.0.0.1:{MD_PORT}")
        self.router = context.socket(zmq.ROUTER)
        self.router.linger = 0
        self.router.bind(f"tcp://127.0.0.1:{ORDER_PORT}")
        self.venue = Venue(list(codec.instruments.symbols), clock=time.time_ns)
        self.seq = 0
        self.mid = MID
        self.engine_id: bytes | None = None
        self.orders = 0

    def serve(self, until_ns: int, *, stamp_first: bool = False) -> int | None:
        """Answer venue commands until perf_counter_ns() >= until_ns; with stamp_first, return at the first one
        with its arrival time."""
        router, perf = self.router, time.perf_counter_ns
        while True:
            left = until_ns - perf()
            if left <= 0:
                return None
            if not router.poll(max(1, left // 1_000_000)):
                continue
            identity, data = router.recv_multipart()
            arrived = perf()
            self.engine_id = identity
            self.handle(identity, data)
            if stamp_first:
                return arrived

    def handle(self, identity: bytes, data: bytes) -> None:
        cmd = self.codec.decode_venue_command(data)
        if type(cmd) is VenueRequestSnapshot:
            bids, asks = book(self.mid) if cmd.symbol == SYMBOL else ([], [])
            seq = self.seq if cmd.symbol == SYMBOL else 0
            snap = BookSnapshot(symbol=cmd.symbol, seq=seq, ts=time.time_ns(), bids=tuple(bids), asks=tuple(asks))
            self.router.send_multipart([identity, self.codec.encode(snap)])
            return
        self.orders += 1
        for msg in self.venue.handle(cmd):
            if type(msg) in (ExecutionReport, VenueCommandRejected):
                self.router.send_multipart([identity, self.codec.encode(msg)])

    def tick(self) -> int:
        new_mid = MID + 10 if self.mid == MID else MID
        self.seq += 1
        msg = BookDeltas(symbol=SYMBOL, seq=self.seq, ts=time.time_ns(), deltas=deltas(self.mid, new_mid))
        data = self.codec.encode(msg)
        self.mid = new_mid
        t0 = time.perf_counter_ns()
        self.pub.send(data)
        return t0


def zmq_path(ticks: int, warmup: int, fsync: str = "batch", busy_poll_us: int = 0) -> HdrHistogram:
    hist = HdrHistogram(1, 10_000_000_000, 3)
    codec = Codec(InstrumentRegistry.from_toml(ROOT / "config" / "instruments.toml"))
    context = zmq.Context()
    stub = StubVenue(context, codec)
    try:
        with EngineRun(
            transport="ipc",
            venue="zmq",
            venue_extra=VENUE,
            strategies=STRATEGY,
            engine_extra="market_data_includes_own_orders = false",
            fsync=fsync,
            busy_poll_us=busy_poll_us,
        ) as run:
            run.wait_ready(run.dealer())
            # The engine asked for snapshots on connect; answer them, and let its SUB finish joining.
            stub.serve(time.perf_counter_ns() + 2_000_000_000)
            missed = 0
            for i in range(warmup + ticks):
                t0 = stub.tick()
                arrived = stub.serve(time.perf_counter_ns() + 1_000_000_000, stamp_first=True)
                if arrived is None:
                    missed += 1
                elif i >= warmup:
                    hist.record_value(max(1, arrived - t0))
                stub.serve(time.perf_counter_ns() + 3_000_000)
            if missed:
                print(f"{missed} ticks caused no order within 1 s (not timed)")
            if hist.get_total_count() == 0:
                raise SystemExit(f"no tick caused an order:\n{(run.dir / 'engine.log').read_text()}")
    finally:
        context.destroy(linger=0)
    return hist


class _TickDriver:
    """A VenueService driver (venue thread): every 5 ms, once the previous tick was answered, moves the BENCH
    account's resting book 10 ticks (mass cancel + re-place) and stamps just before the messages are published."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.mid = MID
        self.n = 0
        self.t0: int | None = None
        self.next_ns = 0
        self.samples: list[int] = []
        self.started = False

    def _place(self, mid: int) -> list:
        from engine.enums import OrderType, TimeInForce
        from engine.protocol import VenuePlaceOrder

        out: list = []
        bids, asks = book(mid)
        for side, levels in ((1, bids), (-1, asks)):
            for price, size in levels:
                self.n += 1
                out += self.venue.handle(
                    VenuePlaceOrder(
                        client_order_id=f"bench-{self.n}",
                        account="BENCH",
                        symbol=SYMBOL,
                        side=side,
                        order_type=OrderType.LIMIT,
                        time_in_force=TimeInForce.GTC,
                        price=price,
                        quantity=size,
                    )
                )
        return out

    def prime(self) -> list:
        return self._place(self.mid)

    def poll(self) -> list:
        from engine.protocol import VenueMassCancel

        now = time.perf_counter_ns()
        if not self.started or now < self.next_ns or (self.t0 is not None and now - self.t0 < 1_000_000_000):
            return []
        self.n += 1
        out = self.venue.handle(VenueMassCancel(client_order_id=f"bench-{self.n}", account="BENCH", symbol=SYMBOL))
        self.mid = MID + 10 if self.mid == MID else MID
        out += self._place(self.mid)
        self.next_ns = now + 5_000_000
        self.t0 = time.perf_counter_ns()  # published right after this returns
        return out

    def arrived(self) -> None:  # QuickFIX's thread: an order message was decoded at the venue
        t0 = self.t0
        if t0 is not None:
            self.samples.append(time.perf_counter_ns() - t0)
            self.t0 = None

    def observe(self, messages: list) -> None:
        pass


def fix_path(ticks: int, warmup: int) -> HdrHistogram | None:
    """The same measurement over FIX: the venue is engine.fix's VenueService in this process; the first order
    message decoded by its FIX application after a book change is the arrival. None when engine.fix is missing."""
    try:
        from engine.fix.acceptor import VenueService
        from engine.fix.settings import FixSessionConfig
    except ImportError:
        return None
    import socket
    import tempfile

    ports = []
    for _ in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    fix_port, pub_port, snap_port = ports
    instruments = InstrumentRegistry.from_toml(ROOT / "config" / "instruments.toml")
    venue = Venue([SYMBOL], clock=time.time_ns)
    driver = _TickDriver(venue)
    var_dir = Path(tempfile.mkdtemp(prefix="fixvenue", dir="/tmp"))
    service = VenueService(
        venue=venue,
        instruments=instruments,
        fix_config=FixSessionConfig(
            role="acceptor", sender_comp_id="VENUE", target_comp_ids=("ENGINE",), port=fix_port, file_log=False
        ),
        var_dir=var_dir,
        pub_endpoint=f"tcp://127.0.0.1:{pub_port}",
        snapshot_endpoint=f"tcp://127.0.0.1:{snap_port}",
        drivers=[driver],
    )
    submit = service.app._submit  # bench instrumentation: stamp each decoded order before it is queued

    def stamped(item: tuple) -> None:
        if item is not None and item[2] is not None:  # (kind, session, command, ...): a command, not a logon
            driver.arrived()
        submit(item)

    service.app._submit = stamped
    service.start()
    fix_venue = f"""
market_data = "tcp://127.0.0.1:{pub_port}"
snapshot = "tcp://127.0.0.1:{snap_port}"
fix_var_dir = "{var_dir}/engine-fix"
[venue.fix]
sender_comp_id = "ENGINE"
target_comp_ids = ["VENUE"]
port = {fix_port}
file_log = false
"""
    hist = HdrHistogram(1, 10_000_000_000, 3)
    try:
        with EngineRun(transport="ipc", venue="fix", venue_extra=fix_venue, strategies=STRATEGY, ports=(0, 0)) as run:
            run.wait_ready(run.dealer())
            time.sleep(2.0)  # logon, snapshot, first quotes
            driver.started = True
            deadline = time.monotonic() + max(60.0, (ticks + warmup) * 0.05)
            while len(driver.samples) < ticks + warmup and time.monotonic() < deadline:
                time.sleep(0.1)
            for value in driver.samples[warmup : warmup + ticks]:
                hist.record_value(max(1, value))
    finally:
        service.stop()
        import shutil

        shutil.rmtree(var_dir, ignore_errors=True)
    return hist if hist.get_total_count() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--fsync", default="batch", choices=("batch", "every_record", "never"))
    parser.add_argument("--no-fix", action="store_true", help="skip the FIX path")
    parser.add_argument("--busy-poll-us", type=int, default=0, help="the engine's [timers] busy_poll_us")
    args = parser.parse_args()
    hist = zmq_path(args.ticks, args.warmup, args.fsync, args.busy_poll_us)
    print(
        f"zmq path: tick-to-order p50 {us(hist, 50)} us p99 {us(hist, 99)} us p99.9 {us(hist, 99.9)} us "
        f"over {hist.get_total_count()} ticks (load average {os.getloadavg()[0]:.2f})"
    )
    fix_hist = None if args.no_fix else fix_path(args.ticks, args.warmup)
    if fix_hist is None:
        print("fix path: not available (engine.fix missing, or no tick caused an order over FIX)")
    else:
        print(
            f"fix path: tick-to-order p50 {us(fix_hist, 50)} us p99 {us(fix_hist, 99)} us "
            f"over {fix_hist.get_total_count()} ticks (load average {os.getloadavg()[0]:.2f})"
        )
    print(
        json.dumps(
            {
                "tick_to_order_p50_us": us(hist, 50),
                "tick_to_order_p99_us": us(hist, 99),
                "tick_to_order_fix_p50_us": None if fix_hist is None else us(fix_hist, 50),
                "tick_to_order_fix_p99_us": None if fix_hist is None else us(fix_hist, 99),
                "tick_to_order_p999_us": us(hist, 99.9),
                "ticks": hist.get_total_count(),
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
