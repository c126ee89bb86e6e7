"""Commits the bridge's batches on a thread of their own (the only thread that touches the database connection).

While a batch is in PostgreSQL's hands (COPY processing, index maintenance, the commit's WAL flush) psycopg waits
with the GIL released, so the main thread goes on receiving and decoding the next batch: the two overlap instead
of taking turns. One batch is being written and at most one waits (`queue` of size 1); when both places are taken
the main thread blocks handing over the third, stops reading the socket, and ZeroMQ (then the engine's replay)
holds the rest: memory stays bounded through a long database outage.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import psycopg

from trading.bridge.livestate import LiveState
from trading.bridge.writer import Pending, Writer

log = logging.getLogger("trading.bridge")


def connect_with_backoff(writer: Writer, *, stopping: Callable[[], bool], max_delay_s: float) -> bool:
    """(Re)connect to PostgreSQL, waiting 0.1 s doubling up to `max_delay_s` between attempts, until it answers
    (True) or `stopping()` (False)."""
    delay = 0.1
    while not stopping():
        try:
            writer.connect()
            return True
        except psycopg.OperationalError as exc:
            log.warning("PostgreSQL unavailable (%s); retrying in %.1f s", str(exc).strip(), delay)
            deadline = time.monotonic() + delay
            while not stopping() and time.monotonic() < deadline:
                time.sleep(0.05)
            delay = min(delay * 2, max_delay_s)
    return False


class Committer(threading.Thread):
    def __init__(
        self,
        *,
        writer: Writer,
        live: LiveState | None,
        stats,
        checkpoint: int,
        stopping: Callable[[], bool],
        max_delay_s: float,
    ) -> None:
        super().__init__(name="bridge-commit", daemon=True)
        self.writer = writer
        self.live = live
        self.stats = stats
        self.checkpoint = checkpoint
        self.stopping = stopping
        self.max_delay_s = max_delay_s
        self.queue: queue.Queue[list[Pending] | None] = queue.Queue(maxsize=1)
        self.uncommitted = 0  # events it had to give up on (stopped while PostgreSQL was unreachable)
        self.error: BaseException | None = None

    # --- main thread --------------------------------------------------------------------------------------------

    def submit(self, batch: list[Pending] | None) -> bool:
        """Hand a batch over (blocks while two are in hand); None asks the thread to stop. False if it is gone."""
        while self.is_alive():
            try:
                self.queue.put(batch, timeout=0.1)
                return True
            except queue.Full:
                continue
        if batch is not None:
            self.uncommitted += sum(1 for p in batch if p.env is not None)
        return False

    def finish(self, timeout: float | None = None) -> None:
        """Write everything handed over, then stop."""
        if self.is_alive():
            self.submit(None)
            self.join(timeout)
        if not self.is_alive():
            # A batch put just as the thread gave up (after it had drained the queue) is still in it: count it.
            self._give_up()

    # --- this thread --------------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while (batch := self.queue.get()) is not None:
                if not self._flush(batch):
                    self.uncommitted += sum(1 for p in batch if p.env is not None)
                    self._give_up()
                    return
        except BaseException as exc:  # a broken invariant: the main thread sees it and stops the process
            log.exception("the commit thread failed")
            self.error = exc

    def _give_up(self) -> None:
        while True:
            try:
                rest = self.queue.get_nowait()
            except queue.Empty:
                return
            if rest is not None:
                self.uncommitted += sum(1 for p in rest if p.env is not None)

    def _flush(self, pending: list[Pending]) -> bool:
        """Commit `pending`; on a lost connection reconnect and retry until it commits or the bridge stops."""
        writer = self.writer
        while pending:
            try:
                new_last, fresh = writer.flush(pending)
            except psycopg.OperationalError as exc:
                log.warning("PostgreSQL connection lost during a flush (%s); reconnecting", str(exc).strip())
                self.stats.reconnects += 1
                writer.close()
                if not connect_with_backoff(writer, stopping=self.stopping, max_delay_s=self.max_delay_s):
                    return False
                continue
            except psycopg.Error as exc:
                # The database refused this batch's rows (a value it cannot store): find the events it refuses and
                # set them aside one by one, so the rest of the stream is written.
                log.error("batch refused (%s: %s); writing its events one by one", type(exc).__name__, exc)
                return self._isolate(pending)
            self._committed(new_last, fresh, writer.last_orders)
            pending = []
        return True

    def _committed(self, new_last: int, fresh: list[Pending], orders: dict) -> None:
        events = self.writer.last_events
        self.stats.committed(events, len(fresh), time.time_ns())
        self.checkpoint = new_last
        if self.live is not None:
            self.live.apply(events, orders)

    def _isolate(self, items: list[Pending]) -> bool:
        writer = self.writer
        for index, item in enumerate(items):
            try:
                new_last, fresh = writer.flush([item])
                self._committed(new_last, fresh, writer.last_orders)
            except psycopg.OperationalError:
                return self._flush(items[index:])
            except psycopg.Error as exc:
                if item.env is None:
                    raise  # a dead letter itself was refused: nothing sensible is left to do
                code = getattr(exc, "sqlstate", None) or "REJECTED"
                log.error("event %d refused by the database: %s", item.env.seq, exc)
                try:
                    self.checkpoint = writer.dead_letter_alone(item, reason_code=f"DB_{code}", reason=str(exc))
                except psycopg.OperationalError:
                    # The connection broke while setting it aside: reconnect and retry from this event like any
                    # other lost connection (it is refused again, or found committed, then set aside once).
                    return self._flush(items[index:])
                self.stats.dead_letters += 1
        return True
