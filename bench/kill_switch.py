"""Kill switch: time from the command to all 1,000 working orders cancel-acknowledged by the venue.

Run from the repo root: .venv/bin/python bench/kill_switch.py [--rounds 10] [--orders 1000] [--file-log]

Each round rests `--orders` limit orders of one account at the venue (untimed, every NEW acknowledged), then times
from just before the kill is sent to the moment the last CANCELED report is in the engine's hands:

- in-process: an `InProcessGateway` over `engine.venue.Venue`; the kill is one `VenueMassCancel`, and the clock
  stops when the gateway's inbox holds all the CANCELED reports (the venue answers synchronously);
- over FIX: the venue process (`python -m engine.venue`) and a `FixGateway` on 127.0.0.1; the kill is one
  OrderMassCancelRequest (35=q), the venue answers with one ExecutionReport (35=8, 150=4) per order, QuickFIX parses
  and validates each against FIX44.xml on the gateway's thread, and the clock stops when `poll()` (the engine thread)
  has taken the 1,000th CANCELED. Both sides persist every message in their FileStore (as in production);
  `--file-log` also writes QuickFIX's message log on both sides.

This measures the venue-facing half of the kill switch (the mass cancel the gateway sends for the engine's halt);
the engine's own HaltTrading handling is in-memory and measured by the engine benchmarks. Figures are HDR
histograms in microseconds, reported in milliseconds; the load average is printed because the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrh.histogram import HdrHistogram

from engine.enums import ExecType, OrderType, Side, TimeInForce
from engine.gateway import InProcessGateway
from engine.instruments import InstrumentRegistry
from engine.protocol import VenueMassCancel, VenuePlaceOrder
from engine.venue import Venue

ROOT = Path(__file__).resolve().parent.parent
SYMBOL = "BTCUSDT"
ACCOUNT = "MM1"


def orders(round_no: int, n: int) -> list[VenuePlaceOrder]:
    # Buys below and sells above 600,000 ticks, 50 orders per level, so nothing crosses.
    return [
        VenuePlaceOrder(
            client_order_id=f"k{round_no}-{i}",
            account=ACCOUNT,
            symbol=SYMBOL,
            side=Side.BUY if i % 2 else Side.SELL,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=600_000 - 1 - i // 100 if i % 2 else 600_000 + 1 + i // 100,
            quantity=1,
        )
        for i in range(n)
    ]


def histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # microseconds, up to a minute


def summary(hist: HdrHistogram) -> dict[str, float]:
    return {
        "p50_ms": hist.get_value_at_percentile(50) / 1000,
        "p99_ms": hist.get_value_at_percentile(99) / 1000,
        "max_ms": hist.get_max_value() / 1000,
        "rounds": hist.get_total_count(),
    }


def bench_inprocess(rounds: int, n: int) -> HdrHistogram:
    hist = histogram()
    venue = Venue([SYMBOL], clock=time.time_ns)
    gateway = InProcessGateway(venue, ACCOUNT)
    for r in range(rounds):
        for cmd in orders(r, n):
            gateway.send(cmd)
        gateway.inbox.clear()
        kill = VenueMassCancel(client_order_id=f"kill-{r}", account=ACCOUNT)
        start = time.perf_counter_ns()
        gateway.send(kill)
        canceled = sum(1 for m in gateway.inbox if getattr(m, "exec_type", None) == ExecType.CANCELED)
        elapsed = time.perf_counter_ns() - start
        if canceled != n:
            raise SystemExit(f"in-process round {r}: {canceled} of {n} orders canceled")
        gateway.inbox.clear()
        hist.record_value(max(1, elapsed // 1000))
    return hist


def _wait_line(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if line.startswith(prefix):
            return line
        if proc.poll() is not None:
            break
    raise SystemExit("the venue process did not start")


def bench_fix(rounds: int, n: int, file_log: bool) -> HdrHistogram:
    from engine.fix.initiator import FixGateway
    from engine.fix.settings import FixSessionConfig

    instruments = InstrumentRegistry.from_toml()
    var = Path(tempfile.mkdtemp(prefix="kill-bench-"))
    with socket_port() as port:
        pass
    log_flag = "--file-log" if file_log else "--no-file-log"
    venue = subprocess.Popen(
        [
            *(sys.executable, "-m", "engine.venue", "--port", str(port), "--pub", f"ipc://{var}/pub"),
            *("--snapshot", f"ipc://{var}/snap", "--var-dir", str(var / "venue"), "--no-flow", log_flag),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    hist = histogram()
    gateway = None
    try:
        _wait_line(venue, "VENUE READY", 60)
        woken = threading.Event()
        config = FixSessionConfig(
            role="initiator",
            sender_comp_id="ENGINE",
            target_comp_ids=("VENUE",),
            port=port,
            file_log=file_log,
        )
        gateway = FixGateway(config, instruments, var_dir=var / "engine", wake=woken.set)
        gateway.start()
        if not gateway.wait_connected(60):
            raise SystemExit("the gateway did not log on")

        def take(count_type: ExecType, n: int, timeout: float = 120) -> None:
            got = 0
            deadline = time.monotonic() + timeout
            while got < n:
                woken.wait(0.01)
                woken.clear()
                got += sum(1 for m in gateway.poll() if getattr(m, "exec_type", None) == count_type)
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {got} of {n} {count_type.name} reports")

        for r in range(rounds):
            for cmd in orders(r, n):
                gateway.send(cmd)
            take(ExecType.NEW, n)
            start = time.perf_counter_ns()
            gateway.send(VenueMassCancel(client_order_id=f"kill-{r}", account=ACCOUNT))
            take(ExecType.CANCELED, n)
            elapsed = time.perf_counter_ns() - start
            hist.record_value(max(1, elapsed // 1000))
    finally:
        if gateway is not None:
            gateway.stop()
        venue.terminate()
        try:
            venue.wait(30)
        except subprocess.TimeoutExpired:
            venue.kill()
            venue.wait(30)
        shutil.rmtree(var, ignore_errors=True)
    return hist


class socket_port:
    """A free TCP port on 127.0.0.1 (bound and released)."""

    def __enter__(self) -> int:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        return self._sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--file-log", action="store_true", help="QuickFIX message logs on both sides too")
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()}", file=sys.stderr)
    inprocess = summary(bench_inprocess(args.rounds, args.orders))
    print(f"in-process mass cancel of {args.orders}: {inprocess}", file=sys.stderr)
    over_fix = summary(bench_fix(args.rounds, args.orders, args.file_log))
    print(f"FIX mass cancel of {args.orders} (file log {args.file_log}): {over_fix}", file=sys.stderr)
    print(f"load average: {os.getloadavg()}", file=sys.stderr)
    print(json.dumps({"kill_1000_inprocess_ms": inprocess["p50_ms"], "kill_1000_fix_ms": over_fix["p50_ms"]}))


if __name__ == "__main__":
    main()
