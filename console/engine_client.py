"""The console's link to the engine process: the only Django-side code that opens engine sockets.

- `EngineClient.request(cmd)`: send one command on a CURVE DEALER and wait for its one reply. On a timeout it
  sends the *same bytes* again (same command id) up to `retries` times: the engine answers a repeated id with its
  first reply, so a retry can never double an order or a kill. Replies to an earlier attempt that arrive late are
  recognised by command id and skipped.
- `EventSubscriber.poll()`: the CURVE SUB stream (`all` by default), in seq order with no gaps and no repeats: a
  jump in seq is filled by a `RequestReplay` before anything after it is returned; a replay the engine can no
  longer serve raises `EventGap`, and the caller resynchronises from a `RequestStateSnapshot`.

Sockets are not thread-safe: one client per thread (a Celery task, the bridge's loop), never shared. The engine
speaks only `engine.protocol`, the one engine module Django code imports.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from django.conf import settings

from engine.protocol import (
    Codec,
    CommandRejected,
    Heartbeat,
    ProtocolError,
    ReplayBatch,
    RequestReplay,
    RequestStateSnapshot,
)


class EngineClientError(Exception):
    """Carries a `code`, like every user-facing error."""

    code = "ENGINE_CLIENT_ERROR"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{self.code}: {reason}")
        self.reason = reason


class EngineUnavailable(EngineClientError):
    code = "ENGINE_UNAVAILABLE"


class EngineKeysMissing(EngineClientError):
    code = "ENGINE_KEYS_MISSING"


class EventGap(EngineClientError):
    """Events the engine can no longer replay: take a state snapshot and resume from its seq + 1."""

    code = "ENGINE_EVENT_GAP"


def new_command_id() -> str:
    return uuid.uuid4().hex


def _curve_client(socket: zmq.Socket, keys_dir: Path) -> None:
    try:
        public, secret = zmq.auth.load_certificate(str(keys_dir / "console.key_secret"))
        server, _ = zmq.auth.load_certificate(str(keys_dir / "engine.key"))
    except (OSError, ValueError) as exc:
        raise EngineKeysMissing(f"{exc} (run manage.py engine_keys)") from None
    if not secret:
        raise EngineKeysMissing(f"{keys_dir / 'console.key_secret'} holds no secret key")
    socket.curve_publickey = public
    socket.curve_secretkey = secret
    socket.curve_serverkey = server


class EngineClient:
    def __init__(
        self,
        *,
        command_endpoint: str,
        keys_dir: Path | None,
        codec: Codec,
        timeout_ms: int = 1000,
        retries: int = 3,
        context: zmq.Context | None = None,
    ) -> None:
        self.codec = codec
        self.timeout_ms = timeout_ms
        self.retries = retries
        self._context = context or zmq.Context.instance()
        self._endpoint = command_endpoint
        self._keys_dir = keys_dir
        self.socket = self._connect()

    @classmethod
    def from_settings(cls, **overrides: Any) -> EngineClient:
        options = {
            "command_endpoint": settings.ENGINE_COMMAND_ENDPOINT,
            "keys_dir": Path(settings.ENGINE_CURVE_KEYS_DIR),
            "codec": codec_from_settings(),
            "timeout_ms": settings.ENGINE_TIMEOUT_MS,
            "retries": settings.ENGINE_COMMAND_RETRIES,
        }
        options.update(overrides)
        return cls(**options)

    def _connect(self) -> zmq.Socket:
        socket = self._context.socket(zmq.DEALER)
        socket.linger = 0
        if self._keys_dir is not None:
            _curve_client(socket, self._keys_dir)
        socket.connect(self._endpoint)
        return socket

    def request(self, cmd: Any) -> Any:
        """Send `cmd` and return its one reply (`CommandAccepted`, `CommandRejected`, `ReplayBatch`,
        `StateSnapshot`). Raises `EngineUnavailable` when no attempt was answered."""
        data = self.codec.encode(cmd)
        command_id = cmd.command_id
        for _attempt in range(self.retries):
            deadline = time.monotonic() + self.timeout_ms / 1000
            # With no CURVE handshake done (engine down, or our key refused) a DEALER has no peer: wait for one
            # within the same timeout instead of blocking in send.
            if not self.socket.poll(self.timeout_ms, zmq.POLLOUT):
                continue
            self.socket.send(data, zmq.NOBLOCK)
            while (left := deadline - time.monotonic()) > 0:
                if not self.socket.poll(max(1, int(left * 1000))):
                    break
                reply = self._decode(self.socket.recv())
                if reply is None:
                    continue
                if reply.command_id == command_id:
                    return reply
                if type(reply) is CommandRejected and reply.command_id == "":
                    return reply  # the engine could not read our frame: that is its one answer
                # else: a late answer to an earlier request that timed out; skip it
        raise EngineUnavailable(f"no reply to {type(cmd).__name__} {command_id} after {self.retries} attempts")

    def _decode(self, data: bytes) -> Any:
        try:
            return self.codec.decode_reply(data)
        except ProtocolError:
            return None

    def heartbeat(self, *, operator: str, last_seq: int = 0) -> Any:
        return self.request(
            Heartbeat(command_id=new_command_id(), operator=operator, ts=time.time_ns(), last_seq=last_seq)
        )

    def snapshot(self, *, operator: str) -> Any:
        return self.request(RequestStateSnapshot(command_id=new_command_id(), operator=operator, ts=time.time_ns()))

    def replay(self, from_seq: int, *, operator: str) -> list:
        """Every event from `from_seq` to the engine's newest, asking again while a batch says it is incomplete."""
        out: list = []
        while True:
            cmd = RequestReplay(command_id=new_command_id(), operator=operator, ts=time.time_ns(), from_seq=from_seq)
            reply = self.request(cmd)
            if type(reply) is not ReplayBatch:
                raise EventGap(f"replay from {from_seq} refused: {getattr(reply, 'code', '?')} {reply.reason}")
            out.extend(reply.events)
            if reply.complete or not reply.events:
                return out
            from_seq = reply.events[-1].seq + 1

    def close(self) -> None:
        self.socket.close(0)


class EventSubscriber:
    """The sequenced event stream, gap-free. `last_seq` is the newest seq returned so far (0 = none)."""

    def __init__(
        self,
        *,
        event_endpoint: str,
        keys_dir: Path | None,
        client: EngineClient,
        operator: str = "console",
        topics: tuple[bytes, ...] = (b"all",),
        last_seq: int = 0,
        context: zmq.Context | None = None,
    ) -> None:
        self.client = client
        self.operator = operator
        self.last_seq = last_seq
        self.gaps = 0
        self.socket = (context or zmq.Context.instance()).socket(zmq.SUB)
        self.socket.linger = 0
        if keys_dir is not None:
            _curve_client(self.socket, keys_dir)
        for topic in topics:
            self.socket.setsockopt(zmq.SUBSCRIBE, topic)
        self.socket.connect(event_endpoint)

    @classmethod
    def from_settings(cls, client: EngineClient, **overrides: Any) -> EventSubscriber:
        options = {"event_endpoint": settings.ENGINE_EVENT_ENDPOINT, "keys_dir": Path(settings.ENGINE_CURVE_KEYS_DIR)}
        options.update(overrides)
        return cls(client=client, **options)

    def poll(self, timeout_ms: int = 100, max_events: int = 10_000) -> list:
        """Events in seq order, each exactly once, gaps filled by replay. [] when nothing arrived in time."""
        out: list = []
        if not self.socket.poll(timeout_ms):
            return out
        start_seq = self.last_seq
        try:
            self._drain(out, max_events)
        except BaseException:
            # The events gathered so far never reach the caller, so the next poll must ask for them again.
            self.last_seq = start_seq
            raise
        return out

    def _drain(self, out: list, max_events: int) -> None:
        decode = self.client.codec.decode_event
        while len(out) < max_events:
            try:
                _topic, data = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                env = decode(data)
            except ProtocolError:
                continue
            if env.seq <= self.last_seq:
                continue  # already delivered (by a replay that overlapped the live stream)
            if self.last_seq and env.seq > self.last_seq + 1:
                self.gaps += 1
                for missed in self.client.replay(self.last_seq + 1, operator=self.operator):
                    if self.last_seq < missed.seq < env.seq:
                        out.append(missed)
                        self.last_seq = missed.seq
                if self.last_seq + 1 != env.seq:
                    raise EventGap(f"events {self.last_seq + 1}..{env.seq - 1} could not be replayed")
            out.append(env)
            self.last_seq = env.seq

    def close(self) -> None:
        self.socket.close(0)


def generate_curve_keys(directory: Path, *, overwrite: bool = False) -> list[Path]:
    """Write the engine's and the console's CURVE key pairs (ZeroMQ certificate files) into `directory`: secret
    files mode 0600, the directory 0700. Refuses to replace existing keys unless `overwrite`, since a new pair
    locks out whichever side still holds the old one."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    names = ("engine", "console")
    existing = [directory / f"{n}{suffix}" for n in names for suffix in (".key", ".key_secret")]
    if not overwrite and any(p.exists() for p in existing):
        raise EngineClientError(f"keys already exist in {directory} (--force replaces them)")
    written: list[Path] = []
    for name in names:
        public, secret = zmq.auth.create_certificates(str(directory), name)
        Path(secret).chmod(0o600)
        written += [Path(public), Path(secret)]
    return written


def codec_from_settings() -> Codec:
    from console.selectors import instruments

    return Codec(instruments())
