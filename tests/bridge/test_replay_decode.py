"""Replay replies made only of market data are decoded in one call (any other reply keeps every frame's bytes) and
taken into the stream in max_batch slices, from where the stream stands."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
import zmq
from django.conf import settings

from console.engine_client import EventGap
from engine.protocol import (
    PROTOCOL_VERSION,
    Codec,
    EngineHeartbeat,
    EventEnvelope,
    ReplayBatch,
    RequestReplay,
    TopOfBookChanged,
    TradingState,
)
from tests.bridge.conftest import unique_engine_id
from tests.bridge.helpers import INSTRUMENTS
from trading.bridge.committer import Committer
from trading.bridge.fast import FastEnvelope, decode_fast
from trading.bridge.link import EngineLink, ReplayClient
from trading.bridge.rows import Units
from trading.bridge.service import Bridge, BridgeOptions
from trading.bridge.writer import Writer, conninfo_from_settings
from trading.models import BridgeCheckpoint, DeadLetter, Tick

CODEC = Codec(INSTRUMENTS)
SYMBOLS = frozenset(INSTRUMENTS.symbols)


def tob(seq: int, engine_id: str = "e1") -> EventEnvelope:
    event = TopOfBookChanged(symbol="BTCUSDT", bid_price=650_000 + seq, bid_size=seq, ask_price=650_100, ask_size=3)
    return EventEnvelope(engine_id=engine_id, seq=seq, ts=1_000 + seq, event=event)


class Replier(threading.Thread):
    """A ROUTER that answers each RequestReplay with the stored events from its from_seq, two per reply. An item
    that is not an EventEnvelope is sent as it is (a frame this build cannot read); `tamper` rewrites each reply's
    map before it is sent."""

    def __init__(
        self, context: zmq.Context, endpoint: str, events: list[Any], tamper: Callable[[dict], dict] | None = None
    ) -> None:
        super().__init__(daemon=True)
        self.socket = context.socket(zmq.ROUTER)
        self.socket.linger = 0
        self.socket.bind(endpoint)
        self.events = events
        self.tamper = tamper
        self.requests: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if not self.socket.poll(50):
                continue
            identity, data = self.socket.recv_multipart()
            cmd = CODEC.decode_command(data)
            assert type(cmd) is RequestReplay
            self.requests.append(cmd.from_seq)
            # The stored events are seqs 1, 2, 3...: a reply is cut by place, so an unreadable item keeps its own.
            chunk = self.events[cmd.from_seq - 1 : cmd.from_seq + 1]
            complete = cmd.from_seq + len(chunk) > len(self.events)
            if self.tamper is None and all(type(e) is EventEnvelope for e in chunk):
                reply = ReplayBatch(
                    command_id=cmd.command_id,
                    from_seq=cmd.from_seq,
                    last_seq=len(self.events),
                    events=tuple(chunk),
                    complete=complete,
                )
                self.socket.send_multipart((identity, CODEC.encode(reply)))
                continue
            reply_map = {
                "type": "ReplayBatch",
                "command_id": cmd.command_id,
                "from_seq": cmd.from_seq,
                "last_seq": len(self.events),
                "events": [msgspec.msgpack.decode(CODEC.encode(e)) if type(e) is EventEnvelope else e for e in chunk],
                "complete": complete,
                "v": PROTOCOL_VERSION,
            }
            if self.tamper is not None:
                reply_map = self.tamper(reply_map)
            self.socket.send_multipart((identity, msgspec.msgpack.encode(reply_map)))


@pytest.fixture
def link_to(tmp_path):
    context = zmq.Context()
    repliers: list[Replier] = []
    links: list[EngineLink] = []

    def make(events: list[Any], tamper: Callable[[dict], dict] | None = None) -> tuple[EngineLink, Replier]:
        replier = Replier(context, f"ipc://{tmp_path}/cmd", events, tamper)
        replier.start()
        repliers.append(replier)
        client = ReplayClient(
            command_endpoint=f"ipc://{tmp_path}/cmd", keys_dir=None, codec=CODEC, timeout_ms=2000, retries=1
        )
        link = EngineLink(client=client, event_endpoint=f"ipc://{tmp_path}/ev", keys_dir=None)
        links.append(link)
        return link, replier

    yield make
    for link in links:
        link.close()
    for replier in repliers:
        replier.done.set()
        replier.join(2)
    context.destroy(linger=0)


def test_a_replay_of_market_data_arrives_decoded_with_the_values_the_codec_gives(link_to):
    events = [tob(seq) for seq in range(1, 6)]
    link, replier = link_to(events)

    replies = list(link.replay(1, "e1"))

    assert all(type(env) is FastEnvelope for reply in replies for env in reply)
    got = [env for reply in replies for env in reply]
    assert [(e.seq, e.ts, msgspec.to_builtins(e.event)) for e in got] == [
        (e.seq, e.ts, msgspec.to_builtins(e.event) | {"type": "TopOfBookChanged"}) for e in events
    ]
    assert replier.requests == [1, 3, 5]


def test_a_replay_holding_another_engines_event_is_asked_again_and_keeps_each_frames_own_bytes(link_to):
    events = [tob(1), tob(2, engine_id="someone-else"), tob(3)]
    link, replier = link_to(events)

    replies = list(link.replay(1, "e1"))

    assert replies[0] == [CODEC.encode(e) for e in events[:2]]  # set aside later with these very bytes
    assert [(type(env), env.seq) for env in replies[1]] == [(FastEnvelope, 3)]  # the next reply is fast again
    assert replier.requests == [1, 1, 3]


def test_a_replay_holding_other_events_keeps_each_frames_own_bytes(link_to):
    heartbeat = EventEnvelope(
        engine_id="e1", seq=2, ts=5, event=EngineHeartbeat(interval_ns=1, firm_state=TradingState.ACTIVE)
    )
    events = [tob(1), heartbeat]
    link, _replier = link_to(events)

    replies = list(link.replay(1, "e1"))

    assert [frame for reply in replies for frame in reply] == [CODEC.encode(e) for e in events]


HEARTBEAT = EventEnvelope(
    engine_id="e1", seq=2, ts=5, event=EngineHeartbeat(interval_ns=1, firm_state=TradingState.ACTIVE)
)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (lambda reply: reply | {"cursor": 7}, "UNKNOWN_FIELD"),
        (lambda reply: reply | {"v": PROTOCOL_VERSION + 1}, "UNSUPPORTED_VERSION"),
    ],
    ids=["unknown-field", "other-version"],
)
@pytest.mark.parametrize("second", [tob(2), HEARTBEAT], ids=["market-data-reply", "raw-frames-reply"])
def test_a_replay_reply_with_a_field_or_version_the_protocol_refuses_is_a_refused_replay(link_to, tamper, code, second):
    link, replier = link_to([tob(1), second], tamper=tamper)

    with pytest.raises(EventGap, match=code):
        list(link.replay(1, "e1"))

    assert replier.requests == [1]  # refused at once, not waited out and asked again


@pytest.mark.parametrize(
    "bad", ["not an event", {"engine_id": "e1", "seq": "two", "ts": 5}], ids=["not-a-map", "seq-not-a-number"]
)
def test_a_replay_reply_ending_in_a_frame_with_no_readable_seq_goes_on_from_the_frame_after_it(link_to, bad):
    link, replier = link_to([tob(1), bad, tob(3), tob(4)])

    replies = list(link.replay(1, "e1"))

    assert replies[0] == [CODEC.encode(tob(1)), msgspec.msgpack.encode(bad)]
    assert [env.seq for env in replies[1]] == [3, 4]
    assert replier.requests == [1, 3]


@pytest.fixture
def bridge(transactional_db, tmp_path):
    """A Bridge whose replay replies are handed in by the test; it commits through a real Committer and Writer."""
    engine_id = unique_engine_id("catchup")
    bridge = Bridge(
        conninfo=conninfo_from_settings(settings.DATABASES["default"]),
        command_endpoint=f"ipc://{tmp_path}/cmd",
        event_endpoint=f"ipc://{tmp_path}/ev",
        keys_dir=None,
        instruments=INSTRUMENTS,
        options=BridgeOptions(max_batch=4, publish_live=False),
    )
    bridge.engine_id = engine_id
    bridge.writer = Writer(conninfo=bridge.conninfo, engine_id=engine_id, units=Units(INSTRUMENTS))
    bridge.writer.connect()
    bridge.committer = Committer(
        writer=bridge.writer, live=None, stats=bridge.stats, checkpoint=0, stopping=lambda: False, max_delay_s=1
    )
    bridge.committer.start()
    try:
        yield bridge
    finally:
        bridge.committer.finish(timeout=10)
        bridge.writer.close()
        bridge.link.close()


def decoded(engine_id: str, seqs: range) -> list[FastEnvelope]:
    return [decode_fast(CODEC.encode(tob(seq, engine_id)), SYMBOLS) for seq in seqs]


def test_replayed_market_data_is_committed_in_max_batch_slices_and_an_overlapping_reply_from_where_it_stands(bridge):
    bridge._take_replayed(decoded(bridge.engine_id, range(1, 11)))  # 1-8 in two transactions, 9-10 held
    bridge._take_replayed(decoded(bridge.engine_id, range(8, 14)))  # 8-10 already held: only 11-13 are new
    bridge._flush()
    bridge.committer.finish(timeout=10)

    assert list(Tick.objects.filter(engine_id=bridge.engine_id).order_by("seq").values_list("seq", flat=True)) == list(
        range(1, 14)
    )
    assert BridgeCheckpoint.objects.get(engine_id=bridge.engine_id).last_seq == 13
    assert (bridge.stats.batches, bridge.stats.events) == (4, 13)  # 1-4, 5-8, 9-12, 13


def test_replayed_events_after_a_frame_with_no_readable_seq_are_committed_and_the_frame_is_a_dead_letter(bridge):
    engine_id = bridge.engine_id
    bad = msgspec.msgpack.encode({"engine_id": engine_id, "seq": "two"})

    assert bridge._take_replayed([CODEC.encode(tob(1, engine_id)), bad])
    assert bridge._take_replayed([CODEC.encode(tob(3, engine_id)), CODEC.encode(tob(4, engine_id))])
    bridge._flush()
    bridge.committer.finish(timeout=10)

    ticks = Tick.objects.filter(engine_id=engine_id).order_by("seq").values_list("seq", flat=True)
    assert list(ticks) == [1, 3, 4]
    assert BridgeCheckpoint.objects.get(engine_id=engine_id).last_seq == 4
    dead = DeadLetter.objects.get(engine_id=engine_id)
    assert (dead.seq, bytes(dead.raw)) == (None, bad)


def test_a_replay_reply_that_leaves_out_events_is_asked_again_from_the_hole_not_dropped_unnoticed(bridge):
    engine_id = bridge.engine_id

    took = bridge._take_replayed([CODEC.encode(tob(1, engine_id)), CODEC.encode(tob(3, engine_id))])

    assert took is False
    assert bridge.last_seen == 1
    assert [p.seq for p in bridge.pending] == [1]
