"""The bridge's loop: engine events in, batches committed, live topics out (main thread; `Committer` writes the
batches and `LivePublisher` sends live topics, each on its own thread).

    receive frames -> decode (bad ones become dead letters) -> in seq order, gaps filled by replay -> pending
    pending, at least every 50 ms -> Committer: one transaction per batch (writer.py) -> LiveState -> LivePublisher

Recovery, all from the checkpoint the writer commits with the rows:
- start: ask the engine for a StateSnapshot (its engine id and newest seq), read the checkpoint, replay from it + 1;
- a gap in the stream (frames dropped, the engine restarted while we were away): RequestReplay from the last seq we
  hold + 1; an engine that does not answer is asked again every second, newer frames wait for it;
- PostgreSQL gone: the Committer reconnects with backoff and writes the same batch again (the writer drops what the
  checkpoint says is already committed); once it holds two batches the loop stops reading, and frames the SUB
  socket could not hold meanwhile come back by replay;
- SIGTERM / SIGINT: take what the socket already holds, commit everything, stop the publisher, exit 0.

Refusals: the bridge stops with a non-zero status (the supervisor restarts it, docs/bridge.md) instead of writing
a stream it cannot place:
- the engine's sequence is behind what we hold (a fresh journal under the same engine id): its events would be
  taken for ones already committed and dropped. Checked against every StateSnapshot (start-up, after a refused
  replay, and whenever the live stream's seq goes backwards); exit EXIT_SEQUENCE_BEHIND, nothing of the new
  sequence written;
- an event of another engine on the stream (the engine was restarted under a new id): one dead letter records it
  and the bridge exits EXIT_ENGINE_ID_MISMATCH; started again, it follows the new engine id from its snapshot.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from array import array
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

from console.engine_client import EngineUnavailable, EventGap
from engine.protocol import Codec, EventEnvelope, InstrumentRegistry, StateSnapshot
from trading.bridge.committer import Committer, connect_with_backoff
from trading.bridge.fast import FastEnvelope
from trading.bridge.link import EngineLink, ReplayClient, decode_frames
from trading.bridge.livestate import LivePublisher, LiveState
from trading.bridge.rows import Units
from trading.bridge.writer import DeadLetter, Pending, Writer

log = logging.getLogger("trading.bridge")

EXIT_SEQUENCE_BEHIND = 3
EXIT_ENGINE_ID_MISMATCH = 4


@dataclass(frozen=True)
class BridgeOptions:
    flush_interval_s: float = 0.05  # a batch is committed at most this long after its first event arrived
    max_batch: int = 20_000  # events per transaction at most (a catch-up replay is written in such slices)
    reconnect_max_s: float = 5.0  # ceiling of the PostgreSQL / engine retry backoff
    resync_interval_s: float = 1.0  # how often to ask an unresponsive engine for a replay again
    publish_live: bool = True


class BridgeStats:
    """Counters, and the event-to-commit lag when asked for (benchmarks). Lags are collected as plain integers and
    put into the HDR histogram only when read: recording into it per event would slow the loop it measures."""

    def __init__(self, *, lag_histogram: bool = False) -> None:
        self.events = 0
        self.batches = 0
        self.dead_letters = 0
        self.replays = 0
        self.reconnects = 0
        self.first_commit_ns = 0
        self.last_commit_ns = 0
        self.lags_us: array | None = array("q") if lag_histogram else None

    def committed(self, events: list[EventEnvelope], items: int, commit_ns: int) -> None:
        """A batch of `items` committed: `events` and, for the rest, dead letters."""
        self.batches += 1
        self.first_commit_ns = self.first_commit_ns or commit_ns
        self.last_commit_ns = commit_ns
        self.events += len(events)
        self.dead_letters += items - len(events)
        if self.lags_us is not None:
            self.lags_us.extend([(commit_ns - env.ts) // 1000 for env in events])

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "events": self.events,
            "batches": self.batches,
            "dead_letters": self.dead_letters,
            "replays": self.replays,
            "reconnects": self.reconnects,
            "first_commit_ns": self.first_commit_ns,
            "last_commit_ns": self.last_commit_ns,
        }
        if self.lags_us:
            from hdrh.histogram import HdrHistogram

            lag = HdrHistogram(1, 3_600_000_000, 3)  # microseconds, up to an hour
            for value in self.lags_us:
                lag.record_value(max(1, value))
            out["lag_p50_ms"] = lag.get_value_at_percentile(50) / 1000
            out["lag_p99_ms"] = lag.get_value_at_percentile(99) / 1000
            out["lag_max_ms"] = lag.get_max_value() / 1000
            out["lag_count"] = lag.get_total_count()
        return out


class Bridge:
    def __init__(
        self,
        *,
        conninfo: str,
        command_endpoint: str,
        event_endpoint: str,
        keys_dir: Path | None,
        instruments: InstrumentRegistry,
        timeout_ms: int = 1000,
        options: BridgeOptions | None = None,
        stats: BridgeStats | None = None,
    ) -> None:
        self.conninfo = conninfo
        self.options = options or BridgeOptions()
        self.stats = stats or BridgeStats()
        self.codec = Codec(instruments)
        self.units = Units(instruments)
        self.link = EngineLink(
            client=ReplayClient(
                command_endpoint=command_endpoint, keys_dir=keys_dir, codec=self.codec, timeout_ms=timeout_ms, retries=1
            ),
            event_endpoint=event_endpoint,
            keys_dir=keys_dir,
        )
        self.shutdown = False
        self.engine_id = ""
        self.writer: Writer | None = None
        self.committer: Committer | None = None
        self.live: LiveState | None = None
        self.publisher: LivePublisher | None = None
        self.pending: list[Pending] = []
        self.last_seen = 0  # newest seq taken into pending (or committed)
        self.checkpoint = 0
        self.resync_at: float | None = None
        self.unplaced = 0  # replayed frames set aside since last_seen whose header named no seq (_take_replayed)
        self.stream_high = 0  # newest seq seen on the live socket: the engine's own order, it never goes back
        self.refused = 0  # EXIT_* once the bridge refuses to go on (see the module docstring)

    def stop(self, *_args: Any) -> None:
        self.shutdown = True

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    # --- start-up -----------------------------------------------------------------------------------------------

    def run(self) -> int:
        """Until SIGTERM: returns the exit status (0 when everything received was committed)."""
        try:
            snapshot = self._first_snapshot()
            if snapshot is None:
                return 0
            self.engine_id = snapshot.engine_id
            self.writer = Writer(conninfo=self.conninfo, engine_id=self.engine_id, units=self.units)
            if not self._connect():
                return 0
            while True:
                try:
                    self.checkpoint = self.last_seen = self.writer.checkpoint()
                    fills = self._recent_fills()
                    pnl = self._latest_pnl()
                    break
                except psycopg.OperationalError:
                    if not self._connect():
                        return 0
            log.info("bridge for engine %s: checkpoint %d, engine at %d", self.engine_id, self.checkpoint, snapshot.seq)
            if not self._snapshot_follows(snapshot):
                return self.refused
            self.live = LiveState(engine_id=self.engine_id, units=self.units)
            self.live.load_snapshot(snapshot, fills, pnl)
            if self.options.publish_live:
                self.publisher = LivePublisher(self.live)
                self.publisher.start()
            self.committer = Committer(
                writer=self.writer,
                live=self.live,
                stats=self.stats,
                checkpoint=self.checkpoint,
                stopping=lambda: self.shutdown,
                max_delay_s=self.options.reconnect_max_s,
            )
            self.committer.start()
            _tune_gc()
            if snapshot.seq > self.last_seen:
                self._catch_up()
            self._loop()
            return self._finish()
        finally:
            if self.committer is not None and self.committer.is_alive():
                self.shutdown = True
                self.committer.finish(timeout=10)
            if self.publisher is not None:
                self.publisher.stop()
            if self.writer is not None:
                self.writer.close()
            self.link.close()

    def _first_snapshot(self) -> StateSnapshot | None:
        delay = 0.1
        while not self.shutdown:
            try:
                reply = self.link.snapshot()
                if type(reply) is StateSnapshot:
                    return reply
                log.warning("engine refused a state snapshot: %s", reply)
            except EngineUnavailable:
                log.info("waiting for the engine at %s", self.link.client._endpoint)
            self._sleep(delay)
            delay = min(delay * 2, self.options.reconnect_max_s)
        return None

    def _connect(self) -> bool:
        """Connect to PostgreSQL with backoff until it answers or we are told to stop."""
        assert self.writer is not None
        return connect_with_backoff(
            self.writer, stopping=lambda: self.shutdown, max_delay_s=self.options.reconnect_max_s
        )

    def _recent_fills(self) -> list[dict]:
        assert self.writer is not None and self.writer.conn is not None
        with self.writer.conn.transaction():
            rows = self.writer.conn.execute(
                "SELECT seq, ts_ns, exec_id, client_order_id, strategy_id, "
                "symbol, side, price, quantity, commission, is_maker FROM trading_fill WHERE engine_id = %s "
                "ORDER BY seq DESC LIMIT 50",
                (self.engine_id,),
            ).fetchall()
        keys = ("seq", "ts", "exec_id", "client_order_id", "strategy_id", "symbol", "side", "price", "quantity")
        out = []
        for row in rows:
            item = dict(zip(keys, row[:9], strict=True))
            item.update(price=str(row[7]), quantity=str(row[8]), commission=str(row[9]), is_maker=row[10])
            out.append(item)
        return out

    def _latest_pnl(self) -> list[tuple[int, int, dict]]:
        """The newest stored P&L of each scope of this engine (seq, ts ns, topic entry). A scope with no update
        for a day is left out: the table is a long time series, and only its recent partitions are read."""
        assert self.writer is not None and self.writer.conn is not None
        with self.writer.conn.transaction():
            rows = self.writer.conn.execute(
                # The table keeps no ts_ns: its timestamptz holds whole microseconds, and extract gives them exactly
                # (numeric), so the seed's ts is the engine's to the microsecond, not rounded to the second.
                "SELECT DISTINCT ON (scope_kind, scope_name) seq, (extract(epoch FROM ts) * 1000000)::bigint * 1000, "
                "scope_kind, scope_name, realized_pnl, unrealized_pnl, fees FROM trading_pnlsnapshot "
                "WHERE engine_id = %s AND ts >= now() - interval '1 day' "
                "ORDER BY scope_kind, scope_name, seq DESC",
                (self.engine_id,),
            ).fetchall()
        return [
            (
                seq,
                ts,
                {
                    "scope_kind": kind,
                    "scope_name": name,
                    "realized": _plain(realized),
                    "unrealized": _plain(unrealized),
                    "fees": _plain(fees),
                },
            )
            for seq, ts, kind, name, realized, unrealized, fees in rows
        ]

    # --- the loop -----------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        opts = self.options
        batch_started = 0.0
        while not self.shutdown:
            if self.committer is not None and not self.committer.is_alive():
                log.error("the commit thread stopped; exiting")
                return
            now = time.monotonic()
            if self.pending:
                wait_ms = max(0, int((batch_started + opts.flush_interval_s - now) * 1000))
            else:
                wait_ms = 100
            room = max(1, opts.max_batch - len(self.pending))
            frames = self.link.poll(wait_ms, room)
            if frames:
                had = bool(self.pending)
                items = decode_frames(self.codec, self.engine_id, frames, self.link.symbols)
                if self._stream_went_back(items) and not self._check_engine():
                    break
                self._accept_all(items)
                if not had and self.pending:
                    batch_started = time.monotonic()
            if self.refused:
                break
            if self.resync_at is not None and time.monotonic() >= self.resync_at:
                had = bool(self.pending)
                self._fill_gap()
                if not had and self.pending:
                    batch_started = time.monotonic()
            if self.pending and (
                len(self.pending) >= opts.max_batch or time.monotonic() - batch_started >= opts.flush_interval_s
            ):
                self._flush()

    def _accept_all(self, items: list[Pending]) -> None:
        """`_accept` each item; a run that simply continues the stream (the common case) is taken whole."""
        first = self.last_seen + 1
        if items and [p.seq for p in items] == list(range(first, first + len(items))):
            if any(p.dead is not None for p in items):
                for p in items:
                    if p.dead is not None:
                        _log_dead(p.dead)
            self.pending.extend(items)
            self.last_seen = items[-1].seq
            return
        for item in items:
            self._accept(item)

    def _accept(self, item: Pending) -> None:
        seq = item.seq
        if seq is None:
            self._dead(item)
            return
        if item.dead is not None and seq > self.last_seen:
            _log_dead(item.dead)
        if seq <= self.last_seen:
            return  # already held or committed (a replay overlapping the live stream)
        if seq > self.last_seen + 1:
            if self.resync_at is not None:
                return  # waiting for the engine to replay the gap; this frame will come with it
            log.warning("gap in the stream: got seq %d after %d; replaying", seq, self.last_seen)
            self._fill_gap()
            if seq <= self.last_seen:
                return
            if seq > self.last_seen + 1:
                return  # the replay did not reach it: dropped now, replayed later
        self.pending.append(item)
        self.last_seen = seq

    def _dead(self, item: Pending) -> None:
        assert item.dead is not None
        if item.dead.reason_code == "ENGINE_ID_MISMATCH":
            # Every frame from now on is another engine's: recording each would fill the table at stream rate.
            # One dead letter says why, and a restarted bridge follows the engine's new id.
            if self.refused:
                return
            log.error(
                "refusing the stream: %s. Exiting with status %d; restarted, the bridge follows the engine's id.",
                item.dead.reason,
                EXIT_ENGINE_ID_MISMATCH,
            )
            self._refuse(EXIT_ENGINE_ID_MISMATCH)
        _log_dead(item.dead)
        self.pending.append(item)

    def _stream_went_back(self, items: list[Pending]) -> bool:
        """Whether a seq on the live socket is below one seen there before (the engine's PUB socket never reorders
        and the SUB socket only drops: only an engine numbering from the start again does that)."""
        high = self.stream_high
        first, last = items[0].seq, items[-1].seq
        if first is not None and last is not None and high <= first <= last:
            self.stream_high = last  # the common case: a run going forward from where the stream stood
            return False
        back = False
        for p in items:
            seq = p.seq
            if seq is None:
                continue
            if seq < high:
                back = True
            high = max(high, seq)
        self.stream_high = high
        return back

    def _check_engine(self) -> bool:
        """The stream went back: ask the engine where it stands. False (and refused) when it is behind us."""
        log.warning("the engine's seq went backwards on the stream; asking it for a state snapshot")
        try:
            snapshot = self.link.snapshot()
        except EngineUnavailable:
            return True  # a restart in progress: the next frames or the gap replay ask again
        if type(snapshot) is not StateSnapshot:
            return True
        return self._snapshot_follows(snapshot)

    def _snapshot_follows(self, snapshot: StateSnapshot) -> bool:
        """Whether the engine's state continues what we hold. A snapshot behind the checkpoint (or what we hold)
        comes from a fresh journal under the same engine id: its events would pass for ones already committed and
        be dropped one by one, so the bridge refuses and stops instead."""
        held = max(self.checkpoint, self.last_seen)
        if snapshot.engine_id == self.engine_id and snapshot.seq >= held:
            return True
        if snapshot.engine_id != self.engine_id:
            log.error(
                "refusing the stream: the engine now reports id %r, not %r. Exiting with status %d; restarted, "
                "the bridge follows the new id.",
                snapshot.engine_id,
                self.engine_id,
                EXIT_ENGINE_ID_MISMATCH,
            )
            self._refuse(EXIT_ENGINE_ID_MISMATCH)
            return False
        log.error(
            "refusing the stream: engine %s is at seq %d but the bridge already holds up to seq %d (checkpoint %d). "
            "The engine was started on a fresh journal under the same engine id; its events would be taken for "
            "ones already stored and dropped. Give the new journal its own engine id (or restore the old journal). "
            "Exiting with status %d.",
            self.engine_id,
            snapshot.seq,
            held,
            self.checkpoint,
            EXIT_SEQUENCE_BEHIND,
        )
        self._refuse(EXIT_SEQUENCE_BEHIND)
        return False

    def _refuse(self, status: int) -> None:
        self.refused = status
        self.shutdown = True

    def _fill_gap(self) -> None:
        """Replay from last_seen + 1, reply by reply; on failure try again after resync_interval_s."""
        from_seq = self.last_seen + 1
        self.unplaced = 0
        try:
            for frames in self.link.replay(from_seq, self.engine_id):
                self.resync_at = None
                if not self._take_replayed(frames):
                    self.resync_at = time.monotonic() + self.options.resync_interval_s
                    return
                if self.shutdown:
                    return
        except EngineUnavailable:
            log.warning("engine did not answer a replay from %d; asking again shortly", self.last_seen + 1)
            self.resync_at = time.monotonic() + self.options.resync_interval_s
            return
        except EventGap as exc:
            # The engine can no longer replay these events: record the hole loudly and go on from what it has.
            log.error("events from %d cannot be replayed: %s", self.last_seen + 1, exc.reason)
            self.pending.append(
                Pending(seq=None, dead=DeadLetter(self.engine_id, from_seq, "REPLAY_REFUSED", exc.reason, b""))
            )
            self.resync_at = None
            try:
                snapshot = self.link.snapshot()
            except EngineUnavailable:
                self.resync_at = time.monotonic() + self.options.resync_interval_s
                return
            if type(snapshot) is StateSnapshot and self._snapshot_follows(snapshot) and snapshot.seq > self.last_seen:
                self.last_seen = snapshot.seq
            return
        self.stats.replays += 1

    def _take_replayed(self, frames: list[bytes] | list[FastEnvelope]) -> bool:
        """Take one replay reply into pending from where the stream stands. False when the reply leaves out events
        after that point (the caller replays again from last_seen + 1)."""
        items = frames if frames and type(frames[0]) is FastEnvelope else None
        if items is None:
            items = decode_frames(self.codec, self.engine_id, frames, self.link.symbols)
        first = self.last_seen + 1
        if items and [p.seq for p in items] == list(range(first, first + len(items))):
            # The reply continues the stream (the common case): taken in max_batch slices, not event by event.
            for p in items:
                if p.dead is not None:
                    _log_dead(p.dead)
            max_batch = self.options.max_batch
            while items:
                room = max_batch - len(self.pending)
                self.pending.extend(items[:room])
                items = items[room:]
                self.last_seen = self.pending[-1].seq
                if len(self.pending) >= max_batch:
                    self._flush()
            self.unplaced = 0
            return True
        for item in items:
            seq = item.seq
            if seq is None:
                self._dead(item)
                if item.dead is not None and item.dead.reason_code != "ENGINE_ID_MISMATCH":
                    self.unplaced += 1
                continue
            if seq <= self.last_seen:
                continue  # already held (a reply overlapping what we have)
            if seq > self.last_seen + 1:
                # A replay holds consecutive events: a hole no wider than the frames just set aside because their
                # header named no seq is those frames (their dead letters are taken); the stream goes on after
                # them. Any other hole is events the reply left out: replay again from where we stand, rather
                # than drop what follows unnoticed.
                if seq - self.last_seen - 1 > self.unplaced:
                    log.warning("replay skipped from %d to %d; asking again", self.last_seen + 1, seq)
                    self.unplaced = 0
                    return False
            if item.dead is not None:
                _log_dead(item.dead)
            self.pending.append(item)
            self.last_seen = seq
            self.unplaced = 0
            if len(self.pending) >= self.options.max_batch:
                self._flush()
        return True

    def _catch_up(self) -> None:
        log.info("replaying from %d", self.last_seen + 1)
        self._fill_gap()
        if self.pending:
            self._flush()

    # --- writing ------------------------------------------------------------------------------------------------

    def _flush(self) -> bool:
        """Hand `pending` to the commit thread (blocks while it has two batches in hand)."""
        if not self.pending:
            return True
        assert self.committer is not None
        batch, self.pending = self.pending, []
        return self.committer.submit(batch)

    def _finish(self) -> int:
        # Frames already delivered to our socket are committed too: stopping drops nothing the engine sent us
        # (unless the stream was refused: what the socket holds then is the stream we cannot place).
        while not self.refused and (frames := self.link.poll(0, self.options.max_batch)):
            self._accept_all(decode_frames(self.codec, self.engine_id, frames, self.link.symbols))
            if len(self.pending) >= self.options.max_batch:
                self._flush()
        self._flush()
        assert self.committer is not None
        self.committer.finish()
        if self.publisher is not None:
            self.publisher.stop()
        if self.committer.error is not None:
            return 1
        if self.refused:
            return self.refused
        if self.committer.uncommitted:
            log.error(
                "stopping with %d events not committed; they are replayed at the next start",
                self.committer.uncommitted,
            )
            return 1
        log.info("stopped at checkpoint %d (%d events this run)", self.committer.checkpoint, self.stats.events)
        return 0

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.shutdown and time.monotonic() < deadline:
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _plain(value: Decimal) -> str:
    """A stored numeric without the column's padding (scale 12): "12.5", not "12.500000000000"."""
    return format(value.normalize(), "f")


def _log_dead(dead: DeadLetter) -> None:
    log.error("dead letter %s (engine %s seq %s): %s", dead.reason_code, dead.engine_id, dead.seq, dead.reason)


def _tune_gc() -> None:
    """The bridge allocates a few objects per event, hundreds of thousands a second, nearly all short-lived and
    none in cycles. With the default thresholds the collector runs every 700 allocations and its older generations
    keep re-scanning everything Django and the apps loaded at start-up; measured here, that tripled the cost of
    holding a decoded event. Freeze the start-up objects out of its sight and collect young objects less often."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
