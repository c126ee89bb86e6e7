"""Kill switch: time from the engine's HaltTrading to all 1,000 working orders canceled in the engine's OMS.

Run from the repo root: .venv/bin/python bench/kill_switch.py [--rounds 10] [--orders 1000] [--file-log]

Each round rests `--orders` limit orders of one account at the venue through the engine (SubmitOrder commands,
untimed, every NEW applied), then times from just before `Engine.handle_command(HaltTrading(firm))` to the moment
the engine has applied the last CANCELED report (no working order left in its OMS); a ResumeTrading ends the round.
The halt goes out as one `VenueMassCancel` (the gateways support it; see docs/oms.md, "Mass cancel"):

- in-process: an `InProcessGateway` over `engine.venue.Venue`; the venue answers synchronously with one
  `MassCancelReport` naming every order, and the clock stops when the engine has taken it (and the market data the
  cancels caused) from the inbox and no order is left working;
- over FIX: the venue process (`python -m engine.venue`) and a `FixGateway` on 127.0.0.1; the kill is one
  OrderMassCancelRequest (35=q), the venue answers with one OrderMassCancelReport (35=r) listing every order it
  canceled in its AffectedOrdGrp, QuickFIX parses and validates it against FIX44.xml on the gateway's thread, and
  the clock stops when the engine thread has polled and applied it. Both sides persist every message in their
  FileStore (as in production); `--file-log` also writes QuickFIX's message log on both sides.

The engine runs without a journal (the journal's cost per report is in bench/journal.py). Figures are HDR
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
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hdrh.histogram import HdrHistogram

from engine.clock import WallClock
from engine.config import EngineConfig
from engine.core import Engine
from engine.enums import OrderStatus, OrderType, Side, TimeInForce
from engine.gateway import InProcessGateway
from engine.instruments import InstrumentRegistry
from engine.protocol import HaltTrading, ResumeTrading, Scope, SubmitOrder, VenueMassCancel
from engine.venue import Venue

ROOT = Path(__file__).resolve().parent.parent
SYMBOL = "BTCUSDT"
ACCOUNT = "MM1"
INSTRUMENTS = InstrumentRegistry.from_toml()
TICK = INSTRUMENTS.get(SYMBOL).tick_size


def orders(round_no: int, n: int) -> list[SubmitOrder]:
    # Buys below and sells above 600,000 ticks, 50 orders per level, so nothing crosses.
    return [
        SubmitOrder(
            command_id=f"k{round_no}-{i}",
            operator="bench",
            ts=time.time_ns(),
            strategy_id="manual",
            client_order_id=f"k{round_no}-{i}",
            symbol=SYMBOL,
            side=Side.BUY if i % 2 else Side.SELL,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=(600_000 - 1 - i // 100 if i % 2 else 600_000 + 1 + i // 100) * TICK,
            quantity=Decimal("0.001"),
        )
        for i in range(n)
    ]


def new_engine(gateway: Any) -> Engine:
    return Engine(EngineConfig(account=ACCOUNT, replay_ring_size=0), WallClock(), INSTRUMENTS, gateway)


def halt(round_no: int) -> HaltTrading:
    return HaltTrading(
        command_id=f"halt-{round_no}", operator="bench", ts=time.time_ns(), scope=Scope.firm(), reason="bench"
    )


def resume(round_no: int) -> ResumeTrading:
    return ResumeTrading(
        command_id=f"resume-{round_no}", operator="bench", ts=time.time_ns(), scope=Scope.firm(), reason="bench"
    )


def histogram() -> HdrHistogram:
    return HdrHistogram(1, 60_000_000, 3)  # microseconds, up to a minute


def summary(hist: HdrHistogram) -> dict[str, float]:
    return {
        "p50_ms": hist.get_value_at_percentile(50) / 1000,
        "p99_ms": hist.get_value_at_percentile(99) / 1000,
        "max_ms": hist.get_max_value() / 1000,
        "rounds": hist.get_total_count(),
    }


class CountingGateway:
    """Passes commands on and counts the mass cancels, so a round proves the kill went out as one."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.supports_mass_cancel = gateway.supports_mass_cancel
        self.mass_cancels = 0

    def send(self, command: Any) -> None:
        if type(command) is VenueMassCancel:
            self.mass_cancels += 1
        self.gateway.send(command)


def run_rounds(
    engine: Engine, counting: CountingGateway, pump: Callable[[], None], rounds: int, n: int
) -> HdrHistogram:
    hist = histogram()
    oms = engine.oms
    for r in range(rounds):
        for cmd in orders(r, n):
            engine.handle_command(cmd)
        while any(o.status is not OrderStatus.NEW for o in oms.working_orders()):
            pump()
        engine.drain()
        before = counting.mass_cancels
        start = time.perf_counter_ns()
        engine.handle_command(halt(r))
        while oms.open_order_count():
            pump()
        elapsed = time.perf_counter_ns() - start
        if counting.mass_cancels != before + 1:
            raise SystemExit(f"round {r}: the kill did not go out as one mass cancel")
        engine.handle_command(resume(r))
        engine.drain()
        hist.record_value(max(1, elapsed // 1000))
    return hist


def bench_inprocess(rounds: int, n: int) -> HdrHistogram:
    venue = Venue([SYMBOL], clock=time.time_ns)
    gateway = InProcessGateway(venue, ACCOUNT)
    counting = CountingGateway(gateway)
    engine = new_engine(counting)
    inbox = gateway.inbox

    def pump() -> None:
        while inbox:
            engine.handle_venue_message(inbox.popleft())

    return run_rounds(engine, counting, pump, rounds, n)


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
        gateway = FixGateway(config, INSTRUMENTS, var_dir=var / "engine", wake=woken.set)
        gateway.start()
        if not gateway.wait_connected(60):
            raise SystemExit("the gateway did not log on")
        counting = CountingGateway(gateway)
        engine = new_engine(counting)
        deadline = [time.monotonic() + 600]

        def pump() -> None:
            woken.wait(0.01)
            woken.clear()
            for msg in gateway.poll():
                engine.handle_venue_message(msg)
            if time.monotonic() > deadline[0]:
                raise SystemExit("the venue stopped answering")

        return run_rounds(engine, counting, pump, rounds, n)
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
    print(f"in-process kill of {args.orders} through the engine: {inprocess}", file=sys.stderr)
    over_fix = summary(bench_fix(args.rounds, args.orders, args.file_log))
    print(f"FIX kill of {args.orders} through the engine (file log {args.file_log}): {over_fix}", file=sys.stderr)
    print(f"load average: {os.getloadavg()}", file=sys.stderr)
    print(json.dumps({"kill_1000_inprocess_ms": inprocess["p50_ms"], "kill_1000_fix_ms": over_fix["p50_ms"]}))


if __name__ == "__main__":
    main()
