"""Console command -> engine reply round trip, across processes, over ipc and tcp, with CURVE.

Run from the repo root: .venv/bin/python bench/roundtrip.py [--n 20000] [--warmup 2000]

Starts the real engine (`python -m engine`, a throw-away config and journal in a temp dir, fsync BATCH, no
strategies and no background flow so nothing else competes for the engine thread) and, from this process, sends
`Heartbeat` commands one at a time on a CURVE DEALER, each with a new command id, timing send -> reply with
perf_counter_ns. A heartbeat takes the full command path: decode, stamp, journal append, apply (the dead-man
clock), reply encode. For comparison the same client pings a bare pyzmq ROUTER echo process over the same
transport with CURVE (`pyzmq_rtt_*`) and without it (`pyzmq_nocurve_rtt_*`): the difference between the engine
and the CURVE echo is the engine's own cost.

The engine runs with `[timers] busy_poll_us = 500` (config/engine.toml's value: it keeps polling for 0.5 ms after
each input, so a burst of commands finds it awake); `command_rtt_tcp_blocking_*` is the same run with 0 (the
engine blocks in poll between commands and each command pays the wake-up of an idle thread).

The last line is JSON: command_rtt_p50_us / _p99_us / _p999_us are the tcp figures (the deployed default); the
ipc figures and the pyzmq baseline carry their transport in the key. The machine's load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402

from engine.instruments import InstrumentRegistry  # noqa: E402
from engine.protocol import Codec, CommandAccepted, Heartbeat, RequestStateSnapshot  # noqa: E402
from engine.server import curve  # noqa: E402

CONFIG = """
instruments_file = "{root}/config/instruments.toml"
[engine]
engine_id = "bench"
{engine_extra}
{strategies}
[endpoints]
commands = "{commands}"
events = "{events}"
[security]
keys_dir = "{dir}/keys"
[journal]
path = "{dir}/journal.bin"
snapshot_dir = "{dir}/snapshots"
fsync = "{fsync}"
[timers]
tick_ms = 50
busy_poll_us = {busy_poll_us}
[venue]
kind = "{venue}"
{venue_extra}
"""

ECHO = """
import sys, zmq
sys.path.insert(0, {root!r})
from engine.server import curve
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
if {use_curve!r}:
    curve.make_server(s, {keys!r})
s.bind({endpoint!r})
print("ready", flush=True)
while True:
    s.send_multipart(s.recv_multipart())
"""


class EngineRun:
    """A `python -m engine` process with its own keys, journal and endpoints; use as a context manager."""

    def __init__(
        self,
        *,
        transport: str,
        venue: str = "inprocess",
        venue_extra: str = "",
        strategies: str = "",
        engine_extra: str = "",
        ports: tuple[int, int] = (17101, 17102),
        fsync: str = "batch",
        busy_poll_us: int = 0,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench", dir="/tmp"))
        curve.generate_keys(self.dir / "keys")
        if transport == "ipc":
            self.commands, self.events = f"ipc://{self.dir}/cmd", f"ipc://{self.dir}/ev"
        else:
            self.commands, self.events = f"tcp://127.0.0.1:{ports[0]}", f"tcp://127.0.0.1:{ports[1]}"
        (self.dir / "engine.toml").write_text(
            CONFIG.format(
                root=ROOT,
                dir=self.dir,
                commands=self.commands,
                events=self.events,
                venue=venue,
                venue_extra=venue_extra,
                strategies=strategies,
                engine_extra=engine_extra,
                fsync=fsync,
                busy_poll_us=busy_poll_us,
            )
        )
        self.proc: subprocess.Popen | None = None
        self.codec = Codec(InstrumentRegistry.from_toml(ROOT / "config" / "instruments.toml"))
        self.context = zmq.Context()

    def __enter__(self) -> EngineRun:
        log = open(self.dir / "engine.log", "wb")  # the child keeps its own descriptor
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "--config", str(self.dir / "engine.toml")],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.destroy(linger=0)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)

    def dealer(self) -> zmq.Socket:
        s = self.context.socket(zmq.DEALER)
        s.linger = 0
        curve.make_client(s, self.dir / "keys")
        s.connect(self.commands)
        return s

    def subscriber(self, *topics: bytes) -> zmq.Socket:
        s = self.context.socket(zmq.SUB)
        s.linger = 0
        curve.make_client(s, self.dir / "keys")
        for t in topics:
            s.setsockopt(zmq.SUBSCRIBE, t)
        s.connect(self.events)
        return s

    def wait_ready(self, socket: zmq.Socket, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        n = 0
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(f"engine exited:\n{(self.dir / 'engine.log').read_text()}")
            if socket.poll(500, zmq.POLLOUT):
                n += 1
                socket.send(self.codec.encode(RequestStateSnapshot(command_id=f"ready-{n}", operator="bench", ts=0)))
                if socket.poll(2000):
                    while socket.poll(200):  # drain answers to earlier attempts too
                        socket.recv()
                    return
        raise SystemExit(f"engine not ready in {timeout_s} s:\n{(self.dir / 'engine.log').read_text()}")


def measure_engine(transport: str, n: int, warmup: int, busy_poll_us: int = 500) -> HdrHistogram:
    hist = HdrHistogram(1, 10_000_000_000, 3)
    with EngineRun(transport=transport, busy_poll_us=busy_poll_us) as run:
        socket = run.dealer()
        run.wait_ready(socket)
        encode, decode = run.codec.encode, run.codec.decode_reply
        perf = time.perf_counter_ns
        for i in range(warmup + n):
            data = encode(Heartbeat(command_id=f"hb-{i}", operator="bench", ts=0))
            t0 = perf()
            socket.send(data)
            reply = socket.recv()
            t1 = perf()
            if i >= warmup:
                hist.record_value(max(1, t1 - t0))
            msg = decode(reply)
            if type(msg) is not CommandAccepted or msg.command_id != f"hb-{i}":
                raise SystemExit(f"unexpected reply {msg!r}")
    return hist


def measure_pyzmq(transport: str, n: int, warmup: int, *, use_curve: bool = True) -> HdrHistogram:
    hist = HdrHistogram(1, 10_000_000_000, 3)
    directory = Path(tempfile.mkdtemp(prefix="echo", dir="/tmp"))
    curve.generate_keys(directory / "keys")
    endpoint = f"ipc://{directory}/echo" if transport == "ipc" else "tcp://127.0.0.1:17150"
    code = ECHO.format(root=str(ROOT), keys=str(directory / "keys"), endpoint=endpoint, use_curve=use_curve)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    context = zmq.Context()
    try:
        proc.stdout.readline()
        s = context.socket(zmq.DEALER)
        s.linger = 0
        if use_curve:
            curve.make_client(s, directory / "keys")
        s.connect(endpoint)
        payload = Codec(InstrumentRegistry.from_toml()).encode(Heartbeat(command_id="x" * 12, operator="bench", ts=0))
        perf = time.perf_counter_ns
        for i in range(warmup + n):
            t0 = perf()
            s.send(payload)
            s.recv()
            t1 = perf()
            if i >= warmup:
                hist.record_value(max(1, t1 - t0))
    finally:
        context.destroy(linger=0)
        proc.kill()
        proc.wait(timeout=30)
        shutil.rmtree(directory, ignore_errors=True)
    return hist


def us(hist: HdrHistogram, pct: float) -> float:
    return round(hist.get_value_at_percentile(pct) / 1000, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--busy-poll-us", type=int, default=500, help="the engine's [timers] busy_poll_us")
    args = parser.parse_args()
    figures: dict[str, float] = {}
    for transport in ("ipc", "tcp"):
        base = measure_pyzmq(transport, args.n, args.warmup)
        plain = measure_pyzmq(transport, args.n, args.warmup, use_curve=False)
        eng = measure_engine(transport, args.n, args.warmup, args.busy_poll_us)
        print(
            f"{transport}: engine p50 {us(eng, 50)} us p99 {us(eng, 99)} us p99.9 {us(eng, 99.9)} us; "
            f"bare pyzmq+CURVE p50 {us(base, 50)} us p99 {us(base, 99)} us; "
            f"bare pyzmq, no CURVE p50 {us(plain, 50)} us "
            f"(load average {os.getloadavg()[0]:.2f})"
        )
        figures[f"command_rtt_{transport}_p50_us"] = us(eng, 50)
        figures[f"command_rtt_{transport}_p99_us"] = us(eng, 99)
        figures[f"command_rtt_{transport}_p999_us"] = us(eng, 99.9)
        figures[f"pyzmq_rtt_{transport}_p50_us"] = us(base, 50)
        figures[f"pyzmq_rtt_{transport}_p99_us"] = us(base, 99)
        figures[f"pyzmq_nocurve_rtt_{transport}_p50_us"] = us(plain, 50)
    blocking = measure_engine("tcp", args.n, args.warmup, 0)
    print(f"tcp, engine never spinning (busy_poll_us 0): p50 {us(blocking, 50)} us p99 {us(blocking, 99)} us")
    figures["command_rtt_tcp_blocking_p50_us"] = us(blocking, 50)
    figures["command_rtt_tcp_blocking_p99_us"] = us(blocking, 99)
    result = {
        "command_rtt_p50_us": figures["command_rtt_tcp_p50_us"],
        "command_rtt_p99_us": figures["command_rtt_tcp_p99_us"],
        "command_rtt_p999_us": figures["command_rtt_tcp_p999_us"],
        **figures,
        "n": args.n,
        "busy_poll_us": args.busy_poll_us,
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
