"""The desk's limit rules without a database: what loosens, the hierarchy, the engine's own checks, utilisation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.protocol import Codec, InstrumentRegistry
from riskdesk.services import limit_rules
from riskdesk.services.limit_rules import FIELD_BY_NAME, LimitError
from tests.engine_process import INSTRUMENTS_FILE

CODEC = Codec(InstrumentRegistry.from_toml(INSTRUMENTS_FILE))


@pytest.mark.parametrize(
    ("old", "new", "loosened"),
    [
        ({"max_order_quantity": "1"}, {"max_order_quantity": "0.5"}, []),
        ({"max_order_quantity": "1"}, {"max_order_quantity": "2"}, ["max_order_quantity"]),
        ({"max_order_quantity": "1"}, {}, ["max_order_quantity"]),
        ({}, {"max_order_quantity": "1"}, []),
        ({"restricted_symbols": ["ETHUSDT"]}, {"restricted_symbols": ["ETHUSDT", "ESM4"]}, []),
        ({"restricted_symbols": ["ETHUSDT"]}, {}, ["restricted_symbols"]),
        ({"duplicate_window_ns": 1000}, {"duplicate_window_ns": 500}, ["duplicate_window_ns"]),
        # 10 per second -> 10 per two seconds is a lower rate: tighter.
        (
            {"max_orders_per_window": 10, "rate_window_ns": 10**9},
            {"max_orders_per_window": 10, "rate_window_ns": 2 * 10**9},
            [],
        ),
        (
            {"max_orders_per_window": 10, "rate_window_ns": 10**9},
            {"max_orders_per_window": 20, "rate_window_ns": 10**9},
            ["max_orders_per_window"],
        ),
        ({"max_daily_loss": "5000"}, {"max_daily_loss": "5000.00"}, []),
    ],
)
def test_a_change_loosens_exactly_the_fields_that_let_more_through(old, new, loosened):
    assert limit_rules.loosened_fields(old, new) == loosened


def test_an_instrument_limit_above_its_strategys_or_the_firms_is_refused_with_the_binding_scope():
    others = {("firm", ""): {"max_position": "1"}, ("strategy", "as-btc"): {"max_position": "0.5"}}

    errors = limit_rules.hierarchy_errors(
        "instrument", "BTCUSDT", {"max_position": "0.8"}, others=others, strategy_symbols={"as-btc": "BTCUSDT"}
    )

    assert [(e.code, e.field) for e in errors] == [("LIMIT_ABOVE_PARENT", "max_position")]
    assert "strategy as-btc" in errors[0].reason


def test_a_firm_limit_below_a_child_limit_is_refused_until_the_child_is_lowered():
    others = {("instrument", "BTCUSDT"): {"max_order_notional": "100000"}}

    errors = limit_rules.hierarchy_errors(
        "firm", "", {"max_order_notional": "50000"}, others=others, strategy_symbols={}
    )

    assert [e.code for e in errors] == ["LIMIT_BELOW_CHILD"]


def test_limits_within_their_parents_pass_the_hierarchy():
    others = {("firm", ""): {"max_position": "1", "max_open_orders": 100}}

    assert (
        limit_rules.hierarchy_errors(
            "strategy", "as-btc", {"max_position": "1", "max_open_orders": 5}, others=others, strategy_symbols={}
        )
        == []
    )


@pytest.mark.parametrize(
    ("kind", "name", "limits", "code"),
    [
        ("instrument", "BTCUSDT", {"max_order_quantity": Decimal("0.0005")}, "LIMIT_QUANTITY_OFF_LOT"),
        ("firm", "", {"max_orders_per_window": 5}, "LIMIT_INVALID_FIELD"),
        ("firm", "", {"price_collar_pct": Decimal("150")}, "LIMIT_INVALID_FIELD"),
        ("firm", "", {"max_order_notional": Decimal("-1")}, "LIMIT_INVALID_FIELD"),
        ("firm", "", {"restricted_symbols": ("NOPE",)}, "LIMIT_UNKNOWN_SYMBOL"),
        ("instrument", "BTCUSDT", {"max_daily_loss": Decimal("100")}, "LIMIT_UNSUPPORTED"),
    ],
)
def test_what_the_engine_would_refuse_is_refused_before_sending_with_a_code(kind, name, limits, code):
    with pytest.raises(LimitError) as caught:
        limit_rules.validate_for_engine(kind, name, limits, CODEC)

    assert caught.value.code == code


def test_limits_are_stored_canonically_so_equal_limits_compare_equal():
    assert limit_rules.canonical({"max_position": Decimal("0.50"), "restricted_symbols": ("b", "a")}) == {
        "max_position": "0.5",
        "restricted_symbols": ["a", "b"],
    }


@pytest.mark.parametrize(
    ("field", "limit", "figures", "percent"),
    [
        ("max_open_orders", 10, {"open_orders": 8}, 80.0),
        ("max_position", "0.5", {"position_quantity": "-0.5", "position": -500}, 100.0),  # units, not lots
        ("max_position", "0.5", {"position": 500}, None),  # lots are never compared with units
        ("max_daily_loss", "1000", {"daily_pnl": "-250"}, 25.0),
        ("max_daily_loss", "1000", {"daily_pnl": "400"}, 0.0),
        ("max_order_quantity", "1", {"open_orders": 3}, None),
    ],
)
def test_utilisation_is_the_measured_figure_over_the_limit(field, limit, figures, percent):
    assert limit_rules.utilisation_percent(FIELD_BY_NAME[field], limit, figures) == percent


def test_a_position_limit_off_the_lot_grid_is_full_where_the_gate_rounds_it_down():
    spec = FIELD_BY_NAME["max_position"]

    full = limit_rules.utilisation_percent(spec, "0.0065", {"position_quantity": "0.006"}, lot_size=Decimal("0.001"))

    assert full == 100.0
    assert limit_rules.grid_limit("0.0065", Decimal("0.001")) == Decimal("0.006")
