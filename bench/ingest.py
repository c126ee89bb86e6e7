"""Bridge ingest: engine events -> committed rows in the indexed tick table, beside a plain binary COPY.

Run from the repo root: .venv/bin/python bench/ingest.py [--n 300000] [--rate 20000] [--lag-seconds 10]

The bridge is the real `python manage.py engine_bridge` process (live publishing on, as deployed). The engine is
played by this process: a CURVE ROUTER that answers `RequestStateSnapshot` and `RequestReplay` (from the frames it
has published) and a CURVE PUB sending `[b"all", EventEnvelope]` frames, exactly the engine's wire format, so the
bridge's whole path is measured (SUB receive, decode with every check, Decimal conversion, batching, binary COPY
into trading_tick with its (symbol, ts) index, checkpoint, commit, live state) without the engine's own cost in
the way: the engine cannot produce 150 K events/s.

1. Ingest (`bridge_rows_per_s`): the bridge's catch-up path, the way it ingests after a restart. The engine already
   holds `--n` TopOfBookChanged events the bridge has not persisted; the bridge starts, reads its checkpoint and
   takes them in `ReplayBatch` replies of 20 K events (the engine's wire bytes, answered from frames encoded
   beforehand), writing its usual transactions of 20 K events. Timed from the moment this process receives the
   first `RequestReplay` to the bridge's last commit (its `--stats-file`): every receive, decode, row build, COPY,
   checkpoint and commit of the `--n` events is inside the window, and this process is idle but for answering
   replay requests, so it does not take the CPU the bridge is measured on. The CPU seconds the bridge process and
   its PostgreSQL backend spent inside that window are printed too (per-row cost, independent of the load).
2. Live ingest (`bridge_live_rows_per_s`): the same number of events published on the PUB socket as fast as this
   process can, timed from the first publish to the bridge's last commit. Here the publisher competes with the
   bridge and PostgreSQL for the same CPUs, so this is a lower bound that follows the machine's load.
3. Plain COPY (`copy_rows_per_s`): the same number of tick rows (built beforehand) written by binary COPY
   (psycopg `write_row`) in 20 K-row transactions into the same table in the same run. `bridge_ratio_vs_copy` is
   `bridge_rows_per_s` over it.
4. Lag: events published at `--rate` per second for `--lag-seconds`, each stamped with the wall clock as it is
   published (EventEnvelope.ts); the bridge records commit time minus ts per event in an HDR histogram:
   `bridge_lag_p50_ms`, `bridge_lag_p99_ms`.

Database: BENCH_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/hft_bench (created and migrated when
missing); the rows written are deleted afterwards. Redis: REDIS_URL, default redis://127.0.0.1:6379/0. The bridge
runs with console.settings.test (no .env needed) unless DJANGO_SETTINGS_MODULE says otherwise.
BENCH_PROFILE=/tmp/p writes cProfile output of the bridge's main thread to /tmp/p.tput and /tmp/p.lag.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402
import psycopg  # noqa: E402
import zmq  # noqa: E402
from zmq.auth.thread import ThreadAuthenticator  # noqa: E402

from engine.instruments import InstrumentRegistry  # noqa: E402
from engine.protocol import (  # noqa: E402
    PROTOCOL_VERSION,
    Codec,
    CommandRejected,
    RequestReplay,
    RequestStateSnapshot,
    StateSnapshot,
    TopOfBookChanged,
)
from engine.server import curve  # noqa: E402
from trading.bridge.rows import Units, ts_datetime  # noqa: E402

DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/hft_bench"
CODEC = Codec(InstrumentRegistry.from_toml(ROOT / "config" / "instruments.toml"))
UNITS = Units(CODEC.instruments)
REPLAY_CHUNK = 20_000
COPY_CPU_US_PER_ROW: dict[str, float] = {}  # measure_copy's own CPU per row: this process and its backend


def tob_event(i: int) -> TopOfBookChanged:
    bid = 650_000 + (i % 50)
    return TopOfBookChanged(symbol="BTCUSDT", bid_price=bid, bid_size=1 + i % 97, ask_price=bid + 1, ask_size=3)


# Encoded events to publish, cycling: 50 prices x 97 sizes of top-of-book changes.
EVENTS = [msgspec.Raw(CODEC.encode(tob_event(i))) for i in range(4850)]
_ENCODER = msgspec.msgpack.Encoder()


class FakeEngine:
    """The engine's two sockets, as the bridge sees them, serving what this process publishes."""

    def __init__(self, directory: Path, engine_id: str) -> None:
        self.engine_id = engine_id
        self.frames: list[bytes] = []  # frame of seq n at index n - 1
        curve.generate_keys(directory / "keys")
        self.keys = directory / "keys"
        self.context = zmq.Context()
        self.auth = ThreadAuthenticator(self.context)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(self.keys))
        public, secret = zmq.auth.load_certificate(str(self.keys / "engine.key_secret"))
        self.router = self._server(zmq.ROUTER, public, secret, f"ipc://{directory}/cmd")
        # sndhwm 0: never drop (the bench measures the bridge, not ZeroMQ's queue limits); set before bind, since
        # a high-water mark applies only to connections made after it is set.
        self.pub = self._server(zmq.PUB, public, secret, f"ipc://{directory}/ev", sndhwm=0)
        self.command_endpoint = f"ipc://{directory}/cmd"
        self.event_endpoint = f"ipc://{directory}/ev"
        self.replays = 0
        self.first_replay_ns = 0  # when the first RequestReplay arrived
        self.on_first_replay: Callable[[], None] | None = None

    def _server(self, kind: int, public: bytes, secret: bytes, endpoint: str, sndhwm: int = 1000) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.linger = 0
        socket.sndhwm = sndhwm
        socket.curve_server = True
        socket.curve_publickey = public
        socket.curve_secretkey = secret
        socket.bind(endpoint)
        return socket

    @property
    def seq(self) -> int:
        return len(self.frames)

    def frame(self, event_bytes: msgspec.Raw, ts: int, seq: int | None = None) -> bytes:
        """The next envelope around an already encoded event: the engine's own bytes, without building a struct
        per event in this process (that would make the publisher, not the bridge, the bottleneck)."""
        envelope = {"type": "EventEnvelope", "v": PROTOCOL_VERSION, "engine_id": self.engine_id}
        return _ENCODER.encode({**envelope, "seq": seq or self.seq + 1, "ts": ts, "event": event_bytes})

    def publish(self, event_bytes: msgspec.Raw, ts: int | None = None) -> None:
        self.send(self.frame(event_bytes, ts or time.time_ns()))

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.pub.send_multipart((b"all", frame), copy=False)
        if self.seq % 256 == 0:
            self.serve(0)

    def serve(self, timeout_ms: int) -> None:
        """Answer whatever commands are waiting (snapshot, replay)."""
        while self.router.poll(timeout_ms):
            timeout_ms = 0
            identity, data = self.router.recv_multipart()
            cmd = CODEC.decode_command(data)
            now = time.time_ns()
            if type(cmd) is RequestStateSnapshot:
                reply = StateSnapshot(command_id=cmd.command_id, engine_id=self.engine_id, seq=self.seq, ts=now)
            elif type(cmd) is RequestReplay:
                self.replays += 1
                if not self.first_replay_ns:
                    if self.on_first_replay is not None:
                        self.on_first_replay()
                    self.first_replay_ns = time.time_ns()
                chunk = self.frames[cmd.from_seq - 1 : cmd.from_seq - 1 + REPLAY_CHUNK]
                # The engine's ReplayBatch bytes, with the stored frames spliced in as they are (msgspec.Raw): the
                # same MessagePack the engine sends, without decoding and re-encoding each event in this process
                # while the bridge is being timed.
                batch = {"type": "ReplayBatch", "v": PROTOCOL_VERSION, "command_id": cmd.command_id}
                batch.update(from_seq=cmd.from_seq, last_seq=self.seq, events=[msgspec.Raw(f) for f in chunk])
                batch["complete"] = cmd.from_seq - 1 + len(chunk) >= self.seq
                self.router.send_multipart((identity, _ENCODER.encode(batch)))
                continue
            else:
                reply = CommandRejected(command_id=cmd.command_id, ts=now, code="BENCH", reason="not served")
            self.router.send_multipart((identity, CODEC.encode(reply)))

    def close(self) -> None:
        self.auth.stop()
        self.context.destroy(linger=0)


class BridgeRun:
    def __init__(self, engine: FakeEngine, directory: Path, database_url: str) -> None:
        self.engine = engine
        self.stats_file = directory / f"stats-{engine.engine_id}.json"
        self.log = directory / f"bridge-{engine.engine_id}.log"
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            DJANGO_SETTINGS_MODULE=os.environ.get("DJANGO_SETTINGS_MODULE", "console.settings.test"),
            ENGINE_COMMAND_ENDPOINT=engine.command_endpoint,
            ENGINE_EVENT_ENDPOINT=engine.event_endpoint,
            ENGINE_CURVE_KEYS_DIR=str(engine.keys),
            PYTHONPATH=str(ROOT),
        )
        # BENCH_PROFILE=path runs the bridge under cProfile (pstats output at that path) to see where time goes.
        prof = os.environ.get("BENCH_PROFILE")
        profile = ["-m", "cProfile", "-o", f"{prof}.{engine.engine_id.split('-')[1]}"] if prof else []
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, *profile, "manage.py", "engine_bridge", "--stats-file", str(self.stats_file)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.database_url = database_url
        self.conn: psycopg.Connection | None = None

    def checkpoint(self) -> int:
        # One connection for the whole run: connecting per look (tens of ms on a busy machine) would keep the bridge
        # waiting for its next replay reply meanwhile.
        if self.conn is None:
            self.conn = psycopg.connect(self.database_url, autocommit=True)
        row = self.conn.execute(
            "SELECT last_seq FROM trading_bridgecheckpoint WHERE engine_id = %s", (self.engine.engine_id,)
        ).fetchone()
        return row[0] if row else 0

    def wait_checkpoint(self, seq: int, timeout_s: float = 600) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.engine.serve(20)
            if self.proc.poll() is not None:
                raise SystemExit(f"bridge exited {self.proc.returncode}:\n{self.log.read_text()}")
            if self.checkpoint() >= seq:
                return
        raise SystemExit(f"bridge did not reach {seq}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.engine.serve(20)
        if self.conn is not None:
            self.conn.close()
        if self.proc.wait(timeout=5) != 0:
            raise SystemExit(f"bridge exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        for line in self.log.read_text().splitlines():
            if "WARNING" in line or "ERROR" in line:
                print(f"  bridge: {line}", file=sys.stderr)
        return json.loads(self.stats_file.read_text())


def warm_up(engine: FakeEngine, bridge: BridgeRun) -> None:
    """Publish slowly until the bridge has committed something: its SUB socket is connected from then on."""
    engine.serve(0)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        engine.publish(EVENTS[engine.seq % len(EVENTS)])
        engine.serve(50)
        if bridge.checkpoint() >= 1:
            bridge.wait_checkpoint(engine.seq)
            return
    raise SystemExit(f"bridge never committed:\n{bridge.log.read_text()}")


def measure_throughput(directory: Path, database_url: str, n: int) -> tuple[float, dict]:
    engine = FakeEngine(directory / "t", f"bench-tput-{uuid.uuid4().hex[:8]}")
    bridge = BridgeRun(engine, directory, database_url)
    try:
        warm_up(engine, bridge)
        start_seq = engine.seq
        now = time.time_ns()
        frames = [engine.frame(EVENTS[i % len(EVENTS)], now, start_seq + 1 + i) for i in range(n)]
        started = time.time_ns()
        for frame in frames:
            engine.send(frame)
        bridge.wait_checkpoint(start_seq + n)
        stats = bridge.stop()
        return n / ((stats["last_commit_ns"] - started) / 1e9), stats
    finally:
        if bridge.proc.poll() is None:
            bridge.proc.kill()
        engine.close()
        cleanup(database_url, engine.engine_id)


def measure_catch_up(directory: Path, database_url: str, n: int) -> tuple[float, dict]:
    """The bridge's ingest rate on its catch-up path: the engine already holds `n` events the bridge has not
    persisted (as after a restart), so the bridge takes them in `ReplayBatch` replies of 20 K events, as fast as it
    can ask for them. Timed from the engine receiving the first `RequestReplay` to the bridge's last commit: every
    receive, decode, row build, COPY and commit of the `n` events is inside the window, while this process only
    answers replay requests from frames encoded beforehand (it does not compete for the CPU as a live publisher
    does)."""
    engine = FakeEngine(directory / "c", f"bench-catchup-{uuid.uuid4().hex[:8]}")
    now = time.time_ns()
    engine.frames = [engine.frame(EVENTS[i % len(EVENTS)], now, i + 1) for i in range(n)]
    bridge = BridgeRun(engine, directory, database_url)
    cpu: dict[str, float] = {}

    def window_opens() -> None:  # CPU seconds of the bridge and of its PostgreSQL backend when the timing starts
        cpu["backend"] = _backend_pid(bridge)
        cpu["bridge_s"], cpu["postgres_s"] = _cpu_s(bridge.proc.pid), _cpu_s(cpu["backend"])

    engine.on_first_replay = window_opens
    try:
        bridge.wait_checkpoint(n)
        stats = {
            "bridge_cpu_s": round(_cpu_s(bridge.proc.pid) - cpu["bridge_s"], 3),
            "postgres_cpu_s": round(_cpu_s(cpu["backend"]) - cpu["postgres_s"], 3),
        }
        stats.update(bridge.stop())
        stats["first_replay_ns"] = engine.first_replay_ns
        return n / ((stats["last_commit_ns"] - engine.first_replay_ns) / 1e9), stats
    finally:
        if bridge.proc.poll() is None:
            bridge.proc.kill()
        engine.close()
        cleanup(database_url, engine.engine_id)


def _backend_pid(bridge: BridgeRun) -> int:
    """The PostgreSQL backend serving the bridge's connection (bench and database on one machine)."""
    bridge.checkpoint()
    assert bridge.conn is not None
    row = bridge.conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'engine_bridge' AND datname = current_database()"
    ).fetchone()
    return row[0] if row else 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it cannot be read: another host, another OS)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_lag(directory: Path, database_url: str, rate: int, seconds: float) -> dict:
    engine = FakeEngine(directory / "l", f"bench-lag-{uuid.uuid4().hex[:8]}")
    bridge = BridgeRun(engine, directory, database_url)
    try:
        warm_up(engine, bridge)
        # Let the warm-up's slow events leave the histogram's way: only the paced run is reported.
        bridge_stats_floor = engine.seq
        total = int(rate * seconds)
        start = time.perf_counter()
        for i in range(total):
            # Sleep (answering commands) until the event is due, to the millisecond: events due within the same
            # millisecond go out together, each stamped as it is published. Spinning instead would take a whole CPU
            # from the bridge and PostgreSQL on this 2-core machine.
            wait = start + i / rate - time.perf_counter()
            if wait >= 0.001:
                engine.serve(int(wait * 1000))
            engine.publish(EVENTS[i % len(EVENTS)])
        bridge.wait_checkpoint(engine.seq)
        stats = bridge.stop()
        stats["warmup_events"] = bridge_stats_floor
        stats["published_per_s"] = round(total / (time.perf_counter() - start))
        return stats
    finally:
        if bridge.proc.poll() is None:
            bridge.proc.kill()
        engine.close()
        cleanup(database_url, engine.engine_id)


def measure_copy(database_url: str, n: int) -> float:
    engine_id = f"bench-copy-{uuid.uuid4().hex[:8]}"
    now = time.time_ns()
    rows = []
    for i in range(n):
        e = tob_event(i)
        bid, bid_size = UNITS.side_price("BTCUSDT", e.bid_price, e.bid_size)
        ask, ask_size = UNITS.side_price("BTCUSDT", e.ask_price, e.ask_size)
        ts = now + i * 1000
        rows.append((engine_id, i + 1, ts_datetime(ts), ts, "BTCUSDT", bid, bid_size, ask, ask_size))
    columns = "engine_id, seq, ts, ts_ns, symbol, bid_price, bid_size, ask_price, ask_size"
    types = ("text", "int8", "timestamptz", "int8", "text", "numeric", "numeric", "numeric", "numeric")
    try:
        with psycopg.connect(database_url) as conn:
            backend = conn.info.backend_pid
            cpu = time.process_time(), _cpu_s(backend)
            started = time.perf_counter()
            for i in range(0, n, REPLAY_CHUNK):
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(f"COPY trading_tick ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(types)
                        for row in rows[i : i + REPLAY_CHUNK]:
                            copy.write_row(row)
            elapsed = time.perf_counter() - started
            COPY_CPU_US_PER_ROW.update(
                client=(time.process_time() - cpu[0]) / n * 1e6, postgres=(_cpu_s(backend) - cpu[1]) / n * 1e6
            )
        return n / elapsed
    finally:
        cleanup(database_url, engine_id)


def cleanup(database_url: str, engine_id: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM trading_tick WHERE engine_id = %s", (engine_id,))
        conn.execute("DELETE FROM trading_bridgecheckpoint WHERE engine_id = %s", (engine_id,))


def prepare_database(database_url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    name = info["dbname"]
    admin = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    env = dict(os.environ, DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    env.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.test")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300_000, help="events for the throughput run")
    parser.add_argument("--rate", type=int, default=20_000, help="events per second for the lag run")
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    args = parser.parse_args()
    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB)
    prepare_database(database_url)
    directory = Path(tempfile.mkdtemp(prefix="ingest", dir="/tmp"))
    try:
        copy_rate = measure_copy(database_url, args.n)
        print(
            f"plain binary COPY into trading_tick: {copy_rate:,.0f} rows/s ({args.n:,} rows, 20 K per transaction; "
            f"CPU per row: client {COPY_CPU_US_PER_ROW['client']:.2f} us, PostgreSQL backend "
            f"{COPY_CPU_US_PER_ROW['postgres']:.2f} us)"
        )
        bridge_rate, catch = measure_catch_up(directory, database_url, args.n)
        print(
            f"bridge ingest (catch-up from ReplayBatch replies): {bridge_rate:,.0f} rows/s ({args.n:,} events in "
            f"{catch['batches']} transactions, {bridge_rate / copy_rate:.2f} of plain COPY; CPU per row: bridge "
            f"{catch['bridge_cpu_s'] / args.n * 1e6:.2f} us, its PostgreSQL backend "
            f"{catch['postgres_cpu_s'] / args.n * 1e6:.2f} us)"
        )
        live_rate, tput = measure_throughput(directory, database_url, args.n)
        print(
            f"bridge live ingest (publisher on the same CPUs): {live_rate:,.0f} rows/s ({args.n:,} events in "
            f"{tput['batches']} transactions)"
        )
        lag = measure_lag(directory, database_url, args.rate, args.lag_seconds)
        print(
            f"lag at {lag['published_per_s']:,} events/s for {args.lag_seconds:g} s: p50 {lag['lag_p50_ms']} ms, "
            f"p99 {lag['lag_p99_ms']} ms, max {lag['lag_max_ms']} ms ({lag['lag_count']:,} events incl. "
            f"{lag['warmup_events']} warm-up, {lag['batches']} transactions)"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    result = {
        "bridge_rows_per_s": round(bridge_rate),
        "copy_rows_per_s": round(copy_rate),
        "bridge_ratio_vs_copy": round(bridge_rate / copy_rate, 3),
        "bridge_lag_p50_ms": lag["lag_p50_ms"],
        "bridge_lag_p99_ms": lag["lag_p99_ms"],
        "bridge_live_rows_per_s": round(live_rate),
        "bridge_cpu_us_per_row": round(catch["bridge_cpu_s"] / args.n * 1e6, 2),
        "postgres_cpu_us_per_row": round(catch["postgres_cpu_s"] / args.n * 1e6, 2),
        "n": args.n,
        "lag_rate_per_s": args.rate,
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
