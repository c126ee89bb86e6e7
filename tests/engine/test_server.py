"""The engine as a process: `python -m engine` on real ipc sockets with CURVE, driven like the console drives it.

Every test starts the real process from a config file in a temporary directory and kills it in a `finally`. Waits
are upper bounds only (the machine is shared and slow): nothing asserts how long anything took.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pytest
import zmq

from engine.enums import OrderType, Side, TimeInForce, TradingState
from engine.instruments import InstrumentRegistry
from engine.journal import scan
from engine.protocol import (
    BookDepth,
    Codec,
    CommandAccepted,
    CommandRejected,
    EngineHeartbeat,
    HaltCompleted,
    HaltTrading,
    Heartbeat,
    MarketTrade,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    OrderSubmitted,
    QueryVenueOrders,
    ReplayBatch,
    RequestReplay,
    RequestStateSnapshot,
    Scope,
    StartStrategy,
    StateSnapshot,
    SubmitOrder,
    TradingStateChanged,
    UpdateStrategyParams,
    VenueOrderStatus,
    VenueStatusComplete,
)
from engine.server import curve

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0
CODEC = Codec(InstrumentRegistry.from_toml(ROOT / "config" / "instruments.toml"))

CONFIG = """
instruments_file = "{root}/config/instruments.toml"

[engine]
engine_id = "test-engine"
account = "MM1"
replay_ring_size = {ring}

[[strategies]]
strategy_id = "as-btc"
symbol = "BTCUSDT"
autostart = true
params = {{ gamma = 0.05, k = 1.5, sigma = 2.0, horizon_s = 60.0, order_size = 2, max_inventory = 20 }}

[[limits]]
scope = "instrument:BTCUSDT"
limits = {{ max_order_quantity = "0.1" }}

[endpoints]
commands = "ipc://{dir}/cmd"
events = "ipc://{dir}/ev"

[security]
curve = true
keys_dir = "{dir}/keys"

[journal]
path = "{dir}/journal.bin"
snapshot_dir = "{dir}/snapshots"
fsync = "batch"

[timers]
tick_ms = 50

[venue]
kind = "inprocess"

[[venue.flow]]
symbol = "BTCUSDT"
initial_price = 650000
intensity = 40.0
market_share = 0.1
size_mean = 20.0
size_max = 200
seed = 3
{extra}
"""


class EngineProcess:
    """`python -m engine` in a temporary directory (short: ipc paths are limited to ~100 bytes)."""

    def __init__(self, *, ring: int = 100_000, extra: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="eng", dir="/tmp"))
        curve.generate_keys(self.dir / "keys")
        self.config = self.dir / "engine.toml"
        self.config.write_text(CONFIG.format(root=ROOT, dir=self.dir, ring=ring, extra=extra))
        self.proc: subprocess.Popen | None = None
        self.log = self.dir / "engine.log"

    def use_fix_venue(self, fix_port: int, pub: str, snapshot: str) -> None:
        text = self.config.read_text().replace('kind = "inprocess"', 'kind = "fix"', 1)
        text = text.replace(
            "[venue]\n", f'[venue]\nmarket_data = "{pub}"\nsnapshot = "{snapshot}"\nfix_var_dir = "{self.dir}/fix"\n'
        )
        session = f'sender_comp_id = "ENGINE"\ntarget_comp_ids = ["VENUE"]\nport = {fix_port}\nfile_log = false\n'
        text += f"\n[venue.fix]\n{session}"
        self.config.write_text(text)

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine", "--config", str(self.config)], cwd=ROOT, stdout=log, stderr=log
            )

    def kill(self, sig: int = signal.SIGKILL) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=WAIT_S)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)
        shutil.rmtree(self.dir, ignore_errors=True)


class Client:
    """What the console does, minus Django: a CURVE DEALER for commands and a CURVE SUB for events."""

    def __init__(
        self, engine: EngineProcess, *, keys: Path | None = None, plain: bool = False, topics: tuple = (b"all",)
    ) -> None:
        self.context = zmq.Context()
        self.engine = engine
        self.keys = None if plain else engine.dir / "keys" if keys is None else keys
        self.dealer = self._socket(zmq.DEALER, f"ipc://{engine.dir}/cmd")
        self.topics = topics
        self.sub = self._sub()
        self.n = 0

    def _socket(self, kind: int, endpoint: str) -> zmq.Socket:
        socket = self.context.socket(kind)
        socket.linger = 0
        if self.keys is not None:
            curve.make_client(socket, self.keys)
        socket.connect(endpoint)
        return socket

    def _sub(self) -> zmq.Socket:
        sub = self._socket(zmq.SUB, f"ipc://{self.engine.dir}/ev")
        for topic in self.topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic)
        return sub

    def drop_events(self) -> None:
        self.sub.close(0)

    def reconnect_events(self) -> None:
        self.sub.close(0)
        self.sub = self._sub()

    def send_raw(self, data: bytes, timeout_s: float = WAIT_S) -> bytes | None:
        # A DEALER with no completed handshake has no peer and would block in send: wait for one, bounded.
        if not self.dealer.poll(int(timeout_s * 1000), zmq.POLLOUT):
            return None
        self.dealer.send(data, zmq.NOBLOCK)
        if self.dealer.poll(int(timeout_s * 1000)):
            return self.dealer.recv()
        return None

    def request(self, cmd, timeout_s: float = WAIT_S):
        raw = self.send_raw(CODEC.encode(cmd), timeout_s)
        return None if raw is None else CODEC.decode_reply(raw)

    def next_id(self) -> str:
        self.n += 1
        return f"t{os.getpid()}-{self.n}"

    def wait_ready(self) -> StateSnapshot:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            reply = self.request(RequestStateSnapshot(command_id=self.next_id(), operator="tester", ts=0), 1.0)
            if reply is not None:
                return reply
            # A DEALER queues the unanswered request; a fresh socket keeps replies in step with requests.
            self.dealer.close(0)
            self.dealer = self._socket(zmq.DEALER, f"ipc://{self.engine.dir}/cmd")
        raise AssertionError(f"engine did not answer within {WAIT_S} s:\n{self.engine.log.read_text()}")

    def events(self, until, timeout_s: float = WAIT_S) -> list:
        """Events from the SUB socket until `until(envelopes)` is true."""
        seen: list = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not until(seen):
            if self.sub.poll(100):
                _topic, data = self.sub.recv_multipart()
                seen.append(CODEC.decode_event(data))
        assert until(seen), f"condition not reached in {timeout_s} s ({len(seen)} events)"
        return seen

    def replay(self, from_seq: int) -> list:
        reply = self.request(RequestReplay(command_id=self.next_id(), operator="tester", ts=0, from_seq=from_seq))
        assert type(reply) is ReplayBatch, reply
        return list(reply.events)

    def close(self) -> None:
        self.context.destroy(linger=0)


def submit(client: Client, cid: str, *, command_id: str | None = None, qty: str = "0.002", price: str = "60000.0"):
    return SubmitOrder(
        command_id=command_id or client.next_id(),
        operator="alice",
        ts=0,
        strategy_id="manual",
        client_order_id=cid,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=Decimal(price),
        quantity=Decimal(qty),
    )


@pytest.fixture
def engine():
    proc = EngineProcess()
    try:
        proc.start()
        yield proc
    finally:
        proc.cleanup()


@pytest.fixture
def client(engine):
    c = Client(engine)
    try:
        c.wait_ready()
        yield c
    finally:
        c.close()


def test_a_command_round_trip_is_accepted_and_its_events_follow_on_the_stream(client):
    # A SUB socket only receives what is published after its subscription is live (ZeroMQ's slow joiner): wait
    # for the first event of the engine's market-data flow, so the order's events cannot be published before it.
    client.events(lambda seen: len(seen) > 0)
    cmd = submit(client, "rt-1")

    reply = client.request(cmd)

    assert type(reply) is CommandAccepted
    assert reply.command_id == cmd.command_id and reply.client_order_id == "rt-1"
    mine = [
        e
        for e in client.events(lambda seen: any(e.seq >= reply.event_seq for e in seen))
        if getattr(e.event, "client_order_id", "") == "rt-1"
    ]
    assert mine and type(mine[0].event) is OrderSubmitted
    submitted = [e for e in client.replay(reply.event_seq) if e.seq == reply.event_seq]
    assert type(submitted[0].event) is OrderSubmitted and submitted[0].event.command_id == cmd.command_id


def test_a_rejected_command_carries_its_reason_code_and_changes_nothing(client):
    before = client.request(RequestStateSnapshot(command_id=client.next_id(), operator="tester", ts=0))

    too_big = client.request(submit(client, "big-1", qty="1.0"))  # instrument max_order_quantity is 0.1
    off_tick = client.request(submit(client, "tick-1", price="60000.05"))
    unknown = client.request(StartStrategy(command_id=client.next_id(), operator="alice", ts=0, strategy_id="nope"))

    assert type(too_big) is CommandRejected and too_big.code.startswith("RISK_"), too_big
    assert type(off_tick) is CommandRejected and off_tick.code == "PRICE_OFF_TICK"
    assert off_tick.command_id != ""  # echoed, so the console can match the refusal
    assert type(unknown) is CommandRejected and unknown.code
    after = client.request(RequestStateSnapshot(command_id=client.next_id(), operator="tester", ts=0))
    # Manual orders only: the strategy keeps requoting meanwhile (a replace gives its order a new id).
    manual_before = {o.client_order_id for o in before.orders if o.strategy_id == "manual"}
    assert {o.client_order_id for o in after.orders if o.strategy_id == "manual"} >= manual_before
    assert not {"big-1", "tick-1"} & {o.client_order_id for o in after.orders}


def test_a_repeated_command_id_gets_the_first_reply_and_never_a_second_order(client):
    first_cmd = submit(client, "dup-1", command_id="dup-cmd")
    retry = submit(client, "dup-2", command_id="dup-cmd", price="59000.0")  # same id, other content

    first = client.send_raw(CODEC.encode(first_cmd))
    again = client.send_raw(CODEC.encode(first_cmd))
    other = client.send_raw(CODEC.encode(retry))

    assert first == again == other
    assert type(CODEC.decode_reply(first)) is CommandAccepted
    snapshot = client.request(RequestStateSnapshot(command_id=client.next_id(), operator="tester", ts=0))
    ids = [o.client_order_id for o in snapshot.orders]
    assert ids.count("dup-1") == 1 and "dup-2" not in ids
    events = client.replay(1)
    assert sum(1 for e in events if type(e.event) is OrderSubmitted and e.event.client_order_id == "dup-1") == 1


def _contiguous(envelopes: list) -> bool:
    seqs = [e.seq for e in envelopes]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_a_subscriber_that_drops_its_socket_recovers_the_missed_events_by_replay_with_no_gap(client):
    before = client.events(lambda seen: len(seen) >= 5)
    last_seen = before[-1].seq

    client.drop_events()  # everything published while no socket is connected is lost to this subscriber
    missed = client.request(submit(client, "while-away"))  # events published for certain while away
    client.reconnect_events()
    after = client.events(lambda seen: len(seen) >= 1)
    gap_from, gap_to = last_seen + 1, after[0].seq
    replayed = [e for e in client.replay(gap_from) if e.seq < gap_to]

    assert gap_to > missed.event_seq >= gap_from  # the drop really lost events
    stream = before + replayed + after
    assert _contiguous([e for e in stream if e.seq >= before[0].seq])


def test_events_older_than_the_memory_ring_are_replayed_from_the_journal():
    proc = EngineProcess(ring=20)
    client = None
    try:
        proc.start()
        client = Client(proc)
        client.wait_ready()
        live = client.events(lambda seen: len(seen) >= 60)

        replayed = client.replay(1)

        assert [e.seq for e in replayed[:5]] == [1, 2, 3, 4, 5]
        assert _contiguous(replayed)
        by_seq = {e.seq: e for e in replayed}
        assert all(by_seq[e.seq] == e for e in live)
    finally:
        if client is not None:
            client.close()
        proc.cleanup()


def test_a_client_without_the_console_curve_key_is_refused(engine, client):
    outsider_keys = engine.dir / "outsider"
    curve.generate_keys(outsider_keys)  # a valid CURVE pair, and the engine's real public key, but not the console
    shutil.copy(engine.dir / "keys" / "engine.key", outsider_keys / "engine.key")
    plain = Client(engine, plain=True)
    stranger = Client(engine, keys=outsider_keys)
    try:
        no_curve = plain.request(RequestStateSnapshot(command_id="p1", operator="x", ts=0), timeout_s=3.0)
        wrong_key = stranger.request(RequestStateSnapshot(command_id="s1", operator="x", ts=0), timeout_s=3.0)
        stranger_events = stranger.sub.poll(3000)

        assert no_curve is None
        assert wrong_key is None
        assert stranger_events == 0
        assert type(client.request(RequestStateSnapshot(command_id=client.next_id(), operator="t", ts=0))) is (
            StateSnapshot
        )
    finally:
        plain.close()
        stranger.close()


def test_garbage_bytes_are_answered_with_an_error_and_the_engine_keeps_serving(client):
    frames = [b"", b"\xc1", b"not msgpack at all", b"\x81\xa4type\xa9NoSuchCmd", os.urandom(512), b"\x92\x01\x02"]

    replies = [client.send_raw(frame) for frame in frames]

    for frame, raw in zip(frames, replies, strict=True):
        assert raw is not None, frame
        reply = CODEC.decode_reply(raw)
        assert type(reply) is CommandRejected and reply.command_id == "" and reply.code, (frame, reply)
    ok = client.request(submit(client, "after-garbage"))
    assert type(ok) is CommandAccepted


def test_sigterm_stops_the_engine_cleanly_with_an_intact_journal(engine, client):
    client.request(submit(client, "term-1"))

    status = engine.kill(signal.SIGTERM)

    assert status == 0
    result = scan(engine.dir / "journal.bin")
    assert result.valid_end == result.file_size and result.last_seq > 1
    assert "stopping" in engine.log.read_text()


def test_an_engine_killed_while_quoting_restarts_with_the_same_state_from_its_journal(engine, client):
    quoting = client.events(
        lambda seen: any(type(e.event) is OrderAccepted and e.event.strategy_id == "as-btc" for e in seen)
    )
    update = UpdateStrategyParams(
        command_id="params-1", operator="alice", ts=0, strategy_id="as-btc", params={"gamma": Decimal("0.07")}
    )
    update_reply = client.send_raw(CODEC.encode(update))
    manual = client.request(submit(client, "keep-1"))
    assert type(manual) is CommandAccepted
    seen = client.events(lambda s: any(e.seq >= manual.event_seq for e in s))
    published = {e.seq: e for e in client.replay(1)}  # everything the engine had published, by seq
    assert quoting and seen

    engine.kill(signal.SIGKILL)
    engine.start()
    client.reconnect_events()
    restarted = client.wait_ready()

    # Every event published before the kill is regenerated by the journal with the same seq and content.
    regenerated = {e.seq: e for e in client.replay(1)}
    assert all(regenerated[seq] == e for seq, e in published.items())
    # The command's idempotency survived: the retry gets the reply from before the crash.
    assert client.send_raw(CODEC.encode(update)) == update_reply
    (strategy,) = restarted.strategies
    assert strategy.params_version == 2 and strategy.params["gamma"] == Decimal("0.07")
    # The in-process venue died with the process: the orders it held are reconciled away (the fresh venue does not
    # know them), and the strategy quotes again on the new venue session.
    # Read through RequestReplay and snapshots, not the SUB socket: the strategy quotes within milliseconds of the
    # restart, before a re-subscribed SUB is live (ZeroMQ's slow joiner), and later quotes are replaces.
    before_kill = {o.client_order_id for o in submitted_orders(published)}
    assert _eventually(
        lambda: any(
            type(e.event) is OrderAccepted and e.event.client_order_id not in before_kill
            for e in client.replay(max(published) + 1)
        )
    )
    assert _eventually(
        lambda: (
            not {
                o.client_order_id
                for o in client.request(
                    RequestStateSnapshot(command_id=client.next_id(), operator="tester", ts=0)
                ).orders
            }
            & before_kill
        )
    )
    closed = [
        e
        for e in client.replay(max(published) + 1)
        if type(e.event) in (OrderCanceled, OrderRejected) and e.event.client_order_id in before_kill
    ]
    assert closed


def _eventually(condition, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def submitted_orders(published: dict) -> list:
    return [e.event for e in published.values() if type(e.event) is OrderSubmitted]


DEAD_MAN = """
[[triggers]]
scope = "firm"
triggers = { heartbeat_timeout_ns = 1_000_000_000, heartbeat_action = "HALTED" }
"""


def test_the_engine_beats_on_its_own_topic_and_halts_when_the_console_stops_beating():
    proc = EngineProcess(extra=DEAD_MAN)
    client = None
    try:
        proc.start()
        client = Client(proc, topics=(b"hb", b"all"))
        client.wait_ready()
        beat = client.request(Heartbeat(command_id=client.next_id(), operator="console", ts=0, last_seq=0))

        # The console goes quiet: no Heartbeat for more than heartbeat_timeout_ns. The engine's own beat (every 1 s)
        # and the halt (after 1 s of silence) can come in either order, so wait for both.
        halted = client.events(
            lambda seen: (
                any(type(e.event) is TradingStateChanged and e.event.state == TradingState.HALTED for e in seen)
                and any(type(e.event) is EngineHeartbeat for e in seen)
            )
        )

        assert type(beat) is CommandAccepted
        assert any(type(e.event) is EngineHeartbeat for e in halted)
        change = next(e.event for e in halted if type(e.event) is TradingStateChanged)
        assert change.operator == "" and change.code  # tripped by the engine itself, with the reason code
    finally:
        if client is not None:
            client.close()
        proc.cleanup()


def _free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.mark.skipif(importlib.util.find_spec("engine.fix") is None, reason="the FIX gateway has not landed")
def test_the_engine_quotes_over_fix_against_the_venue_process_and_books_its_fills():
    fix_port, pub_port, snap_port = _free_ports(3)
    pub, snapshot = f"tcp://127.0.0.1:{pub_port}", f"tcp://127.0.0.1:{snap_port}"
    proc = EngineProcess()
    proc.use_fix_venue(fix_port, pub, snapshot)
    venue_log = open(proc.dir / "venue.log", "wb")  # closed in the finally below
    venue = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.venue",
            "--config",
            "config/venue.toml",
            "--var-dir",
            str(proc.dir / "venue"),
            "--port",
            str(fix_port),
            "--pub",
            pub,
            "--snapshot",
            snapshot,
        ],
        cwd=ROOT,
        stdout=venue_log,
        stderr=venue_log,
    )
    client = None
    try:
        proc.start()
        client = Client(proc)
        client.wait_ready()

        accepted = client.events(
            lambda seen: any(type(e.event) is OrderAccepted and e.event.strategy_id == "as-btc" for e in seen)
        )
        # The venue process's market data reaches the consoles as trades and throttled depth.
        market = client.events(lambda seen: {MarketTrade, BookDepth} <= {type(e.event) for e in seen})
        # The status of every working order, asked over FIX (OrderStatusRequest) and answered by the venue.
        query = client.request(
            QueryVenueOrders(command_id=client.next_id(), operator="compliance", ts=0, scope=Scope.firm())
        )
        answers = client.events(
            lambda seen: any(
                type(e.event) is VenueStatusComplete and e.event.command_id == query.command_id for e in seen
            )
        )
        # The firm kill switch over FIX, finished when the venue has acknowledged every cancel.
        halt = client.request(
            HaltTrading(command_id=client.next_id(), operator="risk", ts=0, scope=Scope.firm(), reason="drill")
        )
        halted = client.events(
            lambda seen: any(type(e.event) is HaltCompleted and e.event.command_id == halt.command_id for e in seen)
        )

        assert any(type(e.event) is OrderAccepted and e.event.venue_order_id for e in accepted)
        assert next(e.event for e in market if type(e.event) is MarketTrade).symbol == "BTCUSDT"
        [complete] = [e.event for e in answers if type(e.event) is VenueStatusComplete]
        statuses = [e.event for e in answers if type(e.event) is VenueOrderStatus]
        assert type(query) is CommandAccepted
        assert complete.requested > 0 and complete.answered == complete.requested and not complete.timed_out
        assert len(statuses) == complete.requested
        assert all(s.command_id == query.command_id for s in statuses)
        [done] = [e.event for e in halted if type(e.event) is HaltCompleted]
        assert done.scope == Scope.firm() and done.orders_canceled + done.orders_closed_otherwise >= 1
    finally:
        if client is not None:
            client.close()
        venue.kill()
        venue.wait(timeout=WAIT_S)
        venue_log.close()
        proc.cleanup()
