"""The bridge's link to the engine: the CURVE SUB stream, replays and snapshots (the bridge's main thread only).

Sockets come from `console.engine_client` (the one module that opens engine sockets). Unlike the console's own
`EventSubscriber`, which skips a frame it cannot decode, the bridge must set every such frame aside with its bytes
and reason, so it reads raw frames and decodes each one itself; replays are read frame by frame too, so one bad
event inside a `ReplayBatch` costs one dead letter, not the whole batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import zmq

from console.engine_client import EngineClient, EventGap, EventSubscriber, new_command_id
from engine.protocol import PROTOCOL_VERSION, Codec, ProtocolError, RequestReplay
from trading.bridge.fast import FastEnvelope, decode_fast, decode_many_fast, valid_run
from trading.bridge.writer import DeadLetter, Pending

OPERATOR = "engine-bridge"


# The wrappers refuse what engine.protocol.ReplayBatch refuses (an unknown field, another protocol version): a
# reply this build cannot read in full must not pass for one it can. Their events are checked frame by frame later.
class _RawReplayBatch(msgspec.Struct, tag_field="type", tag="ReplayBatch", forbid_unknown_fields=True):
    """A ReplayBatch with its events left undecoded (see the module docstring)."""

    command_id: str
    from_seq: int = 0
    last_seq: int = 0
    events: list[msgspec.Raw] = []
    complete: bool = True
    v: int = PROTOCOL_VERSION


class _FastReplayBatch(msgspec.Struct, tag_field="type", tag="ReplayBatch", forbid_unknown_fields=True):
    """A ReplayBatch made only of market-data events, decoded straight into FastEnvelopes in one msgspec call (a
    catch-up after a restart is mostly ticks): no per-frame bytes, no second pass. Any other event makes this
    decoder refuse the reply, which is then read as a _RawReplayBatch."""

    command_id: str
    from_seq: int = 0
    last_seq: int = 0
    events: list[FastEnvelope] = []
    complete: bool = True
    v: int = PROTOCOL_VERSION


class _Header(msgspec.Struct):
    """What can be read of a frame whose event is invalid: which engine and seq it claims."""

    engine_id: Any = ""
    seq: Any = None


class _ReplyHeader(msgspec.Struct):
    """What can be read of a reply that could not be decoded: its type and the request it answers."""

    type: Any = ""
    command_id: Any = ""


class RefusedReplay(msgspec.Struct, frozen=True):
    """A ReplayBatch reply this build refuses to read (unknown field, other protocol version, malformed): answered
    to the request as a refusal with the protocol's reason code, so the replay stops with EventGap instead of
    waiting out its timeout on a reply it will never accept."""

    command_id: str
    code: str
    reason: str


_REPLY_HEADER = msgspec.msgpack.Decoder(_ReplyHeader)
_RAW_BATCH = msgspec.msgpack.Decoder(_RawReplayBatch)
_FAST_BATCH = msgspec.msgpack.Decoder(_FastReplayBatch)
_HEADER = msgspec.msgpack.Decoder(_Header)


class ReplayClient(EngineClient):
    """An EngineClient whose ReplayBatch replies keep their events as raw frames."""

    fast_replay = False  # set while a replay request may be answered with _FastReplayBatch

    def _decode(self, data: bytes) -> Any:
        if self.fast_replay:
            try:
                return _checked_version(_FAST_BATCH.decode(data))
            except (msgspec.MsgspecError, ValueError):
                pass
        try:
            return _checked_version(_RAW_BATCH.decode(data))
        except (msgspec.MsgspecError, ValueError):
            pass
        try:
            return self.codec.decode_reply(data)
        except ProtocolError as exc:
            return _refused_replay(data, exc)

    # The engine serves a replay from its memory ring at once, but older events by replaying its journal into a
    # fresh engine (docs/server.md), which takes seconds: such a request gets its own, longer wait.
    replay_timeout_ms = 60_000

    def replay_batches(
        self, from_seq: int, accept_fast: Callable[[list[FastEnvelope]], bool] | None = None
    ) -> Iterator[list[bytes] | list[FastEnvelope]]:
        """The events from `from_seq` to the engine's newest, one reply at a time (a long catch-up is never held in
        memory whole): a reply made only of market data as decoded FastEnvelopes when `accept_fast` accepts them
        all, any other reply as raw frames. Raises EventGap if the engine refuses, EngineUnavailable if it does not
        answer."""
        fast = accept_fast is not None
        while True:
            cmd = RequestReplay(command_id=new_command_id(), operator=OPERATOR, ts=time.time_ns(), from_seq=from_seq)
            timeout, self.timeout_ms = self.timeout_ms, max(self.timeout_ms, self.replay_timeout_ms)
            self.fast_replay = fast
            try:
                reply = self.request(cmd)
            finally:
                self.timeout_ms = timeout
                self.fast_replay = False
            if type(reply) is _FastReplayBatch:
                envs = reply.events
                if accept_fast is None or not accept_fast(envs):
                    # Another engine's event, an unknown symbol or version: ask for the same range again as raw
                    # frames, so that each such frame is set aside with its own bytes.
                    fast = False
                    continue
                fast = accept_fast is not None
                yield envs
                if reply.complete or not envs:
                    return
                from_seq = envs[-1].seq + 1
                continue
            fast = accept_fast is not None
            if type(reply) is not _RawReplayBatch:
                reason = getattr(reply, "reason", "") if reply is not None else ""
                raise EventGap(f"replay from {from_seq} refused: {getattr(reply, 'code', '?')} {reason}")
            frames = [bytes(raw) for raw in reply.events]
            yield frames
            if reply.complete or not frames:
                return
            from_seq = next_seq_after(frames, from_seq)


def _checked_version(batch: _RawReplayBatch | _FastReplayBatch) -> _RawReplayBatch | _FastReplayBatch:
    if batch.v != PROTOCOL_VERSION:
        raise ValueError(f"protocol version {batch.v!r}")  # read again by the codec, which names the refusal
    return batch


def _refused_replay(data: bytes, exc: ProtocolError) -> RefusedReplay | None:
    """A refusal answering the request, when the unreadable reply says it is a ReplayBatch and names its request
    (anything else stays unanswered, as EngineClient treats a reply it cannot read)."""
    try:
        header = _REPLY_HEADER.decode(data)
    except (msgspec.MsgspecError, ValueError):
        return None
    if header.type != "ReplayBatch" or type(header.command_id) is not str or not header.command_id:
        return None
    return RefusedReplay(command_id=header.command_id, code=str(exc.code), reason=exc.reason)


def next_seq_after(frames: list[bytes], from_seq: int) -> int:
    """The seq to ask for after an incomplete reply that started at `from_seq`. A ReplayBatch holds consecutive
    events, so a frame whose header cannot be read is placed one after the frame before it: the next request goes
    on past it (its dead letter is already taken) instead of asking for it again, and no frame can stop the
    replay by failing to name its seq."""
    expected = from_seq
    for frame in frames:
        _engine, seq = _header(frame)
        expected = (seq if seq is not None and seq >= expected else expected) + 1
    return expected


def codec_symbols(codec: Codec) -> frozenset[str]:
    """The symbols the fast decoder accepts: the codec's instruments (build once and keep, e.g. `EngineLink.symbols`;
    a frame of another symbol is left to the codec, which refuses it)."""
    return frozenset(codec.instruments.symbols)


def decode_frames(
    codec: Codec, engine_id: str, frames: list[bytes], symbols: frozenset[str] | None = None
) -> list[Pending | FastEnvelope]:
    """`decode_frame` for each frame, with one C call for the common case of a run of market-data frames."""
    if symbols is None:
        symbols = codec_symbols(codec)
    envs = decode_many_fast(frames, symbols, engine_id) if len(frames) > 1 else None
    if envs is not None:
        return envs  # each FastEnvelope is its own Pending
    return [decode_frame(codec, engine_id, data, symbols) for data in frames]


def decode_frame(codec: Codec, engine_id: str, data: bytes, symbols: frozenset[str] | None = None) -> Pending:
    """One frame as a Pending: the event, or a dead letter naming why it could not be used."""
    env = decode_fast(data, codec_symbols(codec) if symbols is None else symbols)
    if env is not None and env.engine_id == engine_id:
        return Pending(seq=env.seq, env=env)
    try:
        env = codec.decode_event(data)
    except ProtocolError as exc:
        engine, seq = _header(data)
        return Pending(seq=seq, dead=DeadLetter(engine or engine_id, seq, exc.code, exc.reason, bytes(data)))
    if env.engine_id != engine_id:
        reason = f"event of engine {env.engine_id!r} on the stream of {engine_id!r}"
        return Pending(seq=None, dead=DeadLetter(engine_id, None, "ENGINE_ID_MISMATCH", reason, bytes(data)))
    return Pending(seq=env.seq, env=env)


def _header(data: bytes) -> tuple[str, int | None]:
    try:
        header = _HEADER.decode(data)
    except (msgspec.MsgspecError, ValueError, ProtocolError):
        return "", None
    seq = header.seq if type(header.seq) is int and header.seq >= 1 else None
    engine = header.engine_id if type(header.engine_id) is str and len(header.engine_id) <= 64 else ""
    return engine, seq


class EngineLink:
    """Raw frames of the `all` topic, and the engine requests the bridge makes."""

    def __init__(self, *, client: ReplayClient, event_endpoint: str, keys_dir: Any, rcvhwm: int = 1_000_000) -> None:
        self.client = client
        self.codec = client.codec
        self.symbols = codec_symbols(self.codec)  # for the fast decoder (decode_frames), built once per link
        # A receive queue deep enough for seconds of a busy stream while a batch commits: frames beyond it are
        # dropped by ZeroMQ (the bridge then notices the gap and replays). A high-water mark only applies to
        # connections made after it is set, so it is a default of the socket's own context.
        self._context = zmq.Context()
        self._context.setsockopt(zmq.RCVHWM, rcvhwm)
        # EventSubscriber configures CURVE, the topic and the connection; the bridge reads its socket directly.
        self._subscriber = EventSubscriber(
            event_endpoint=event_endpoint, keys_dir=keys_dir, client=client, operator=OPERATOR, context=self._context
        )
        self.socket = self._subscriber.socket

    def poll(self, timeout_ms: int, max_frames: int) -> list[bytes]:
        """Up to `max_frames` frames; waits at most `timeout_ms` for the first."""
        out: list[bytes] = []
        if not self.socket.poll(timeout_ms):
            return out
        # Two recv calls with Frame objects, not recv_multipart: pyzmq's multipart helper asks the socket for
        # RCVMORE through getsockopt per part and costs several times more per message, which matters at 100 K/s.
        recv = self.socket.recv
        append = out.append
        again = zmq.Again
        noblock = zmq.NOBLOCK
        while len(out) < max_frames:
            try:
                first = recv(noblock, copy=False)
            except again:
                break
            if not first.more:  # one part only: not [topic, envelope]; set aside by the caller as bad bytes
                append(first.bytes)
                continue
            second = recv(noblock, copy=False)  # the rest of a multipart message is already here
            if not second.more:
                append(second.bytes)
                continue
            parts = [first.bytes, second.bytes]
            while parts and (part := recv(noblock, copy=False)):
                parts.append(part.bytes)
                if not part.more:
                    break
            append(b"".join(parts))
        return out

    def snapshot(self) -> Any:
        return self.client.snapshot(operator=OPERATOR)

    def replay(self, from_seq: int, engine_id: str) -> Iterator[list[bytes] | list[FastEnvelope]]:
        """Replies to a replay from `from_seq`: decoded market-data envelopes of `engine_id`, or raw frames."""
        symbols = self.symbols
        return self.client.replay_batches(from_seq, lambda envs: valid_run(envs, symbols, engine_id))

    def close(self) -> None:
        self._subscriber.close()
        self.client.close()
        self._context.destroy(linger=0)
