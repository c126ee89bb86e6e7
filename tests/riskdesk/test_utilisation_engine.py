"""Utilisation bars against the real engine: every figure is measured in its limit's unit, so a bar stands at
exactly 100 % when the engine's gate starts denying the next order that adds risk."""

from __future__ import annotations

from decimal import Decimal

from riskdesk import selectors
from riskdesk.services import limits
from tests.riskdesk.conftest import accepted, submit, wait_until


def set_limits(officer, kind, name, values):
    version = limits.propose_limits(
        actor=officer, kind=kind, name=name, limits=values, base_version=0, reason="utilisation test"
    )
    assert version.status == "in_force", version.engine_reason
    return version


def limit_row(slug: str, field: str, measured):
    """The panel row of `field` in scope `slug` once the engine's utilisation shows `measured`, else None."""
    panels = selectors.scope_panels(selectors.engine_view(operator="tester"))
    panel = next(p for p in panels if p.slug == slug)
    if panel.utilisation is None or not measured(panel.utilisation):
        return None
    return next(r for r in panel.rows if r.spec.name == field)


def test_the_position_bar_is_at_100_percent_in_units_when_the_gate_denies_the_next_lot(desk_engine, risk_officer):
    # 0.0065 is off the 0.001 lot grid: the gate enforces 6 lots, so 0.006 is the whole limit.
    set_limits(risk_officer, "firm", "", {"max_order_notional": "250000", "max_open_orders": 200,
                                          "max_daily_loss": "5000", "max_position": "0.0065"})  # fmt: skip
    assert accepted(submit(desk_engine, "b-1", quantity="0.003"))
    assert accepted(submit(desk_engine, "b-2", quantity="0.003", price="59990.0"))

    row = wait_until(
        lambda: limit_row("firm", "max_position", lambda u: Decimal(u["position_quantity"]) == Decimal("0.006")),
        what="the firm's worst-case position of 0.006 in the engine's utilisation",
    )
    denied = submit(desk_engine, "b-3", quantity="0.001", price="59980.0")

    assert row.percent == 100.0 and row.level == "breach"
    assert row.grid_limits["BTCUSDT"] == "0.006"
    assert not accepted(denied) and denied.code == "RISK_MAX_POSITION"


def test_the_position_bar_below_the_limit_counts_units_not_lots(desk_engine, risk_officer):
    set_limits(risk_officer, "strategy", "manual", {"max_position": "0.004"})
    assert accepted(submit(desk_engine, "b-1", quantity="0.003"))

    row = wait_until(
        lambda: limit_row("strategy:manual", "max_position", lambda u: u["position"] == 3),
        what="the strategy's worst-case position of 3 lots",
    )
    allowed = submit(desk_engine, "b-2", quantity="0.001", price="59990.0")

    assert row.percent == 75.0 and row.level == "ok"  # 0.003 of 0.004, not 3 lots of 0.004
    assert accepted(allowed)


def test_the_open_orders_bar_is_at_100_percent_when_the_gate_denies_the_next_order(desk_engine, risk_officer):
    set_limits(risk_officer, "strategy", "manual", {"max_open_orders": 2})
    assert accepted(submit(desk_engine, "o-1"))
    assert accepted(submit(desk_engine, "o-2", price="59990.0"))

    row = wait_until(
        lambda: limit_row("strategy:manual", "max_open_orders", lambda u: u["open_orders"] == 2),
        what="two open orders in the engine's utilisation",
    )
    denied = submit(desk_engine, "o-3", price="59980.0")

    assert row.percent == 100.0 and row.level == "breach"
    assert not accepted(denied) and denied.code == "RISK_MAX_OPEN_ORDERS"


def test_the_order_rate_bar_is_at_100_percent_when_the_gate_denies_the_next_order(desk_engine, risk_officer):
    # A one-minute window: the count cannot slide out while the test reads it.
    set_limits(risk_officer, "strategy", "manual", {"max_orders_per_window": 2, "rate_window_ns": 60_000_000_000})
    assert accepted(submit(desk_engine, "r-1"))
    assert accepted(submit(desk_engine, "r-2", price="59990.0"))

    row = wait_until(
        lambda: limit_row("strategy:manual", "max_orders_per_window", lambda u: u["orders_in_window"] == 2),
        what="two orders in the strategy's window",
    )
    denied = submit(desk_engine, "r-3", price="59980.0")

    assert row.percent == 100.0 and row.level == "breach"
    assert not accepted(denied) and denied.code == "RISK_ORDER_RATE"


def test_the_gross_exposure_bar_is_money_against_money(desk_engine, risk_officer):
    # 0.002 at 60,000 is 120 of worst-case gross exposure (working orders valued at their price).
    set_limits(risk_officer, "strategy", "manual", {"max_gross_exposure": "240"})
    assert accepted(submit(desk_engine, "g-1"))

    row = wait_until(
        lambda: limit_row("strategy:manual", "max_gross_exposure", lambda u: Decimal(u["gross_exposure"]) > 0),
        what="the strategy's gross exposure",
    )

    assert row.percent == 50.0
