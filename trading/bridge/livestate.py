"""Conflated live topics (common contract: docs/bridge.md) built from committed events.

`LiveState.apply` runs on the bridge's commit thread after each commit (so nobody hears of a row that rolled back);
it only records the newest input per topic and marks the topic dirty. `LivePublisher` is a thread with its own
asyncio loop that, every 50 ms, renders each dirty topic once (latest state wins) and sends it through
`trading.live.AsyncPublisher`: at most one update per topic per interval, whatever the event rate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from decimal import Decimal
from typing import Any

from engine.protocol import (
    BookDepth,
    EngineHeartbeat,
    EventEnvelope,
    LimitsChanged,
    MarketTrade,
    OrderFilled,
    OrderStatus,
    PnlUpdated,
    PositionChanged,
    RiskUtilisation,
    Side,
    StrategyParamsChanged,
    StrategyState,
    StrategyStateChanged,
    TopOfBookChanged,
    TradingState,
    TradingStateChanged,
)
from trading.bridge.fast import FastMarketTrade, FastTopOfBook
from trading.bridge.rows import WORKING, Units, jsonable, scope_parts

log = logging.getLogger("trading.bridge")

INTERVAL_S = 0.05
FILLS_KEPT = 50
TRADES_KEPT = 500  # per symbol per interval: a burst beyond it keeps the newest
# Topics published at start-up, so a restarted bridge replaces whatever an earlier run (or engine) left as their
# latest state. The first five come from the engine's StateSnapshot, and an event at or below its seq is older
# than it (`apply` skips those); `heartbeat` is the snapshot's own moment, `pnl` and `fills` come from the rows
# already stored (the snapshot holds neither) and every replayed event moves them on.
_SNAPSHOT_TOPICS = frozenset(
    {"trading_state", "positions", "orders", "strategies", "limits", "heartbeat", "pnl", "fills"}
)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class LiveState:
    """The newest state of every topic, and which topics changed since the last publish (thread-safe)."""

    def __init__(self, *, engine_id: str, units: Units) -> None:
        self.engine_id = engine_id
        self.units = units
        self.lock = threading.Lock()
        self.base_seq = 0
        self.dirty: dict[str, tuple[int, int]] = {}  # topic -> (seq, ts) of its newest input
        self.heartbeat: dict[str, Any] | None = None
        self.trading_states: dict[tuple[str, str], dict] = {}
        self.pnl: dict[tuple[str, str], dict] = {}
        self.positions: dict[tuple[str, str], dict] = {}
        self.working: dict[str, dict] = {}
        self.fills: deque[dict] = deque(maxlen=FILLS_KEPT)
        self.strategies: dict[str, dict] = {}
        self.limits: dict[tuple[str, str], dict] = {}
        self.risk: list | None = None
        self.tob: dict[str, Any] = {}
        self.books: dict[str, Any] = {}
        self.trades: dict[str, deque[dict]] = {}  # per symbol, oldest first: the trades since the last publish

    # --- input (main thread at start-up, then the commit thread) ------------------------------------------------------

    def load_snapshot(
        self, snapshot: Any, fills: list[dict] | None = None, pnl: list[tuple[int, int, dict]] | None = None
    ) -> None:
        """Start from the engine's StateSnapshot, the newest fills already stored (newest first) and the newest
        stored P&L of each scope as (seq, ts, scope dict)."""
        units = self.units
        with self.lock:
            self.base_seq = snapshot.seq
            marks = dict.fromkeys(_SNAPSHOT_TOPICS, (snapshot.seq, snapshot.ts))
            for item in snapshot.trading_states:
                kind, name = scope_parts(item.scope)
                if kind == "FIRM":
                    self.heartbeat = {
                        "engine_id": snapshot.engine_id,
                        "firm_state": TradingState(item.state).name,
                        "ts": snapshot.ts,
                    }
                self.trading_states[(kind, name)] = {
                    "scope_kind": kind,
                    "scope_name": name,
                    "state": TradingState(item.state).name,
                    "operator": item.operator,
                    "reason": item.reason,
                    "code": "",
                }
            for item in snapshot.limits:
                kind, name = scope_parts(item.scope)
                self.limits[(kind, name)] = {"scope_kind": kind, "scope_name": name, "limits": jsonable(item.limits)}
            for item in snapshot.strategies:
                self.strategies[item.strategy_id] = {
                    "strategy_id": item.strategy_id,
                    "state": StrategyState(item.state).name,
                    "params": jsonable(item.params),
                    "params_version": item.params_version,
                }
            for o in snapshot.orders:
                self.working[o.client_order_id] = {
                    "client_order_id": o.client_order_id,
                    "strategy_id": o.strategy_id,
                    "symbol": o.symbol,
                    "side": Side(o.side).name,
                    "order_type": o.order_type.name,
                    "time_in_force": o.time_in_force.name,
                    "price": _s(units.price(o.symbol, o.price)) if o.price else None,
                    "quantity": str(units.qty(o.symbol, o.quantity)),
                    "leaves_quantity": str(units.qty(o.symbol, o.leaves_quantity)),
                    "cum_quantity": str(units.qty(o.symbol, o.cum_quantity)),
                    "status": OrderStatus(o.status).name,
                    "venue_order_id": o.venue_order_id,
                }
            for p in snapshot.positions:
                self.positions[(p.strategy_id, p.symbol)] = {
                    "strategy_id": p.strategy_id,
                    "symbol": p.symbol,
                    "quantity": str(units.qty(p.symbol, p.quantity)),
                    "avg_price": str(p.avg_price),
                    "realized": str(p.realized_pnl),
                    "unrealized": str(p.unrealized_pnl),
                    "fees": str(getattr(p, "fees", Decimal(0))),
                }
            if snapshot.utilisation:
                self.risk = [self._utilisation(u) for u in snapshot.utilisation]
                self.dirty["risk"] = (snapshot.seq, snapshot.ts)
            # Stored rows are as of the checkpoint, which may be behind the snapshot: they go out under their own
            # seq, so the replayed events after them are not taken for older ones. Nothing stored: an empty state
            # under seq 0, which still replaces an earlier run's in the store.
            marks["fills"] = (fills[0]["seq"], fills[0]["ts"]) if fills else (0, snapshot.ts)
            self.fills.extend(fills or ())
            marks["pnl"] = max(((seq, ts) for seq, ts, _ in pnl or ()), default=(0, snapshot.ts))
            for _seq, _ts, scope in pnl or ():
                self.pnl[(scope["scope_kind"], scope["scope_name"])] = scope
            self.dirty.update(marks)

    def apply(self, events: list[EventEnvelope], orders: dict[str, dict[str, Any]]) -> None:
        """Committed events of one batch, and the order rows it changed (trading_order columns)."""
        units = self.units
        base = self.base_seq
        with self.lock:
            dirty = self.dirty
            tob = self.tob
            tob_marks: dict[str, Any] = {}  # symbol -> its newest top-of-book envelope in this batch
            for env in events:
                event = env.event
                kind = type(event)
                if kind is FastTopOfBook or kind is TopOfBookChanged:  # most of the stream: the cheapest branch
                    symbol = event.symbol
                    tob[symbol] = event
                    if symbol not in tob_marks:
                        dirty["tob." + symbol] = (env.seq, env.ts)  # its place in the publish order
                    tob_marks[symbol] = env
                    continue
                mark = (env.seq, env.ts)
                if kind is FastMarketTrade or kind is MarketTrade:
                    trades = self.trades.get(event.symbol)
                    if trades is None:
                        trades = self.trades[event.symbol] = deque(maxlen=TRADES_KEPT)
                    trades.append(  # a full deque drops its oldest: a burst keeps its newest trades
                        {
                            "price": str(units.price(event.symbol, event.price)),
                            "quantity": str(units.qty(event.symbol, event.quantity)),
                            "aggressor": Side(event.aggressor).name,
                            "ts": env.ts,
                        }
                    )
                    dirty["trades." + event.symbol] = mark
                elif kind is BookDepth:
                    self.books[event.symbol] = event
                    dirty["book." + event.symbol] = mark
                elif kind is EngineHeartbeat:
                    self.heartbeat = {
                        "engine_id": env.engine_id,
                        "firm_state": TradingState(event.firm_state).name,
                        "ts": env.ts,
                    }
                    dirty["heartbeat"] = mark
                elif kind is PnlUpdated:
                    k, n = scope_parts(event.scope)
                    self.pnl[(k, n)] = {
                        "scope_kind": k,
                        "scope_name": n,
                        "realized": str(event.realized_pnl),
                        "unrealized": str(event.unrealized_pnl),
                        "fees": str(event.fees),
                    }
                    dirty["pnl"] = mark
                elif kind is RiskUtilisation:
                    self.risk = [self._utilisation(u) for u in event.scopes]
                    dirty["risk"] = mark
                elif kind is OrderFilled:
                    self.fills.appendleft(self._fill(env, event))
                    dirty["fills"] = mark
                if env.seq <= base:
                    continue
                if kind is PositionChanged:
                    key = (event.strategy_id, event.symbol)
                    unrealized = self.positions.get(key, {}).get("unrealized", "0")
                    self.positions[key] = {
                        "strategy_id": event.strategy_id,
                        "symbol": event.symbol,
                        "quantity": str(units.qty(event.symbol, event.quantity)),
                        "avg_price": str(event.avg_price),
                        "realized": str(event.realized_pnl),
                        "unrealized": unrealized,
                        "fees": str(event.fees),
                    }
                    dirty["positions"] = mark
                elif kind is TradingStateChanged:
                    k, n = scope_parts(event.scope)
                    self.trading_states[(k, n)] = {
                        "scope_kind": k,
                        "scope_name": n,
                        "state": TradingState(event.state).name,
                        "operator": event.operator,
                        "reason": event.reason,
                        "code": event.code,
                    }
                    dirty["trading_state"] = mark
                elif kind is LimitsChanged:
                    k, n = scope_parts(event.scope)
                    self.limits[(k, n)] = {"scope_kind": k, "scope_name": n, "limits": jsonable(event.limits)}
                    dirty["limits"] = mark
                elif kind is StrategyStateChanged or kind is StrategyParamsChanged:
                    current = self.strategies.setdefault(
                        event.strategy_id,
                        {"strategy_id": event.strategy_id, "state": "STOPPED", "params": {}, "params_version": 0},
                    )
                    if kind is StrategyStateChanged:
                        current["state"] = StrategyState(event.state).name
                    else:
                        current["params"] = jsonable(event.params)
                        current["params_version"] = event.version
                    dirty["strategies"] = mark
            for symbol, env in tob_marks.items():  # the newest of the batch per symbol
                dirty["tob." + symbol] = (env.seq, env.ts)
            if orders:
                last = events[-1] if events else None
                for cid, row in orders.items():
                    if row["last_seq"] <= base:
                        continue
                    if row["status"] in WORKING:
                        self.working[cid] = _order_json(row)
                    else:
                        self.working.pop(cid, None)
                if last is not None:
                    dirty["orders"] = (last.seq, last.ts)

    def _utilisation(self, u: Any) -> dict[str, Any]:
        data = jsonable(u)
        kind, name = scope_parts(u.scope)
        data.pop("scope", None)
        return {"scope_kind": kind, "scope_name": name, **data}

    def _fill(self, env: EventEnvelope, e: OrderFilled) -> dict[str, Any]:
        units = self.units
        return {
            "seq": env.seq,
            "ts": env.ts,
            "exec_id": e.exec_id,
            "client_order_id": e.client_order_id,
            "strategy_id": e.strategy_id,
            "symbol": e.symbol,
            "side": Side(e.side).name,
            "price": str(units.price(e.symbol, e.last_price)),
            "quantity": str(units.qty(e.symbol, e.last_quantity)),
            "commission": str(e.commission),
            "is_maker": e.is_maker,
        }

    # --- output (publisher thread) ------------------------------------------------------------------------------

    def take(self) -> list[dict[str, Any]]:
        """Render every dirty topic once and clear the dirty set: the messages to send now."""
        from trading.live import message

        with self.lock:
            dirty, self.dirty = self.dirty, {}
            out = []
            for topic, (seq, ts) in dirty.items():
                data = self._render(topic)
                if data is not None:
                    out.append(message(topic, seq=seq, ts=ts, engine_id=self.engine_id, data=data))
            return out

    def put_back(self, messages: list[dict[str, Any]]) -> None:
        """`take`'s messages that could not be sent: their topics are dirty again (a newer input keeps its own
        mark) and the trades they carried go back before any that arrived since, so the retry sends them too."""
        with self.lock:
            for m in messages:
                topic = m["topic"]
                self.dirty.setdefault(topic, (m["seq"], m["ts"]))
                if topic.startswith("trades."):
                    symbol = topic[7:]
                    trades = deque(reversed(m["data"]["trades"]), maxlen=TRADES_KEPT)
                    trades.extend(self.trades.get(symbol, ()))
                    self.trades[symbol] = trades

    def _render(self, topic: str) -> dict[str, Any] | None:
        if topic.startswith("tob."):
            return self._tob(self.tob[topic[4:]])
        if topic.startswith("book."):
            book = self.books[topic[5:]]
            units, symbol = self.units, book.symbol
            levels = lambda side: [  # noqa: E731
                [str(units.price(symbol, lv.price)), str(units.qty(symbol, lv.size))] for lv in side
            ]
            return {"symbol": symbol, "bids": levels(book.bids), "asks": levels(book.asks)}
        if topic.startswith("trades."):
            trades = self.trades.pop(topic[7:], ())  # taken: the next publish carries only newer trades
            return {"trades": list(reversed(trades))}
        if topic == "heartbeat":
            return self.heartbeat
        if topic == "trading_state":
            return {"states": list(self.trading_states.values())}
        if topic == "pnl":
            return {"scopes": list(self.pnl.values())}
        if topic == "positions":
            return {"positions": list(self.positions.values())}
        if topic == "orders":
            return {"working": list(self.working.values())}
        if topic == "fills":
            return {"fills": list(self.fills)}
        if topic == "strategies":
            return {"strategies": [dict(s) for s in self.strategies.values()]}
        if topic == "limits":
            return {"limits": list(self.limits.values())}
        if topic == "risk":
            return {"utilisation": self.risk or []}
        return None

    def _tob(self, e: TopOfBookChanged) -> dict[str, Any]:
        bid, bid_size = self.units.side_price(e.symbol, e.bid_price, e.bid_size)
        ask, ask_size = self.units.side_price(e.symbol, e.ask_price, e.ask_size)
        mid = (bid + ask) / 2 if bid is not None and ask is not None else None
        return {
            "symbol": e.symbol,
            "bid": _s(bid),
            "bid_size": _s(bid_size),
            "ask": _s(ask),
            "ask_size": _s(ask_size),
            "mid": _s(mid),
        }


def _order_json(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, Decimal):
            out[key] = str(value)
        elif hasattr(value, "isoformat"):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


class LivePublisher(threading.Thread):
    """Sends `LiveState.take()` every INTERVAL_S on its own asyncio loop. A Redis outage costs live updates, never
    rows: errors are logged and the next interval tries again with the newest state."""

    def __init__(self, state: LiveState, *, interval_s: float = INTERVAL_S) -> None:
        super().__init__(name="bridge-live", daemon=True)
        self.state = state
        self.interval_s = interval_s
        self.stopping = threading.Event()
        self.sent = 0
        self.failures = 0  # sends that failed (each retried with the newest state)

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from trading.live import AsyncPublisher

        publisher = AsyncPublisher()
        failing = False
        try:
            while True:
                stopping = self.stopping.is_set()
                messages = self.state.take()
                try:
                    self.sent += await publisher.send(messages)
                    failing = False
                except Exception as exc:  # Redis down or full: keep the bridge writing rows
                    if not failing:
                        log.warning(
                            "live publish failed (%s: %s); retrying with the newest state", type(exc).__name__, exc
                        )
                    failing = True
                    self.failures += 1
                    self.state.put_back(messages)
                if stopping:
                    return
                await asyncio.sleep(self.interval_s)
        finally:
            await publisher.close()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.join(timeout)
