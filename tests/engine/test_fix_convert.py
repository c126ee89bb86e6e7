"""FIX 4.4 <-> protocol mapping (engine.fix.convert): round trips, grid checks, what FIX leaves out."""

from __future__ import annotations

import msgspec
import pytest
import quickfix as fix

from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.fix import convert
from engine.fix.convert import FixConvertError, OrderRecord
from engine.instruments import InstrumentRegistry
from engine.protocol import (
    ExecutionReport,
    MassCancelReport,
    VenueCancelOrder,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
)

INSTRUMENTS = InstrumentRegistry.from_toml()
TS = 1_732_240_000_123_456_789


def reparse(msg: fix.Message) -> fix.Message:
    """The message as the other side reads it off the wire."""
    again = fix.Message()
    again.setString(msg.toString(), False)
    return again


def report(**changes) -> ExecutionReport:
    fields = dict(
        exec_id="17",
        client_order_id="o-1",
        venue_order_id=42,
        account="MM1",
        symbol="BTCUSDT",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        exec_type=ExecType.TRADE,
        status=OrderStatus.PARTIALLY_FILLED,
        price=600_001,
        quantity=5,
        last_price=600_001,
        last_quantity=2,
        leaves_quantity=3,
        cum_quantity=2,
        is_maker=True,
        ts=TS,
    )
    fields.update(changes)
    return ExecutionReport(**fields)


def test_a_limit_order_survives_the_trip_to_fix_and_back_with_its_ticks_lots_and_timestamp():
    order = VenuePlaceOrder(
        client_order_id="o-1",
        account="MM1",
        symbol="BTCUSDT",
        side=Side.SELL,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        price=600_001,
        quantity=1_234,
        ts=TS,
    )

    msg = reparse(convert.place_to_fix(order, INSTRUMENTS))
    back = convert.fix_to_command(msg, "MM1", INSTRUMENTS)

    assert msg.getField(convert.PRICE) == "60000.1"
    assert msg.getField(convert.ORDER_QTY) == "1.234"
    assert back == order


def test_post_only_travels_as_exec_inst_6_and_a_market_order_has_no_price():
    post_only = VenuePlaceOrder(
        client_order_id="p",
        account="MM1",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=10,
        quantity=1,
        post_only=True,
        ts=TS,
    )
    market = VenuePlaceOrder(
        client_order_id="m",
        account="MM1",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        time_in_force=TimeInForce.IOC,
        price=0,
        quantity=1,
        ts=TS,
    )

    post_only_msg = reparse(convert.place_to_fix(post_only, INSTRUMENTS))
    market_msg = reparse(convert.place_to_fix(market, INSTRUMENTS))

    assert post_only_msg.getField(convert.EXEC_INST) == "6"
    assert convert.fix_to_command(post_only_msg, "MM1", INSTRUMENTS) == post_only
    assert not market_msg.isSetField(convert.PRICE)
    assert convert.fix_to_command(market_msg, "MM1", INSTRUMENTS) == market


def test_cancel_replace_status_and_mass_cancel_become_the_same_venue_commands_at_the_venue():
    record = OrderRecord("BTCUSDT", Side.SELL, OrderType.LIMIT, TimeInForce.GTC, 600_001, 5)
    cancel = VenueCancelOrder(client_order_id="c", orig_client_order_id="o", account="MM1", symbol="BTCUSDT", ts=TS)
    replace = VenueReplaceOrder(
        client_order_id="r", orig_client_order_id="o", account="MM1", symbol="BTCUSDT", price=7, quantity=3, ts=TS
    )
    query = VenueQueryOrder(client_order_id="o", account="MM1", symbol="BTCUSDT")
    mass_symbol = VenueMassCancel(client_order_id="k1", account="MM1", symbol="BTCUSDT", ts=TS)
    mass_all = VenueMassCancel(client_order_id="k2", account="MM1", ts=TS)

    messages = [
        convert.cancel_to_fix(cancel, record),
        convert.replace_to_fix(replace, record, INSTRUMENTS),
        convert.query_to_fix(query, record),
        convert.mass_cancel_to_fix(mass_symbol),
        convert.mass_cancel_to_fix(mass_all),
    ]
    back = [convert.fix_to_command(reparse(m), "MM1", INSTRUMENTS) for m in messages]

    assert back == [cancel, replace, query, mass_symbol, mass_all]
    assert messages[0].getField(convert.SIDE) == "2"  # FIX 4.4 wants the side; the gateway's record has it
    assert messages[4].getField(convert.MASS_CANCEL_REQUEST_TYPE) == "7"


@pytest.mark.parametrize(
    ("tag", "value", "code"),
    [
        (convert.PRICE, "60000.05", "PRICE_OFF_TICK"),
        (convert.PRICE, "-1", "INVALID_PRICE"),
        (convert.PRICE, "abc", "INVALID_PRICE"),
        (convert.ORDER_QTY, "0.0005", "QUANTITY_OFF_LOT"),
        (convert.ORDER_QTY, "0", "INVALID_QUANTITY"),
        (convert.SYMBOL, "NOPE", "UNKNOWN_SYMBOL"),
        (convert.SIDE, "5", "INVALID_FIELD"),
        (convert.CL_ORD_ID, "x" * 65, "INVALID_ID"),
    ],
)
def test_an_order_value_the_protocol_cannot_hold_is_refused_with_a_reason_code_and_the_tag(tag, value, code):
    order = VenuePlaceOrder(
        client_order_id="o",
        account="MM1",
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=10,
        quantity=1,
    )
    msg = convert.place_to_fix(order, INSTRUMENTS)
    msg.setField(tag, value)

    with pytest.raises(FixConvertError) as caught:
        convert.fix_to_command(reparse(msg), "MM1", INSTRUMENTS)

    assert caught.value.code == code
    assert caught.value.tag == tag


@pytest.mark.parametrize(
    "exec_type",
    [ExecType.NEW, ExecType.TRADE, ExecType.CANCELED, ExecType.REPLACED, ExecType.EXPIRED, ExecType.ORDER_STATUS],
)
def test_an_execution_report_survives_the_trip_to_fix_and_back(exec_type):
    changes = {} if exec_type == ExecType.TRADE else {"last_price": 0, "last_quantity": 0, "is_maker": False}
    original = report(exec_type=exec_type, orig_client_order_id="o-0", reason_code="MASS_CANCEL", text="bye", **changes)

    msg = reparse(convert.report_to_fix(original, INSTRUMENTS))
    back = convert.fix_to_report(msg, INSTRUMENTS, {})

    assert back == original


def test_exec_ids_and_order_ids_carry_the_venue_boot_so_a_restarted_venue_never_repeats_them():
    first_boot = convert.report_to_fix(report(), INSTRUMENTS, exec_prefix="B1-", order_id_base=1 * 10**12)
    second_boot = convert.report_to_fix(report(), INSTRUMENTS, exec_prefix="B2-", order_id_base=2 * 10**12)

    first = convert.fix_to_report(reparse(first_boot), INSTRUMENTS, {})
    second = convert.fix_to_report(reparse(second_boot), INSTRUMENTS, {})

    assert (first.exec_id, second.exec_id) == ("B1-17", "B2-17")
    assert first.venue_order_id != second.venue_order_id


def test_a_rejection_carries_its_reason_code_in_text_and_the_nearest_standard_ord_rej_reason():
    rejected = report(
        exec_type=ExecType.REJECTED,
        status=OrderStatus.REJECTED,
        last_price=0,
        last_quantity=0,
        is_maker=False,
        leaves_quantity=0,
        cum_quantity=0,
        reason_code="DUPLICATE_CLIENT_ORDER_ID",
        text="id used",
    )

    msg = reparse(convert.report_to_fix(rejected, INSTRUMENTS))

    assert msg.getField(convert.TEXT) == "DUPLICATE_CLIENT_ORDER_ID: id used"
    assert msg.getField(convert.ORD_REJ_REASON) == "6"
    assert convert.fix_to_report(msg, INSTRUMENTS, {}) == rejected


def test_a_cancel_reject_is_a_35_9_and_the_gateway_fills_symbol_and_side_from_the_order_it_sent():
    refused = report(
        exec_type=ExecType.CANCEL_REJECTED,
        status=OrderStatus.FILLED,
        client_order_id="c-1",
        orig_client_order_id="o-1",
        last_price=0,
        last_quantity=0,
        is_maker=False,
        reason_code="UNKNOWN_ORDER",
    )
    records = {"o-1": OrderRecord("BTCUSDT", Side.SELL, OrderType.LIMIT, TimeInForce.GTC, 600_001, 5)}

    msg = reparse(convert.report_to_fix(refused, INSTRUMENTS, cxl_rej_response_to=convert.CXL_REJ_TO_REPLACE))
    msg.getHeader().setField(convert.MSG_SEQ_NUM, "9")
    back = convert.fix_to_report(msg, INSTRUMENTS, records)

    assert convert.msg_type(msg) == "9"
    assert msg.getField(convert.CXL_REJ_RESPONSE_TO) == "2"
    assert (back.exec_type, back.status, back.reason_code) == (
        ExecType.CANCEL_REJECTED,
        OrderStatus.FILLED,
        "UNKNOWN_ORDER",
    )
    assert (back.symbol, back.side, back.price, back.quantity) == ("BTCUSDT", Side.SELL, 600_001, 5)


def test_a_business_message_reject_becomes_a_venue_command_rejected_with_the_code_and_the_order_id():
    msg = reparse(convert.business_reject_to_fix(7, "D", "o-9", "PRICE_OFF_TICK", "60000.05 is off the grid"))

    rejected = convert.fix_to_command_rejected(msg)

    assert (rejected.command, rejected.code, rejected.client_order_id) == ("VenuePlaceOrder", "PRICE_OFF_TICK", "o-9")
    assert rejected.reason == "60000.05 is off the grid"


def test_timestamps_keep_nanoseconds_and_a_bad_one_is_refused():
    text = convert.format_utc_ns(TS)

    assert convert.parse_utc_ns(text) == TS
    assert convert.parse_utc_ns("20241122-01:46:40.123") == 1_732_240_000_123_000_000
    with pytest.raises(FixConvertError):
        convert.parse_utc_ns("yesterday")


def test_a_mass_cancel_report_crosses_fix_as_one_35r_listing_every_canceled_order_in_its_group():
    original = MassCancelReport(
        client_order_id="MASS-7",
        account="MM1",
        symbol="BTCUSDT",
        canceled=tuple((f"mm-{i}", i + 1) for i in range(300)),
        reason_code="MASS_CANCEL",
        ts=TS,
    )

    msg = convert.mass_cancel_report_to_fix(original, order_id_base=5_000)
    back = convert.fix_to_mass_cancel_report(msg.toString(), "MM1")

    group = fix.Group(convert.NO_AFFECTED_ORDERS, 41)
    msg.getGroup(300, group)  # the last entry, read through QuickFIX's own group parsing
    assert (group.getField(41), group.getField(535)) == ("mm-299", "5300")
    assert msg.getField(convert.TOTAL_AFFECTED_ORDERS) == "300"
    assert back == msgspec.structs.replace(original, canceled=tuple((f"mm-{i}", 5_001 + i) for i in range(300)))


def test_a_35r_without_affected_orders_is_left_to_the_per_order_reports_that_follow_it():
    empty = MassCancelReport(client_order_id="MASS-8", account="MM1", ts=TS)

    text = convert.mass_cancel_report_to_fix(empty).toString()

    assert convert.fix_to_mass_cancel_report(text, "MM1") is None


def test_a_35r_whose_group_count_disagrees_with_its_entries_is_refused():
    text = convert.mass_cancel_report_to_fix(
        MassCancelReport(client_order_id="MASS-9", account="MM1", canceled=(("a", 1), ("b", 2)), ts=TS)
    ).toString()

    with pytest.raises(FixConvertError, match="NoAffectedOrders says 3"):
        convert.fix_to_mass_cancel_report(text.replace("534=2", "534=3"), "MM1")
