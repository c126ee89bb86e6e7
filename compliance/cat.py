"""CAT-style order events: each order's lifecycle as CAT Industry Member events, and a validation pass.

Mapping from the engine's order events (trading_orderevent, one row per event, in engine seq order):

| engine event                   | CAT event | CAT name                          |
|--------------------------------|-----------|-----------------------------------|
| OrderSubmitted                 | MENO      | New Order                         |
| OrderAccepted                  | MEOR      | Order Route (to the venue)        |
| OrderRejected                  | MEOR      | Order Route, routeRejectedFlag    |
| OrderReplaced                  | MEOM      | Order Modified (priorOrderID)     |
| OrderCanceled / OrderExpired   | MEOC      | Order Cancelled                   |
| OrderFilled                    | MEOF      | Order Fulfillment (venue execution)|

Field names follow the CAT Industry Member Technical Specifications; timestamps are the CAT string form
`YYYYMMDD HHMMSS.CCCNNNNNN` in US Eastern time, to the nanosecond. This is "CAT-style": the firm has no CAT
reporter IMID of its own, so `CATReporterIMID` comes from settings and defaults to a placeholder the validation
pass does not check.

The validation pass follows each order through the day and flags lifecycle breaks: an event for an order that
was never created (a fill with no new order), a fill after a cancel, a cancel after a full fill, fills beyond the
order quantity, and reported quantities that do not add up (cum != sum of fills, leaves + cum != quantity).

An order refused by the engine's pre-trade risk gate (OrderDenied) never left the firm and was never a working
order (the engine publishes OrderSubmitted only once risk passed): it produces no CAT event and no finding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

CAT_FIELDS = (
    "type",
    "eventTimestamp",
    "orderID",
    "priorOrderID",
    "symbol",
    "side",
    "price",
    "quantity",
    "orderType",
    "timeInForce",
    "handlingInstructions",
    "tradingSession",
    "deptType",
    "manualFlag",
    "routedOrderID",
    "session",
    "destination",
    "destinationType",
    "routeRejectedFlag",
    "cancelQty",
    "leavesQty",
    "cumQty",
    "fulfillmentID",
    "CATReporterIMID",
    "firmDesignatedID",
    "eventSeq",
)

# The columns of trading_orderevent the CAT export reads, in this order.
CAT_SOURCE_SELECT = (
    "SELECT ts_ns, engine_id, seq, kind, client_order_id, strategy_id, symbol, side, price, quantity,"
    " leaves_quantity, cum_quantity, code, operator, command_id, payload"
)

EASTERN = ZoneInfo("America/New_York")
SIDES = {"BUY": "B", "SELL": "SL", 1: "B", -1: "SL"}
ORDER_TYPES = {1: "LMT", 2: "MKT", "LIMIT": "LMT", "MARKET": "MKT"}
# FOK has no CAT time in force of its own: it is IOC with the all-or-none instruction.
TIME_IN_FORCE = {1: "GTC", 2: "IOC", 3: "IOC", 4: "DAY"}
MAX_ISSUES_KEPT = 500


class IssueCode:
    NO_NEW_ORDER = "CAT_NO_NEW_ORDER"
    DUPLICATE_NEW_ORDER = "CAT_DUPLICATE_NEW_ORDER"
    FILL_AFTER_CANCEL = "CAT_FILL_AFTER_CANCEL"
    CANCEL_AFTER_FULL_FILL = "CAT_CANCEL_AFTER_FULL_FILL"
    OVERFILL = "CAT_OVERFILL"
    QUANTITY_MISMATCH = "CAT_QUANTITY_MISMATCH"


def cat_timestamp(ts_ns: int) -> str:
    moment = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).astimezone(EASTERN)
    return f"{moment:%Y%m%d %H%M%S}.{ts_ns % 1_000_000_000:09d}"


@dataclass(slots=True)
class _Order:
    quantity: Decimal | None  # None for an order created before the day (its size is not in today's events)
    filled: Decimal = Decimal(0)
    state: str = "open"  # open, filled, canceled


@dataclass
class CatBuilder:
    """Turns order-event rows into CAT records and collects lifecycle issues. Holds one small record per order
    seen in the period (a finished one too: an event after its end, such as a cancel after a full fill, is an
    issue to flag; a replace drops the order it replaces and keeps only its id), not the events, so a day of
    millions of events streams through in memory proportional to the day's orders."""

    reporter_imid: str = "FIRM"
    destination: str = "SIM"
    issue_count: int = 0
    issues: list[dict[str, Any]] = field(default_factory=list)
    _orders: dict[str, _Order] = field(default_factory=dict)
    _orphans: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _closed: set[str] = field(default_factory=set)

    def _issue(self, code: str, order_id: str, seq: int, detail: str) -> None:
        issue = {"code": code, "orderID": order_id, "eventSeq": seq, "detail": detail}
        if code == IssueCode.NO_NEW_ORDER:
            # Held back until the end: the order may have been created on an earlier day (see resolve_orphans).
            self._orphans.setdefault(order_id, []).append(issue)
            return
        self._add(issue)

    def _add(self, issue: dict[str, Any]) -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_ISSUES_KEPT:
            self.issues.append(issue)

    def records(self, rows: Iterable[tuple]) -> Iterator[tuple]:
        for row in rows:
            record = self._record(row)
            if record is not None:
                yield tuple(record.get(name) for name in CAT_FIELDS)

    def resolve_orphans(self, created_before_period: set[str]) -> None:
        """Orders whose first event today was not a new order: fine if they were created on an earlier day."""
        for order_id, issues in self._orphans.items():
            if order_id not in created_before_period:
                for issue in issues:
                    self._add(issue)
        self._orphans.clear()

    @property
    def orphan_order_ids(self) -> set[str]:
        return set(self._orphans)

    def _order(self, order_id: str, seq: int, kind: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            self._issue(IssueCode.NO_NEW_ORDER, order_id, seq, f"{kind} for an order with no new-order event")
            order = self._orders[order_id] = _Order(quantity=None)
        return order

    def _record(self, row: tuple) -> dict[str, Any] | None:
        """One CAT record (or None) from one row of CAT_SOURCE_SELECT."""
        (ts_ns, engine_id, seq, kind, order_id, strategy_id, symbol, side) = row[:8]
        price, quantity, leaves, cum = row[8:12]
        command_id, payload = row[14], row[15]
        event = _event(payload)
        base = {
            "eventTimestamp": cat_timestamp(ts_ns),
            "orderID": order_id,
            "symbol": symbol,
            "CATReporterIMID": self.reporter_imid,
            "firmDesignatedID": strategy_id,
            "eventSeq": f"{engine_id}:{seq}",
        }
        if kind == "OrderSubmitted":
            if order_id in self._orders or order_id in self._closed:
                self._issue(IssueCode.DUPLICATE_NEW_ORDER, order_id, seq, "a second new-order event for this orderID")
            self._orders[order_id] = _Order(quantity=quantity)
            tif = event.get("time_in_force")
            instructions = [name for flag, name in ((event.get("post_only"), "ALO"), (tif == 3, "AON")) if flag]
            return base | {
                "type": "MENO",
                "side": SIDES.get(side, side),
                "price": price,
                "quantity": quantity,
                "orderType": ORDER_TYPES.get(event.get("order_type"), ""),
                "timeInForce": _time_in_force(tif, ts_ns),
                "handlingInstructions": "|".join(instructions),
                "tradingSession": "REG",
                "deptType": "T",
                "manualFlag": "true" if command_id else "false",
            }
        if kind in ("OrderAccepted", "OrderRejected"):
            self._order(order_id, seq, kind)
            record = base | {
                "type": "MEOR",
                "routedOrderID": str(event.get("venue_order_id") or ""),
                "session": engine_id,
                "destination": self.destination,
                "destinationType": "E",
                "routeRejectedFlag": "true" if kind == "OrderRejected" else "false",
            }
            if kind == "OrderRejected":
                self._close(order_id, "canceled")
            return record
        if kind == "OrderReplaced":
            prior_id = event.get("orig_client_order_id", "")
            prior = self._orders.pop(prior_id, None)
            if prior is None:
                self._issue(IssueCode.NO_NEW_ORDER, prior_id, seq, "modify of an order with no new-order event")
                prior = _Order(quantity=None)
            self._closed.add(prior_id)
            self._orders[order_id] = _Order(quantity=quantity, filled=prior.filled)
            self._check_adds_up(order_id, seq, leaves, cum)
            return base | {
                "type": "MEOM",
                "priorOrderID": prior_id,
                "price": price,
                "quantity": quantity,
                "leavesQty": leaves,
            }
        if kind in ("OrderCanceled", "OrderExpired"):
            order = self._order(order_id, seq, kind)
            if order.state == "filled" or (order.quantity is not None and order.filled >= order.quantity):
                self._issue(IssueCode.CANCEL_AFTER_FULL_FILL, order_id, seq, f"{kind} after the order was fully filled")
            open_qty = None if order.quantity is None else order.quantity - order.filled
            cancel_qty = quantity if quantity is not None else open_qty
            self._close(order_id, "canceled")
            return base | {"type": "MEOC", "cancelQty": cancel_qty, "leavesQty": Decimal(0)}
        if kind == "OrderFilled":
            order = self._order(order_id, seq, kind)
            if order.state == "canceled":
                self._issue(IssueCode.FILL_AFTER_CANCEL, order_id, seq, "a fill after the order was cancelled")
            order.filled += quantity or Decimal(0)
            if order.quantity is not None and order.filled > order.quantity:
                self._issue(
                    IssueCode.OVERFILL,
                    order_id,
                    seq,
                    f"fills total {order.filled}, more than the order quantity {order.quantity}",
                )
            if order.quantity is not None and cum is not None and cum != order.filled:
                self._issue(
                    IssueCode.QUANTITY_MISMATCH, order_id, seq, f"cumQty {cum} but the fills add up to {order.filled}"
                )
            self._check_adds_up(order_id, seq, leaves, cum)
            if leaves is not None and leaves == 0:
                order.state = "filled"
            return base | {
                "type": "MEOF",
                "side": SIDES.get(side, side),
                "price": price,
                "quantity": quantity,
                "leavesQty": leaves,
                "cumQty": cum,
                "fulfillmentID": event.get("exec_id", ""),
            }
        return None  # CancelRejected and the rest change no order's lifecycle

    def _check_adds_up(self, order_id: str, seq: int, leaves: Decimal | None, cum: Decimal | None) -> None:
        order = self._orders.get(order_id)
        if order is None or order.quantity is None or leaves is None or cum is None:
            return
        if order.state == "open" and leaves + cum != order.quantity:
            self._issue(
                IssueCode.QUANTITY_MISMATCH,
                order_id,
                seq,
                f"leavesQty {leaves} + cumQty {cum} is not the order quantity {order.quantity}",
            )

    def _close(self, order_id: str, state: str) -> None:
        order = self._orders.get(order_id)
        if order is not None:
            order.state = state


def _event(payload: bytes | memoryview | None) -> dict[str, Any]:
    if not payload:
        return {}
    try:
        return json.loads(bytes(payload)).get("event", {})
    except (ValueError, AttributeError):
        return {}


def _time_in_force(tif: int | None, ts_ns: int) -> str:
    if tif == 4:  # CAT spells a day order with its date
        return f"DAY={datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).astimezone(EASTERN):%Y%m%d}"
    return TIME_IN_FORCE.get(tif, "")
