"""RiskUtilisation: the figures the risk gate compares with each scope's limits, on a timer and in the state
snapshot, so the risk desk's bars read 100 % exactly when the gate starts denying."""

from __future__ import annotations

from decimal import Decimal

from console_harness import MS, START, SYMBOL, Desk

from engine.enums import Side
from engine.protocol import (
    CommandRejected,
    RequestStateSnapshot,
    RiskLimits,
    RiskUtilisation,
    Scope,
    ScopeUtilisation,
    SetLimits,
)

INSTRUMENT_LIMITS = RiskLimits(
    max_position=Decimal("0.003"),
    max_open_orders=5,
    max_orders_per_window=10,
    max_messages_per_window=20,
    rate_window_ns=1_000 * MS,
)


def _scope(snapshot_or_event, scope: Scope) -> ScopeUtilisation:
    rows = snapshot_or_event.utilisation if hasattr(snapshot_or_event, "utilisation") else snapshot_or_event.scopes
    return next(row for row in rows if row.scope == scope)


def test_working_orders_count_in_open_orders_rates_worst_case_position_and_exposures() -> None:
    desk = Desk()
    desk.cmd(SetLimits, scope=Scope.instrument(SYMBOL), limits=INSTRUMENT_LIMITS)
    desk.market()
    desk.submit("m1", Side.BUY, "99.00", "0.002")
    desk.submit("m2", Side.SELL, "101.00", "0.001")
    desk.pump()

    row = _scope(desk.cmd(RequestStateSnapshot), Scope.instrument(SYMBOL))

    assert row == ScopeUtilisation(
        scope=Scope.instrument(SYMBOL),
        open_orders=2,
        orders_in_window=2,
        messages_in_window=2,
        rate_window_ns=1_000 * MS,
        position=2,
        position_symbol=SYMBOL,
        working_buy=2,
        working_sell=1,
        gross_exposure=Decimal("0.198"),  # the 2 lots bought at 99.00 would grow |position| by 2
        net_exposure=Decimal("0.198"),
        working_exposure=Decimal("0.299"),
        daily_pnl=Decimal(0),
        position_quantity=Decimal("0.002"),
    )


def test_the_position_figure_reaches_the_limit_exactly_when_the_gate_starts_denying() -> None:
    desk = Desk()
    desk.cmd(SetLimits, scope=Scope.instrument(SYMBOL), limits=INSTRUMENT_LIMITS)
    desk.market()
    desk.submit("m1", Side.BUY, "99.00", "0.002")
    desk.submit("m2", Side.BUY, "99.00", "0.001")  # worst case 3 lots = the limit: allowed
    desk.pump()

    row = _scope(desk.cmd(RequestStateSnapshot), Scope.instrument(SYMBOL))
    at_limit = (row.position, row.position_quantity)
    denied = desk.submit("m3", Side.BUY, "99.00", "0.001")

    assert at_limit == (3, Decimal("0.003"))  # = max_position: 100 %
    assert type(denied) is CommandRejected
    assert denied.code == "RISK_MAX_POSITION"


def test_a_position_is_valued_at_the_mark_and_the_firm_sums_every_strategy() -> None:
    desk = Desk()
    desk.market()  # mid 100.00
    desk.submit("m1", Side.BUY, "100.10", "0.002", strategy_id="alpha")  # fills at 100.10
    desk.pump()
    desk.submit("m2", Side.SELL, "99.90", "0.001", strategy_id="beta")  # fills at 99.90
    desk.pump()
    desk.market()  # the book back to 99.90 / 100.10: mid 100.00

    snapshot = desk.cmd(RequestStateSnapshot)
    firm, alpha, beta = (_scope(snapshot, s) for s in (Scope.firm(), Scope.strategy("alpha"), Scope.strategy("beta")))

    assert (alpha.position, beta.position, firm.position) == (2, -1, 1)
    assert (alpha.gross_exposure, alpha.net_exposure) == (Decimal("0.2"), Decimal("0.2"))
    assert (beta.gross_exposure, beta.net_exposure) == (Decimal("0.1"), Decimal("-0.1"))
    assert (firm.gross_exposure, firm.net_exposure) == (Decimal("0.1"), Decimal("0.1"))  # netted per symbol
    assert firm.daily_pnl == desk.engine.portfolio.daily_pnl()
    assert alpha.daily_pnl == desk.engine.portfolio.daily_pnl(strategy_id="alpha")


def test_the_timer_publishes_utilisation_once_per_interval_firm_first() -> None:
    desk = Desk(utilisation_interval_ns=500 * MS)
    desk.cmd(SetLimits, scope=Scope.instrument(SYMBOL), limits=INSTRUMENT_LIMITS)

    desk.timer(START + 500 * MS)
    first = desk.events(RiskUtilisation)
    desk.take()
    desk.timer(START + 700 * MS)
    between = desk.events(RiskUtilisation)
    desk.timer(START + 1_000 * MS)
    second = desk.events(RiskUtilisation)

    assert [row.scope for row in first[0].scopes] == [Scope.firm(), Scope.strategy("as1"), Scope.instrument(SYMBOL)]
    assert between == []
    assert len(second) == 1


def test_orders_outside_the_rate_window_no_longer_count() -> None:
    desk = Desk()
    desk.cmd(SetLimits, scope=Scope.instrument(SYMBOL), limits=INSTRUMENT_LIMITS)
    desk.submit("m1", Side.BUY, "99.00", "0.001")
    desk.pump()

    desk.clock.advance(1_500 * MS)
    row = _scope(desk.cmd(RequestStateSnapshot), Scope.instrument(SYMBOL))

    assert (row.orders_in_window, row.messages_in_window, row.open_orders) == (0, 0, 1)


def test_reading_utilisation_changes_no_state() -> None:
    desk = Desk()
    desk.cmd(SetLimits, scope=Scope.instrument(SYMBOL), limits=INSTRUMENT_LIMITS)
    desk.submit("m1", Side.BUY, "99.00", "0.001")
    desk.clock.advance(5_000 * MS)
    before = desk.engine.state_hash()

    desk.cmd(RequestStateSnapshot)

    assert desk.engine.state_hash() == before


def test_a_zero_interval_publishes_no_utilisation_on_the_timer() -> None:
    desk = Desk(utilisation_interval_ns=0)

    desk.timer(START + 10_000 * MS)

    assert desk.events(RiskUtilisation) == []
