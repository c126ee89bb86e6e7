"""The engine's ZeroMQ sockets: the command ROUTER and the event PUB (engine thread only).

Commands: a client (DEALER, or REQ) sends one frame, an encoded command; the ROUTER hands `(envelope, bytes)` to the
loop's inbound queue and the loop answers with exactly one frame on the same envelope. Bytes that are not a command
are answered with `CommandRejected(command_id="", code=<ProtocolErrorCode>)` without touching the engine.

Events: every `EventEnvelope` is encoded once and published as `[topic, envelope]` frames:

| topic | what | for |
|---|---|---|
| `all` | every event, in seq order | persistence (the bridge), gap detection, audit |
| `tob.<symbol>` | the newest `TopOfBookChanged` per symbol per loop turn (conflated) | screens |
| `pos.<strategy>.<symbol>` | newest `PositionChanged` per key per loop turn (conflated) | screens |
| `pnl.<kind>.<name>` | newest `PnlUpdated` per scope per loop turn (conflated) | screens |
| `hb` | `EngineHeartbeat` | liveness |

Conflated frames carry the same envelope (same seq) as on `all`; a screen that wants only the latest value also
sets a small receive high-water mark. Only `all` is contiguous.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import zmq

from engine.protocol import (
    Codec,
    CommandRejected,
    EngineHeartbeat,
    PnlUpdated,
    PositionChanged,
    ProtocolError,
    TopOfBookChanged,
)
from engine.server import curve

TOPIC_ALL = b"all"
TOPIC_HEARTBEAT = b"hb"


def _prepare_ipc(endpoint: str) -> None:
    if endpoint.startswith("ipc://"):
        Path(endpoint[6:]).parent.mkdir(parents=True, exist_ok=True)


class CommandSocket:
    """ROUTER for console commands."""

    def __init__(self, context: zmq.Context, endpoint: str, *, keys_dir: Path | None) -> None:
        self.socket = context.socket(zmq.ROUTER)
        self.socket.linger = 1000
        self.socket.router_mandatory = False  # a reply to a client that went away is dropped, not an error
        if keys_dir is not None:
            curve.make_server(self.socket, keys_dir)
        _prepare_ipc(endpoint)
        self.socket.bind(endpoint)

    def read(self, put: Any, limit: int = 256) -> int:
        """Hand up to `limit` waiting frames to `put((envelope, payload))`; returns how many."""
        socket = self.socket
        n = 0
        while n < limit:
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            put((frames[:-1], frames[-1]))
            n += 1
        return n

    def reply(self, envelope: list, payload: bytes) -> None:
        try:
            self.socket.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.Again:
            pass  # the client's queue is full: it times out and retries with the same id (idempotent)

    def close(self) -> None:
        self.socket.close()


class EventPublisher:
    """PUB for sequenced events, full stream plus conflated screen topics."""

    def __init__(self, context: zmq.Context, endpoint: str, *, keys_dir: Path | None, hwm: int = 1_000_000) -> None:
        self.socket = context.socket(zmq.PUB)
        self.socket.linger = 1000
        self.socket.sndhwm = hwm
        if keys_dir is not None:
            curve.make_server(self.socket, keys_dir)
        _prepare_ipc(endpoint)
        self.socket.bind(endpoint)
        self.published = 0

    def publish(self, envelopes: list, encode: Any) -> None:
        if not envelopes:
            return
        send = self.socket.send_multipart
        latest: dict[bytes, bytes] = {}
        for env in envelopes:
            data = encode(env)
            send([TOPIC_ALL, data])
            event = env.event
            kind = type(event)
            if kind is TopOfBookChanged:
                latest[b"tob." + event.symbol.encode()] = data
            elif kind is PositionChanged:
                latest[f"pos.{event.strategy_id}.{event.symbol}".encode()] = data
            elif kind is PnlUpdated:
                latest[f"pnl.{event.scope.kind.name.lower()}.{event.scope.name}".encode()] = data
            elif kind is EngineHeartbeat:
                latest[TOPIC_HEARTBEAT] = data
        for topic, data in latest.items():
            send([topic, data])
        self.published += len(envelopes)

    def close(self) -> None:
        self.socket.close()


def refusal(codec: Codec, data: bytes, exc: ProtocolError, ts: int) -> bytes:
    """The one reply to a frame that is not a valid command: nothing in the engine changed. The command id is
    echoed when the frame is a MessagePack map with a usable one (an off-tick price, an unknown symbol), so the
    client can match the refusal to its request; "" for bytes that are not a command at all."""
    command_id = ""
    try:
        raw = msgspec.msgpack.decode(data)
        if isinstance(raw, dict):
            candidate = raw.get("command_id")
            if isinstance(candidate, str) and 1 <= len(candidate) <= 64:
                command_id = candidate
    except Exception:  # any bytes at all may arrive here; the answer is the same
        pass
    return codec.encode(CommandRejected(command_id=command_id, ts=ts, code=str(exc.code), reason=exc.reason[:512]))
