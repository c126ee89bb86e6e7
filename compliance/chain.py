"""The two hash chains of the audit record, and their verifier.

- `compliance_auditevent`: row_hash = sha256(prev_hash || canonical(row)), in id order; written by
  compliance.services.record_audit_event under a transaction-level advisory lock.
- `trading_orderevent`: row_hash = sha256(prev_hash || payload), per engine_id in seq order; written by the
  engine bridge. `payload` is the event exactly as received (msgspec JSON of the EventEnvelope), so the verifier
  also checks that the row's key columns say what its payload says: a row whose `client_order_id` was rewritten
  with its payload left alone would otherwise still verify.

The first row of each chain links to 32 zero bytes. Links alone prove nothing about a chain's ends: an emptied
table, a chopped tail, every row of one engine deleted, or a chain recomputed from genesis after an edit all
link up. So the verifier also checks anchors (compliance.models.ChainAnchor): each intact verification records
the head of every chain, and a later one must still reach that row with that hash; retention records the last
order event of each engine it is about to drop, and the first surviving event links to that hash instead.

Rows are read with server-side cursors in chunks, so a verification of tens of millions of rows runs in
constant memory.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

GENESIS = bytes(32)
CHUNK = 5000
AUDIT_TABLE = "compliance_auditevent"
ORDER_EVENT_TABLE = "trading_orderevent"
# Any constant bigint unique to this lock: every writer of compliance_auditevent takes it for its transaction.
AUDIT_CHAIN_LOCK = 0x4155_4449_5443_4841  # "AUDITCHA"


class ChainBreakCode:
    CONTENT_CHANGED = "CHAIN_CONTENT_CHANGED"  # the row no longer hashes to its row_hash
    LINK_BROKEN = "CHAIN_LINK_BROKEN"  # prev_hash is not the previous row's row_hash: a row removed or replaced
    PAYLOAD_MISMATCH = "CHAIN_PAYLOAD_MISMATCH"  # an order event's columns disagree with its payload
    PAYLOAD_UNREADABLE = "CHAIN_PAYLOAD_UNREADABLE"
    TRUNCATED = "CHAIN_TRUNCATED"  # a head an earlier verification proved is gone: rows removed from the end
    ANCHOR_MISMATCH = "CHAIN_ANCHOR_MISMATCH"  # the proven head row hashes differently: the chain was recomputed


def _canonical_ip(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(ipaddress.ip_interface(str(value)).ip)


def _canonical_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def audit_canonical(
    *,
    id: int,
    occurred_at: datetime,
    actor_id: int | None,
    actor_username: str,
    action: str,
    target: str,
    details: Any,
    reason: str,
    ip_address: Any,
) -> bytes:
    """The bytes an audit row's hash covers: compact JSON, keys sorted, of every field but the hashes.

    `details` must be what PostgreSQL hands back for the jsonb column (record_audit_event round-trips it through
    the server before hashing), so the writer and the verifier hash the same value.
    """
    content = {
        "id": id,
        "occurred_at": _canonical_time(occurred_at),
        "actor_id": actor_id,
        "actor_username": actor_username,
        "action": action,
        "target": target,
        "details": details,
        "reason": reason,
        "ip_address": _canonical_ip(ip_address),
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def link(prev_hash: bytes, content: bytes) -> bytes:
    return hashlib.sha256(prev_hash + content).digest()


def lock_audit_chain() -> None:
    """Serialise audit writers until the surrounding transaction ends (call inside atomic): each one reads the
    chain's head and appends after it, and two doing that at once would both link to the same head."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK])


def audit_head() -> bytes:
    """row_hash of the newest audit row (GENESIS for an empty trail). Call under lock_audit_chain()."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT row_hash FROM compliance_auditevent ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    return bytes(row[0]) if row else GENESIS


@dataclass
class ChainBreak:
    table: str
    row: str  # audit id, or "engine_id:seq"
    code: str
    detail: str


@dataclass(frozen=True)
class Anchor:
    position: int  # audit id, or order-event seq
    row_hash: bytes
    recorded_at: datetime | None = None


@dataclass
class ChainReport:
    audit_rows: int = 0
    order_event_rows: int = 0
    audit_head_hash: str = ""
    breaks: list[ChainBreak] = field(default_factory=list)
    # The last row of each chain walked, for the HEAD anchors an intact verification records.
    audit_head: Anchor | None = None
    order_event_heads: dict[str, Anchor] = field(default_factory=dict)

    @property
    def intact(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> ChainBreak | None:
        return self.breaks[0] if self.breaks else None


def _rows(sql: str, params: list | None = None) -> Iterator[tuple]:
    """Stream a query's rows through a server-side cursor (named cursors need a transaction)."""
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params or [])
        while batch := cursor.fetchmany(CHUNK):
            yield from batch


def _when(anchor: Anchor) -> str:
    return f"{anchor.recorded_at:%Y-%m-%d %H:%M:%S} UTC" if anchor.recorded_at else "an earlier verification"


def _truncated(table: str, row: str, anchor: Anchor, where: str) -> ChainBreak:
    return ChainBreak(
        table,
        row,
        ChainBreakCode.TRUNCATED,
        f"the verification of {_when(anchor)} proved the chain reached row {row} with hash "
        f"{anchor.row_hash.hex()[:16]}…, and {where}: rows were removed from the end of the chain",
    )


def _anchor_missing(table: str, row: str, anchor: Anchor) -> ChainBreak:
    return ChainBreak(
        table,
        row,
        ChainBreakCode.ANCHOR_MISMATCH,
        f"the verification of {_when(anchor)} proved row {row} with hash {anchor.row_hash.hex()[:16]}…, and it is "
        "gone while later rows still link up: rows were removed and the chain recomputed",
    )


def _anchor_mismatch(table: str, row: str, anchor: Anchor) -> ChainBreak:
    return ChainBreak(
        table,
        row,
        ChainBreakCode.ANCHOR_MISMATCH,
        f"the verification of {_when(anchor)} proved this row's hash was {anchor.row_hash.hex()[:16]}…: the rows "
        "up to it were rewritten and the chain recomputed",
    )


def head_anchors(chain: str) -> dict[str, Anchor]:
    """The newest HEAD anchor of each chain of `chain` ("" for the audit trail, engine_id for order events)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT ON (engine_id) engine_id, position, row_hash, recorded_at FROM compliance_chainanchor"
            " WHERE chain = %s AND kind = 'head' ORDER BY engine_id, position DESC, id DESC",
            [chain],
        )
        return {engine: Anchor(pos, bytes(row_hash), at) for engine, pos, row_hash, at in cursor.fetchall()}


def retention_anchors() -> dict[str, list[Anchor]]:
    """Every RETENTION anchor of the order events, per engine, by position."""
    anchors: dict[str, list[Anchor]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT engine_id, position, row_hash, recorded_at FROM compliance_chainanchor"
            " WHERE chain = %s AND kind = 'retention' ORDER BY engine_id, position",
            [ORDER_EVENT_TABLE],
        )
        for engine, pos, row_hash, at in cursor.fetchall():
            anchors.setdefault(engine, []).append(Anchor(pos, bytes(row_hash), at))
    return anchors


def _start_of(anchors: list[Anchor], first_seq: int) -> bytes:
    """What the first surviving event of an engine links to: the last row retention removed before it."""
    index = bisect_left([anchor.position for anchor in anchors], first_seq) - 1
    return anchors[index].row_hash if index >= 0 else GENESIS


def verify_audit_chain(report: ChainReport) -> ChainReport:
    # Read before the rows: a head recorded while this walk runs may lie past the rows this snapshot sees.
    head = head_anchors(AUDIT_TABLE).get("")
    prev = GENESIS
    last_id = None
    sql = (
        "SELECT id, occurred_at, actor_id, actor_username, action, target, details, reason, ip_address::text,"
        " prev_hash, row_hash FROM compliance_auditevent ORDER BY id"
    )
    for row in _rows(sql):
        (row_id, occurred_at, actor_id, username, action, target, details, reason, ip, prev_hash, row_hash) = row
        prev_hash, row_hash = bytes(prev_hash or b""), bytes(row_hash or b"")
        report.audit_rows += 1
        if isinstance(details, str):  # a driver that hands jsonb back as text
            details = json.loads(details)
        if prev_hash != prev:
            report.breaks.append(
                ChainBreak(
                    "compliance_auditevent",
                    str(row_id),
                    ChainBreakCode.LINK_BROKEN,
                    f"prev_hash {prev_hash.hex()[:16]}… is not the previous row's hash {prev.hex()[:16]}…: "
                    "a row before it was removed or rewritten",
                )
            )
            return report
        content = audit_canonical(
            id=row_id,
            occurred_at=occurred_at,
            actor_id=actor_id,
            actor_username=username,
            action=action,
            target=target,
            details=details,
            reason=reason,
            ip_address=ip,
        )
        if link(prev_hash, content) != row_hash:
            report.breaks.append(
                ChainBreak(
                    "compliance_auditevent",
                    str(row_id),
                    ChainBreakCode.CONTENT_CHANGED,
                    "the row's content no longer hashes to its row_hash: it was changed after it was written",
                )
            )
            return report
        if head is not None and (last_id or 0) < head.position < row_id:
            report.breaks.append(_anchor_missing(AUDIT_TABLE, str(head.position), head))
            return report
        if head is not None and row_id == head.position and row_hash != head.row_hash:
            report.breaks.append(_anchor_mismatch(AUDIT_TABLE, str(row_id), head))
            return report
        prev, last_id = row_hash, row_id
    if head is not None and (last_id is None or last_id < head.position):
        where = f"it now ends at row {last_id}" if last_id is not None else "the table is empty now"
        report.breaks.append(_truncated(AUDIT_TABLE, str(head.position), head, where))
        return report
    report.audit_head_hash = prev.hex() if report.audit_rows else ""
    report.audit_head = Anchor(last_id, prev) if last_id is not None else None
    return report


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


# Columns of trading_orderevent that must agree with the payload: every column an export or the CAT report reads.
# The expected value of each is derived from the payload the way the bridge derives it (trading/bridge/rows.py);
# a key the payload does not hold means the empty value the bridge writes for it ("" or NULL), so a column filled
# in where the payload has nothing is a mismatch as much as one changed.
_ENVELOPE_KEYS = {"engine_id": "engine_id", "seq": "seq", "ts_ns": "ts"}
_TEXT_KEYS = ("client_order_id", "strategy_id", "code", "reason", "operator", "command_id")
_SCOPE_EVENTS = frozenset({"TradingStateChanged", "LimitsChanged", "TriggersChanged", "HaltCompleted"})
# kind -> {column: (payload key, "price" | "qty")}; a column not listed is NULL for that kind. A constant 0 (the
# leaves of a cancel or expiry) is written as key None.
_AMOUNTS: dict[str, dict[str, tuple[str | None, str]]] = {
    "OrderSubmitted": {"price": ("price", "price"), "quantity": ("quantity", "qty")},
    "OrderReplaced": {
        "price": ("price", "price"),
        "quantity": ("quantity", "qty"),
        "leaves_quantity": ("leaves_quantity", "qty"),
    },
    "OrderFilled": {
        "price": ("last_price", "price"),
        "quantity": ("last_quantity", "qty"),
        "leaves_quantity": ("leaves_quantity", "qty"),
        "cum_quantity": ("cum_quantity", "qty"),
    },
    "OrderCanceled": {"quantity": ("canceled_quantity", "qty"), "leaves_quantity": (None, "qty")},
    "OrderExpired": {"quantity": ("expired_quantity", "qty"), "leaves_quantity": (None, "qty")},
    "VenueOrderStatus": {"leaves_quantity": ("leaves_quantity", "qty"), "cum_quantity": ("cum_quantity", "qty")},
}
AMOUNT_COLUMNS = ("price", "quantity", "leaves_quantity", "cum_quantity")
ORDER_EVENT_COLUMNS = (
    "engine_id",
    "seq",
    "ts",
    "ts_ns",
    "kind",
    "client_order_id",
    "strategy_id",
    "symbol",
    "side",
    *AMOUNT_COLUMNS,
    "code",
    "reason",
    "operator",
    "command_id",
)


@functools.cache
def _steps() -> dict[str, tuple[Decimal, Decimal]]:
    """symbol -> (tick size, lot size) of the instruments file the bridge converts ticks and lots with."""
    from django.conf import settings

    from engine.protocol import InstrumentRegistry

    registry = InstrumentRegistry.from_toml(settings.ENGINE_INSTRUMENTS_FILE)
    return {inst.symbol: (inst.tick_size, inst.lot_size) for inst in registry}


def _expected_symbol(event: dict[str, Any]) -> str:
    if event.get("type") in _SCOPE_EVENTS:  # the bridge files an instrument scope's change under its symbol
        scope = event.get("scope")
        if not isinstance(scope, dict):
            return ""
        return scope.get("name", "") or "" if _enum_name("ScopeKind", scope.get("kind")) == "INSTRUMENT" else ""
    return event.get("symbol", "") or ""


def _expected_amounts(event: dict[str, Any], symbol: str) -> dict[str, Decimal | None] | str:
    expected: dict[str, Decimal | None] = dict.fromkeys(AMOUNT_COLUMNS)
    amounts = _AMOUNTS.get(event.get("type"), {})
    if not amounts:
        return expected
    if symbol not in _steps():
        return f"symbol {symbol!r} is not in the instruments file, so its amounts cannot be checked"
    tick, lot = _steps()[symbol]
    for column, (key, unit) in amounts.items():
        units = 0 if key is None else event.get(key)
        if units is None or isinstance(units, bool) or not isinstance(units, int):
            return f"the payload has no whole {key} for {column}"
        if column == "price" and units == 0:  # a market order has no price
            continue
        expected[column] = (tick if unit == "price" else lot) * units
    return expected


def _payload_mismatch(columns: dict[str, Any], payload: bytes) -> str | None:
    try:
        envelope = json.loads(payload)
        event = envelope["event"]
        if not isinstance(event, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return "unreadable"
    for column, key in _ENVELOPE_KEYS.items():
        if columns[column] != envelope.get(key):
            return f"{column}={columns[column]!r} but the payload says {envelope.get(key)!r}"
    if isinstance(envelope.get("ts"), int):
        # PostgreSQL keeps microseconds: the bridge writes the epoch + ts // 1000 microseconds.
        ts = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=envelope["ts"] // 1000)
        if columns["ts"] != ts:
            return f"ts={columns['ts'].isoformat()} but the payload says {ts.isoformat()}"
    if columns["kind"] != event.get("type"):
        return f"kind={columns['kind']!r} but the payload is a {event.get('type')!r}"
    expected: dict[str, Any] = {key: event.get(key, "") or "" for key in _TEXT_KEYS}
    expected["symbol"] = _expected_symbol(event)
    side = event.get("side")
    expected["side"] = _enum_name("Side", side)
    amounts = _expected_amounts(event, expected["symbol"])
    if isinstance(amounts, str):
        return amounts
    expected |= amounts
    for column, value in expected.items():
        # Text columns are NOT NULL and hold "" for nothing; amounts are NULL for nothing and compare as numbers.
        found = columns[column] if column in AMOUNT_COLUMNS else columns[column] or ""
        if found != value:
            return f"{column}={columns[column]!r} but the payload says {value!r}"
    return None


def _enum_name(enum: str, value: Any) -> str:
    """The bridge's `Enum(value).name` for a protocol enum; a payload carries the engine's integer, or a name."""
    import engine.protocol

    if value is None or value == "":
        return ""
    cls = getattr(engine.protocol, enum)
    try:
        return cls(value).name if isinstance(value, int) and not isinstance(value, bool) else cls[str(value)].name
    except (KeyError, ValueError):
        return f"<unknown {enum} {value!r}>"


def _check_order_event(row: tuple, prev: bytes) -> tuple[str, str] | None:
    *values, raw_payload, raw_prev, raw_row = row
    payload, prev_hash, row_hash = bytes(raw_payload), bytes(raw_prev or b""), bytes(raw_row or b"")
    if prev_hash != prev:
        return ChainBreakCode.LINK_BROKEN, (
            "prev_hash is not the previous event's hash: an event before it was removed or rewritten"
        )
    if link(prev_hash, payload) != row_hash:
        return ChainBreakCode.CONTENT_CHANGED, "the payload no longer hashes to its row_hash"
    columns = dict(zip(ORDER_EVENT_COLUMNS, values, strict=True))
    if (mismatch := _payload_mismatch(columns, payload)) is not None:
        code = ChainBreakCode.PAYLOAD_UNREADABLE if mismatch == "unreadable" else ChainBreakCode.PAYLOAD_MISMATCH
        return code, f"the row's columns disagree with its payload: {mismatch}"
    return None


def _expired(engine_id: str, head: Anchor, starts: dict[str, list[Anchor]]) -> bool:
    """Retention removed the proven head legitimately (it dropped rows up to or past it)."""
    return any(anchor.position >= head.position for anchor in starts.get(engine_id, ()))


def _head_break(engine_id: str, last_seq: int | None, head: Anchor, starts: dict[str, list[Anchor]]):
    """The engine's chain ended (at last_seq, or has no rows at all) before the head a verification proved."""
    if (last_seq is not None and last_seq >= head.position) or _expired(engine_id, head, starts):
        return None
    where = f"it now ends at seq {last_seq}" if last_seq is not None else "no event of this engine is left"
    return _truncated(ORDER_EVENT_TABLE, f"{engine_id}:{head.position}", head, where)


def verify_order_event_chain(report: ChainReport) -> ChainReport:
    if not _table_exists(ORDER_EVENT_TABLE):
        return report
    # Heads are read before the rows' snapshot (a head recorded meanwhile may lie past it); retention anchors
    # after it (a partition dropped meanwhile is still in the snapshot, and _start_of then picks the anchor
    # before the first row it sees): each read errs on the side the walk can tell apart.
    heads = head_anchors(ORDER_EVENT_TABLE)
    columns = ", ".join(ORDER_EVENT_COLUMNS)
    sql = f"SELECT {columns}, payload, prev_hash, row_hash FROM trading_orderevent ORDER BY engine_id, seq"
    starts: dict[str, list[Anchor]] | None = None
    engine, prev, last_seq = None, GENESIS, None
    found: ChainBreak | None = None
    for row in _rows(sql):
        if starts is None:
            starts = retention_anchors()
        engine_id, seq = row[0], row[1]
        report.order_event_rows += 1
        if engine_id != engine:
            if engine in heads and (found := _head_break(engine, last_seq, heads[engine], starts)):
                break
            engine, prev, last_seq = engine_id, _start_of(starts.get(engine_id, []), seq), None
        head = heads.get(engine_id)
        if (problem := _check_order_event(row, prev)) is not None:
            found = ChainBreak(ORDER_EVENT_TABLE, f"{engine_id}:{seq}", *problem)
            break
        row_hash = bytes(row[-1])
        if head is not None and (last_seq or 0) < head.position < seq and not _expired(engine_id, head, starts):
            found = _anchor_missing(ORDER_EVENT_TABLE, f"{engine_id}:{head.position}", head)
            break
        if head is not None and seq == head.position and row_hash != head.row_hash:
            found = _anchor_mismatch(ORDER_EVENT_TABLE, f"{engine_id}:{seq}", head)
            break
        prev, last_seq = row_hash, seq
        report.order_event_heads[engine_id] = Anchor(seq, row_hash)
    else:
        starts = retention_anchors() if starts is None else starts
        if engine in heads:
            found = _head_break(engine, last_seq, heads[engine], starts)
        # Engines with a proven head but no rows left at all (every event of one engine deleted, or the table
        # emptied).
        for engine_id in sorted(set(heads) - set(report.order_event_heads)):
            if found is None:
                found = _head_break(engine_id, None, heads[engine_id], starts)
    if found is not None:
        report.breaks.append(found)
    return report


def record_retention_anchors(*, before: datetime, using=None, recorded_by: str = "retention") -> int:
    """Before retention removes the order events older than `before`, keep the last of them per engine (its seq
    and row_hash): the first event left links to that hash, and the verifier starts that engine's chain there.

    Call inside the transaction that drops the rows (trading.timeseries), so an anchor exists exactly when its rows
    are gone; `using` is the connection that transaction runs on (Django's by default). Returns how many anchors
    were recorded. Assumes an engine's events rise in ts as they rise in seq (the engine stamps both in its one
    thread).
    """
    with (using or connection).cursor() as cursor:
        cursor.execute(
            "INSERT INTO compliance_chainanchor (recorded_at, chain, kind, engine_id, position, row_hash, recorded_by)"
            " SELECT DISTINCT ON (engine_id) now(), %s, 'retention', engine_id, seq, row_hash, %s"
            " FROM trading_orderevent WHERE ts < %s ORDER BY engine_id, seq DESC",
            [ORDER_EVENT_TABLE, recorded_by[:150], before],
        )
        return cursor.rowcount


def verify_chains() -> ChainReport:
    """Walk both chains; stop each at its first break (everything after a break is unproven anyway)."""
    report = verify_audit_chain(ChainReport())
    return verify_order_event_chain(report)
