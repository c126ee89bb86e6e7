"""`QueryVenueOrders`: ask the venue about every working order in a scope and report each answer (engine thread only).

Compliance reconciles three ways (issue 9): the engine's orders, the database's and the venue's. The command sends a
`VenueQueryOrder` per working order in scope (over FIX an OrderStatusRequest, 35=H) and the answers come back as
ORDER_STATUS execution reports, journaled like any other. For each answer the engine publishes a `VenueOrderStatus`
with the venue's view next to its own (taken before the OMS adopts the venue's view, so a difference stays visible),
and once every order is answered - or `timeout_ns` has passed on the engine clock, checked on the journaled timer
tick - one `VenueStatusComplete`. A query the venue or gateway refuses (`VenueCommandRejected`, e.g. while a FIX
session is down) is an order without an answer.

Answers are matched by the client order id the query was sent under (the one the venue knows the order by), first
query first: the engine also queries on its own (after a refused cancel, on reconnect), and an ORDER_STATUS for an
order of a pending command answers that command whichever query caused it, as the content is the same. The state is
plain data, snapshotted and hashed with the engine's, so a replay publishes the same events at the same seqs.
"""

from __future__ import annotations

from typing import Any

from engine.enums import OrderStatus
from engine.protocol import ExecutionReport, VenueOrderStatus, VenueStatusComplete


class _Request:
    """One QueryVenueOrders in flight."""

    __slots__ = ("answered", "command_id", "deadline_ns", "open", "requested")

    def __init__(self, command_id: str, deadline_ns: int, open_ids: dict[str, None]) -> None:
        self.command_id = command_id
        self.deadline_ns = deadline_ns
        self.open = open_ids  # client order ids queried and not answered yet (insertion-ordered)
        self.requested = len(open_ids)
        self.answered = 0

    def complete(self, *, timed_out: bool) -> VenueStatusComplete:
        return VenueStatusComplete(
            command_id=self.command_id,
            requested=self.requested,
            answered=self.answered,
            timed_out=timed_out,
            unanswered=tuple(self.open),
        )


class VenueQueries:
    """Pending `QueryVenueOrders` commands. Engine thread only; `now` is always the engine clock."""

    __slots__ = ("_by_order", "_requests")

    def __init__(self) -> None:
        self._requests: list[_Request] = []
        self._by_order: dict[str, list[_Request]] = {}  # queried client order id -> requests waiting for it

    @property
    def active(self) -> bool:
        return bool(self._requests)

    def start(self, command_id: str, client_order_ids: list[str], now: int, timeout_ns: int) -> Any:
        """Queries for `client_order_ids` were just sent; returns `VenueStatusComplete` at once when there are none."""
        request = _Request(command_id, now + timeout_ns, dict.fromkeys(client_order_ids))
        if not request.open:
            return request.complete(timed_out=False)
        self._requests.append(request)
        for cid in request.open:
            self._by_order.setdefault(cid, []).append(request)
        return None

    def waiting_for(self, client_order_id: str) -> bool:
        return client_order_id in self._by_order

    def on_status(self, report: ExecutionReport, order: Any) -> list:
        """An ORDER_STATUS report for an id some request waits for; `order` is the OMS's order *before* the report
        is applied (None if the OMS does not know it). Returns the events to publish, in order."""
        out: list = []
        waiting = self._by_order.pop(report.client_order_id, None)
        if not waiting:
            return out
        # The venue holds only live orders: it answers one it does not hold with REJECTED, nothing filled and a
        # reason code (UNKNOWN_ORDER from ours; over FIX the code leads Text and comes back the same).
        known = not (report.status == OrderStatus.REJECTED and report.cum_quantity == 0 and report.reason_code)
        for request in waiting:
            del request.open[report.client_order_id]
            request.answered += 1
            out.append(
                VenueOrderStatus(
                    command_id=request.command_id,
                    client_order_id=report.client_order_id,
                    strategy_id=order.strategy_id if order is not None else "?",
                    symbol=report.symbol,
                    status=report.status,
                    leaves_quantity=report.leaves_quantity,
                    cum_quantity=report.cum_quantity,
                    venue_order_id=report.venue_order_id,
                    known=known,
                    engine_status=order.status if order is not None else None,
                    engine_leaves_quantity=order.leaves_quantity if order is not None else 0,
                    engine_cum_quantity=order.cum_quantity if order is not None else 0,
                    code=report.reason_code,
                    venue_ts=report.ts,
                )
            )
            if not any(self._awaits(request, cid) for cid in request.open):  # refused ids stay open, unawaited
                self._requests.remove(request)
                out.append(request.complete(timed_out=False))
        return out

    def requery(self, old_id: str, new_id: str) -> None:
        """The answer for `old_id` was stale (a replace moved the order to `new_id`) and the query was sent again
        under `new_id`: the requests waiting for `old_id` wait for `new_id` instead."""
        waiting = self._by_order.pop(old_id, None)
        if not waiting or old_id == new_id:
            if waiting:
                self._by_order[old_id] = waiting
            return
        awaiting = self._by_order.setdefault(new_id, [])
        for request in waiting:
            del request.open[old_id]
            if new_id in request.open:  # it already asked under the new id: one order, one answer
                request.requested -= 1
                continue
            request.open[new_id] = None
            awaiting.append(request)
        if not awaiting:
            del self._by_order[new_id]

    def on_refused(self, client_order_id: str) -> list:
        """The venue (or the gateway) refused the query for `client_order_id`: no answer will come for it."""
        out: list = []
        waiting = self._by_order.pop(client_order_id, None)
        for request in waiting or ():
            # Stays in `open` (it is unanswered) but no longer waited for; done when nothing else is awaited.
            if not any(self._awaits(request, cid) for cid in request.open):
                self._requests.remove(request)
                out.append(request.complete(timed_out=False))
        return out

    def _awaits(self, request: _Request, client_order_id: str) -> bool:
        return any(r is request for r in self._by_order.get(client_order_id, ()))

    def on_timer(self, now: int) -> list:
        """Requests whose deadline has passed end as timed out, in start order."""
        out: list = []
        for request in [r for r in self._requests if now >= r.deadline_ns]:
            self._requests.remove(request)
            for cid in request.open:
                waiting = self._by_order.get(cid)
                if waiting is not None and self._awaits(request, cid):
                    waiting[:] = [r for r in waiting if r is not request]
                    if not waiting:
                        del self._by_order[cid]
            out.append(request.complete(timed_out=True))
        return out

    # --- snapshots ---------------------------------------------------------------------------------------------

    def snapshot(self) -> list[list[Any]]:
        """Plain data: per request its id, deadline, counts, the ids still open and which of them are still awaited."""
        return [
            [
                r.command_id,
                r.deadline_ns,
                r.requested,
                r.answered,
                list(r.open),
                [cid for cid in r.open if self._awaits(r, cid)],
            ]
            for r in self._requests
        ]

    def restore(self, data: list[list[Any]]) -> None:
        self._requests = []
        self._by_order = {}
        for command_id, deadline_ns, requested, answered, open_ids, awaited in data:
            request = _Request(command_id, deadline_ns, dict.fromkeys(open_ids))
            request.requested, request.answered = requested, answered
            self._requests.append(request)
            for cid in awaited:
                self._by_order.setdefault(cid, []).append(request)


__all__ = ["VenueQueries"]
