"""The engine process's connection to a venue (engine thread only; `put` callbacks of other threads excepted).

A venue link owns the gateway the Engine sends through and delivers what the venue says into the loop's inbound
queue, never into the Engine directly: every venue message is journaled by the Engine when the loop hands it over.

- `InProcessVenueLink`: the simulated `engine.venue.Venue` with `PoissonFlow` background participants, on the engine
  thread itself. It dies with the process: after a restart the venue is a new, empty exchange session. Its
  market-data sequence starts again at 1, so the link renumbers it after the last sequence the recovered engine
  applied and opens the session with a full-book snapshot; every order the engine still holds working is queried,
  and the new venue's "unknown order" answers close them in the OMS (that is what reconciliation means here).
- `ZmqVenueLink`: a venue process speaking `engine.protocol` over ZeroMQ: a DEALER to its order ROUTER (venue
  commands out, execution reports and snapshots back) and a SUB to its market-data PUB.
- `FixVenueLink`: `python -m engine.venue` (or any FIX 4.4 venue): orders over the FIX gateway (`engine.fix`,
  QuickFIX's thread queues what arrives and wakes the loop), market data from the venue's PUB, snapshots from its
  snapshot ROUTER. Every logon (the first and each reconnect) queries every working order; the ORDER_STATUS
  answers reconcile the OMS.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import msgspec
import zmq

from engine.gateway import InProcessGateway
from engine.protocol import (
    BookDeltas,
    BookSnapshot,
    Codec,
    ProtocolError,
    TradePrinted,
    VenueCommandRejected,
    VenueRequestSnapshot,
)
from engine.venue import FlowConfig, PoissonFlow, Venue

_MD = (BookDeltas, TradePrinted, BookSnapshot)


class _RenumberingGateway(InProcessGateway):
    """An in-process gateway whose market data is renumbered after the engine's last applied sequence."""

    __slots__ = ("offsets",)

    def __init__(self, venue: Any, account: str) -> None:
        super().__init__(venue, account)
        self.offsets: dict[str, int] = {}

    def deliver(self, messages: list) -> None:
        offsets = self.offsets
        if offsets:
            messages = [
                msgspec.structs.replace(m, seq=m.seq + offsets.get(m.symbol, 0)) if type(m) in _MD else m
                for m in messages
            ]
        super().deliver(messages)


class InProcessVenueLink:
    def __init__(self, config: Any, clock: Any) -> None:
        symbols = list(config.instruments.symbols)
        # One exec-id prefix per process start: the venue restarts empty, the recovered OMS remembers exec ids.
        self.venue = Venue(symbols, clock=clock.now, exec_id_prefix=f"{clock.now()}-")
        self.gateway = _RenumberingGateway(self.venue, config.engine.account)
        self.flows = [
            PoissonFlow(
                FlowConfig(
                    symbol=f.symbol,
                    initial_price=f.initial_price,
                    intensity=f.intensity,
                    market_share=f.market_share,
                    cancel_rate=f.cancel_rate,
                    volatility=f.volatility,
                    depth_ticks=f.depth_ticks,
                    size_mean=f.size_mean,
                    size_max=f.size_max,
                ),
                send=self._flow_send,
                clock=clock.now,
                seed=f.seed,
            )
            for f in config.venue.flow
        ]
        self._primes = [f.prime_levels for f in config.venue.flow]
        self.gateway.observer = self._observe
        self.inbox: deque = self.gateway.inbox
        self.sockets: list = []

    def _flow_send(self, command: object) -> list:
        messages = self.venue.handle(command)
        self.gateway.deliver(messages)
        return messages

    def _observe(self, messages: list) -> None:
        for flow in self.flows:
            flow.observe(messages)

    def start(self, engine: Any) -> None:
        """Open the session: seed the book, renumber after the engine's feeds, snapshot, query working orders."""
        books = engine.state_view()["books"]
        for flow, levels in zip(self.flows, self._primes, strict=True):
            flow.prime(levels=levels, orders_per_level=1)
        self.inbox.clear()  # the priming deltas are summed up by the snapshot below
        for symbol in self.venue.symbols:
            last = books.get(symbol, {}).get("last_seq", 0)
            self.gateway.offsets[symbol] = last
            snap = self.venue.snapshot(symbol)
            self.inbox.append(msgspec.structs.replace(snap, seq=snap.seq + last + 1))
            # +1: a snapshot equal to the book's seq is ignored while live; this one must replace the old book.
            self.gateway.offsets[symbol] = last + 1
        for order in engine.oms.working_orders():
            self.gateway.send(engine.oms.query_message(order.client_order_id))

    def poll(self) -> None:
        for flow in self.flows:
            flow.poll()

    def read(self, socket: Any) -> None:  # no sockets
        pass

    def close(self) -> None:
        pass


def _send_or_refuse(socket: zmq.Socket, codec: Codec, command: Any, inbox: deque) -> None:
    """Send without blocking the engine thread; a full queue (the venue gone for long) is answered like any other
    refused command, on the engine thread's next turn, instead of an exception through the engine."""
    try:
        socket.send(codec.encode(command), zmq.NOBLOCK)
    except zmq.Again:
        inbox.append(
            VenueCommandRejected(
                command=type(command).__name__,
                code="GATEWAY_BACKPRESSURE",
                symbol=getattr(command, "symbol", ""),
                client_order_id=getattr(command, "client_order_id", ""),
                reason="the venue link's send queue is full",
            )
        )


class _ZmqGateway:
    __slots__ = ("codec", "inbox", "sent", "socket")

    def __init__(self, socket: zmq.Socket, codec: Codec, inbox: deque) -> None:
        self.socket = socket
        self.codec = codec
        self.inbox = inbox
        self.sent = 0

    def send(self, command: Any) -> None:
        self.sent += 1
        _send_or_refuse(self.socket, self.codec, command, self.inbox)


class ZmqVenueLink:
    """Venue process over ZeroMQ. The venue answers a `VenueRequestSnapshot` on the order socket."""

    def __init__(self, config: Any, context: zmq.Context) -> None:
        self.codec = Codec(config.instruments)
        self.orders = context.socket(zmq.DEALER)
        self.orders.linger = 0
        self.orders.connect(config.venue.orders)
        self.md = context.socket(zmq.SUB)
        self.md.linger = 0
        self.md.setsockopt(zmq.SUBSCRIBE, b"")
        self.md.connect(config.venue.market_data)
        self.inbox: deque = deque()
        self.gateway = _ZmqGateway(self.orders, self.codec, self.inbox)
        self.sockets = [self.orders, self.md]
        self.decode_errors = 0

    def start(self, engine: Any) -> None:
        for symbol in engine.instruments.symbols:
            self.gateway.send(VenueRequestSnapshot(symbol=symbol))
        for order in engine.oms.working_orders():
            self.gateway.send(engine.oms.query_message(order.client_order_id))

    def poll(self) -> None:
        pass

    def read(self, socket: zmq.Socket) -> None:
        decode = self.codec.decode_venue_event
        inbox = self.inbox
        for _ in range(1000):
            try:
                frame = socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                inbox.append(decode(frame))
            except ProtocolError:
                self.decode_errors += 1  # a bad frame from the venue changes nothing

    def close(self) -> None:
        self.orders.close(0)
        self.md.close(0)


class _SplitGateway:
    """Snapshot requests to the venue's snapshot socket, everything else to the FIX session."""

    __slots__ = ("codec", "fix", "inbox", "sent", "snapshots", "supports_mass_cancel")

    def __init__(self, fix_gateway: Any, snapshots: zmq.Socket, codec: Codec, inbox: deque) -> None:
        self.fix = fix_gateway
        self.snapshots = snapshots
        self.codec = codec
        self.inbox = inbox
        self.sent = 0
        # The kill switch sends one OrderMassCancelRequest when the FIX venue takes it.
        self.supports_mass_cancel = getattr(fix_gateway, "supports_mass_cancel", False)

    def send(self, command: Any) -> None:
        self.sent += 1
        if type(command) is VenueRequestSnapshot:
            _send_or_refuse(self.snapshots, self.codec, command, self.inbox)
        else:
            self.fix.send(command)


class FixVenueLink:
    def __init__(self, config: Any, context: zmq.Context) -> None:
        from engine.fix.initiator import FixGateway
        from engine.server.config import fix_session_config

        self.codec = Codec(config.instruments)
        self.md = context.socket(zmq.SUB)
        self.md.linger = 0
        self.md.setsockopt(zmq.SUBSCRIBE, b"")
        self.md.connect(config.venue.market_data)
        self.snap = context.socket(zmq.DEALER)
        self.snap.linger = 0
        self.snap.connect(config.venue.snapshot)
        config.fix_var_dir.mkdir(parents=True, exist_ok=True)
        self.engine: Any = None
        self.fix = FixGateway(
            fix_session_config(config.venue),
            config.instruments,
            var_dir=config.fix_var_dir,
            account=config.engine.account,
            on_reconnect=self._reconcile,
            wake=self._wake,
        )
        self.wake: Any = None  # the loop's wake-up, set before start
        self.inbox: deque = deque()
        self.gateway = _SplitGateway(self.fix, self.snap, self.codec, self.inbox)
        self.sockets = [self.md, self.snap]
        self.decode_errors = 0
        self.queries_dropped = 0

    def _wake(self) -> None:  # QuickFIX's thread
        if self.wake is not None:
            self.wake()

    def _reconcile(self) -> None:  # engine thread, from FixGateway.poll
        engine = self.engine
        if engine is not None:
            for order in engine.oms.working_orders():
                self.fix.send(engine.oms.query_message(order.client_order_id))

    def start(self, engine: Any) -> None:
        self.engine = engine
        for symbol in engine.instruments.symbols:
            self.gateway.send(VenueRequestSnapshot(symbol=symbol))
        self.fix.start()

    def poll(self) -> None:
        for msg in self.fix.poll():
            # A status query refused because the session is down is not news: the engine would answer it with
            # another query (Engine._query_if_live), refused at once again, and loop as fast as it can journal.
            # The logon's reconciliation queries every working order anyway, so the refusal is dropped here.
            if type(msg) is VenueCommandRejected and msg.command == "VenueQueryOrder":
                self.queries_dropped += 1
                continue
            self.inbox.append(msg)

    def read(self, socket: zmq.Socket) -> None:
        decode = self.codec.decode_venue_event
        inbox = self.inbox
        for _ in range(1000):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                inbox.append(decode(frames[-1]))  # [symbol topic, message] on the PUB, [message] on the DEALER
            except ProtocolError:
                self.decode_errors += 1

    def close(self) -> None:
        self.fix.stop()
        self.md.close(0)
        self.snap.close(0)
