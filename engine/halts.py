"""Kill-switch completion: when has every order a halt had to cancel been closed by the venue? (engine thread only)

A halt (the `HaltTrading` command, or a trigger taking a scope to HALTED) cancels every working order in its
scope in the same engine step. The risk desk needs to know when the venue has acknowledged all of them, and how
long that took (issue 8: "the measured time until every working order in scope was cancel-acknowledged"). A
`HaltWatch` remembers, per halt, the orders that were working when it started and crosses each off as the OMS
reports it closed - canceled, or filled, expired or rejected before the cancel reached it - and produces
`HaltCompleted` when none is left, timed on the engine clock from the halt. A halt with nothing working completes
at once.

Orders are matched by their origin id (the one id that never changes across replaces), and only the OMS events
that close an order are looked at, so a report costs one dict lookup while a halt is pending and nothing
otherwise. The ids an event can name an order by (its current id and a replace's in flight) are mapped to the
origin when the halt starts: the OMS forgets the oldest finished orders past `max_terminal_orders`, so after one
input that closed more orders than that (a mass cancel of a big book) it no longer knows the first of them.
The state is plain data, snapshotted and hashed with the rest of the engine: a replayed journal emits the same
`HaltCompleted` at the same sequence number.
"""

from __future__ import annotations

from typing import Any

from engine.protocol import (
    HaltCompleted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Scope,
    ScopeKind,
)

_CLOSING = (OrderCanceled, OrderExpired, OrderRejected, OrderFilled)


class _Pending:
    """One halt waiting for its orders: origin ids still open, counts so far, and where it came from."""

    __slots__ = ("canceled", "code", "command_id", "open", "other", "scope", "started_ns")

    def __init__(self, scope: Scope, command_id: str, code: str, started_ns: int, open_ids: dict[str, None]) -> None:
        self.scope = scope
        self.command_id = command_id
        self.code = code
        self.started_ns = started_ns
        self.open = open_ids  # a dict as an insertion-ordered set: the snapshot lists ids in a stable order
        self.canceled = 0
        self.other = 0

    def completed(self, now: int) -> HaltCompleted:
        return HaltCompleted(
            scope=self.scope,
            orders_canceled=self.canceled,
            elapsed_ns=now - self.started_ns,
            command_id=self.command_id,
            orders_closed_otherwise=self.other,
            code=self.code,
        )


class HaltWatch:
    """The halts whose cancels are still in flight. Engine thread only; times come from the caller (engine clock)."""

    __slots__ = ("_by_order", "_ids", "_pending")

    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        # origin id -> the pending halts waiting for it (an order can be in a firm and a strategy halt at once).
        self._by_order: dict[str, list[_Pending]] = {}
        # Every other id a waited-for order may be named by -> its origin id (cleared when no halt is pending).
        self._ids: dict[str, str] = {}

    @property
    def active(self) -> bool:
        return bool(self._pending)

    def start(self, scope: Scope, orders: list[Any], now: int, *, command_id: str = "", code: str = "") -> Any:
        """A halt of `scope` began at `now` with `orders` (the OMS's working orders in scope) to be closed.
        Returns the `HaltCompleted` when there is nothing to wait for, else None (it comes from `on_events`)."""
        pending = _Pending(scope, command_id, code, now, dict.fromkeys(o.origin_client_order_id for o in orders))
        if not pending.open:
            return pending.completed(now)
        self._pending.append(pending)
        by_order = self._by_order
        for origin in pending.open:
            by_order.setdefault(origin, []).append(pending)
        ids = self._ids
        for order in orders:
            origin = order.origin_client_order_id
            for cid in (order.client_order_id, order.pending_replace_id):
                if cid and cid != origin:
                    ids[cid] = origin
        return None

    def on_events(self, events: list, oms: Any, now: int) -> list[HaltCompleted]:
        """Cross off the orders the OMS events of one execution report closed; the halts this completes."""
        done: list[HaltCompleted] = []
        by_order = self._by_order
        for event in events:
            kind = type(event)
            if kind not in _CLOSING:
                continue
            if kind is OrderFilled and event.leaves_quantity:
                continue  # a partial fill
            cid = event.client_order_id
            order = oms.get(cid)
            if order is not None:
                if not order.is_terminal:
                    continue
                origin = order.origin_client_order_id
            else:
                # Already forgotten by the OMS (this input closed more orders than it keeps): the id names it still.
                origin = self._ids.get(cid, cid)
            waiting = by_order.pop(origin, None)
            if waiting is None:
                continue
            for pending in waiting:
                del pending.open[origin]
                if kind is OrderCanceled:
                    pending.canceled += 1
                else:
                    pending.other += 1
                if not pending.open:
                    self._pending.remove(pending)
                    done.append(pending.completed(now))
        if not self._pending:
            self._ids.clear()
        return done

    # --- snapshots ---------------------------------------------------------------------------------------------

    def snapshot(self) -> list[list[Any]]:
        """Plain data, in start order; each halt's row ends with the [id, origin] pairs of its open orders."""
        ids = self._ids
        return [
            [
                int(p.scope.kind),
                p.scope.name,
                p.command_id,
                p.code,
                p.started_ns,
                list(p.open),
                p.canceled,
                p.other,
                [[cid, origin] for cid, origin in ids.items() if origin in p.open],
            ]
            for p in self._pending
        ]

    def restore(self, data: list[list[Any]]) -> None:
        self._pending = []
        self._by_order = {}
        self._ids = {}
        for row in data:
            kind, name, command_id, code, started_ns, open_ids, canceled, other = row[:8]
            for cid, origin in row[8] if len(row) > 8 else ():  # rows written before the id map have none
                self._ids[cid] = origin
            scope = Scope(kind=ScopeKind(kind), name=name)
            pending = _Pending(scope, command_id, code, started_ns, dict.fromkeys(open_ids))
            pending.canceled, pending.other = canceled, other
            self._pending.append(pending)
            for origin in pending.open:
                self._by_order.setdefault(origin, []).append(pending)


__all__ = ["HaltWatch"]
