"""The OMS state machine: every transition table-driven, the cancel/replace races, anomalies, reconciliation,
snapshots, and a property run against the simulated venue."""

from __future__ import annotations

import itertools
from decimal import Decimal

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.clock import FakeClock
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.oms import Oms, OmsCode, OmsError, Order
from engine.protocol import (
    CancelRejected,
    ExecutionReport,
    MassCancelReport,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderReplaced,
    ProtocolError,
    VenueCancelOrder,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
)
from engine.venue import Venue

ACCOUNT = "ACC"
SYM = "BTCUSDT"
S = OrderStatus
_exec_ids = itertools.count(1)


def make_oms(**kwargs) -> Oms:
    return Oms(FakeClock(1_000), ACCOUNT, **kwargs)


def submit(oms: Oms, *, strategy_id="mm", side=Side.BUY, price=100, quantity=10, tif=TimeInForce.GTC) -> Order:
    return oms.new_order(
        strategy_id=strategy_id,
        client_order_id=oms.next_client_order_id(strategy_id),
        symbol=SYM,
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=tif,
        price=price,
        quantity=quantity,
    )


def report(order: Order, exec_type: ExecType, status: OrderStatus, **fields) -> ExecutionReport:
    values = {
        "exec_id": f"E{next(_exec_ids)}",
        "client_order_id": order.client_order_id,
        "venue_order_id": 7,
        "account": ACCOUNT,
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "time_in_force": order.time_in_force,
        "exec_type": exec_type,
        "status": status,
        "price": order.price,
        "quantity": order.quantity,
        "leaves_quantity": order.leaves_quantity,
        "cum_quantity": order.cum_quantity,
        "ts": 5,
    }
    values.update(fields)
    return ExecutionReport(**values)


# Report builders: each makes the report a venue would send for this event, given the order's current state.


def ack(order):
    return report(order, ExecType.NEW, S.NEW)


def fill(order, qty):
    cum = order.cum_quantity + qty
    leaves = max(order.quantity - cum, 0)
    return report(
        order,
        ExecType.TRADE,
        S.PARTIALLY_FILLED if leaves else S.FILLED,
        last_price=order.price,
        last_quantity=qty,
        cum_quantity=cum,
        leaves_quantity=leaves,
    )


def partial_fill(order):
    return fill(order, 4)


def full_fill(order):
    return fill(order, max(order.leaves_quantity, 1))


def canceled(order):
    cid = order.pending_cancel_id or order.client_order_id
    return report(order, ExecType.CANCELED, S.CANCELED, client_order_id=cid, leaves_quantity=0)


def replaced(order):
    cid = order.pending_replace_id or "mm-999"
    price, quantity = order.pending_price or 101, order.pending_quantity or 12
    leaves = quantity - order.cum_quantity
    return report(
        order,
        ExecType.REPLACED,
        S.PARTIALLY_FILLED if order.cum_quantity else S.NEW,
        client_order_id=cid,
        orig_client_order_id=order.client_order_id,
        price=price,
        quantity=quantity,
        leaves_quantity=leaves,
    )


def rejected(order):
    return report(order, ExecType.REJECTED, S.REJECTED, leaves_quantity=0, reason_code="POST_ONLY_WOULD_CROSS")


def expired(order):
    return report(order, ExecType.EXPIRED, S.EXPIRED, leaves_quantity=0)


def cancel_rejected(order):
    cid = order.pending_cancel_id or order.pending_replace_id or "mm-998"
    return report(
        order,
        ExecType.CANCEL_REJECTED,
        S.NEW,
        client_order_id=cid,
        orig_client_order_id=order.client_order_id,
        reason_code="UNKNOWN_ORDER",
    )


def status_open(order):
    """The venue's answer to a status query: the order is open with the terms and fills we know."""
    return report(
        order,
        ExecType.ORDER_STATUS,
        S.PARTIALLY_FILLED if order.cum_quantity else S.NEW,
        leaves_quantity=order.quantity - order.cum_quantity,
    )


def status_canceled(order):
    return report(order, ExecType.ORDER_STATUS, S.CANCELED, leaves_quantity=0)


# Starting states: each returns (oms, order) with the order in that state.


def start(state: str) -> tuple[Oms, Order]:
    oms = make_oms()
    order = submit(oms)
    steps = {
        "PENDING_NEW": [],
        "NEW": [ack],
        "PARTIALLY_FILLED": [ack, partial_fill],
        "FILLED": [ack, full_fill],
        "CANCELED": [ack, canceled],
        "REJECTED": [rejected],
        "EXPIRED": [ack, expired],
        "PENDING_CANCEL": [ack, "cancel"],
        "PENDING_CANCEL_PARTIAL": [ack, partial_fill, "cancel"],
        "PENDING_CANCEL_UNACKED": ["cancel"],
        "PENDING_REPLACE": [ack, "replace"],
        "PENDING_REPLACE_PARTIAL": [ack, partial_fill, "replace"],
    }[state]
    for step in steps:
        if step == "cancel":
            oms.request_cancel(order.client_order_id)
        elif step == "replace":
            oms.request_replace(order.client_order_id, 101, 12)
        else:
            assert oms.on_execution_report(step(order))
    return oms, order


# (start state, report, status after, event types, anomaly code or None)
TRANSITIONS = [
    ("PENDING_NEW", ack, S.NEW, [OrderAccepted], None),
    ("PENDING_NEW", partial_fill, S.PARTIALLY_FILLED, [OrderAccepted, OrderFilled], None),
    ("PENDING_NEW", full_fill, S.FILLED, [OrderAccepted, OrderFilled], None),
    ("PENDING_NEW", rejected, S.REJECTED, [OrderRejected], None),
    ("PENDING_NEW", expired, S.EXPIRED, [OrderExpired], None),
    ("PENDING_NEW", canceled, S.CANCELED, [OrderCanceled], None),
    ("PENDING_NEW", replaced, S.PENDING_NEW, [], OmsCode.UNEXPECTED_REPLACE),
    ("PENDING_NEW", cancel_rejected, S.PENDING_NEW, [], OmsCode.UNEXPECTED_CANCEL_REJECT),
    ("NEW", ack, S.NEW, [], OmsCode.UNEXPECTED_NEW),
    ("NEW", partial_fill, S.PARTIALLY_FILLED, [OrderFilled], None),
    ("NEW", full_fill, S.FILLED, [OrderFilled], None),
    ("NEW", canceled, S.CANCELED, [OrderCanceled], None),  # unsolicited (self-trade prevention, mass cancel)
    ("NEW", expired, S.EXPIRED, [OrderExpired], None),
    ("NEW", rejected, S.NEW, [], OmsCode.UNEXPECTED_REJECT),
    ("NEW", replaced, S.NEW, [], OmsCode.UNEXPECTED_REPLACE),
    ("NEW", cancel_rejected, S.NEW, [], OmsCode.UNEXPECTED_CANCEL_REJECT),
    ("PARTIALLY_FILLED", partial_fill, S.PARTIALLY_FILLED, [OrderFilled], None),
    ("PARTIALLY_FILLED", full_fill, S.FILLED, [OrderFilled], None),
    ("PARTIALLY_FILLED", canceled, S.CANCELED, [OrderCanceled], None),
    ("PARTIALLY_FILLED", expired, S.EXPIRED, [OrderExpired], None),
    ("PARTIALLY_FILLED", ack, S.PARTIALLY_FILLED, [], OmsCode.UNEXPECTED_NEW),
    ("PARTIALLY_FILLED", rejected, S.PARTIALLY_FILLED, [], OmsCode.UNEXPECTED_REJECT),
    ("FILLED", partial_fill, S.FILLED, [], OmsCode.FILL_ON_TERMINAL_ORDER),
    ("FILLED", canceled, S.FILLED, [], OmsCode.CANCEL_ON_TERMINAL_ORDER),
    ("FILLED", expired, S.FILLED, [], OmsCode.EXPIRE_ON_TERMINAL_ORDER),
    ("FILLED", ack, S.FILLED, [], OmsCode.UNEXPECTED_NEW),
    ("FILLED", rejected, S.FILLED, [], OmsCode.UNEXPECTED_REJECT),
    ("FILLED", replaced, S.FILLED, [], OmsCode.UNEXPECTED_REPLACE),
    ("FILLED", cancel_rejected, S.FILLED, [], OmsCode.UNEXPECTED_CANCEL_REJECT),
    ("CANCELED", partial_fill, S.CANCELED, [], OmsCode.FILL_ON_TERMINAL_ORDER),
    ("CANCELED", canceled, S.CANCELED, [], OmsCode.CANCEL_ON_TERMINAL_ORDER),
    ("CANCELED", ack, S.CANCELED, [], OmsCode.UNEXPECTED_NEW),
    ("REJECTED", partial_fill, S.REJECTED, [], OmsCode.FILL_ON_TERMINAL_ORDER),
    ("REJECTED", rejected, S.REJECTED, [], OmsCode.UNEXPECTED_REJECT),
    ("REJECTED", ack, S.REJECTED, [], OmsCode.UNEXPECTED_NEW),
    ("EXPIRED", canceled, S.EXPIRED, [], OmsCode.CANCEL_ON_TERMINAL_ORDER),
    ("EXPIRED", full_fill, S.EXPIRED, [], OmsCode.FILL_ON_TERMINAL_ORDER),
    ("EXPIRED", expired, S.EXPIRED, [], OmsCode.EXPIRE_ON_TERMINAL_ORDER),
    ("PENDING_CANCEL", canceled, S.CANCELED, [OrderCanceled], None),
    ("PENDING_CANCEL", partial_fill, S.PENDING_CANCEL, [OrderFilled], None),  # fill races the cancel
    ("PENDING_CANCEL", full_fill, S.FILLED, [OrderFilled], None),
    ("PENDING_CANCEL", cancel_rejected, S.NEW, [CancelRejected], None),
    ("PENDING_CANCEL", expired, S.EXPIRED, [OrderExpired], None),
    ("PENDING_CANCEL", ack, S.PENDING_CANCEL, [], OmsCode.UNEXPECTED_NEW),
    ("PENDING_CANCEL", replaced, S.PENDING_CANCEL, [], OmsCode.UNEXPECTED_REPLACE),
    ("PENDING_CANCEL_PARTIAL", cancel_rejected, S.PARTIALLY_FILLED, [CancelRejected], None),
    ("PENDING_CANCEL_PARTIAL", canceled, S.CANCELED, [OrderCanceled], None),
    ("PENDING_CANCEL_UNACKED", ack, S.PENDING_CANCEL, [OrderAccepted], None),
    ("PENDING_CANCEL_UNACKED", rejected, S.REJECTED, [OrderRejected], None),
    ("PENDING_CANCEL_UNACKED", cancel_rejected, S.PENDING_NEW, [CancelRejected], None),
    ("PENDING_REPLACE", replaced, S.NEW, [OrderReplaced], None),
    ("PENDING_REPLACE", cancel_rejected, S.NEW, [CancelRejected], None),
    ("PENDING_REPLACE", partial_fill, S.PENDING_REPLACE, [OrderFilled], None),
    ("PENDING_REPLACE", full_fill, S.FILLED, [OrderFilled], None),
    ("PENDING_REPLACE", canceled, S.CANCELED, [OrderCanceled], None),
    ("PENDING_REPLACE", expired, S.EXPIRED, [OrderExpired], None),
    ("PENDING_REPLACE", ack, S.PENDING_REPLACE, [], OmsCode.UNEXPECTED_NEW),
    ("PENDING_REPLACE_PARTIAL", replaced, S.PARTIALLY_FILLED, [OrderReplaced], None),
    ("PENDING_REPLACE_PARTIAL", cancel_rejected, S.PARTIALLY_FILLED, [CancelRejected], None),
    ("PENDING_NEW", status_open, S.NEW, [OrderAccepted], OmsCode.RECONCILED),
    ("NEW", status_open, S.NEW, [], None),
    ("PARTIALLY_FILLED", status_open, S.PARTIALLY_FILLED, [], None),
    ("PENDING_CANCEL", status_open, S.PENDING_CANCEL, [], None),
    ("PENDING_REPLACE", status_open, S.PENDING_REPLACE, [], None),
    ("NEW", status_canceled, S.CANCELED, [OrderCanceled], OmsCode.RECONCILED),
    ("FILLED", status_open, S.FILLED, [], OmsCode.RECONCILE_OPEN_AT_VENUE),
    ("CANCELED", status_canceled, S.CANCELED, [], None),
]


@pytest.mark.parametrize(
    ("state", "make_report", "after", "event_types", "anomaly"),
    TRANSITIONS,
    ids=[f"{row[0]}-{row[1].__name__}" for row in TRANSITIONS],
)
def test_each_report_in_each_state_moves_the_order_as_the_table_says(state, make_report, after, event_types, anomaly):
    oms, order = start(state)
    before = oms.snapshot()
    r = make_report(order)

    events = oms.on_execution_report(r)

    assert [type(e) for e in events] == event_types
    assert order.status == after
    if anomaly is None:
        assert oms.anomalies == {}
    else:
        assert oms.anomalies == {anomaly: 1}
    if not events:
        after_snapshot = oms.snapshot()
        del after_snapshot["exec_ids"], after_snapshot["anomalies"], before["exec_ids"], before["anomalies"]
        assert after_snapshot == before  # a report without events changes nothing but the counters


@pytest.mark.parametrize(("state", "make_report", "after", "event_types", "anomaly"), TRANSITIONS[:12])
def test_cum_never_exceeds_quantity_and_leaves_is_the_rest(state, make_report, after, event_types, anomaly):
    oms, order = start(state)

    oms.on_execution_report(make_report(order))

    assert 0 <= order.cum_quantity <= order.quantity
    if order.is_terminal:
        assert order.leaves_quantity == 0
    else:
        assert order.leaves_quantity == order.quantity - order.cum_quantity


def test_terminal_orders_leave_the_working_set_and_live_ones_stay():
    oms, filled = start("FILLED")
    live = submit(oms)

    working = oms.working_orders()

    assert working == [live]
    assert oms.open_order_count() == 1
    assert filled.leaves_quantity == 0


def test_a_duplicate_execution_report_is_ignored_and_counted():
    oms, order = start("NEW")
    r = partial_fill(order)
    first = oms.on_execution_report(r)

    second = oms.on_execution_report(r)

    assert [type(e) for e in first] == [OrderFilled]
    assert second == []
    assert order.cum_quantity == 4
    assert oms.anomalies == {OmsCode.DUPLICATE_EXEC_ID: 1}


def test_a_report_for_an_unknown_client_order_id_is_an_anomaly_not_an_error():
    oms, order = start("NEW")
    stranger = report(order, ExecType.TRADE, S.FILLED, client_order_id="nobody-1", last_price=1, last_quantity=1)

    events = oms.on_execution_report(stranger)

    assert events == []
    assert oms.anomalies == {OmsCode.UNKNOWN_ORDER: 1}
    assert order.cum_quantity == 0


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("account", "OTHER", OmsCode.WRONG_ACCOUNT), ("symbol", "ETHUSDT", OmsCode.SYMBOL_MISMATCH)],
)
def test_a_report_for_another_account_or_symbol_changes_nothing(field, value, code):
    oms, order = start("NEW")
    r = report(order, ExecType.TRADE, S.FILLED, last_price=100, last_quantity=10, **{field: value})

    events = oms.on_execution_report(r)

    assert events == []
    assert oms.anomalies == {code: 1}
    assert order.status == S.NEW


def test_an_overfill_books_only_the_open_quantity_and_is_counted():
    oms, order = start("PARTIALLY_FILLED")

    events = oms.on_execution_report(fill(order, 50))

    assert events[0].last_quantity == 6
    assert order.cum_quantity == order.quantity == 10
    assert order.status == S.FILLED
    assert OmsCode.OVERFILL in oms.anomalies


def test_a_fill_while_a_cancel_is_pending_then_the_cancel_reject_keeps_the_order_filled():
    oms, order = start("PENDING_CANCEL")
    cancel_id = order.pending_cancel_id
    oms.on_execution_report(full_fill(order))
    late_reject = report(
        order,
        ExecType.CANCEL_REJECTED,
        S.REJECTED,
        client_order_id=cancel_id,
        orig_client_order_id=order.client_order_id,
        reason_code="UNKNOWN_ORDER",
    )

    events = oms.on_execution_report(late_reject)

    assert [type(e) for e in events] == [CancelRejected]
    assert events[0].client_order_id == cancel_id
    assert order.status == S.FILLED
    assert oms.anomalies == {}


def test_a_replace_accepted_after_a_partial_fill_keeps_the_filled_part_and_takes_the_new_terms():
    oms, order = start("PENDING_REPLACE")
    original_id = order.client_order_id
    oms.on_execution_report(fill(order, 3))  # the venue fills the old terms while the replace is in flight

    events = oms.on_execution_report(replaced(order))

    assert [type(e) for e in events] == [OrderReplaced]
    assert (order.price, order.quantity, order.cum_quantity, order.leaves_quantity) == (101, 12, 3, 9)
    assert order.status == S.PARTIALLY_FILLED
    assert order.client_order_id == events[0].client_order_id != original_id
    assert events[0].orig_client_order_id == original_id
    assert oms.get(original_id) is order
    assert oms.get(order.client_order_id) is order


def test_fills_after_a_replace_are_found_under_the_new_id():
    oms, order = start("PENDING_REPLACE")
    oms.on_execution_report(replaced(order))

    events = oms.on_execution_report(fill(order, 12))

    assert events[0].client_order_id == order.client_order_id
    assert order.status == S.FILLED


def test_an_unsolicited_cancel_names_its_reason_and_the_open_quantity():
    oms, order = start("PARTIALLY_FILLED")
    stp = report(order, ExecType.CANCELED, S.CANCELED, leaves_quantity=0, reason_code="SELF_TRADE_PREVENTED")

    events = oms.on_execution_report(stp)

    assert events == [
        OrderCanceled(
            strategy_id="mm",
            client_order_id=order.client_order_id,
            symbol=SYM,
            canceled_quantity=6,
            code="SELF_TRADE_PREVENTED",
            venue_ts=5,
        )
    ]


def test_a_mass_cancel_report_finds_the_order_through_its_orig_client_order_id():
    oms, order = start("NEW")
    r = report(
        order,
        ExecType.CANCELED,
        S.CANCELED,
        client_order_id="mass-1",
        orig_client_order_id=order.client_order_id,
        leaves_quantity=0,
        reason_code="MASS_CANCEL",
    )

    events = oms.on_execution_report(r)

    assert [type(e) for e in events] == [OrderCanceled]
    assert order.status == S.CANCELED


# ------------------------------------------------------------------ engine requests


def test_new_order_is_pending_new_and_counts_as_working_at_once():
    oms = make_oms()

    order = submit(oms, quantity=5)

    assert order.status == S.PENDING_NEW
    assert oms.open_order_count(strategy_id="mm", symbol=SYM) == 1
    assert oms.working_quantity(side=Side.BUY) == 5
    assert oms.working_quantity(side=Side.SELL) == 0


def test_new_order_with_a_used_client_order_id_raises_with_a_code():
    oms = make_oms()
    order = submit(oms)

    with pytest.raises(OmsError) as caught:
        oms.new_order(
            strategy_id="mm",
            client_order_id=order.client_order_id,
            symbol=SYM,
            side=Side.BUY,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=1,
            quantity=1,
        )

    assert caught.value.code == OmsCode.DUPLICATE_CLIENT_ORDER_ID


def test_client_order_ids_are_counter_based_and_skip_ids_already_taken():
    oms = make_oms()
    oms.new_order(
        strategy_id="op",
        client_order_id="mm-2",
        symbol=SYM,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=1,
        quantity=1,
    )

    ids = [oms.next_client_order_id("mm") for _ in range(3)]

    assert ids == ["mm-1", "mm-3", "mm-4"]
    assert [make_oms().next_client_order_id("mm") for _ in range(2)] == ["mm-1", "mm-1"]


def test_the_place_message_carries_the_order_for_the_venue():
    oms = make_oms()
    order = submit(oms, side=Side.SELL, price=105, quantity=3)

    msg = oms.place_message(order)

    assert msg == VenuePlaceOrder(
        client_order_id="mm-1",
        account=ACCOUNT,
        symbol=SYM,
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=105,
        quantity=3,
        ts=1_000,
    )


def test_a_cancel_request_gets_its_own_id_that_maps_back_to_the_order():
    oms, order = start("NEW")

    msg = oms.request_cancel(order.client_order_id)

    assert msg == VenueCancelOrder(
        client_order_id="mm-2", orig_client_order_id="mm-1", account=ACCOUNT, symbol=SYM, ts=1_000
    )
    assert order.status == S.PENDING_CANCEL
    assert oms.get("mm-2") is order


def test_a_replace_request_names_the_new_terms_and_a_new_id():
    oms, order = start("NEW")

    msg = oms.request_replace(order.client_order_id, 99, 20)

    assert msg == VenueReplaceOrder(
        client_order_id="mm-2",
        orig_client_order_id="mm-1",
        account=ACCOUNT,
        symbol=SYM,
        price=99,
        quantity=20,
        ts=1_000,
    )
    assert (order.status, order.pending_price, order.pending_quantity) == (S.PENDING_REPLACE, 99, 20)
    assert (order.price, order.quantity) == (100, 10)


def test_a_cancel_while_a_replace_is_in_flight_chains_on_the_replace_id():
    oms, order = start("PENDING_REPLACE")
    replace_id = order.pending_replace_id

    msg = oms.request_cancel(order.client_order_id)
    events = oms.on_execution_report(replaced(order))

    assert msg.orig_client_order_id == replace_id
    assert [type(e) for e in events] == [OrderReplaced]
    assert order.status == S.PENDING_CANCEL  # the cancel is still in flight
    assert [type(e) for e in oms.on_execution_report(canceled(order))] == [OrderCanceled]


@pytest.mark.parametrize(
    ("state", "action", "code"),
    [
        ("FILLED", "cancel", OmsCode.ORDER_NOT_WORKING),
        ("CANCELED", "replace", OmsCode.ORDER_NOT_WORKING),
        ("PENDING_CANCEL", "cancel", OmsCode.CANCEL_PENDING),
        ("PENDING_CANCEL", "replace", OmsCode.CANCEL_PENDING),
        ("PENDING_REPLACE", "replace", OmsCode.REPLACE_PENDING),
        ("NEW", "replace_to_zero", OmsCode.INVALID_REPLACE),
        ("NEW", "cancel_unknown", OmsCode.UNKNOWN_ORDER),
    ],
)
def test_requests_the_state_forbids_raise_with_a_code_and_change_nothing(state, action, code):
    oms, order = start(state)
    before = oms.snapshot()

    with pytest.raises(OmsError) as caught:
        if action == "cancel":
            oms.request_cancel(order.client_order_id)
        elif action == "replace":
            oms.request_replace(order.client_order_id, 101, 10)
        elif action == "replace_to_zero":
            oms.request_replace(order.client_order_id, 101, 0)
        else:
            oms.request_cancel("nobody-1")

    assert caught.value.code == code
    assert oms.snapshot() == before


def test_cancel_all_cancels_every_live_order_in_scope_and_skips_those_already_being_canceled():
    oms = make_oms()
    a1 = submit(oms, strategy_id="a")
    a2 = submit(oms, strategy_id="a")
    b1 = submit(oms, strategy_id="b")
    oms.request_cancel(a2.client_order_id)
    done = submit(oms, strategy_id="a")
    oms.on_execution_report(rejected(done))

    msgs = oms.cancel_all(strategy_id="a")
    everything = oms.cancel_all()

    assert [m.orig_client_order_id for m in msgs] == [a1.client_order_id]
    assert [m.orig_client_order_id for m in everything] == [b1.client_order_id]
    assert all(o.status == S.PENDING_CANCEL for o in (a1, a2, b1))


def test_cancel_all_by_symbol_leaves_other_symbols_alone():
    oms = make_oms()
    btc = submit(oms)
    eth = oms.new_order(
        strategy_id="mm",
        client_order_id="eth-1",
        symbol="ETHUSDT",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=10,
        quantity=1,
    )

    msgs = oms.cancel_all(symbol="ETHUSDT")

    assert [m.orig_client_order_id for m in msgs] == ["eth-1"]
    assert (btc.status, eth.status) == (S.PENDING_NEW, S.PENDING_CANCEL)


def mass_canceled(order):
    """What the venue sends for each order a mass cancel took: the mass cancel's id, the order's id as orig."""
    return report(
        order,
        ExecType.CANCELED,
        S.CANCELED,
        client_order_id=order.pending_cancel_id,
        orig_client_order_id=order.client_order_id,
        leaves_quantity=0,
        reason_code="MASS_CANCEL",
    )


def mass_cancel_rejected(oms: Oms, mass_id: str) -> ExecutionReport:
    """The venue refusing a whole mass cancel (of one symbol: a report must name one): it names the request only."""
    order = next(o for o in oms.working_orders() if o.pending_cancel_id == mass_id)
    return report(
        order,
        ExecType.CANCEL_REJECTED,
        S.REJECTED,
        client_order_id=mass_id,
        orig_client_order_id="",
        reason_code="DUPLICATE_CLIENT_ORDER_ID",
    )


def eth_order(oms: Oms, strategy_id: str = "mm") -> Order:
    return oms.new_order(
        strategy_id=strategy_id,
        client_order_id=oms.next_client_order_id(strategy_id),
        symbol="ETHUSDT",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=10,
        quantity=1,
    )


def test_a_mass_cancel_puts_every_acknowledged_order_in_flight_under_one_id_from_the_counter():
    oms = make_oms()
    a = submit(oms, strategy_id="a")
    b = submit(oms, strategy_id="b")
    oms.on_execution_report(ack(a))
    oms.on_execution_report(ack(b))

    mass, cancels = oms.request_mass_cancel()

    assert mass == VenueMassCancel(client_order_id="MASS-3", account=ACCOUNT, symbol="", ts=1_000)
    assert cancels == []
    assert [(o.status, o.pending_cancel_id) for o in (a, b)] == [(S.PENDING_CANCEL, "MASS-3")] * 2
    assert oms.get("MASS-3") is None  # one id for many orders is no order's alias
    assert oms.next_client_order_id("a") == "a-4"


def test_a_mass_cancel_by_symbol_leaves_other_symbols_and_orders_already_being_canceled_alone():
    oms = make_oms()
    btc = submit(oms)
    eth = eth_order(oms)
    eth_canceling = eth_order(oms)
    for order in (btc, eth, eth_canceling):
        oms.on_execution_report(ack(order))
    single = oms.request_cancel(eth_canceling.client_order_id)

    mass, cancels = oms.request_mass_cancel(symbol="ETHUSDT")

    assert (mass.symbol, cancels) == ("ETHUSDT", [])
    assert (btc.status, btc.pending_cancel_id) == (S.NEW, "")
    assert eth.pending_cancel_id == mass.client_order_id
    assert eth_canceling.pending_cancel_id == single.client_order_id


def test_an_order_the_venue_may_not_know_yet_gets_its_own_cancel_and_no_mass_cancel_goes_for_it_alone():
    oms = make_oms()
    in_flight = submit(oms)

    mass, cancels = oms.request_mass_cancel()

    assert mass is None
    assert [m.orig_client_order_id for m in cancels] == [in_flight.client_order_id]
    assert in_flight.pending_cancel_id == cancels[0].client_order_id


def test_the_venue_cancels_every_order_of_a_mass_cancel_and_its_report_finds_each_order():
    clock = FakeClock(1)
    venue = Venue([SYM], clock=clock.now)
    oms = Oms(clock, ACCOUNT)

    def route(msgs: list) -> list:
        events = []
        for m in msgs:
            if isinstance(m, ExecutionReport):
                events += oms.on_execution_report(m)
            elif isinstance(m, MassCancelReport):
                events += oms.on_mass_cancel_report(m)
        return events

    orders = [submit(oms, side=side, price=price) for side, price in ((Side.BUY, 99), (Side.SELL, 101))]
    for order in orders:
        route(venue.handle(oms.place_message(order)))
    route(venue.handle(oms.request_replace(orders[1].client_order_id, 102, 10)))  # known by the replace's id now
    in_flight = submit(oms, price=98)  # its place is not sent yet

    mass, cancels = oms.request_mass_cancel()
    events = route(venue.handle(oms.place_message(in_flight)))
    events += route(venue.handle(cancels[0]))
    events += route(venue.handle(mass))

    assert [type(e) for e in events] == [OrderAccepted, OrderCanceled, OrderCanceled, OrderCanceled]
    assert [e.code for e in events[2:]] == ["MASS_CANCEL", "MASS_CANCEL"]
    assert oms.working_orders() == [] and venue.open_orders(ACCOUNT) == []
    assert oms.anomalies == {}


def test_a_fill_racing_a_mass_cancel_is_booked_and_the_rest_of_the_order_is_canceled():
    oms, order = start("NEW")
    filled = submit(oms)
    oms.on_execution_report(ack(filled))
    oms.request_mass_cancel()

    fill_events = oms.on_execution_report(partial_fill(order))
    oms.on_execution_report(full_fill(filled))
    cancel_events = oms.on_execution_report(mass_canceled(order))

    assert [type(e) for e in fill_events] == [OrderFilled]
    assert [type(e) for e in cancel_events] == [OrderCanceled]
    assert cancel_events[0].canceled_quantity == 6
    assert (order.status, order.cum_quantity, filled.status) == (S.CANCELED, 4, S.FILLED)


def mass_cancel_report(mass_id: str, *orders, account=ACCOUNT, symbol=""):
    """The venue's one answer to a mass cancel (FIX 35=r with its affected orders)."""
    return MassCancelReport(
        client_order_id=mass_id,
        account=account,
        symbol=symbol,
        canceled=tuple((o.client_order_id, 7) for o in orders),
        reason_code="MASS_CANCEL",
        ts=5,
    )


def test_one_mass_cancel_report_cancels_every_order_it_names_for_all_its_leaves():
    oms = make_oms()
    a = submit(oms, strategy_id="a")
    b = submit(oms, strategy_id="b", side=Side.SELL, price=101)
    for order in (a, b):
        oms.on_execution_report(ack(order))
    oms.on_execution_report(partial_fill(b))
    mass, _ = oms.request_mass_cancel()

    events = oms.on_mass_cancel_report(mass_cancel_report(mass.client_order_id, a, b))

    assert [(type(e), e.client_order_id, e.canceled_quantity, e.code) for e in events] == [
        (OrderCanceled, a.client_order_id, 10, "MASS_CANCEL"),
        (OrderCanceled, b.client_order_id, 6, "MASS_CANCEL"),
    ]
    assert (a.status, b.status, b.cum_quantity) == (S.CANCELED, S.CANCELED, 4)
    assert oms.working_orders() == [] and oms.open_order_count() == 0
    assert oms.anomalies == {}


def test_a_repeated_mass_cancel_report_changes_nothing_and_is_counted():
    oms, order = start("NEW")
    mass, _ = oms.request_mass_cancel()
    report = mass_cancel_report(mass.client_order_id, order)
    oms.on_mass_cancel_report(report)

    again = oms.on_mass_cancel_report(report)

    assert again == []
    assert order.status == S.CANCELED
    assert oms.anomalies == {OmsCode.DUPLICATE_EXEC_ID: 1}


def test_a_second_mass_cancel_report_under_the_same_request_listing_other_orders_cancels_them():
    # One 35=q, and the venue's answer split over two 35=r under the request's ClOrdID: the second is new content.
    oms = make_oms()
    a = submit(oms, strategy_id="a")
    b = submit(oms, strategy_id="b", side=Side.SELL, price=101)
    for order in (a, b):
        oms.on_execution_report(ack(order))
    mass, _ = oms.request_mass_cancel()
    oms.on_mass_cancel_report(mass_cancel_report(mass.client_order_id, a))

    events = oms.on_mass_cancel_report(mass_cancel_report(mass.client_order_id, b))

    assert [(type(e), e.client_order_id) for e in events] == [(OrderCanceled, b.client_order_id)]
    assert (a.status, b.status) == (S.CANCELED, S.CANCELED)
    assert oms.anomalies == {}


def test_a_mass_cancel_report_skips_an_order_a_fill_finished_first_and_counts_it():
    oms = make_oms()
    filled = submit(oms)
    rest = submit(oms, price=99)
    for order in (filled, rest):
        oms.on_execution_report(ack(order))
    mass, _ = oms.request_mass_cancel()
    oms.on_execution_report(full_fill(filled))

    events = oms.on_mass_cancel_report(mass_cancel_report(mass.client_order_id, filled, rest))

    assert [e.client_order_id for e in events] == [rest.client_order_id]
    assert (filled.status, rest.status) == (S.FILLED, S.CANCELED)
    assert oms.anomalies == {OmsCode.CANCEL_ON_TERMINAL_ORDER: 1}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"account": "SOMEONE-ELSE"}, OmsCode.WRONG_ACCOUNT),
        ({"symbol": "ETHUSDT"}, OmsCode.SYMBOL_MISMATCH),
        ({"canceled": (("never-sent", 7),)}, OmsCode.UNKNOWN_ORDER),
    ],
)
def test_a_mass_cancel_report_that_does_not_fit_changes_nothing_and_is_counted(change, code):
    oms, order = start("NEW")
    mass, _ = oms.request_mass_cancel()
    report = msgspec.structs.replace(mass_cancel_report(mass.client_order_id, order), **change)

    events = oms.on_mass_cancel_report(report)

    assert events == []
    assert order.status == S.PENDING_CANCEL and oms.open_order_count() == 1
    assert oms.anomalies == {code: 1}


def test_a_refused_mass_cancel_puts_each_order_back_with_a_cancel_reject_naming_the_mass_cancel():
    oms = make_oms()
    a = submit(oms, strategy_id="a")
    b = submit(oms, strategy_id="b")
    oms.on_execution_report(ack(a))
    oms.on_execution_report(ack(b))
    mass, _ = oms.request_mass_cancel(symbol=SYM)

    events = oms.on_execution_report(mass_cancel_rejected(oms, mass.client_order_id))

    assert [(type(e), e.strategy_id, e.client_order_id, e.orig_client_order_id) for e in events] == [
        (CancelRejected, "a", mass.client_order_id, a.client_order_id),
        (CancelRejected, "b", mass.client_order_id, b.client_order_id),
    ]
    assert [(o.status, o.pending_cancel_id) for o in (a, b)] == [(S.NEW, "")] * 2
    assert [m.orig_client_order_id for m in oms.cancel_all()] == [a.client_order_id, b.client_order_id]


def test_a_mass_cancel_survives_a_snapshot_and_a_replay_issues_the_same_ids():
    def run() -> tuple[Oms, Order]:
        oms = make_oms()
        order = submit(oms)
        oms.on_execution_report(ack(order))
        oms.request_mass_cancel()
        return oms, order

    live, order = run()
    replayed, _ = run()
    restored = make_oms()
    restored.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(live.snapshot())))

    events = restored.on_execution_report(mass_canceled(order))

    same = ("next_id", "working")  # the exec ids differ: the report builder numbers them globally
    assert [replayed.snapshot()[k] for k in same] == [live.snapshot()[k] for k in same]
    assert [type(e) for e in events] == [OrderCanceled]


def test_a_denied_order_is_forgotten_and_a_sent_one_cannot_be_denied():
    oms = make_oms()
    denied = submit(oms)
    sent = submit(oms)
    oms.on_execution_report(ack(sent))

    oms.on_order_denied(denied.client_order_id)

    assert oms.get(denied.client_order_id) is None
    assert oms.working_orders() == [sent]
    with pytest.raises(OmsError) as caught:
        oms.on_order_denied(sent.client_order_id)
    assert caught.value.code == OmsCode.ORDER_NOT_PENDING_NEW


def test_working_quantity_counts_the_larger_size_while_a_replace_is_in_flight():
    oms = make_oms()
    up = submit(oms, quantity=10)
    down = submit(oms, quantity=10)
    for order in (up, down):
        oms.on_execution_report(ack(order))
        oms.on_execution_report(fill(order, 2))
    oms.request_replace(up.client_order_id, 100, 15)
    oms.request_replace(down.client_order_id, 100, 5)

    worst = oms.working_quantity(strategy_id="mm", symbol=SYM, side=Side.BUY)

    assert worst == (15 - 2) + (10 - 2)


def test_fees_come_from_the_fee_model_on_each_fill():
    def fee_model(order, price, qty, is_maker):
        return Decimal("-0.01") * qty if is_maker else Decimal("0.02") * qty

    oms = make_oms(fee_model=fee_model)
    order = submit(oms)
    oms.on_execution_report(ack(order))
    r = fill(order, 3)

    events = oms.on_execution_report(msgspec.structs.replace(r, is_maker=True))

    assert events[0].commission == Decimal("-0.03")


# ------------------------------------------------------------------ reconciliation


def status(order: Order, venue_status: OrderStatus, **fields) -> ExecutionReport:
    return report(order, ExecType.ORDER_STATUS, venue_status, **fields)


def test_reconcile_reports_a_missed_ack_and_missed_fills_as_events():
    oms, order = start("PENDING_NEW")

    events = oms.reconcile(status(order, S.PARTIALLY_FILLED, cum_quantity=6, leaves_quantity=4, last_price=99))

    assert [type(e) for e in events] == [OrderAccepted, OrderFilled]
    assert (events[1].last_quantity, events[1].last_price) == (6, 99)
    assert (order.status, order.cum_quantity, order.leaves_quantity) == (S.PARTIALLY_FILLED, 6, 4)
    assert oms.anomalies[OmsCode.RECONCILED_FILL] == 1


def test_reconcile_ends_an_order_the_venue_canceled_without_telling_us():
    oms, order = start("PARTIALLY_FILLED")

    events = oms.reconcile(status(order, S.CANCELED, cum_quantity=4, leaves_quantity=0))

    assert [type(e) for e in events] == [OrderCanceled]
    assert order.status == S.CANCELED
    assert oms.working_orders() == []


def test_reconcile_books_the_missing_fills_of_an_order_the_venue_says_is_filled():
    oms, order = start("NEW")

    events = oms.reconcile(status(order, S.FILLED, cum_quantity=10, leaves_quantity=0, last_price=100))

    assert [type(e) for e in events] == [OrderFilled]
    assert order.status == S.FILLED


@pytest.mark.parametrize(
    ("state", "event_type", "after"), [("PENDING_NEW", OrderRejected, S.REJECTED), ("NEW", OrderCanceled, S.CANCELED)]
)
def test_reconcile_ends_an_order_the_venue_does_not_know(state, event_type, after):
    oms, order = start(state)

    events = oms.reconcile(status(order, S.REJECTED, cum_quantity=0, leaves_quantity=0, reason_code="UNKNOWN_ORDER"))

    assert [type(e) for e in events] == [event_type]
    assert order.status == after
    assert oms.anomalies[OmsCode.RECONCILE_NOT_AT_VENUE] == 1


def test_reconcile_of_an_order_that_agrees_with_the_venue_emits_nothing():
    oms, order = start("PARTIALLY_FILLED")

    events = oms.reconcile(status(order, S.PARTIALLY_FILLED))

    assert events == []
    assert oms.anomalies == {}


def test_reconcile_adopts_a_replace_whose_report_was_lost():
    oms, order = start("PENDING_REPLACE")

    events = oms.reconcile(status(order, S.NEW, price=101, quantity=12, leaves_quantity=12))

    assert [type(e) for e in events] == [OrderReplaced]
    assert (order.price, order.quantity, order.status) == (101, 12, S.NEW)


def test_reconcile_cannot_revive_a_finished_order_but_counts_the_disagreement():
    oms, order = start("CANCELED")

    events = oms.reconcile(status(order, S.NEW, leaves_quantity=10))

    assert events == []
    assert order.status == S.CANCELED
    assert oms.anomalies == {OmsCode.RECONCILE_OPEN_AT_VENUE: 1}


def test_a_query_after_a_replace_names_the_id_the_venue_knows_the_order_by():
    oms, order = start("PENDING_REPLACE")
    origin = order.client_order_id
    oms.on_execution_report(replaced(order))

    msg = oms.query_message(origin)

    assert msg == VenueQueryOrder(client_order_id=order.client_order_id, account=ACCOUNT, symbol=SYM)
    assert msg.client_order_id != origin


def test_reconcile_refuses_a_report_that_is_not_a_status_report():
    oms, order = start("NEW")

    events = oms.reconcile(partial_fill(order))

    assert events == []
    assert order.cum_quantity == 0
    assert oms.anomalies == {OmsCode.NOT_A_STATUS_REPORT: 1}


# ------------------------------------------------------------------ memory bounds and snapshots


def test_finished_orders_beyond_the_bound_are_forgotten_and_their_reports_become_unknown():
    oms = make_oms(max_terminal_orders=2)
    orders = [submit(oms) for _ in range(3)]
    for order in orders:
        oms.on_execution_report(rejected(order))

    events = oms.on_execution_report(partial_fill(orders[0]))

    assert events == []
    assert oms.get(orders[0].client_order_id) is None
    assert oms.get(orders[2].client_order_id) is orders[2]
    assert oms.anomalies == {OmsCode.UNKNOWN_ORDER: 1}


def test_exec_ids_older_than_the_window_are_forgotten():
    oms = make_oms(exec_id_window=2)
    order = submit(oms)
    first = ack(order)
    oms.on_execution_report(first)
    oms.on_execution_report(partial_fill(order))
    oms.on_execution_report(partial_fill(order))

    oms.on_execution_report(first)

    assert oms.anomalies == {OmsCode.UNEXPECTED_NEW: 1}  # not recognised as a duplicate any more


def test_a_restored_oms_has_the_same_snapshot_and_behaves_the_same():
    oms, order = start("PENDING_REPLACE_PARTIAL")
    submit(oms, side=Side.SELL)
    done = submit(oms)
    oms.on_execution_report(rejected(done))
    oms.on_execution_report(ack(done))  # an anomaly, so the counters are not empty
    snap = oms.snapshot()
    copy = make_oms()

    copy.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(snap)))

    assert copy.snapshot() == snap
    r = replaced(order)
    assert oms.on_execution_report(r) == copy.on_execution_report(r)
    assert oms.cancel_all() == copy.cancel_all()
    assert oms.snapshot() == copy.snapshot()


def test_equal_histories_give_byte_equal_snapshots():
    def history() -> bytes:
        global _exec_ids
        _exec_ids = itertools.count(1)  # same exec ids for both runs
        oms, order = start("PENDING_CANCEL_PARTIAL")
        oms.on_execution_report(canceled(order))
        return msgspec.msgpack.encode(oms.snapshot())

    first = history()

    assert history() == first


# ------------------------------------------------------------------ arbitrary venue input

REPORT_FUZZ = st.lists(
    st.tuples(
        st.integers(0, 3),  # which order (3 = an id nobody issued)
        st.sampled_from(list(ExecType)),
        st.sampled_from(list(OrderStatus)),
        st.integers(0, 15),  # last quantity
        st.integers(0, 3),  # which id the report names: origin, current, pending request, unknown
        st.booleans(),  # resend the previous report (same exec id)
        st.sampled_from(["", "cancel", "replace"]),  # an engine request first
    ),
    max_size=50,
)


@settings(max_examples=150, deadline=None)
@given(REPORT_FUZZ)
def test_no_sequence_of_venue_reports_raises_or_breaks_an_order_invariant(steps):
    oms = make_oms()
    orders = [submit(oms, quantity=10) for _ in range(3)]
    previous = None
    finished: dict[str, OrderStatus] = {}

    for which, exec_type, venue_status, qty, name, resend, request in steps:
        order = orders[which] if which < 3 else None
        if order is not None and request and not order.is_terminal and not order.pending_cancel_id:
            if request == "cancel":
                oms.request_cancel(order.client_order_id)
            elif not order.pending_replace_id:
                oms.request_replace(order.client_order_id, 101, order.cum_quantity + 5)
        if resend and previous is not None:
            r = previous
        else:
            target = order or orders[0]
            cid = (
                target.origin_client_order_id,
                target.client_order_id,
                target.pending_cancel_id or target.pending_replace_id or target.client_order_id,
                "nobody-1",
            )[name if order is not None else 3]
            r = (
                report(
                    target,
                    exec_type,
                    venue_status,
                    client_order_id=cid,
                    last_quantity=qty if exec_type == ExecType.TRADE else 0,
                    last_price=100 if exec_type == ExecType.TRADE else 0,
                    cum_quantity=min(target.cum_quantity + qty, 10)
                    if exec_type == ExecType.TRADE
                    else target.cum_quantity,
                )
                if exec_type != ExecType.TRADE or qty > 0
                else None
            )
            if r is None:
                continue
        anomalies_before = sum(oms.anomalies.values())

        events = oms.on_execution_report(r)

        previous = r
        if not events:
            assert sum(oms.anomalies.values()) > anomalies_before or r.exec_type == ExecType.ORDER_STATUS
        for o in orders:
            assert 0 <= o.cum_quantity <= o.quantity
            if o.is_terminal:
                assert o.leaves_quantity == 0
                assert finished.setdefault(o.origin_client_order_id, o.status) == o.status  # terminal is final
            else:
                assert o.leaves_quantity == o.quantity - o.cum_quantity > 0
        assert oms.working_orders() == [o for o in orders if not o.is_terminal]
        assert_counters_match_a_recount(oms)


# ------------------------------------------------------------------ against the simulated venue

VENUE_ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["new", "new", "cancel", "replace", "cross", "query", "cancel_all", "mass_cancel"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(95, 105),
        st.integers(1, 5),
        st.integers(0, 10),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VENUE_ACTIONS)
def test_the_oms_agrees_with_the_venue_after_any_sequence_of_requests_and_fills(actions):
    clock = FakeClock(1)
    venue = Venue([SYM], clock=clock.now)
    oms = Oms(clock, ACCOUNT)
    other = itertools.count(1)

    def route(msgs):
        for msg in msgs:
            if isinstance(msg, ExecutionReport) and msg.account == ACCOUNT:
                for event in oms.on_execution_report(msg):
                    if isinstance(event, OrderFilled):
                        assert event.cum_quantity <= oms.get(event.client_order_id).quantity
            elif isinstance(msg, MassCancelReport) and msg.account == ACCOUNT:
                oms.on_mass_cancel_report(msg)

    for kind, side, price, qty, pick in actions:
        clock.advance(1)
        working = oms.working_orders()
        target = working[pick % len(working)] if working else None
        if kind == "new":
            order = submit(oms, side=side, price=price, quantity=qty)
            route(venue.handle(oms.place_message(order)))
        elif kind == "cancel" and target is not None and not target.pending_cancel_id:
            route(venue.handle(oms.request_cancel(target.client_order_id)))
        elif kind == "replace" and target is not None and not target.pending_cancel_id:
            if not target.pending_replace_id:
                route(venue.handle(oms.request_replace(target.client_order_id, price, qty + target.cum_quantity)))
        elif kind == "cross":  # another participant trades against our resting orders
            route(
                venue.place_order(
                    client_order_id=f"x{next(other)}",
                    account="OTHER",
                    symbol=SYM,
                    side=side,
                    order_type=OrderType.LIMIT,
                    time_in_force=TimeInForce.IOC,
                    price=price,
                    quantity=qty,
                )
            )
        elif kind == "query" and target is not None:
            route(venue.handle(oms.query_message(target.origin_client_order_id)))
        elif kind == "cancel_all":
            for msg in oms.cancel_all():
                route(venue.handle(msg))
        elif kind == "mass_cancel":
            mass, cancels = oms.request_mass_cancel(symbol=SYM if pick % 2 else None)
            for msg in [*cancels, *([mass] if mass is not None else [])]:
                route(venue.handle(msg))
        assert_counters_match_a_recount(oms)

    assert oms.anomalies == {}
    live = {o.client_order_id: o for o in venue.open_orders(ACCOUNT)}
    ours = {o.client_order_id: o for o in oms.working_orders()}
    assert ours.keys() == live.keys()
    for cid, order in ours.items():
        assert (order.price, order.quantity, order.cum_quantity) == (
            live[cid].price,
            live[cid].quantity,
            live[cid].cum_quantity,
        )
        assert order.status in (S.NEW, S.PARTIALLY_FILLED)
        assert order.leaves_quantity == live[cid].leaves_quantity


def test_a_request_whose_message_cannot_be_built_leaves_the_order_untouched():
    oms = make_oms()
    order = oms.new_order(
        strategy_id="s" * 64,  # request ids "{strategy_id}-{n}" would pass the protocol's 64-character limit
        client_order_id="short-1",
        symbol=SYM,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=100,
        quantity=1,
    )
    oms.on_execution_report(ack(order))

    with pytest.raises(ProtocolError):
        oms.request_cancel("short-1")

    assert (order.status, order.pending_cancel_id, order.aliases) == (S.NEW, "", None)


def test_a_snapshot_of_another_account_is_refused():
    snap = Oms(FakeClock(), "OTHER").snapshot()

    with pytest.raises(OmsError) as caught:
        make_oms().restore(snap)

    assert caught.value.code == OmsCode.BAD_SNAPSHOT


# ------------------------------------------------------------------ the risk gate's counters


def recount(oms: Oms) -> tuple[dict, dict, dict, dict]:
    """What the OMS's incremental counters must hold, from a full pass over the working orders (the way the risk
    gate counted before the counters existed)."""
    sides: dict = {}
    net: dict = {}
    by_strategy: dict = {}
    by_symbol: dict = {}
    for o in oms.working_orders():
        by_strategy[o.strategy_id] = by_strategy.get(o.strategy_id, 0) + 1
        by_symbol[o.symbol] = by_symbol.get(o.symbol, 0) + 1
        lots = o.worst_case_leaves()
        for table, key in ((sides, (o.strategy_id, o.symbol, o.side)), (net, (o.symbol, o.side))):
            count, total, value, zero_lots, market, prices = table.get(key, (0, 0, 0, 0, 0, {}))
            prices = dict(prices)
            for price in (o.price, o.pending_price) if o.pending_price else (o.price,):
                prices[price] = prices.get(price, 0) + 1
            table[key] = (
                count + 1,
                total + lots,
                value + lots * o.price,
                zero_lots + (0 if o.price else lots),
                market + (o.order_type == OrderType.MARKET),
                prices,
            )
    return sides, net, by_strategy, by_symbol


def assert_counters_match_a_recount(oms: Oms, views: dict | None = None) -> None:
    sides, net, by_strategy, by_symbol = recount(oms)
    empty = (0, 0, 0, 0, 0, {})
    for (strategy_id, symbol), view in (views or {}).items():  # views taken earlier still show the counts
        for side, opposite in ((Side.BUY, Side.SELL), (Side.SELL, Side.BUY)):
            mine, every, others = view.sides[side]
            assert mine.as_tuple() == sides.get((strategy_id, symbol, side), empty)
            assert every.as_tuple()[:5] == net.get((symbol, side), empty)[:5]
            assert others is oms.working_sides(symbol, opposite)
        assert view.firm.n == len(oms.working_orders())
        assert view.strategy.n == by_strategy.get(strategy_id, 0)
        assert view.symbol.n == by_symbol.get(symbol, 0)
    symbols = {key[1] for key in sides} | {SYM, "ETH-USD"}
    for symbol in symbols:
        for side in (Side.BUY, Side.SELL):
            counted = oms.working_sides(symbol, side)
            for strategy_id in counted.keys() | {k[0] for k in sides if k[1:] == (symbol, side)}:
                got = oms.working_side(strategy_id, symbol, side)
                assert got is counted.get(strategy_id)
                assert (got.as_tuple() if got else empty) == sides.get((strategy_id, symbol, side), empty)
            got = oms.net_working_side(symbol, side)
            want = net.get((symbol, side), empty)
            assert (got.as_tuple()[:5] if got else empty[:5]) == want[:5]
            assert got is None or got.prices is None
    assert oms.open_order_count() == len(oms.working_orders())
    for strategy_id in ("mm", "b", "c"):
        for symbol in symbols:  # the per-(strategy, symbol) index, in creation order
            assert oms.working_orders(strategy_id=strategy_id, symbol=symbol) == [
                o for o in oms.working_orders() if (o.strategy_id, o.symbol) == (strategy_id, symbol)
            ]
    for strategy_id in by_strategy.keys() | {"mm", "b", "c"}:
        assert oms.open_order_count(strategy_id=strategy_id) == by_strategy.get(strategy_id, 0)
    for symbol in symbols:
        assert oms.open_order_count(symbol=symbol) == by_symbol.get(symbol, 0)


COUNTER_STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "new",
                "new",
                "market",
                "deny",
                "ack",
                "fill",
                "cancel",
                "canceled",
                "replace",
                "replaced",
                "cancel_rejected",
                "mass_cancel",
                "mass_canceled",
                "mass_rejected",
                "rejected",
                "expired",
                "status",
                "restore",
            ]
        ),
        st.sampled_from(["mm", "b", "c"]),
        st.sampled_from([SYM, "ETH-USD"]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(98, 102),
        st.integers(1, 6),
        st.integers(0, 20),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(COUNTER_STEPS)
def test_after_any_sequence_of_operations_the_risk_counters_equal_a_recount(steps):
    oms = make_oms()
    pairs = [(strategy_id, symbol) for strategy_id in ("mm", "b") for symbol in (SYM, "ETH-USD")]
    views = {pair: oms.risk_view(*pair) for pair in pairs}

    for kind, strategy_id, symbol, side, price, qty, pick in steps:
        working = oms.working_orders()
        target = working[pick % len(working)] if working else None
        if kind in ("new", "market", "deny"):
            order = oms.new_order(
                strategy_id=strategy_id,
                client_order_id=oms.next_client_order_id(strategy_id),
                symbol=symbol,
                side=side,
                order_type=OrderType.MARKET if kind == "market" else OrderType.LIMIT,
                time_in_force=TimeInForce.IOC if kind == "market" else TimeInForce.GTC,
                price=0 if kind == "market" else price,
                quantity=qty,
            )
            if kind == "deny":
                oms.on_order_denied(order.client_order_id)
        elif kind == "restore":
            snapshot = msgspec.msgpack.decode(msgspec.msgpack.encode(oms.snapshot()))
            if pick % 2:  # into a fresh OMS
                oms = make_oms()
                views = {pair: oms.risk_view(*pair) for pair in pairs}
            oms.restore(snapshot)  # else in place: views taken before stay valid
        elif target is None or (target.order_type == OrderType.MARKET and kind in ("replace", "replaced")):
            continue
        elif kind == "ack" and target.base_status == S.PENDING_NEW:
            oms.on_execution_report(ack(target))
        elif kind == "fill":
            lots = min(qty, target.leaves_quantity)
            cum = target.cum_quantity + lots
            leaves = target.quantity - cum
            trade = report(
                target,
                ExecType.TRADE,
                S.PARTIALLY_FILLED if leaves else S.FILLED,
                last_price=target.price or 100,  # a MARKET order fills at a price of the market's
                last_quantity=lots,
                cum_quantity=cum,
                leaves_quantity=leaves,
            )
            oms.on_execution_report(trade)
        elif kind == "cancel" and not target.pending_cancel_id:
            oms.request_cancel(target.client_order_id)
        elif kind == "canceled":
            oms.on_execution_report(canceled(target))
        elif kind == "replace" and not target.pending_cancel_id and not target.pending_replace_id:
            oms.request_replace(target.client_order_id, price, target.cum_quantity + qty)
        elif kind == "replaced" and target.pending_replace_id:
            oms.on_execution_report(replaced(target))
        elif kind == "cancel_rejected" and (target.pending_cancel_id or target.pending_replace_id):
            oms.on_execution_report(cancel_rejected(target))
        elif kind == "mass_cancel":
            oms.request_mass_cancel(symbol=symbol if pick % 2 else None)
        elif kind == "mass_canceled" and target.pending_cancel_id.startswith("MASS-"):
            oms.on_execution_report(mass_canceled(target))
        elif kind == "mass_rejected" and target.pending_cancel_id.startswith("MASS-"):
            oms.on_execution_report(mass_cancel_rejected(oms, target.pending_cancel_id))
        elif kind == "rejected":
            oms.on_execution_report(rejected(target))
        elif kind == "expired":
            oms.on_execution_report(expired(target))
        elif kind == "status":  # the venue's terms differ from ours: the order takes them
            oms.on_execution_report(
                report(target, ExecType.ORDER_STATUS, S.NEW, price=price, quantity=target.cum_quantity + qty)
            )

        assert_counters_match_a_recount(oms, views)
