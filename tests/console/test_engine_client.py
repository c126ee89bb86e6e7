"""The console's engine client against the real engine process on ipc sockets with CURVE keys from engine_keys."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from console.engine_client import (
    EngineClient,
    EngineKeysMissing,
    EngineUnavailable,
    EventSubscriber,
    codec_from_settings,
    new_command_id,
)
from engine.protocol import CommandAccepted, OrderSubmitted, OrderType, Side, StateSnapshot, SubmitOrder, TimeInForce

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0

CONFIG = """
instruments_file = "{root}/config/instruments.toml"
[engine]
engine_id = "client-test"
[[strategies]]
strategy_id = "as-btc"
symbol = "BTCUSDT"
autostart = true
[endpoints]
commands = "ipc://{dir}/cmd"
events = "ipc://{dir}/ev"
[security]
keys_dir = "{dir}/keys"
[journal]
path = "{dir}/journal.bin"
snapshot_dir = "{dir}/snapshots"
[venue]
kind = "inprocess"
[[venue.flow]]
symbol = "BTCUSDT"
initial_price = 650000
intensity = 40.0
size_mean = 20.0
size_max = 200
"""


@pytest.fixture
def engine_dir(settings):
    directory = Path(tempfile.mkdtemp(prefix="ecl", dir="/tmp"))
    call_command("engine_keys", dir=directory / "keys")
    (directory / "engine.toml").write_text(CONFIG.format(root=ROOT, dir=directory))
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{directory}/cmd"
    settings.ENGINE_EVENT_ENDPOINT = f"ipc://{directory}/ev"
    settings.ENGINE_CURVE_KEYS_DIR = directory / "keys"
    settings.ENGINE_TIMEOUT_MS = 2000
    settings.ENGINE_COMMAND_RETRIES = 15
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def engine(engine_dir):
    with open(engine_dir / "engine.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", "--config", str(engine_dir / "engine.toml")],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=WAIT_S)


@pytest.fixture
def client(engine):
    c = EngineClient.from_settings()
    try:
        assert type(c.snapshot(operator="tester")) is StateSnapshot  # retries cover the engine's start-up
        yield c
    finally:
        c.close()


def order(cid: str, command_id: str | None = None) -> SubmitOrder:
    return SubmitOrder(
        command_id=command_id or new_command_id(),
        operator="tina_trader",
        ts=time.time_ns(),
        strategy_id="manual",
        client_order_id=cid,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=Decimal("60000.0"),
        quantity=Decimal("0.002"),
    )


def test_a_command_sent_through_the_client_gets_its_one_reply(client):
    reply = client.request(order("c-1"))

    assert type(reply) is CommandAccepted and reply.client_order_id == "c-1"


def test_a_retry_after_a_timeout_reuses_the_command_id_and_places_the_order_once(engine, client):
    client.timeout_ms = 300
    client.retries = 100  # 30 s of attempts at most
    engine.send_signal(signal.SIGSTOP)  # the engine hears nothing for a while: the client times out and resends
    resume = threading.Timer(1.5, engine.send_signal, args=(signal.SIGCONT,))
    resume.start()
    try:
        reply = client.request(order("retry-1", command_id="retry-cmd"))
    finally:
        resume.join()

    assert type(reply) is CommandAccepted and reply.command_id == "retry-cmd"
    snapshot = client.snapshot(operator="tester")
    assert [o.client_order_id for o in snapshot.orders].count("retry-1") == 1
    events = client.replay(1, operator="tester")
    submitted = [e for e in events if type(e.event) is OrderSubmitted and e.event.client_order_id == "retry-1"]
    assert len(submitted) == 1


def test_the_subscriber_fills_a_gap_by_replay_and_returns_every_event_once_in_order(engine_dir, client):
    first = EventSubscriber.from_settings(client)
    seen: list = []
    deadline = time.monotonic() + WAIT_S
    while len(seen) < 3 and time.monotonic() < deadline:
        seen += first.poll(100)
    first.close()  # events published now are lost to this subscriber
    missed = client.request(order("gap-1"))
    second = EventSubscriber.from_settings(client, last_seq=seen[-1].seq)
    try:
        deadline = time.monotonic() + WAIT_S
        while (not seen or seen[-1].seq <= missed.event_seq) and time.monotonic() < deadline:
            seen += second.poll(100)

        seqs = [e.seq for e in seen]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        assert seqs[-1] > missed.event_seq
        assert second.gaps >= 1
    finally:
        second.close()


def test_a_subscriber_whose_gap_replay_fails_keeps_its_place_so_the_next_poll_asks_again(engine_dir, client):
    first = EventSubscriber.from_settings(client)
    seen: list = []
    deadline = time.monotonic() + WAIT_S
    while not seen and time.monotonic() < deadline:
        seen += first.poll(100)
    first.close()
    client.request(order("gap-2"))  # published while nobody listens: a gap for the next subscriber
    # Replays go to an endpoint nobody answers, so filling the gap fails.
    dead = EngineClient.from_settings(command_endpoint=f"ipc://{engine_dir}/nobody", timeout_ms=100, retries=1)
    second = EventSubscriber.from_settings(dead, last_seq=seen[-1].seq - 1)
    try:
        with pytest.raises(EngineUnavailable):
            deadline = time.monotonic() + WAIT_S
            while time.monotonic() < deadline:
                second.poll(100)

        assert second.last_seq == seen[-1].seq - 1
    finally:
        second.close()
        dead.close()


def test_a_client_without_keys_cannot_be_built(engine_dir, settings):
    settings.ENGINE_CURVE_KEYS_DIR = engine_dir / "nowhere"

    with pytest.raises(EngineKeysMissing):
        EngineClient.from_settings()


def test_a_client_with_no_engine_gives_up_with_engine_unavailable(engine_dir):
    client = EngineClient.from_settings(timeout_ms=100, retries=2)
    try:
        with pytest.raises(EngineUnavailable):
            client.request(order("nobody-home"))
    finally:
        client.close()


def test_engine_keys_writes_both_pairs_with_private_secrets_and_refuses_to_overwrite(tmp_path):
    keys = tmp_path / "keys"

    call_command("engine_keys", dir=keys)

    names = sorted(p.name for p in keys.iterdir())
    assert names == ["console.key", "console.key_secret", "engine.key", "engine.key_secret"]
    assert oct((keys / "engine.key_secret").stat().st_mode & 0o777) == "0o600"
    with pytest.raises(CommandError):
        call_command("engine_keys", dir=keys)
    before = (keys / "engine.key").read_bytes()
    call_command("engine_keys", dir=keys, force=True)
    assert (keys / "engine.key").read_bytes() != before


def test_the_codec_comes_from_the_instruments_file_in_settings():
    assert "BTCUSDT" in codec_from_settings().instruments
