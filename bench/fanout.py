"""Websocket fan-out: 50 browser sockets on the trading overview's live topics while 20 K engine events/s flow.

Run from the repo root: .venv/bin/python bench/fanout.py [--clients 50] [--rate 20000] [--seconds 20]

Three processes, as deployed:
- daphne serving console.asgi (the real consumer, the real Redis channel layer);
- a publisher playing the bridge's live side: synthetic engine events (top of book, fills, position and P&L
  changes, heartbeats) stamped with the wall clock as they are made, fed at `--rate` in 5 ms batches into the
  bridge's own `LiveState` and sent by its own `LivePublisher` (conflated: at most one update per topic per 50 ms);
- this process: `--clients` websocket clients (autobahn on asyncio), each signed in with its own session,
  subscribing to the overview page's topics exactly as trader.js does.

Figures: ws_msgs_per_client_per_s (frames per client per second), topic_hz (updates per topic per client per
second, median over clients), ws_latency_p50_ms / p99_ms (engine event time -> frame received, per update in a
batch, HDR histogram), daphne_cpu_pct. Target (issue 7): every client sees each topic at up to 10 Hz with
p99 <= 250 ms. Ends with one JSON line.

Database: BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/hft_bench (created and migrated when
missing; the bench users are removed afterwards). Redis: REDIS_URL, default redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/hft_bench"
OVERVIEW_TOPICS = ["heartbeat", "trading_state", "alerts", "pnl", "positions", "orders", "fills", "strategies"]
BUSY_TOPICS = ["heartbeat", "pnl", "positions", "orders", "fills"]  # the ones the synthetic flow keeps changing
ENGINE_ID = "bench-fanout"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(database_url: str, prefix: str) -> dict[str, str]:
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONPATH=str(ROOT), CHANNEL_LAYER_PREFIX=prefix)
    env.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.test")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    # One key for this process (which signs the sessions) and daphne (which checks them).
    env.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    return env


def prepare_database(database_url: str, env: dict[str, str]) -> None:
    import psycopg

    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


# --- the publisher process ------------------------------------------------------------------------------------------


def run_publisher(rate: int, seconds: float) -> None:
    """Feed `rate` synthetic events/s into the bridge's LiveState for `seconds`; its LivePublisher sends them."""
    from engine.protocol import (
        EngineHeartbeat,
        EventEnvelope,
        InstrumentRegistry,
        OrderFilled,
        PnlUpdated,
        PositionChanged,
        Scope,
        Side,
        TopOfBookChanged,
        TradingState,
    )
    from trading.bridge.livestate import LivePublisher, LiveState
    from trading.bridge.rows import Units

    registry = InstrumentRegistry.from_toml(ROOT / "config" / "instruments.toml")
    state = LiveState(engine_id=ENGINE_ID, units=Units(registry))
    publisher = LivePublisher(state)
    publisher.start()
    # A fixed mix per 100 events: 90 top-of-book changes, then a fill, its position change and the P&L of the firm
    # and the strategy (the bridge's busiest topics on a quoting day), with one heartbeat a second.
    tobs = [
        TopOfBookChanged(symbol="BTCUSDT", bid_price=650_000 + i % 40, bid_size=1 + i % 9, ask_price=650_041 + i % 40,
                         ask_size=2 + i % 7)
        for i in range(400)
    ]  # fmt: skip
    firm, strategy = Scope.firm(), Scope.strategy("as-btc")
    seq = 0
    batch_s = 0.005
    per_batch = max(1, int(rate * batch_s))
    start = time.monotonic()
    next_beat = start
    sent = 0
    working = {}
    while (now := time.monotonic()) - start < seconds:
        events = []
        ts = time.time_ns()
        for _ in range(per_batch):
            seq += 1
            k = seq % 100
            if k < 90:
                event = tobs[seq % len(tobs)]
            elif k == 90:
                event = OrderFilled(strategy_id="as-btc", client_order_id=f"q{seq}", symbol="BTCUSDT",
                                    side=Side.BUY, exec_id=f"x{seq}", venue_order_id=seq, last_price=650_000,
                                    last_quantity=2, leaves_quantity=0, cum_quantity=2, is_maker=True,
                                    commission=Decimal("-0.01"))  # fmt: skip
            elif k == 91:
                event = PositionChanged(strategy_id="as-btc", symbol="BTCUSDT", quantity=seq % 21 - 10,
                                        avg_price=Decimal("65000.1"), realized_pnl=Decimal(seq % 997) / 10)  # fmt: skip
            elif k in (92, 93):
                event = PnlUpdated(scope=firm if k == 92 else strategy, realized_pnl=Decimal(seq % 997) / 10,
                                   unrealized_pnl=Decimal(seq % 89) / 10 - 4, fees=Decimal(seq % 31) / 100)  # fmt: skip
            else:
                event = tobs[(seq * 7) % len(tobs)]
            events.append(EventEnvelope(engine_id=ENGINE_ID, seq=seq, ts=ts, event=event))
        if now >= next_beat:
            seq += 1
            beat = EngineHeartbeat(interval_ns=1_000_000_000, firm_state=TradingState.ACTIVE)
            events.append(EventEnvelope(engine_id=ENGINE_ID, seq=seq, ts=ts, event=beat))
            next_beat += 1.0
        cid = f"w{seq % 50}"
        working[cid] = {"client_order_id": cid, "strategy_id": "as-btc", "symbol": "BTCUSDT", "side": "BUY",
                        "price": Decimal("64999.9"), "quantity": Decimal("0.002"), "leaves_quantity": Decimal("0.002"),
                        "status": "NEW", "last_seq": seq}  # fmt: skip
        state.apply(events, {cid: working[cid]})
        sent += len(events)
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    publisher.stop()
    elapsed = time.monotonic() - start
    print(json.dumps({"events": sent, "seconds": elapsed, "updates_sent": publisher.sent}), flush=True)


# --- the clients ----------------------------------------------------------------------------------------------------


def make_sessions(n: int) -> tuple[list[str], list[int]]:
    """n traders, each with a signed-in session (the consumer reads the user from the session cookie)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.auth.models import Group
    from django.contrib.sessions.backends.db import SessionStore

    group = Group.objects.get(name="trader")
    keys, ids = [], []
    for i in range(n):
        user = get_user_model().objects.create_user(username=f"bench-{secrets.token_hex(4)}-{i}", password=None)
        user.groups.add(group)
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
        ids.append(user.pk)
    return keys, ids


def remove_users(ids: list[int]) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
    get_user_model().objects.filter(pk__in=ids).delete()


class ClientStats:
    def __init__(self) -> None:
        self.frames = 0
        self.topic_updates: Counter[str] = Counter()
        self.latencies_ms: list[float] = []
        self.until_sent_ms: list[float] = []  # event -> daphne sending the frame (server_ts): the server side
        self.measuring = False
        self.errors: list[str] = []


class WebSocket:
    """A minimal RFC 6455 client on asyncio streams: enough for text frames and pings. (autobahn's asyncio client
    cannot be used here: Django's set-up already committed txaio to twisted in this process.)"""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, path: str, headers: dict[str, str]) -> WebSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
                 *(f"{k}: {v}" for k, v in headers.items())]  # fmt: skip
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = await reader.readline()
        if b" 101 " not in status:
            raise ConnectionError(f"handshake refused: {status!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x80 | opcode])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(header + mask + masked)

    async def receive(self) -> bytes | None:
        """The next text message (None when the server closed); pings are answered on the way."""
        while True:
            first, second = await self.reader.readexactly(2)
            opcode, n = first & 0x0F, second & 0x7F
            if n == 126:
                n = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(n)
            if opcode == 0x9:
                self.send(0xA, payload)
            elif opcode == 0x8:
                return None
            elif opcode in (0x1, 0x2):
                return payload


async def run_clients(port: int, keys: list[str], seconds: float, warmup: float) -> list[ClientStats]:
    stats = [ClientStats() for _ in keys]

    async def client(key: str, s: ClientStats) -> None:
        headers = {"Cookie": f"sessionid={key}", "Origin": f"http://127.0.0.1:{port}"}
        for attempt in range(5):
            try:
                ws = await WebSocket.connect(port, "/ws/console/", headers)
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        while (payload := await ws.receive()) is not None:
            received = time.time_ns()
            message = json.loads(payload)
            kind = message.get("type")
            if kind == "hello":
                ws.send(0x1, json.dumps({"type": "subscribe", "topics": OVERVIEW_TOPICS}).encode())
            elif kind == "error":
                s.errors.append(message.get("code", "?"))
            elif kind == "batch" and s.measuring:
                s.frames += 1
                sent_ns = message["server_ts"] * 1e9
                for update in message["updates"]:
                    s.topic_updates[update["topic"]] += 1
                    if update["ts"]:
                        s.latencies_ms.append((received - update["ts"]) / 1e6)
                        s.until_sent_ms.append((sent_ns - update["ts"]) / 1e6)

    tasks = []
    for key, s in zip(keys, stats, strict=True):
        # Pages open one by one in real life; 50 handshakes at once overflow daphne's accept queue.
        tasks.append(asyncio.ensure_future(client(key, s)))
        await asyncio.sleep(0.02)
    await asyncio.sleep(warmup)
    for s in stats:
        s.measuring = True
    await asyncio.sleep(seconds)
    for s in stats:
        s.measuring = False
    for task in tasks:
        if task.done() and task.exception() is not None:
            raise task.exception()
        task.cancel()
    return stats


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentile(histogram, q: float) -> float:
    return histogram.get_value_at_percentile(q) / 1000  # recorded in microseconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=int, default=20_000, help="engine events per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--role", choices=["main", "publisher"], default="main", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "publisher":
        django_setup(dict(os.environ))
        run_publisher(args.rate, args.seconds)
        return

    from hdrh.histogram import HdrHistogram

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    env = bench_env(database_url, f"hft-bench-{secrets.token_hex(4)}")
    prepare_database(database_url, env)
    django_setup(env)
    keys, user_ids = make_sessions(args.clients)
    port = free_port()
    (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
    daphne_log = open(ROOT / "var" / "bench" / "fanout-daphne.log", "w")  # closed with daphne below
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=daphne_log,
        stderr=subprocess.STDOUT,
    )
    publisher = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("daphne did not start") from None
                time.sleep(0.2)
        publish_for = args.warmup + args.seconds + 3
        publisher = subprocess.Popen(
            [sys.executable, __file__, "--role", "publisher", "--rate", str(args.rate), "--seconds", str(publish_for)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        cpu_before = 0.0

        async def measured() -> list[ClientStats]:
            nonlocal cpu_before

            async def mark_cpu() -> None:
                nonlocal cpu_before
                await asyncio.sleep(args.warmup + 1.0)  # connections are up; the warm-up has begun
                cpu_before = cpu_seconds(daphne.pid)

            marker = asyncio.ensure_future(mark_cpu())
            result = await run_clients(port, keys, args.seconds, args.warmup + 1.0)
            await marker
            return result

        wall_start = time.monotonic()
        own_cpu_before = time.process_time()
        stats = asyncio.run(measured())
        clients_cpu = time.process_time() - own_cpu_before
        cpu_used = cpu_seconds(daphne.pid) - cpu_before
        cpu_window = time.monotonic() - wall_start - args.warmup - 1.0
        published = json.loads(publisher.communicate(timeout=60)[0].strip().splitlines()[-1])
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
        daphne.terminate()
        daphne.wait(timeout=20)
        daphne_log.close()
        remove_users(user_ids)

    histogram = HdrHistogram(1, 60_000_000, 3)
    server_side = HdrHistogram(1, 60_000_000, 3)
    for s in stats:
        for ms in s.latencies_ms:
            histogram.record_value(max(1, int(ms * 1000)))
        for ms in s.until_sent_ms:
            server_side.record_value(max(1, int(ms * 1000)))
    per_client_fps = [s.frames / args.seconds for s in stats]
    topic_hz = {t: statistics.median(s.topic_updates[t] / args.seconds for s in stats) for t in BUSY_TOPICS}
    errors = Counter(code for s in stats for code in s.errors)
    figures = {
        "ws_clients": len(stats),
        "engine_events_per_s": round(published["events"] / published["seconds"]),
        "ws_msgs_per_client_per_s": round(statistics.median(per_client_fps), 2),
        "ws_msgs_per_client_per_s_min": round(min(per_client_fps), 2),
        "topic_hz_median": {t: round(v, 2) for t, v in topic_hz.items()},
        "ws_latency_p50_ms": round(percentile(histogram, 50), 1),
        "ws_latency_p99_ms": round(percentile(histogram, 99), 1),
        "ws_latency_max_ms": round(histogram.get_max_value() / 1000, 1),
        "event_to_daphne_send_p50_ms": round(percentile(server_side, 50), 1),
        "event_to_daphne_send_p99_ms": round(percentile(server_side, 99), 1),
        "updates_measured": histogram.get_total_count(),
        "daphne_cpu_pct": round(100 * cpu_used / max(cpu_window, 1e-9), 1),
        "clients_cpu_pct": round(100 * clients_cpu / max(time.monotonic() - wall_start, 1e-9), 1),
        "bridge_updates_per_s": round(published["updates_sent"] / published["seconds"], 1),
        "errors": dict(errors),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    print(f"{len(stats)} clients on {', '.join(OVERVIEW_TOPICS)}; {figures['engine_events_per_s']:,} engine events/s "
          f"(asked {args.rate:,}) for {args.seconds} s")  # fmt: skip
    print(f"frames per client per second: median {figures['ws_msgs_per_client_per_s']}, min "
          f"{figures['ws_msgs_per_client_per_s_min']} (cap 10)")  # fmt: skip
    print("updates per topic per client per second (median): "
          + ", ".join(f"{t} {v}" for t, v in figures["topic_hz_median"].items()))  # fmt: skip
    print(f"engine event -> browser frame: p50 {figures['ws_latency_p50_ms']} ms, p99 {figures['ws_latency_p99_ms']} "
          f"ms, max {figures['ws_latency_max_ms']} ms over {figures['updates_measured']:,} updates")  # fmt: skip
    print(f"of which event -> daphne sends the frame: p50 {figures['event_to_daphne_send_p50_ms']} ms, "
          f"p99 {figures['event_to_daphne_send_p99_ms']} ms")  # fmt: skip
    print(f"daphne CPU: {figures['daphne_cpu_pct']} % of one core; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
