"""The bridge's PostgreSQL writer: one transaction per batch (the bridge's commit thread only, committer.py).

Each flush, in ONE transaction:
1. lock this engine's checkpoint row (`SELECT ... FOR UPDATE`): a second bridge for the same engine waits instead
   of writing the same events twice, and the checkpoint read is the committed truth;
2. drop the events at or below it (a replay, or a batch whose COMMIT succeeded but whose acknowledgement was lost
   when the connection broke: those are still returned as new to this writer, so the live state and the counters
   hear of them once);
3. build the rows (rows.py), appending history with binary COPY and upserting current state guarded by last_seq;
4. move the checkpoint to the batch's last seq.
So a crash at any point leaves either the whole batch and its checkpoint, or neither: nothing lost, nothing twice.
Order events, fills and the snapshot/version tables also have a unique (engine_id, seq[, ts]) key as a safety net;
ticks and trades have none (migration 0003, for ingest speed), so for them the checkpoint is the only guard.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from engine.protocol import EventEnvelope, TopOfBookChanged
from trading.bridge.copybin import HEADER, TICK_COLUMNS, TRAILER, TickEncoder
from trading.bridge.fast import FastEnvelope, FastTopOfBook
from trading.bridge.rows import ORDER_FIELDS, ZERO_HASH, OrderBook, RowBuilder, Rows, Units, order_ids, payload_of

log = logging.getLogger("trading.bridge")

APPLICATION_NAME = "engine_bridge"  # pg_stat_activity.application_name of the bridge's connection

# (table, columns, binary COPY types) of every appended table, in the column order RowBuilder produces.
_EVENT = ("engine_id", "seq", "ts")
_EVENT_TYPES = ("text", "int8", "timestamptz")
COPY_TABLES: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "trades": (
        "trading_trade",
        (*_EVENT, "ts_ns", "symbol", "price", "quantity", "aggressor_side", "venue_ts_ns"),
        (*_EVENT_TYPES, "int8", "text", "numeric", "numeric", "text", "int8"),
    ),
    "order_events": (
        "trading_orderevent",
        (
            *_EVENT,
            "ts_ns",
            "kind",
            "client_order_id",
            "strategy_id",
            "symbol",
            "side",
            "price",
            "quantity",
            "leaves_quantity",
            "cum_quantity",
            "code",
            "reason",
            "operator",
            "command_id",
            "payload",
            "prev_hash",
            "row_hash",
        ),
        (*_EVENT_TYPES, "int8", *["text"] * 5, *["numeric"] * 4, *["text"] * 4, "bytea", "bytea", "bytea"),
    ),
    "fills": (
        "trading_fill",
        (
            *_EVENT,
            "ts_ns",
            "exec_id",
            "client_order_id",
            "strategy_id",
            "symbol",
            "side",
            "price",
            "quantity",
            "commission",
            "is_maker",
            "venue_order_id",
            "leaves_quantity",
            "cum_quantity",
        ),
        (*_EVENT_TYPES, "int8", *["text"] * 5, "numeric", "numeric", "numeric", "bool", "int8", "numeric", "numeric"),
    ),
    "position_snapshots": (
        "trading_positionsnapshot",
        (*_EVENT, "strategy_id", "symbol", "quantity", "avg_price", "realized_pnl", "unrealized_pnl", "fees"),
        (*_EVENT_TYPES, "text", "text", *["numeric"] * 5),
    ),
    "pnl_snapshots": (
        "trading_pnlsnapshot",
        (*_EVENT, "scope_kind", "scope_name", "realized_pnl", "unrealized_pnl", "fees", "currency"),
        (*_EVENT_TYPES, "text", "text", "numeric", "numeric", "numeric", "text"),
    ),
    "limit_versions": (
        "trading_risklimitversion",
        (*_EVENT, "scope_kind", "scope_name", "limits", "operator", "command_id"),
        (*_EVENT_TYPES, "text", "text", "jsonb", "text", "text"),
    ),
    "state_changes": (
        "trading_tradingstatechange",
        (*_EVENT, "scope_kind", "scope_name", "state", "previous", "operator", "reason", "code", "command_id"),
        (*_EVENT_TYPES, *["text"] * 8),
    ),
    "param_versions": (
        "trading_strategyparamversion",
        (*_EVENT, "strategy_id", "version", "params", "operator", "reason", "rolled_back_to", "command_id"),
        (*_EVENT_TYPES, "text", "int4", "jsonb", "text", "text", "int4", "text"),
    ),
}
_TICKS_PER_WRITE = 2_000  # tick records encoded and sent to PostgreSQL per write (about 200 KB)
_TICK_KINDS = frozenset({FastTopOfBook, TopOfBookChanged})
_JSONB_COLUMNS = {"limit_versions": 5, "param_versions": 5}

ORDER_COLUMNS = ", ".join(ORDER_FIELDS)
_UPSERT_ORDER = (
    f"INSERT INTO trading_order ({ORDER_COLUMNS}) VALUES ({', '.join(['%s'] * len(ORDER_FIELDS))}) "
    "ON CONFLICT (engine_id, client_order_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ORDER_FIELDS if c not in ("engine_id", "client_order_id", "created_at"))
    + " WHERE trading_order.last_seq < EXCLUDED.last_seq"
)
_UPSERT_POSITION = (
    "INSERT INTO trading_position (engine_id, strategy_id, symbol, quantity, avg_price, realized_pnl, fees, "
    "last_seq, updated_at, unrealized_pnl) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 0) "
    "ON CONFLICT (engine_id, strategy_id, symbol) DO UPDATE SET quantity = EXCLUDED.quantity, "
    "avg_price = EXCLUDED.avg_price, realized_pnl = EXCLUDED.realized_pnl, fees = EXCLUDED.fees, "
    "last_seq = EXCLUDED.last_seq, updated_at = EXCLUDED.updated_at "
    "WHERE trading_position.last_seq < EXCLUDED.last_seq"
)
# A dead letter is stored once: a batch committed whose acknowledgement was lost is written again on retry, and a
# restarted bridge meets the same refused replay again; the unique key makes the second insert a no-op.
_INSERT_DEAD = (
    "INSERT INTO trading_deadletter (engine_id, seq, received_at, reason_code, reason, raw, idempotency_key) "
    "VALUES (%s, %s, now(), %s, %s, %s, %s) ON CONFLICT (idempotency_key) DO NOTHING"
)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A frame set aside: the bytes exactly as received and why."""

    engine_id: str
    seq: int | None
    reason_code: str
    reason: str
    raw: bytes

    @property
    def key(self) -> str:
        """Its idempotency key (migration 0007): the engine and seq, or a hash of the bytes when there is no seq."""
        if self.seq is not None:
            return f"{self.engine_id}:{self.seq}"
        return f"{self.engine_id}:sha256:{hashlib.sha256(self.raw).hexdigest()}"


@dataclass(slots=True)
class Pending:
    """One received item in seq order: a decoded event or a dead letter (which also advances the checkpoint when
    its seq is known, so the stream continues past it)."""

    seq: int | None
    env: EventEnvelope | None = None
    dead: DeadLetter | None = None


class Writer:
    """Owns the connection and the caches rebuilt from the database (order state, hash chain head)."""

    def __init__(self, *, conninfo: str, engine_id: str, units: Units) -> None:
        self.conninfo = conninfo
        self.engine_id = engine_id
        self.units = units
        self.orders = OrderBook(engine_id)
        self.builder = RowBuilder(engine_id, units, self.orders)
        self.tick_encoder = TickEncoder(engine_id, units)
        self.chain_head: bytes | None = None
        self.last_committed: int | None = None  # the checkpoint this writer's own last commit left
        # The newest checkpoint this writer saw committed and reported (read or written): unlike last_committed it
        # survives a failed flush, so a retry can tell the events of a COMMIT whose acknowledgement was lost
        # (above it, at or below the checkpoint) from those committed before (None: nothing known yet).
        self.acknowledged: int | None = None
        self.conn: psycopg.Connection | None = None
        # Order rows the last committed flush changed (copies: the cache keeps mutating), for the live topics.
        self.last_orders: dict[str, dict[str, Any]] = {}
        self.last_events: list[EventEnvelope] = []  # the events the last flush committed (its fresh items' events)

    # --- connection ---------------------------------------------------------------------------------------------

    def connect(self) -> None:
        self.close()
        self.conn = psycopg.connect(
            self.conninfo, autocommit=False, connect_timeout=5, application_name=APPLICATION_NAME
        )
        self.reset_caches()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
            self.conn = None

    def reset_caches(self) -> None:
        """After a failed flush or a reconnect: everything in memory is re-read from committed rows."""
        self.orders.clear()
        self.chain_head = None
        self.last_committed = None

    def checkpoint(self) -> int:
        """The last committed seq of this engine (0 when it has none)."""
        assert self.conn is not None
        with self.conn.transaction():
            row = self.conn.execute(
                "SELECT last_seq FROM trading_bridgecheckpoint WHERE engine_id = %s", (self.engine_id,)
            ).fetchone()
        self.acknowledged = row[0] if row else 0
        return self.acknowledged

    # --- one batch ----------------------------------------------------------------------------------------------

    def flush(self, items: list[Pending]) -> tuple[int, list[Pending]]:
        """Write `items` (seq order) in one transaction. Returns (checkpoint after commit, the items that are new to
        this writer's caller: those above the committed checkpoint, written now, preceded by those a COMMIT whose
        acknowledgement was lost had already written, above `acknowledged`). `last_events` and `last_orders` cover
        both. Raises psycopg errors; the caller reconnects or isolates."""
        conn = self.conn
        assert conn is not None
        try:
            with conn.transaction():
                last = self._lock_checkpoint(conn)
                if last != self.last_committed:
                    # Someone else moved the checkpoint since our last commit (a second bridge on this engine took
                    # over for a while): our order state and chain head are stale, so read them again.
                    self.orders.clear()
                    self.chain_head = None
                fresh = [p for p in items if p.seq is None or p.seq > last]
                known = self.acknowledged
                recovered = [] if known is None else [p for p in items if p.seq is not None and known < p.seq <= last]
                recovered_events, recovered_orders = self._recovered(conn, recovered) if recovered else ([], {})
                dead = [p.dead for p in fresh if p.dead is not None]
                if dead:
                    events = [p.env for p in fresh if p.env is not None]
                else:  # every item is an event; a FastEnvelope is its own (`env` is a property: skip the call)
                    events = [p if type(p) is FastEnvelope else p.env for p in fresh]
                if events:
                    self._load_orders(conn, events)
                    head = self._chain_head(conn)
                    rows = self.builder.build(self._stream_ticks(conn, events), head)
                    self._write(conn, rows)
                if dead:
                    with conn.cursor() as cur:
                        cur.executemany(
                            _INSERT_DEAD, [(d.engine_id, d.seq, d.reason_code, d.reason, d.raw, d.key) for d in dead]
                        )
                new_last = last
                for p in reversed(fresh):  # seqs only increase along a batch: the newest known one is the last
                    if p.seq is not None:
                        new_last = max(last, p.seq)
                        break
                if new_last != last:
                    conn.execute(
                        "UPDATE trading_bridgecheckpoint SET last_seq = %s, updated_at = now() WHERE engine_id = %s",
                        (new_last, self.engine_id),
                    )
        except BaseException:
            self.reset_caches()
            raise
        self.last_committed = self.acknowledged = new_last
        self.last_events = recovered_events + events
        self.last_orders = recovered_orders
        if events:
            self.chain_head = rows.chain_head
            self.last_orders.update({cid: dict(row) for cid, row in rows.orders.items()})
            self.orders.forget_closed()
        return new_last, recovered + fresh

    def _recovered(
        self, conn: psycopg.Connection, items: list[Pending]
    ) -> tuple[list[EventEnvelope], dict[str, dict[str, Any]]]:
        """For `items` a commit whose acknowledgement was lost had already written: their events (less those it
        set aside as dead letters, `dead_letter_alone`) and the committed rows of the orders they changed."""
        events = [p.env for p in items if p.env is not None]
        set_aside = {
            seq
            for (seq,) in conn.execute(
                "SELECT seq FROM trading_deadletter WHERE engine_id = %s AND seq = ANY(%s)",
                (self.engine_id, [env.seq for env in events]),
            )
        }
        if set_aside:
            events = [env for env in events if env.seq not in set_aside]
        cids = order_ids(events)
        if not cids:
            return events, {}
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute(
                f"SELECT {ORDER_COLUMNS} FROM trading_order WHERE engine_id = %s AND client_order_id = ANY(%s)",
                (self.engine_id, list(cids)),
            )
            return events, {row["client_order_id"]: row for row in cur.fetchall()}

    def _lock_checkpoint(self, conn: psycopg.Connection) -> int:
        conn.execute(
            "INSERT INTO trading_bridgecheckpoint (engine_id, last_seq, updated_at) VALUES (%s, 0, now()) "
            "ON CONFLICT (engine_id) DO NOTHING",
            (self.engine_id,),
        )
        row = conn.execute(
            "SELECT last_seq FROM trading_bridgecheckpoint WHERE engine_id = %s FOR UPDATE", (self.engine_id,)
        ).fetchone()
        return row[0]

    def _chain_head(self, conn: psycopg.Connection) -> bytes:
        if self.chain_head is None:
            row = conn.execute(
                "SELECT row_hash FROM trading_orderevent WHERE engine_id = %s ORDER BY seq DESC LIMIT 1",
                (self.engine_id,),
            ).fetchone()
            self.chain_head = bytes(row[0]) if row else ZERO_HASH
        return self.chain_head

    def _load_orders(self, conn: psycopg.Connection, events: list[EventEnvelope]) -> None:
        missing = self.orders.missing(events)
        if not missing:
            return
        with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
            cur.execute(
                f"SELECT {ORDER_COLUMNS} FROM trading_order WHERE engine_id = %s AND client_order_id = ANY(%s)",
                (self.engine_id, list(missing)),
            )
            self.orders.load(cur.fetchall())

    def _stream_ticks(self, conn: psycopg.Connection, events: list[EventEnvelope]) -> list[EventEnvelope]:
        """COPY the batch's ticks, encoding them slice by slice as the records go out, and return the other events.
        Each slice is flushed to PostgreSQL as soon as it is built, so the backend parses and indexes one slice
        while this thread encodes the next (built whole first, the two took turns: measured here, a batch took
        about the sum of the two instead of the larger)."""
        ticks = [env for env in events if type(env.event) in _TICK_KINDS]
        if not ticks:
            return events
        record = self.tick_encoder.record
        with conn.cursor() as cur:
            with cur.copy(f"COPY trading_tick ({', '.join(TICK_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(HEADER)
                for start in range(0, len(ticks), _TICKS_PER_WRITE):
                    copy.write(
                        b"".join([record(e.seq, e.ts, e.event) for e in ticks[start : start + _TICKS_PER_WRITE]])
                    )
                copy.write(TRAILER)
        if len(ticks) == len(events):
            return []
        return [env for env in events if type(env.event) not in _TICK_KINDS]

    def _write(self, conn: psycopg.Connection, rows: Rows) -> None:
        with conn.cursor() as cur:
            for name, (table, columns, types) in COPY_TABLES.items():
                data = getattr(rows, name)
                if not data:
                    continue
                jsonb_at = _JSONB_COLUMNS.get(name)
                if jsonb_at is not None:
                    data = [(*row[:jsonb_at], Jsonb(row[jsonb_at]), *row[jsonb_at + 1 :]) for row in data]
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(types)
                    write = copy.write_row
                    for row in data:
                        write(row)
            if rows.orders:
                cur.executemany(_UPSERT_ORDER, [tuple(o[f] for f in ORDER_FIELDS) for o in rows.orders.values()])
            if rows.positions:
                cur.executemany(_UPSERT_POSITION, list(rows.positions.values()))
            for strategy_id, change in rows.strategies.items():
                self._upsert_strategy(cur, strategy_id, change)

    def _upsert_strategy(self, cur: psycopg.Cursor, strategy_id: str, change: dict[str, Any]) -> None:
        # trading_strategy rows come from config sync (name, symbol, account); the engine's events move state and
        # parameters. A strategy the sync has not seen yet gets a row named by its id until it does. The row is
        # keyed by strategy_id alone, so its last_seq may be another engine's: after an engine-id change the
        # bridge follows the new engine from seq 1, and its events apply whatever seq the old engine reached.
        sets = ["engine_id = EXCLUDED.engine_id", "last_seq = EXCLUDED.last_seq", "updated_at = EXCLUDED.updated_at"]
        values: dict[str, Any] = {
            "strategy_id": strategy_id,
            "engine_id": self.engine_id,
            "last_seq": change["seq"],
            "state": change.get("state", "STOPPED"),
            "params": Jsonb(change.get("params", {})),
            "params_version": change.get("params_version", 0),
        }
        if "state" in change:
            sets.append("state = EXCLUDED.state")
        if "params" in change:
            sets += ["params = EXCLUDED.params", "params_version = EXCLUDED.params_version"]
        cur.execute(
            "INSERT INTO trading_strategy (strategy_id, name, symbol, account, state, params, params_version, "
            "autostart, engine_id, last_seq, updated_at) VALUES (%(strategy_id)s, %(strategy_id)s, '', '', "
            "%(state)s, %(params)s, %(params_version)s, false, %(engine_id)s, %(last_seq)s, now()) "
            f"ON CONFLICT (strategy_id) DO UPDATE SET {', '.join(sets)} "
            "WHERE trading_strategy.engine_id IS DISTINCT FROM EXCLUDED.engine_id "
            "OR trading_strategy.last_seq < EXCLUDED.last_seq",
            values,
        )

    def dead_letter_alone(self, item: Pending, *, reason_code: str, reason: str) -> int:
        """Set one event aside in its own transaction (the database refused its rows), advancing the checkpoint past
        it so the stream continues. Returns the checkpoint."""
        conn = self.conn
        assert conn is not None and item.env is not None
        env = item.env
        with conn.transaction():
            last = self._lock_checkpoint(conn)
            if env.seq <= last:
                return last
            dead = DeadLetter(self.engine_id, env.seq, reason_code, reason[:2000], payload_of(env))
            conn.execute(_INSERT_DEAD, (dead.engine_id, dead.seq, dead.reason_code, dead.reason, dead.raw, dead.key))
            conn.execute(
                "UPDATE trading_bridgecheckpoint SET last_seq = %s, updated_at = now() WHERE engine_id = %s",
                (env.seq, self.engine_id),
            )
        self.last_committed = self.acknowledged = env.seq
        return env.seq


def conninfo_from_settings(database: dict[str, Any]) -> str:
    """psycopg conninfo for Django's default database settings."""
    params = {
        "dbname": database.get("NAME") or "",
        "user": database.get("USER") or "",
        "password": database.get("PASSWORD") or "",
        "host": database.get("HOST") or "",
        "port": str(database.get("PORT") or ""),
    }
    params.update({k: str(v) for k, v in (database.get("OPTIONS") or {}).items() if isinstance(v, (str, int))})
    return psycopg.conninfo.make_conninfo(**{k: v for k, v in params.items() if v})
