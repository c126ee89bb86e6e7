"""Engine events -> table rows (the bridge's commit thread, inside the flush transaction).

`RowBuilder.build(events)` turns one batch of decoded `EventEnvelope`s into the rows of every table, in seq order:
appended history (trades, order events with their hash chain, fills, position and P&L snapshots, limit
versions, trading-state changes, parameter versions) and the current state to upsert (orders, positions,
strategies). Top-of-book changes are not its business: the writer streams them to COPY first (writer.py,
`Writer._stream_ticks`) and builds rows from the rest. Ticks and lots become Decimals with the instrument's
steps; enums are stored by name.

Current state that an event only changes in part (an order's status after a fill) is kept in memory by
`OrderBook`; an order it does not hold is read from trading_order first. Both caches are thrown away when a flush
fails, so a retried batch is always built from what is committed, never from a half-applied attempt.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec

from engine.protocol import (
    CancelRejected,
    EventEnvelope,
    HaltCompleted,
    InstrumentRegistry,
    LimitsChanged,
    MarketTrade,
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    OrderStatus,
    OrderSubmitted,
    OrderType,
    PnlUpdated,
    PositionChanged,
    ScopeKind,
    Side,
    StrategyParamsChanged,
    StrategyState,
    StrategyStateChanged,
    TimeInForce,
    TradingState,
    TradingStateChanged,
    TriggersChanged,
    VenueOrderStatus,
    VenueStatusComplete,
)
from trading.bridge.fast import FastMarketTrade

ZERO_HASH = bytes(32)

# Events that go to trading_orderevent (and its hash chain): every order state change and every operator or
# engine decision the audit trail needs. Market data, heartbeats and the derived position/P&L/utilisation streams
# have their own tables (or are live-only) and are not chained.
JOURNALED = frozenset(
    {
        OrderSubmitted,
        OrderAccepted,
        OrderDenied,
        OrderRejected,
        OrderCanceled,
        OrderExpired,
        OrderReplaced,
        CancelRejected,
        OrderFilled,
        TradingStateChanged,
        LimitsChanged,
        TriggersChanged,
        StrategyStateChanged,
        StrategyParamsChanged,
        HaltCompleted,
        VenueOrderStatus,
        VenueStatusComplete,
    }
)
WORKING = frozenset(
    {
        OrderStatus.PENDING_NEW.name,
        OrderStatus.NEW.name,
        OrderStatus.PARTIALLY_FILLED.name,
        OrderStatus.PENDING_CANCEL.name,
        OrderStatus.PENDING_REPLACE.name,
    }
)
# Order columns kept in memory and upserted, in the order of ORDER_COLUMNS in writer.py.
ORDER_FIELDS = (
    "engine_id",
    "client_order_id",
    "strategy_id",
    "symbol",
    "side",
    "order_type",
    "time_in_force",
    "price",
    "quantity",
    "leaves_quantity",
    "cum_quantity",
    "avg_fill_price",
    "status",
    "venue_order_id",
    "post_only",
    "created_at",
    "updated_at",
    "created_ts_ns",
    "updated_ts_ns",
    "last_seq",
    "code",
    "reason",
    "command_id",
)
AVG_PRICE_PLACES = Decimal("1e-12")  # numeric(30, 12)


def ts_datetime(ts_ns: int, _from_timestamp=datetime.fromtimestamp, _utc=UTC) -> datetime:
    """Engine nanoseconds as a timestamptz value (PostgreSQL keeps microseconds; ts_ns keeps the rest). Whole
    microseconds as a float are exact to well under half a microsecond for any date before year 2200, and
    fromtimestamp rounds to the nearest microsecond, so this equals the Unix epoch + ts_ns // 1000 microseconds
    at twice the speed."""
    return _from_timestamp(ts_ns // 1000 / 1e6, _utc)


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Decimal):  # strategy parameters are a Decimal subclass msgspec does not know
        return str(obj)
    raise NotImplementedError(type(obj).__name__)


_JSON = msgspec.json.Encoder(enc_hook=_enc_hook)


def payload_of(env: EventEnvelope) -> bytes:
    """The stored payload of an event: msgspec JSON of the whole envelope, as the hash chain covers it."""
    return _JSON.encode(env)


def jsonable(value: Any) -> Any:
    """Builtins for jsonb columns and live data: Decimals as strings, enums as their values."""
    return msgspec.to_builtins(value, enc_hook=_enc_hook)


class Units:
    """Ticks and lots to Decimal with each instrument's steps (the same arithmetic as Instrument.ticks_to_price:
    a step times an integer is already exact at the step's exponent). Results are memoised per symbol, since
    prices and sizes repeat all day and a dict lookup is several times cheaper than a Decimal product."""

    CACHE_LIMIT = 100_000  # values per symbol and kind before the memo starts over

    def __init__(self, instruments: InstrumentRegistry) -> None:
        self._steps = {symbol: (inst.tick_size, inst.lot_size) for symbol, inst in _items(instruments)}
        self._prices: dict[str, dict[int, Decimal]] = {symbol: {} for symbol in self._steps}
        self._qtys: dict[str, dict[int, Decimal]] = {symbol: {} for symbol in self._steps}

    def price(self, symbol: str, ticks: int) -> Decimal:
        memo = self._prices[symbol]
        value = memo.get(ticks)
        if value is None:
            if len(memo) >= self.CACHE_LIMIT:
                memo.clear()
            value = memo[ticks] = self._steps[symbol][0] * ticks
        return value

    def qty(self, symbol: str, lots: int) -> Decimal:
        memo = self._qtys[symbol]
        value = memo.get(lots)
        if value is None:
            if len(memo) >= self.CACHE_LIMIT:
                memo.clear()
            value = memo[lots] = self._steps[symbol][1] * lots
        return value

    def side_price(self, symbol: str, ticks: int, lots: int) -> tuple[Decimal | None, Decimal | None]:
        """(price, size) of one side of the book; an empty side (0, 0) is (None, None)."""
        if ticks == 0 and lots == 0:
            return None, None
        return self.price(symbol, ticks), self.qty(symbol, lots)


def _items(instruments: InstrumentRegistry):
    for symbol in instruments.symbols:
        yield symbol, instruments.get(symbol)


def scope_parts(scope: Any) -> tuple[str, str]:
    """(kind name, name) of a protocol Scope, as stored and published."""
    return ScopeKind(scope.kind).name, scope.name


@dataclass
class Rows:
    """Everything one batch writes, per table."""

    trades: list[tuple] = field(default_factory=list)
    order_events: list[tuple] = field(default_factory=list)
    fills: list[tuple] = field(default_factory=list)
    position_snapshots: list[tuple] = field(default_factory=list)
    pnl_snapshots: list[tuple] = field(default_factory=list)
    limit_versions: list[tuple] = field(default_factory=list)
    state_changes: list[tuple] = field(default_factory=list)
    param_versions: list[tuple] = field(default_factory=list)
    positions: dict[tuple[str, str], tuple] = field(default_factory=dict)
    strategies: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    chain_head: bytes = ZERO_HASH


class OrderBook:
    """Current state of this engine's orders, as row dicts keyed by client_order_id. `missing(cids)` names the ones
    to read from trading_order before a batch is applied (`load`)."""

    def __init__(self, engine_id: str) -> None:
        self.engine_id = engine_id
        self.orders: dict[str, dict[str, Any]] = {}

    def clear(self) -> None:
        self.orders.clear()

    def load(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.orders[row["client_order_id"]] = row

    def missing(self, events: list[EventEnvelope]) -> set[str]:
        return {cid for cid in order_ids(events, submitted=False) if cid not in self.orders}

    def forget_closed(self) -> None:
        """Drop finished orders from memory once they are written: only working orders get further events."""
        for cid in [cid for cid, row in self.orders.items() if row["status"] not in WORKING]:
            del self.orders[cid]

    def apply(self, env: EventEnvelope, units: Units, dirty: dict[str, dict[str, Any]]) -> None:
        event = env.event
        if type(event) not in _ORDER_APPLY:
            return
        handler = _ORDER_APPLY[type(event)]
        if type(event) is OrderSubmitted:
            row = _new_order(self.engine_id, env, event, units)
            self.orders[event.client_order_id] = row
        elif type(event) is OrderReplaced:
            row = self._replace(env, event, units, dirty)
            if row is None:
                return
        else:
            row = self.orders.get(event.client_order_id)
            if row is None:
                return  # never submitted (an order denied at the gate): its history is in trading_orderevent
            handler(row, event, units)
        row["updated_at"] = ts_datetime(env.ts)
        row["updated_ts_ns"] = env.ts
        row["last_seq"] = env.seq
        dirty[row["client_order_id"]] = row

    def _replace(self, env, event: OrderReplaced, units: Units, dirty) -> dict[str, Any] | None:
        # The engine renames the order: it lives on as `client_order_id` with the new terms. The old id's row is
        # closed (leaves 0, code REPLACED) so the blotter shows one working order, as the engine does.
        old = self.orders.get(event.orig_client_order_id)
        if old is None:
            return None
        row = dict(old)
        row.update(
            client_order_id=event.client_order_id,
            price=units.price(event.symbol, event.price),
            quantity=units.qty(event.symbol, event.quantity),
            leaves_quantity=units.qty(event.symbol, event.leaves_quantity),
            code="",
            reason="",
        )
        if row["status"] in (OrderStatus.PENDING_NEW.name, OrderStatus.PENDING_REPLACE.name):
            row["status"] = OrderStatus.NEW.name
        old.update(
            status=OrderStatus.CANCELED.name,
            leaves_quantity=Decimal(0),
            code="REPLACED",
            reason=f"replaced by {event.client_order_id}",
            updated_at=ts_datetime(env.ts),
            updated_ts_ns=env.ts,
            last_seq=env.seq,
        )
        dirty[old["client_order_id"]] = old
        self.orders[event.client_order_id] = row
        return row


def order_ids(events: list[EventEnvelope], *, submitted: bool = True) -> set[str]:
    """The client order ids whose trading_order row `events` change (with or without the ones they submit)."""
    wanted: set[str] = set()
    for env in events:
        event = env.event
        kind = type(event)
        if kind in _ORDER_APPLY and (submitted or kind is not OrderSubmitted):
            wanted.add(event.client_order_id)
            if kind is OrderReplaced:
                wanted.add(event.orig_client_order_id)
    return wanted


def _new_order(engine_id: str, env: EventEnvelope, event: OrderSubmitted, units: Units) -> dict[str, Any]:
    at = ts_datetime(env.ts)
    quantity = units.qty(event.symbol, event.quantity)
    return {
        "engine_id": engine_id,
        "client_order_id": event.client_order_id,
        "strategy_id": event.strategy_id,
        "symbol": event.symbol,
        "side": Side(event.side).name,
        "order_type": OrderType(event.order_type).name,
        "time_in_force": TimeInForce(event.time_in_force).name,
        "price": units.price(event.symbol, event.price) if event.price else None,
        "quantity": quantity,
        "leaves_quantity": quantity,
        "cum_quantity": Decimal(0),
        "avg_fill_price": None,
        "status": OrderStatus.PENDING_NEW.name,
        "venue_order_id": 0,
        "post_only": event.post_only,
        "created_at": at,
        "updated_at": at,
        "created_ts_ns": env.ts,
        "updated_ts_ns": env.ts,
        "last_seq": env.seq,
        "code": "",
        "reason": "",
        "command_id": event.command_id,
    }


def _accepted(row, event: OrderAccepted, units) -> None:
    row["venue_order_id"] = event.venue_order_id
    if row["status"] == OrderStatus.PENDING_NEW.name:
        row["status"] = OrderStatus.NEW.name


def _closed(status: OrderStatus):
    def apply(row, event, units) -> None:
        row["status"] = status.name
        row["leaves_quantity"] = Decimal(0)
        row["code"] = getattr(event, "code", "") or ""
        row["reason"] = getattr(event, "reason", "") or ""

    return apply


def _refused(row, event: OrderDenied | CancelRejected, units) -> None:
    # A denied replace or a rejected cancel names the live order, which stays as it was: only the reason is
    # recorded.
    row["code"] = event.code
    row["reason"] = event.reason


def _filled(row, event: OrderFilled, units) -> None:
    price = units.price(event.symbol, event.last_price)
    qty = units.qty(event.symbol, event.last_quantity)
    before = row["cum_quantity"]
    cum = units.qty(event.symbol, event.cum_quantity)
    avg = row["avg_fill_price"]
    total = (avg * before if avg is not None else Decimal(0)) + price * qty
    row["avg_fill_price"] = (total / cum).quantize(AVG_PRICE_PLACES) if cum else None
    row["cum_quantity"] = cum
    row["leaves_quantity"] = units.qty(event.symbol, event.leaves_quantity)
    row["venue_order_id"] = event.venue_order_id or row["venue_order_id"]
    row["status"] = (OrderStatus.FILLED if event.leaves_quantity == 0 else OrderStatus.PARTIALLY_FILLED).name


_ORDER_APPLY = {
    OrderSubmitted: None,
    OrderAccepted: _accepted,
    OrderDenied: _refused,
    OrderRejected: _closed(OrderStatus.REJECTED),
    OrderCanceled: _closed(OrderStatus.CANCELED),
    OrderExpired: _closed(OrderStatus.EXPIRED),
    OrderReplaced: None,
    CancelRejected: _refused,
    OrderFilled: _filled,
}


class RowBuilder:
    """Builds the rows of one batch (call inside the flush transaction, after loading missing orders)."""

    def __init__(self, engine_id: str, units: Units, orders: OrderBook) -> None:
        self.engine_id = engine_id
        self.units = units
        self.orders = orders

    def build(self, events: list[EventEnvelope], chain_head: bytes) -> Rows:
        """The rows of `events`, which hold no top-of-book changes (the writer has already copied those)."""
        rows = Rows()
        units = self.units
        engine_id = self.engine_id
        head = chain_head
        for env in events:
            event = env.event
            kind = type(event)
            if kind is FastMarketTrade or kind is MarketTrade:
                rows.trades.append(
                    (
                        engine_id,
                        env.seq,
                        ts_datetime(env.ts),
                        env.ts,
                        event.symbol,
                        units.price(event.symbol, event.price),
                        units.qty(event.symbol, event.quantity),
                        Side(event.aggressor).name,
                        event.venue_ts,
                    )
                )
                continue
            if kind in JOURNALED:
                payload = payload_of(env)
                row_hash = hashlib.sha256(head + payload).digest()
                rows.order_events.append(self._order_event(env, event, payload, head, row_hash))
                head = row_hash
                self.orders.apply(env, units, rows.orders)
                if kind is OrderFilled:
                    rows.fills.append(self._fill(env, event))
                elif kind is LimitsChanged:
                    k, n = scope_parts(event.scope)
                    limits = jsonable(event.limits)
                    rows.limit_versions.append(
                        (engine_id, env.seq, ts_datetime(env.ts), k, n, limits, event.operator, event.command_id)
                    )
                elif kind is TradingStateChanged:
                    k, n = scope_parts(event.scope)
                    rows.state_changes.append(
                        (
                            engine_id,
                            env.seq,
                            ts_datetime(env.ts),
                            k,
                            n,
                            TradingState(event.state).name,
                            TradingState(event.previous).name,
                            event.operator,
                            event.reason,
                            event.code,
                            event.command_id,
                        )
                    )
                elif kind is StrategyParamsChanged:
                    params = jsonable(event.params)
                    rows.param_versions.append(
                        (
                            engine_id,
                            env.seq,
                            ts_datetime(env.ts),
                            event.strategy_id,
                            event.version,
                            params,
                            event.operator,
                            event.reason,
                            event.rolled_back_to,
                            event.command_id,
                        )
                    )
                    strategy = rows.strategies.setdefault(event.strategy_id, {})
                    strategy.update(params=params, params_version=event.version, seq=env.seq, ts=env.ts)
                elif kind is StrategyStateChanged:
                    strategy = rows.strategies.setdefault(event.strategy_id, {})
                    strategy.update(state=StrategyState(event.state).name, seq=env.seq, ts=env.ts)
                continue
            if kind is PositionChanged:
                symbol = event.symbol
                at = ts_datetime(env.ts)
                qty = units.qty(symbol, event.quantity)
                rows.position_snapshots.append(
                    (
                        engine_id,
                        env.seq,
                        at,
                        event.strategy_id,
                        symbol,
                        qty,
                        event.avg_price,
                        event.realized_pnl,
                        Decimal(0),
                        event.fees,
                    )
                )
                rows.positions[(event.strategy_id, symbol)] = (
                    engine_id,
                    event.strategy_id,
                    symbol,
                    qty,
                    event.avg_price,
                    event.realized_pnl,
                    event.fees,
                    env.seq,
                    at,
                )
            elif kind is PnlUpdated:
                k, n = scope_parts(event.scope)
                rows.pnl_snapshots.append(
                    (
                        engine_id,
                        env.seq,
                        ts_datetime(env.ts),
                        k,
                        n,
                        event.realized_pnl,
                        event.unrealized_pnl,
                        event.fees,
                        event.currency,
                    )
                )
            # EngineHeartbeat, BookDepth, RiskUtilisation: live topics only. (Top of book: the writer's COPY.)
        rows.chain_head = head
        return rows

    def _order_event(self, env: EventEnvelope, event: Any, payload: bytes, prev: bytes, row_hash: bytes) -> tuple:
        units = self.units
        symbol = getattr(event, "symbol", "")
        side = getattr(event, "side", None)
        price = quantity = leaves = cum = None
        kind = type(event)
        if kind is OrderSubmitted or kind is OrderReplaced:
            price = units.price(symbol, event.price) if event.price else None
            quantity = units.qty(symbol, event.quantity)
            if kind is OrderReplaced:
                leaves = units.qty(symbol, event.leaves_quantity)
        elif kind is OrderFilled:
            price = units.price(symbol, event.last_price)
            quantity = units.qty(symbol, event.last_quantity)
            leaves = units.qty(symbol, event.leaves_quantity)
            cum = units.qty(symbol, event.cum_quantity)
        elif kind is OrderCanceled:
            quantity = units.qty(symbol, event.canceled_quantity)
            leaves = Decimal(0)
        elif kind is OrderExpired:
            quantity = units.qty(symbol, event.expired_quantity)
            leaves = Decimal(0)
        elif kind is VenueOrderStatus:
            leaves = units.qty(symbol, event.leaves_quantity)
            cum = units.qty(symbol, event.cum_quantity)
        code = getattr(event, "code", "") or ""
        reason = getattr(event, "reason", "") or ""
        if kind is TradingStateChanged or kind is LimitsChanged or kind is TriggersChanged or kind is HaltCompleted:
            k, n = scope_parts(event.scope)
            symbol = n if k == ScopeKind.INSTRUMENT.name else ""
        return (
            self.engine_id,
            env.seq,
            ts_datetime(env.ts),
            env.ts,
            kind.__name__,
            getattr(event, "client_order_id", "") or "",
            getattr(event, "strategy_id", "") or "",
            symbol,
            Side(side).name if side is not None else "",
            price,
            quantity,
            leaves,
            cum,
            code,
            reason,
            getattr(event, "operator", "") or "",
            getattr(event, "command_id", "") or "",
            payload,
            prev,
            row_hash,
        )

    def _fill(self, env: EventEnvelope, event: OrderFilled) -> tuple:
        units = self.units
        symbol = event.symbol
        return (
            self.engine_id,
            env.seq,
            ts_datetime(env.ts),
            env.ts,
            event.exec_id,
            event.client_order_id,
            event.strategy_id,
            symbol,
            Side(event.side).name,
            units.price(symbol, event.last_price),
            units.qty(symbol, event.last_quantity),
            event.commission,
            event.is_maker,
            event.venue_order_id,
            units.qty(symbol, event.leaves_quantity),
            units.qty(symbol, event.cum_quantity),
        )
