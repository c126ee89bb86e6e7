"""HaltCompleted: the kill switch reports when the venue has closed every order that was working in the halted scope,
and how long it took on the engine clock."""

from __future__ import annotations

from console_harness import MS, START, Desk

from engine.config import ScopeTriggers
from engine.enums import Side, TradingState
from engine.protocol import (
    CancelRejected,
    HaltCompleted,
    HaltTrading,
    OrderCanceled,
    ResumeTrading,
    Scope,
    TradingStateChanged,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
)
from engine.trading_state import TriggerConfig


def _two_strategies_working(desk: Desk) -> None:
    desk.submit("a1", Side.BUY, "99.00", "0.001", strategy_id="alpha")
    desk.submit("a2", Side.SELL, "101.00", "0.001", strategy_id="alpha")
    desk.submit("b1", Side.BUY, "98.00", "0.001", strategy_id="beta")
    desk.pump()
    desk.take()


def test_a_strategy_halt_completes_when_the_last_of_its_orders_is_cancel_acknowledged() -> None:
    desk = Desk()
    _two_strategies_working(desk)
    desk.gateway.hold = True  # the cancels take 3 ms to reach the venue

    reply = desk.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="runaway")
    halted_at = desk.clock.now()
    pending = desk.events(HaltCompleted)
    desk.clock.advance(3 * MS)
    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()

    assert pending == []
    [done] = desk.events(HaltCompleted)
    assert done == HaltCompleted(
        scope=Scope.strategy("alpha"),
        orders_canceled=2,
        elapsed_ns=desk.clock.now() - halted_at,
        command_id=reply.command_id,
    )
    assert done.elapsed_ns == 3 * MS
    events = desk.events()
    assert events.index(done) > max(i for i, e in enumerate(events) if type(e) is OrderCanceled)


def test_a_firm_halt_over_a_mass_cancel_counts_every_order_it_canceled() -> None:
    desk = Desk()
    _two_strategies_working(desk)

    desk.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    desk.pump()

    [done] = desk.events(HaltCompleted)
    assert (done.scope, done.orders_canceled, done.orders_closed_otherwise) == (Scope.firm(), 3, 0)
    assert desk.venue.open_orders("MM1") == []


def test_a_halt_with_nothing_working_completes_at_once_with_no_orders() -> None:
    desk = Desk()

    reply = desk.cmd(HaltTrading, scope=Scope.instrument("BTC-USD"), reason="news")

    events = desk.events()
    assert [type(e) for e in events] == [TradingStateChanged, HaltCompleted]
    assert events[1] == HaltCompleted(
        scope=Scope.instrument("BTC-USD"), orders_canceled=0, elapsed_ns=0, command_id=reply.command_id
    )


def test_an_order_filled_before_its_cancel_arrived_counts_as_closed_otherwise() -> None:
    desk = Desk()
    _two_strategies_working(desk)
    desk.other(Side.SELL, 9_900, 1, "hit-a1", pump=False)  # fills a1 at the venue; the report is still on its way

    desk.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="runaway")
    desk.pump()

    [done] = desk.events(HaltCompleted)
    assert (done.orders_canceled, done.orders_closed_otherwise) == (1, 1)


def test_halting_an_already_halted_scope_still_answers_the_command_with_its_own_completion() -> None:
    desk = Desk()
    desk.cmd(HaltTrading, scope=Scope.firm(), reason="first")
    desk.take()

    again = desk.cmd(HaltTrading, scope=Scope.firm(), reason="second click")

    assert desk.events() == [
        HaltCompleted(scope=Scope.firm(), orders_canceled=0, elapsed_ns=0, command_id=again.command_id)
    ]


def test_an_automatic_trigger_halt_completes_with_its_reason_code_and_no_command() -> None:
    triggers = (
        ScopeTriggers(
            scope=Scope.firm(),
            triggers=TriggerConfig(heartbeat_timeout_ns=5_000 * MS, heartbeat_action=TradingState.HALTED),
        ),
    )
    desk = Desk(triggers=triggers)
    _two_strategies_working(desk)
    desk.gateway.hold = True

    desk.timer(START + 6_000 * MS)  # no console heartbeat for 6 s
    desk.clock.advance(2 * MS)
    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()

    [done] = desk.events(HaltCompleted)
    assert (done.command_id, done.code, done.orders_canceled, done.elapsed_ns) == (
        "",
        "STATE_TRIGGER_HEARTBEAT",
        3,
        2 * MS,
    )


def test_a_halt_resumed_before_its_cancels_were_acknowledged_still_completes_once() -> None:
    desk = Desk()
    _two_strategies_working(desk)
    desk.gateway.hold = True
    desk.cmd(HaltTrading, scope=Scope.strategy("beta"), reason="check")
    desk.cmd(ResumeTrading, scope=Scope.strategy("beta"), reason="false alarm")

    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()
    desk.pump()

    assert [(e.scope, e.orders_canceled) for e in desk.events(HaltCompleted)] == [(Scope.strategy("beta"), 1)]


def test_an_order_in_a_strategy_halt_and_a_firm_halt_at_once_completes_both() -> None:
    desk = Desk()
    _two_strategies_working(desk)
    desk.gateway.hold = True
    desk.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="runaway")
    desk.cmd(HaltTrading, scope=Scope.firm(), reason="everything")

    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()

    completed = {e.scope: e.orders_canceled + e.orders_closed_otherwise for e in desk.events(HaltCompleted)}
    assert completed == {Scope.strategy("alpha"): 2, Scope.firm(): 3}


def test_a_mass_cancel_the_gateway_refuses_is_reissued_as_individual_cancels_and_the_halt_completes() -> None:
    desk = Desk()
    _two_strategies_working(desk)
    desk.gateway.hold = True

    reply = desk.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    [mass] = desk.gateway.held
    desk.gateway.held.clear()  # the session dropped: the mass cancel never left the gateway
    desk.gateway.hold = False
    desk.gateway.deliver(
        [
            VenueCommandRejected(
                command="VenueMassCancel",
                code="GATEWAY_DISCONNECTED",
                client_order_id=mass.client_order_id,
                reason="the FIX session to the venue is not logged on",
            )
        ]
    )
    desk.pump()

    assert type(mass) is VenueMassCancel
    rejected = desk.events(CancelRejected)
    assert sorted(e.orig_client_order_id for e in rejected) == ["a1", "a2", "b1"]
    assert {e.client_order_id for e in rejected} == {mass.client_order_id}
    assert sorted(c.orig_client_order_id for c in desk.gateway.commands if type(c) is VenueCancelOrder) == [
        "a1",
        "a2",
        "b1",
    ]
    assert sorted(e.client_order_id for e in desk.events(OrderCanceled)) == ["a1", "a2", "b1"]
    [done] = desk.events(HaltCompleted)
    assert (done.command_id, done.orders_canceled) == (reply.command_id, 3)


def test_a_halt_completes_when_one_report_closes_more_orders_than_the_oms_remembers_finished() -> None:
    desk = Desk()
    desk.engine.oms._max_terminal = 2  # the OMS forgets all but the last two orders that finished
    for i in range(5):
        desk.submit(f"o{i}", Side.BUY, f"9{i}.00", "0.001", strategy_id="alpha")
    desk.pump()
    desk.take()

    reply = desk.cmd(HaltTrading, scope=Scope.firm(), reason="kill")
    desk.pump()

    assert len(desk.events(OrderCanceled)) == 5
    [done] = desk.events(HaltCompleted)
    assert (done.command_id, done.orders_canceled, done.orders_closed_otherwise) == (reply.command_id, 5, 0)
