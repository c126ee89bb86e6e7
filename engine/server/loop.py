"""The engine thread: one loop that owns the Engine, its sockets and the venue link (engine thread only, except
`put`, which any thread may call).

Each turn: wait on the command ROUTER, the venue link's sockets and the wake-up fd (with a timeout to the next
timer tick); whatever arrived is appended to one inbound queue; the queue is drained into the Engine in arrival
order (commands, venue messages, timer ticks), each command is answered at once, and the events the turn produced
are published. Socket readers and other threads (a QuickFIX callback) only ever append to the queue: nothing but
this loop calls the Engine, so its state has one owner and needs no lock.

Journal batching (`fsync = "batch"`): the Journal itself is opened with FsyncPolicy.NEVER, so an append is one
`os.write` and never an inline fsync, and a `JournalSyncer` thread fsyncs the file (its own descriptor: fsync acts on
the file, not the descriptor) every `batch_ms` when it has grown. The fsync releases the GIL, so the engine thread
keeps trading while the disk flushes; a process crash loses nothing (the writes are in the page cache), a power loss
at most the last `batch_ms`. An inline time-based fsync cost a tick-to-order of about 1 ms on this machine.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from enum import IntEnum
from typing import Any

import zmq

from engine.protocol import Codec, ProtocolError
from engine.server.zmq_io import CommandSocket, EventPublisher, refusal

log = logging.getLogger("engine.server")


class Inbound(IntEnum):
    COMMAND = 1  # (envelope, bytes) from the ROUTER
    VENUE = 2  # a decoded venue message (execution report, market data, venue reject)
    TIMER = 3


class EngineLoop:
    def __init__(
        self,
        engine: Any,
        *,
        commands: CommandSocket,
        events: EventPublisher,
        venue: Any,
        clock: Any,
        tick_ns: int,
        busy_poll_ns: int = 0,
    ) -> None:
        self.engine = engine
        self.commands = commands
        self.events = events
        self.venue = venue
        self.clock = clock
        self.tick_ns = tick_ns
        self.busy_poll_ns = busy_poll_ns
        self.codec: Codec = engine.codec
        self.inbound: deque = deque()
        self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._next_tick = clock.now() + tick_ns
        self.stopping = False
        self.garbage = 0
        self.syncer: JournalSyncer | None = None
        poller = zmq.Poller()
        poller.register(commands.socket, zmq.POLLIN)
        poller.register(self._wake_fd, zmq.POLLIN)
        for socket in venue.sockets:
            poller.register(socket, zmq.POLLIN)
        self._poller = poller
        self._put_command = lambda item: self.inbound.append((Inbound.COMMAND, item))

    # ------------------------------------------------------------------ any thread

    def wake(self) -> None:
        """Make the engine thread's poll return (a QuickFIX callback queued something). Any thread."""
        try:
            os.eventfd_write(self._wake_fd, 1)
        except OSError:
            pass  # closed at shutdown

    def stop(self) -> None:
        """Ask the loop to finish its turn and return (a signal handler calls it)."""
        self.stopping = True
        try:
            os.eventfd_write(self._wake_fd, 1)
        except OSError:
            pass

    # ------------------------------------------------------------------ engine thread

    def run(self) -> None:
        poll = self._poller.poll
        commands, venue = self.commands, self.venue
        venue_sockets = set(venue.sockets)
        flow_ms = 1 if getattr(venue, "flows", None) else None
        spin_ns, perf = self.busy_poll_ns, time.perf_counter_ns
        last_input = perf()
        while not self.stopping:
            timeout_ms = max(0, (self._next_tick - self.clock.now()) // 1_000_000)
            if flow_ms is not None:
                timeout_ms = min(timeout_ms, flow_ms)
            if spin_ns and perf() - last_input < spin_ns:
                timeout_ms = 0
            ready = poll(timeout_ms)
            if ready:
                last_input = perf()
            for socket, _ in ready:
                if socket is commands.socket:
                    commands.read(self._put_command)
                elif socket in venue_sockets:
                    venue.read(socket)
                else:
                    try:
                        os.eventfd_read(self._wake_fd)
                    except BlockingIOError:
                        pass
            venue.poll()
            if self.clock.now() >= self._next_tick:
                self.inbound.append((Inbound.TIMER, None))
                self._next_tick += self.tick_ns
                if self._next_tick <= self.clock.now():  # a slow turn: do not queue a burst of ticks
                    self._next_tick = self.clock.now() + self.tick_ns
            self.turn()

    def turn(self) -> None:
        """Drain the inbound queue (and the venue link's inbox) into the Engine; publish what it produced."""
        engine, inbound, venue_inbox = self.engine, self.inbound, self.venue.inbox
        while inbound or venue_inbox:
            while venue_inbox:
                inbound.append((Inbound.VENUE, venue_inbox.popleft()))
            kind, item = inbound.popleft()
            if kind is Inbound.COMMAND:
                self._command(*item)
            elif kind is Inbound.VENUE:
                engine.handle_venue_message(item)
            else:
                engine.on_timer(self.clock.now())
            self.events.publish(engine.drain(), self.codec.encode)

    def _command(self, envelope: list, data: bytes) -> None:
        try:
            cmd = self.codec.decode_command(data)
        except ProtocolError as exc:
            self.garbage += 1
            self.commands.reply(envelope, refusal(self.codec, data, exc, self.clock.now()))
            return
        reply = self.engine.handle_command(cmd)
        self.commands.reply(envelope, self.codec.encode(reply))

    def close(self) -> None:
        """Journal synced and closed, sockets closed (SIGTERM path)."""
        journal = self.engine.journal
        if journal is not None:
            journal.sync()
            journal.close()
        self.commands.close()
        self.events.close()
        self.venue.close()
        os.close(self._wake_fd)


class JournalSyncer(threading.Thread):
    """fsyncs the journal file every `interval_s` when it has grown. Reads only `journal.last_seq` (an int, read
    atomically under the GIL) and the file; never touches engine state."""

    def __init__(self, journal: Any, interval_s: float) -> None:
        super().__init__(name="journal-syncer", daemon=True)
        self.journal = journal
        self.interval_s = interval_s
        self._halt = threading.Event()
        self._fd = os.open(journal.path, os.O_RDONLY | os.O_CLOEXEC)
        self.syncs = 0

    def run(self) -> None:
        synced = -1
        while not self._halt.wait(self.interval_s):
            last = self.journal.last_seq
            if last != synced:
                os.fsync(self._fd)
                synced = last
                self.syncs += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        os.fsync(self._fd)
        os.close(self._fd)
