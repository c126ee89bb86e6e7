"""QueryVenueOrders: the engine asks the venue about every working order in a scope and reports each answer next to
its own view, then one completion (all answered, or timed out on the engine clock)."""

from __future__ import annotations

from decimal import Decimal

from console_harness import MS, SYMBOL, Desk

from engine.enums import OrderStatus, Side
from engine.protocol import (
    CommandAccepted,
    OrderCanceled,
    OrderFilled,
    QueryVenueOrders,
    ReplaceOrder,
    Scope,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueOrderStatus,
    VenueQueryOrder,
    VenueStatusComplete,
)


def _working(desk: Desk) -> None:
    desk.submit("a1", Side.BUY, "99.00", "0.002", strategy_id="alpha")
    desk.submit("a2", Side.SELL, "101.00", "0.001", strategy_id="alpha")
    desk.submit("b1", Side.BUY, "98.00", "0.001", strategy_id="beta")
    desk.pump()
    desk.take()
    desk.gateway.commands.clear()


def test_each_working_order_in_scope_is_queried_answered_and_the_query_completes() -> None:
    desk = Desk()
    _working(desk)

    reply = desk.cmd(QueryVenueOrders, scope=Scope.strategy("alpha"))
    desk.pump()

    assert type(reply) is CommandAccepted
    assert [(type(c), c.client_order_id) for c in desk.gateway.commands] == [
        (VenueQueryOrder, "a1"),
        (VenueQueryOrder, "a2"),
    ]
    statuses = desk.events(VenueOrderStatus)
    assert [(s.client_order_id, s.strategy_id, s.status, s.leaves_quantity, s.known) for s in statuses] == [
        ("a1", "alpha", OrderStatus.NEW, 2, True),
        ("a2", "alpha", OrderStatus.NEW, 1, True),
    ]
    assert all(s.command_id == reply.command_id and s.engine_status == OrderStatus.NEW for s in statuses)
    assert desk.events(VenueStatusComplete) == [
        VenueStatusComplete(command_id=reply.command_id, requested=2, answered=2)
    ]
    assert type(desk.events()[-1]) is VenueStatusComplete


def test_an_order_the_venue_no_longer_holds_is_reported_unknown_and_the_engine_closes_it() -> None:
    desk = Desk()
    _working(desk)
    # Canceled at the venue behind the engine's back: the report never reaches it.
    desk.venue.handle(VenueCancelOrder(client_order_id="x", orig_client_order_id="b1", account="MM1", symbol=SYMBOL))

    reply = desk.cmd(QueryVenueOrders, scope=Scope.instrument(SYMBOL))
    desk.pump()

    by_id = {s.client_order_id: s for s in desk.events(VenueOrderStatus)}
    assert (by_id["b1"].known, by_id["b1"].code, by_id["b1"].engine_status) == (False, "UNKNOWN_ORDER", OrderStatus.NEW)
    assert [by_id[c].known for c in ("a1", "a2")] == [True, True]
    assert [e.client_order_id for e in desk.events(OrderCanceled)] == ["b1"]
    assert desk.events(VenueStatusComplete)[0].answered == 3
    assert desk.engine.oms.get("b1").status == OrderStatus.CANCELED
    assert reply.command_id == by_id["b1"].command_id


def test_a_scope_with_no_working_orders_completes_at_once() -> None:
    desk = Desk()

    reply = desk.cmd(QueryVenueOrders, scope=Scope.firm())

    assert desk.events() == [VenueStatusComplete(command_id=reply.command_id, requested=0, answered=0)]
    assert desk.gateway.commands == []


def test_unanswered_queries_time_out_on_the_engine_clock_and_name_the_orders() -> None:
    desk = Desk()
    _working(desk)
    desk.gateway.hold = True  # the venue never hears of them

    reply = desk.cmd(QueryVenueOrders, scope=Scope.firm(), timeout_ns=500 * MS)
    asked = desk.clock.now()
    desk.timer(asked + 499 * MS)
    early = desk.events(VenueStatusComplete)
    desk.timer(asked + 500 * MS)

    assert early == []
    assert desk.events(VenueStatusComplete) == [
        VenueStatusComplete(
            command_id=reply.command_id, requested=3, answered=0, timed_out=True, unanswered=("a1", "a2", "b1")
        )
    ]


def test_an_answer_after_the_timeout_is_reconciled_but_reported_no_more() -> None:
    desk = Desk(venue_query_timeout_ns=100 * MS)
    _working(desk)
    desk.gateway.hold = True
    desk.cmd(QueryVenueOrders, scope=Scope.strategy("beta"))
    desk.timer(desk.clock.now() + 100 * MS)
    desk.take()

    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()

    assert desk.events(VenueOrderStatus) == []
    assert desk.events(VenueStatusComplete) == []


def test_a_query_the_gateway_refuses_counts_as_unanswered_and_the_rest_still_complete() -> None:
    desk = Desk()
    _working(desk)
    desk.gateway.hold = True
    reply = desk.cmd(QueryVenueOrders, scope=Scope.strategy("alpha"))
    refused = VenueCommandRejected(
        command="VenueQueryOrder", code="FIX_SESSION_DOWN", symbol=SYMBOL, client_order_id="a1"
    )

    desk.engine.handle_venue_reject(refused)
    desk.gateway.hold = False
    desk.gateway.held = [c for c in desk.gateway.held if c.client_order_id == "a2"]
    desk.gateway.release()
    desk.pump()

    assert desk.events(VenueStatusComplete) == [
        VenueStatusComplete(command_id=reply.command_id, requested=2, answered=1, unanswered=("a1",))
    ]


def test_two_queries_over_the_same_order_are_both_answered() -> None:
    desk = Desk()
    _working(desk)
    desk.gateway.hold = True

    first = desk.cmd(QueryVenueOrders, scope=Scope.strategy("beta"))
    second = desk.cmd(QueryVenueOrders, scope=Scope.firm())
    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()

    completes = {c.command_id: (c.requested, c.answered) for c in desk.events(VenueStatusComplete)}
    assert completes == {first.command_id: (1, 1), second.command_id: (3, 3)}


def test_a_query_sent_while_a_replace_is_in_flight_neither_closes_the_order_nor_loses_its_later_fill() -> None:
    desk = Desk()
    desk.submit("a1", Side.BUY, "99.00", "0.002", strategy_id="alpha")
    desk.pump()
    desk.take()
    # The replace and the query leave together; the venue applies the replace first and then knows the order only as
    # a1r, so it answers the query for a1 with UNKNOWN_ORDER.
    desk.gateway.hold = True
    desk.cmd(
        ReplaceOrder,
        client_order_id="a1r",
        orig_client_order_id="a1",
        symbol=SYMBOL,
        price=Decimal("99.50"),
        quantity=Decimal("0.002"),
    )
    reply = desk.cmd(QueryVenueOrders, scope=Scope.firm())
    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()

    assert desk.events(OrderCanceled) == []
    assert desk.engine.oms.get("a1r").status == OrderStatus.NEW
    statuses = desk.events(VenueOrderStatus)
    assert [(s.client_order_id, s.known, s.status) for s in statuses] == [("a1r", True, OrderStatus.NEW)]
    assert desk.events(VenueStatusComplete) == [
        VenueStatusComplete(command_id=reply.command_id, requested=1, answered=1)
    ]

    desk.other(Side.SELL, 9_950, 2, "taker")

    assert [(f.client_order_id, f.last_quantity) for f in desk.events(OrderFilled)] == [("a1r", 2)]
    assert desk.engine.portfolio.position("alpha", SYMBOL) == 2
