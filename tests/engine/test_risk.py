"""The pre-trade risk gate against the real OMS and portfolio: every control allowed exactly at its limit and denied
one past it with its code, at every level of the hierarchy; trading states; limit changes at run time; replaces."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import FakeClock
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.instruments import InstrumentRegistry
from engine.oms import Oms
from engine.portfolio import Portfolio
from engine.protocol import ExecutionReport, OrderFilled, RiskLimits, Scope
from engine.risk import Denial, RiskCode, RiskError, RiskGate
from engine.trading_state import TradingStates

BUY, SELL = Side.BUY, Side.SELL
SECOND = 1_000_000_000
START = 1_700_000_000 * SECOND
SYM = "BTCUSDT"  # tick 0.1, lot 0.001: 1000 ticks = 100.0, 1000 lots = 1.0, so 1000 lots @ 1000 ticks = 100.0
OTHER_SYM = "ETHUSDT"
REF = 1000
INSTRUMENTS = InstrumentRegistry.from_toml()
DECIMAL_FIELDS = set(RiskLimits._DECIMALS)


def limits(**fields) -> RiskLimits:
    return RiskLimits(**{k: Decimal(v) if k in DECIMAL_FIELDS else v for k, v in fields.items()})


class Desk:
    """One account's engine components, wired as the engine core wires them, on a fake clock."""

    def __init__(self) -> None:
        self.clock = FakeClock(START)
        self.oms = Oms(self.clock, "ACC-1")
        self.portfolio = Portfolio(self.clock, INSTRUMENTS)
        self.states = TradingStates(self.clock, portfolio=self.portfolio)
        self.gate = RiskGate(self.clock, INSTRUMENTS, self.oms, self.portfolio, self.states)

    def submit(
        self,
        *,
        strategy: str = "mm-1",
        symbol: str = SYM,
        side: Side = BUY,
        price: int = REF,
        qty: int = 1000,
        market: bool = False,
        ref: int | None = REF,
    ) -> Denial | None:
        """The engine's order path: register PENDING_NEW, check, drop it from the OMS if denied."""
        order = self.oms.new_order(
            strategy_id=strategy,
            client_order_id=self.oms.next_client_order_id(strategy),
            symbol=symbol,
            side=side,
            order_type=OrderType.MARKET if market else OrderType.LIMIT,
            time_in_force=TimeInForce.IOC if market else TimeInForce.GTC,
            price=0 if market else price,
            quantity=qty,
        )
        denial = self.gate.check(order, reference_price=ref)
        if denial is not None:
            self.oms.on_order_denied(order.client_order_id)
        return denial

    def fill(self, *, strategy: str = "mm-1", symbol: str = SYM, side: Side, price: int, qty: int) -> None:
        """A position from an earlier fill, marked at the fill price."""
        self.portfolio.on_fill(
            strategy_id=strategy, symbol=symbol, side=side, price=price, quantity=qty, commission=Decimal(0)
        )
        self.portfolio.mark(symbol, 2 * price)


def code(denial: Denial | None) -> str | None:
    return None if denial is None else denial.code


# --- every control: allowed exactly at the limit, denied one past it ---------------------------------------------


def _send(n: int, **order):
    def setup(desk: Desk) -> None:
        for _ in range(n):
            assert desk.submit(**order) is None

    return setup


def _then(*steps):
    def setup(desk: Desk) -> None:
        for step in steps:
            step(desk)

    return setup


def _fill(**kw):
    return lambda desk: desk.fill(**kw)


def _advance(ns: int):
    return lambda desk: desk.clock.advance(ns)


def _message(desk: Desk) -> None:
    desk.gate.on_message_sent(desk.clock.now(), strategy_id="mm-1", symbol=SYM)


def _nothing(desk: Desk) -> None:
    pass


# (id, limits, setup, order allowed at the limit, step between, order one past the limit, code)
CONTROLS = [
    ("order qty", {"max_order_quantity": "1"}, _nothing, {"qty": 1000}, _nothing, {"qty": 1001}, "RISK_MAX_ORDER_QTY"),
    (
        "order qty off the lot grid rounds down",
        {"max_order_quantity": "1.0005"},
        _nothing,
        {"qty": 1000},
        _nothing,
        {"qty": 1001},
        "RISK_MAX_ORDER_QTY",
    ),
    (
        "order notional",
        {"max_order_notional": "100"},
        _nothing,
        {"qty": 1000},
        _nothing,
        {"qty": 1001},
        "RISK_MAX_ORDER_NOTIONAL",
    ),
    (
        "market order notional at the reference price",
        {"max_order_notional": "100"},
        _nothing,
        {"market": True, "qty": 1000, "ref": 1000},
        _nothing,
        {"market": True, "qty": 1000, "ref": 1001},
        "RISK_MAX_ORDER_NOTIONAL",
    ),
    (
        "collar in ticks above",
        {"price_collar_ticks": 10},
        _nothing,
        {"price": 1010},
        _nothing,
        {"price": 1011},
        "RISK_PRICE_COLLAR",
    ),
    (
        "collar in ticks below",
        {"price_collar_ticks": 10},
        _nothing,
        {"side": SELL, "price": 990},
        _nothing,
        {"side": SELL, "price": 989},
        "RISK_PRICE_COLLAR",
    ),
    (
        "collar in percent",
        {"price_collar_pct": "1"},
        _nothing,
        {"price": 990},
        _nothing,
        {"price": 989},
        "RISK_PRICE_COLLAR",
    ),
    (
        "collar in fractional percent",
        {"price_collar_pct": "0.55"},
        _nothing,
        {"price": 1005},
        _nothing,
        {"price": 1006},
        "RISK_PRICE_COLLAR",
    ),
    (
        "the tighter of percent and ticks",
        {"price_collar_pct": "5", "price_collar_ticks": 7},
        _nothing,
        {"price": 1007},
        _nothing,
        {"price": 1008},
        "RISK_PRICE_COLLAR",
    ),
    (
        "long position with working orders",
        {"max_position": "2"},
        _fill(side=BUY, price=REF, qty=1000),
        {"qty": 1000},
        _nothing,
        {"qty": 1},
        "RISK_MAX_POSITION",
    ),
    (
        "short position with working orders",
        {"max_position": "2"},
        _then(_fill(side=SELL, price=REF, qty=500), _send(1, side=SELL, qty=1000)),
        {"side": SELL, "qty": 500},
        _nothing,
        {"side": SELL, "qty": 1},
        "RISK_MAX_POSITION",
    ),
    (
        "gross exposure",
        {"max_gross_exposure": "200"},
        _fill(side=BUY, price=REF, qty=1000),
        {"qty": 1000},
        _nothing,
        {"qty": 1},
        "RISK_MAX_GROSS_EXPOSURE",
    ),
    (
        "net exposure",
        {"max_net_exposure": "150"},
        _nothing,
        {"qty": 1500},
        _nothing,
        {"qty": 1},
        "RISK_MAX_NET_EXPOSURE",
    ),
    (
        "short net exposure",
        {"max_net_exposure": "150"},
        _fill(side=SELL, price=REF, qty=1000),
        {"side": SELL, "qty": 500},
        _nothing,
        {"side": SELL, "qty": 1},
        "RISK_MAX_NET_EXPOSURE",
    ),
    ("open orders", {"max_open_orders": 3}, _send(2), {}, _nothing, {}, "RISK_MAX_OPEN_ORDERS"),
    (
        "order rate",
        {"max_orders_per_window": 3, "rate_window_ns": SECOND},
        _send(2),
        {},
        _nothing,
        {},
        "RISK_ORDER_RATE",
    ),
    (
        "message rate counts cancels and replaces",
        {"max_messages_per_window": 3, "rate_window_ns": SECOND},
        _then(_send(1), _message),
        {},
        _nothing,
        {},
        "RISK_MESSAGE_RATE",
    ),
    (
        "duplicate order",
        {"duplicate_window_ns": SECOND},
        _then(_send(1), _advance(SECOND)),
        {},
        _advance(SECOND - 1),
        {},
        "RISK_DUPLICATE_ORDER",
    ),
    (
        "restricted symbol",
        {"restricted_symbols": (OTHER_SYM,)},
        _nothing,
        {},
        _nothing,
        {"symbol": OTHER_SYM},
        "RISK_RESTRICTED_SYMBOL",
    ),
    (
        "daily loss",
        {"max_daily_loss": "10"},
        # Bought 1.0 at 100.0, sold at 90.1: -9.9.
        _then(_fill(side=BUY, price=1000, qty=1000), _fill(side=SELL, price=901, qty=1000)),
        {"qty": 1},
        # Another 0.1 lost (0.001 lot, 100.0 apart): -10.0, at the limit, which denies.
        _then(_fill(side=BUY, price=1001, qty=1), _fill(side=SELL, price=1, qty=1)),
        {"qty": 1},
        "RISK_DAILY_LOSS",
    ),
    (
        "self-match with another strategy's resting sell",
        {},
        _send(1, strategy="mm-2", side=SELL, price=1010),
        {"price": 1009},
        _nothing,
        {"price": 1010},
        "RISK_SELF_MATCH",
    ),
    (
        "self-match with another strategy's resting buy",
        {},
        _send(1, strategy="mm-2", side=BUY, price=990),
        {"side": SELL, "price": 991},
        _nothing,
        {"side": SELL, "price": 990},
        "RISK_SELF_MATCH",
    ),
]

LEVELS = [Scope.firm(), Scope.strategy("mm-1"), Scope.instrument(SYM)]
LEVEL_IDS = ["firm", "strategy", "instrument"]


# Every control at every level; two pairs are covered by their own tests below: a restricted list on an instrument's
# scope names that instrument, and the daily loss limit is refused on an instrument scope.
CONTROLS_BY_LEVEL = [
    pytest.param(scope, *case[1:], id=f"{case[0]}-{level}")
    for case in CONTROLS
    for scope, level in zip(LEVELS, LEVEL_IDS)
    if not (level == "instrument" and ("restricted_symbols" in case[1] or "max_daily_loss" in case[1]))
]


@pytest.mark.parametrize(("scope", "fields", "setup", "at", "between", "past", "expected"), CONTROLS_BY_LEVEL)
def test_each_control_allows_an_order_exactly_at_its_limit_and_denies_one_past_it(
    scope, fields, setup, at, between, past, expected
):
    desk = Desk()
    desk.gate.set_limits(scope, limits(**fields))
    setup(desk)

    allowed = desk.submit(**at)
    between(desk)
    denied = desk.submit(**past)

    assert allowed is None
    assert code(denied) == expected


def test_the_denial_names_the_level_whose_limit_bound():
    desk = Desk()
    desk.gate.set_limits(Scope.firm(), limits(max_order_quantity="5"))
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_order_quantity="3"))
    desk.gate.set_limits(Scope.instrument(SYM), limits(max_order_quantity="4"))

    allowed = desk.submit(qty=3000)
    denied = desk.submit(qty=3001)

    assert allowed is None
    assert denied.code == "RISK_MAX_ORDER_QTY"
    assert "strategy mm-1" in denied.reason


@pytest.mark.parametrize(
    ("firm", "strategy", "instrument", "allowed_qty"),
    [
        ("1", "9", "9", 1000),
        ("9", "1", "9", 1000),
        ("9", "9", "1", 1000),
        ("2", None, "3", 2000),
        (None, None, "4", 4000),
    ],
)
def test_an_order_must_pass_every_level_that_sets_the_limit(firm, strategy, instrument, allowed_qty):
    desk = Desk()
    for scope, value in zip(LEVELS, (firm, strategy, instrument)):
        if value is not None:
            desk.gate.set_limits(scope, limits(max_order_quantity=value))

    allowed = desk.submit(qty=allowed_qty)
    denied = desk.submit(qty=allowed_qty + 1)

    assert allowed is None
    assert code(denied) == "RISK_MAX_ORDER_QTY"


def test_strategy_limits_do_not_apply_to_another_strategy_nor_instrument_limits_to_another_symbol():
    desk = Desk()
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_order_quantity="1"))
    desk.gate.set_limits(Scope.instrument(SYM), limits(max_order_quantity="2"))

    other_strategy = desk.submit(strategy="mm-2", qty=2000)
    other_symbol = desk.submit(strategy="mm-3", symbol=OTHER_SYM, qty=5000)
    limited = desk.submit(strategy="mm-2", qty=2001)

    assert other_strategy is None
    assert other_symbol is None
    assert code(limited) == "RISK_MAX_ORDER_QTY"


def test_a_restricted_list_at_the_instrument_scope_restricts_that_instrument():
    desk = Desk()
    desk.gate.set_limits(Scope.instrument(SYM), limits(restricted_symbols=(SYM,)))

    denied = desk.submit()
    other = desk.submit(symbol=OTHER_SYM)

    assert code(denied) == "RISK_RESTRICTED_SYMBOL"
    assert other is None


def test_firm_and_instrument_positions_count_every_strategy_but_a_strategy_counts_its_own():
    desk = Desk()
    desk.fill(strategy="mm-1", side=BUY, price=REF, qty=1000)
    desk.fill(strategy="mm-2", side=BUY, price=REF, qty=1000)
    desk.gate.set_limits(Scope.firm(), limits(max_position="2.5"))
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_position="1.2"))

    strategy_allowed = desk.submit(strategy="mm-1", qty=200)
    strategy_denied = desk.submit(strategy="mm-1", qty=1)
    firm_allowed = desk.submit(strategy="mm-2", qty=300)
    firm_denied = desk.submit(strategy="mm-2", qty=1)

    assert strategy_allowed is None
    assert code(strategy_denied) == "RISK_MAX_POSITION"
    assert firm_allowed is None
    assert code(firm_denied) == "RISK_MAX_POSITION"
    assert "firm" in firm_denied.reason


def test_firm_exposure_counts_positions_in_other_symbols_at_their_marks_and_a_strategy_only_its_own():
    desk = Desk()
    # ETHUSDT: tick 0.01, lot 0.001; 1000 lots at 10000 ticks = 1.0 at 100.00 = 100.
    desk.fill(strategy="mm-2", symbol=OTHER_SYM, side=BUY, price=10_000, qty=1000)
    desk.fill(strategy="mm-1", side=BUY, price=REF, qty=1000)
    desk.gate.set_limits(Scope.firm(), limits(max_gross_exposure="300"))
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_gross_exposure="250"))

    # Firm: 100 ETH + 100 BTC + 100 working = 300. Strategy mm-1: 200 (mm-2's ETH is not its own, else 300 > 250).
    firm_at_limit = desk.submit(strategy="mm-1", qty=1000)
    firm_past = desk.submit(strategy="mm-3", qty=1)

    assert firm_at_limit is None
    assert code(firm_past) == "RISK_MAX_GROSS_EXPOSURE"
    assert "firm" in firm_past.reason


def test_a_mark_move_in_another_symbol_moves_the_firm_exposure():
    desk = Desk()
    desk.fill(symbol=OTHER_SYM, side=SELL, price=10_000, qty=1000)  # short 100
    desk.gate.set_limits(Scope.firm(), limits(max_net_exposure="0"))
    assert desk.submit(qty=1000) is None  # net -100 + 100 = 0

    desk.portfolio.mark(OTHER_SYM, 2 * 9_999)  # the short is now worth -99.99
    denied = desk.submit(qty=1, price=REF - 1)

    assert code(denied) == "RISK_MAX_NET_EXPOSURE"


def test_a_message_reported_without_scope_counts_for_the_firm_only():
    desk = Desk()
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_messages_per_window=1, rate_window_ns=SECOND))
    desk.gate.set_limits(Scope.firm(), limits(max_messages_per_window=2, rate_window_ns=SECOND))
    desk.gate.on_message_sent(desk.clock.now())

    strategy_ok = desk.submit()
    firm_full = desk.submit(strategy="mm-2")

    assert strategy_ok is None
    assert code(firm_full) == "RISK_MESSAGE_RATE"
    assert "firm" in firm_full.reason


def test_a_strategys_open_orders_count_in_every_symbol_and_an_instruments_for_every_strategy():
    desk = Desk()
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_open_orders=2))
    desk.gate.set_limits(Scope.instrument(OTHER_SYM), limits(max_open_orders=2))
    assert desk.submit(symbol=OTHER_SYM, price=10_000, ref=10_000) is None
    assert desk.submit() is None

    strategy_full = desk.submit(price=REF - 1)
    other_strategy = desk.submit(strategy="mm-2", symbol=OTHER_SYM, price=9_999, ref=10_000)
    instrument_full = desk.submit(strategy="mm-3", symbol=OTHER_SYM, price=9_998, ref=10_000)

    assert code(strategy_full) == "RISK_MAX_OPEN_ORDERS"
    assert other_strategy is None
    assert code(instrument_full) == "RISK_MAX_OPEN_ORDERS"
    assert f"instrument {OTHER_SYM}" in instrument_full.reason


def test_a_reducing_order_passes_a_position_limit_already_exceeded():
    desk = Desk()
    desk.fill(side=BUY, price=REF, qty=3000)
    desk.gate.set_limits(Scope.firm(), limits(max_position="2"))

    reducing = desk.submit(side=SELL, qty=1000)
    increasing = desk.submit(side=BUY, qty=1)

    assert reducing is None
    assert code(increasing) == "RISK_MAX_POSITION"


def test_orders_count_from_the_moment_they_are_sent_until_they_fill_and_then_as_position():
    desk = Desk()
    desk.gate.set_limits(Scope.firm(), limits(max_position="1"))
    assert desk.submit(qty=1000) is None  # PENDING_NEW, never acknowledged
    assert code(desk.submit(qty=1)) == "RISK_MAX_POSITION"
    order = desk.oms.working_orders()[0]
    events = desk.oms.on_execution_report(
        ExecutionReport(
            exec_id="x1",
            client_order_id=order.client_order_id,
            venue_order_id=7,
            account="ACC-1",
            symbol=SYM,
            side=BUY,
            order_type=OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            exec_type=ExecType.TRADE,
            status=OrderStatus.FILLED,
            price=REF,
            quantity=1000,
            last_price=REF,
            last_quantity=1000,
            leaves_quantity=0,
            cum_quantity=1000,
            ts=START,
        )
    )
    desk.fill(side=BUY, price=REF, qty=events[-1].last_quantity)

    still_full = desk.submit(qty=1)
    reducing = desk.submit(side=SELL, qty=1000)

    assert code(still_full) == "RISK_MAX_POSITION"
    assert reducing is None


def test_denied_orders_count_against_nothing():
    desk = Desk()
    desk.gate.set_limits(
        Scope.firm(), limits(max_order_quantity="1", max_orders_per_window=1, rate_window_ns=SECOND, max_open_orders=1)
    )
    for _ in range(5):
        assert code(desk.submit(qty=5000)) == "RISK_MAX_ORDER_QTY"

    allowed = desk.submit(qty=1000)

    assert allowed is None
    assert desk.oms.open_order_count() == 1
    assert desk.gate.denials == {"RISK_MAX_ORDER_QTY": 5}


def test_the_rate_window_slides():
    desk = Desk()
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_orders_per_window=2, rate_window_ns=SECOND))
    desk.submit()
    desk.clock.advance(SECOND // 2)
    desk.submit()
    assert code(desk.submit()) == "RISK_ORDER_RATE"

    desk.clock.advance(SECOND // 2)  # the first order leaves the window
    after = desk.submit()

    assert after is None


def test_a_market_order_without_a_reference_price_is_denied_and_a_limit_order_left_to_the_limits():
    desk = Desk()
    desk.gate.set_limits(Scope.firm(), limits(price_collar_ticks=1, max_order_quantity="1"))

    market = desk.submit(market=True, ref=None)
    limit = desk.submit(price=5000, ref=None)
    too_big = desk.submit(price=5000, qty=1001, ref=None)

    assert code(market) == "RISK_NO_REFERENCE_PRICE"
    assert limit is None
    assert code(too_big) == "RISK_MAX_ORDER_QTY"


def test_a_market_order_would_match_any_resting_order_of_another_strategy():
    desk = Desk()
    desk.submit(strategy="mm-2", side=SELL, price=2000)

    crossing = desk.submit(market=True, side=BUY)
    own = desk.submit(strategy="mm-2", market=True, side=BUY)
    same_side = desk.submit(strategy="mm-3", market=True, side=SELL, symbol=OTHER_SYM)

    assert code(crossing) == "RISK_SELF_MATCH"
    assert own is None  # a strategy crossing itself is the venue's self-trade prevention, not cross-strategy
    assert same_side is None


def test_a_daily_loss_limit_on_an_instrument_scope_is_refused_rather_than_never_binding():
    desk = Desk()

    with pytest.raises(RiskError) as raised:
        desk.gate.set_limits(Scope.instrument(SYM), limits(max_daily_loss="10"))

    assert raised.value.code == "RISK_UNSUPPORTED_LIMIT"
    assert desk.gate.limits() == []


def test_an_unknown_symbol_is_denied_and_limits_for_it_are_refused():
    desk = Desk()

    denied = desk.submit(symbol="NOPE")
    with pytest.raises(RiskError) as raised:
        desk.gate.set_limits(Scope.instrument("NOPE"), limits(max_order_quantity="1"))

    assert code(denied) == "RISK_UNKNOWN_SYMBOL"
    assert raised.value.code == "RISK_UNKNOWN_SYMBOL"


# --- limits change at run time -------------------------------------------------------------------------------------


def test_a_limit_change_takes_effect_on_the_next_check():
    desk = Desk()
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_order_quantity="5"))
    assert desk.submit(qty=5000) is None

    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_order_quantity="2"))
    tightened = desk.submit(qty=5000)
    desk.gate.set_limits(Scope.strategy("mm-1"), RiskLimits())
    lifted = desk.submit(qty=50_000)
    desk.gate.set_limits(Scope.strategy("mm-1"), None)
    removed = desk.submit(qty=50_000)

    assert code(tightened) == "RISK_MAX_ORDER_QTY"
    assert lifted is None
    assert removed is None
    assert desk.gate.limits() == []


def test_a_rate_limit_set_at_run_time_counts_orders_sent_before_it():
    desk = Desk()
    desk.submit()
    desk.submit()

    desk.gate.set_limits(Scope.firm(), limits(max_orders_per_window=3, rate_window_ns=SECOND))
    third = desk.submit()
    fourth = desk.submit()

    assert third is None
    assert code(fourth) == "RISK_ORDER_RATE"


# --- trading states ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", LEVELS, ids=LEVEL_IDS)
@pytest.mark.parametrize(
    "order",
    [{"side": BUY}, {"side": SELL}, {"side": SELL, "qty": 1}, {"market": True}],
    ids=["buy", "sell", "reducing", "market"],
)
def test_halted_denies_every_new_order_in_scope_even_a_reducing_one(scope, order):
    desk = Desk()
    desk.fill(side=BUY, price=REF, qty=1000)
    desk.states.halt(scope, operator="rick", reason="kill switch")

    denied = desk.submit(**order)

    assert code(denied) == "STATE_HALTED"


def test_halted_does_not_reach_other_strategies_or_symbols_and_resume_lifts_it():
    desk = Desk()
    desk.states.halt(Scope.strategy("mm-1"), operator="rick", reason="bad fills")

    other = desk.submit(strategy="mm-2")
    halted = desk.submit(strategy="mm-1", symbol=OTHER_SYM)
    desk.states.resume(Scope.strategy("mm-1"), operator="olga", reason="fixed")
    resumed = desk.submit(strategy="mm-1", price=999)

    assert other is None
    assert code(halted) == "STATE_HALTED"
    assert resumed is None


# (position, same-side lots already working, side, qty, allowed)
REDUCING_CASES = [
    (1000, 0, SELL, 1000, True),  # flat after
    (1000, 0, SELL, 1001, False),  # would flip short
    (1000, 0, BUY, 1, False),
    (-1000, 0, BUY, 1000, True),
    (-1000, 0, BUY, 1001, False),
    (-1000, 0, SELL, 1, False),
    (0, 0, BUY, 1, False),
    (0, 0, SELL, 1, False),
    (1000, 600, SELL, 400, True),  # worst case counts the working sells
    (1000, 600, SELL, 401, False),
]


@pytest.mark.parametrize("scope", LEVELS, ids=LEVEL_IDS)
@pytest.mark.parametrize(("position", "working", "side", "qty", "allowed"), REDUCING_CASES)
def test_reducing_lets_through_only_orders_whose_worst_case_fill_reduces_the_position(
    scope, position, working, side, qty, allowed
):
    desk = Desk()
    if position:
        desk.fill(side=BUY if position > 0 else SELL, price=REF, qty=abs(position))
    if working:
        assert desk.submit(side=side, qty=working, price=REF + 1) is None
    desk.states.reduce(scope, operator="rick", reason="inventory")

    denial = desk.submit(side=side, qty=qty)

    assert code(denial) == (None if allowed else "STATE_REDUCING")


def test_a_reducing_strategy_reduces_its_own_position_but_a_reducing_firm_the_symbols_net():
    desk = Desk()
    desk.fill(strategy="mm-1", side=BUY, price=REF, qty=1000)
    desk.fill(strategy="mm-2", side=SELL, price=REF, qty=1000)  # net flat

    desk.states.reduce(Scope.strategy("mm-1"), operator="rick", reason="inventory")
    strategy_reducing = desk.submit(strategy="mm-1", side=SELL, qty=1000)
    desk.states.reduce(Scope.firm(), operator="rick", reason="firm inventory")
    firm_reducing = desk.submit(strategy="mm-1", side=SELL, qty=1, price=REF + 5)

    assert strategy_reducing is None
    assert code(firm_reducing) == "STATE_REDUCING"


def test_the_daily_loss_limit_still_lets_reducing_orders_through():
    desk = Desk()
    desk.fill(side=BUY, price=1000, qty=2000)
    desk.fill(side=SELL, price=900, qty=1000)  # realised -10.0, still long 1.0 marked at 90.0: -20.0 in all
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_daily_loss="10"))

    increasing = desk.submit(side=BUY, qty=1, price=900, ref=900)
    reducing = desk.submit(side=SELL, qty=1000, price=900, ref=900)

    assert code(increasing) == "RISK_DAILY_LOSS"
    assert reducing is None


# --- replaces ------------------------------------------------------------------------------------------------------


def _working(desk: Desk, **order):
    assert desk.submit(**order) is None
    return desk.oms.working_orders()[-1]


@pytest.mark.parametrize(
    ("fields", "price", "quantity", "expected"),
    [
        ({"max_order_quantity": "2"}, REF, 2000, None),
        ({"max_order_quantity": "2"}, REF, 2001, "RISK_MAX_ORDER_QTY"),
        ({"price_collar_ticks": 10}, REF + 10, 1000, None),
        ({"price_collar_ticks": 10}, REF + 11, 1000, "RISK_PRICE_COLLAR"),
        ({"max_position": "1.5"}, REF, 1500, None),
        ({"max_position": "1.5"}, REF, 1501, "RISK_MAX_POSITION"),
        ({"max_messages_per_window": 2, "rate_window_ns": SECOND}, REF, 1000, "RISK_MESSAGE_RATE"),
        ({"max_messages_per_window": 3, "rate_window_ns": SECOND}, REF, 1000, None),
        ({"max_orders_per_window": 1, "rate_window_ns": SECOND}, REF, 1000, None),  # a replace is not a new order
        ({"max_open_orders": 1}, REF, 1000, None),
    ],
)
def test_a_replace_is_checked_as_the_order_it_would_become(fields, price, quantity, expected):
    desk = Desk()
    desk.gate.set_limits(Scope.firm(), limits(**fields))
    order = _working(desk, qty=1000, price=REF - 1)
    desk.gate.on_message_sent(desk.clock.now())  # an earlier cancel

    denial = desk.gate.check_replace(order, price, quantity, reference_price=REF)

    assert code(denial) == expected


def test_a_replace_that_adds_no_risk_passes_while_reducing_and_one_that_adds_risk_does_not():
    desk = Desk()
    order = _working(desk, qty=1000)
    desk.states.reduce(Scope.firm(), operator="rick", reason="inventory")

    smaller = desk.gate.check_replace(order, REF - 3, 500, reference_price=REF)
    bigger = desk.gate.check_replace(order, REF, 1001, reference_price=REF)
    desk.states.halt(Scope.firm(), operator="rick", reason="kill")
    halted = desk.gate.check_replace(order, REF, 500, reference_price=REF)

    assert smaller is None
    assert code(bigger) == "STATE_REDUCING"
    assert code(halted) == "STATE_HALTED"


def test_a_replace_into_another_strategys_resting_order_is_a_self_match():
    desk = Desk()
    desk.submit(strategy="mm-2", side=SELL, price=1010)
    order = _working(desk, price=1000)

    denial = desk.gate.check_replace(order, 1010, 1000, reference_price=REF)

    assert code(denial) == "RISK_SELF_MATCH"


def test_a_replace_in_flight_counts_at_its_larger_size_and_at_either_price():
    desk = Desk()
    desk.gate.set_limits(Scope.firm(), limits(max_position="1"))
    own = _working(desk, qty=500, price=990)
    desk.oms.request_replace(own.client_order_id, 991, 900)  # in flight: the venue may fill 500 or 900
    other = _working(desk, strategy="mm-2", side=SELL, price=1020)
    desk.oms.request_replace(other.client_order_id, 1005, 1000)  # may rest at 1020 or 1005

    at_limit = desk.submit(qty=100, price=1000)
    past_limit = desk.submit(qty=1, price=1001)
    crossing_pending = desk.submit(strategy="mm-3", qty=1, price=1005)

    assert at_limit is None
    assert code(past_limit) == "RISK_MAX_POSITION"
    assert code(crossing_pending) == "RISK_SELF_MATCH"


# --- snapshot ------------------------------------------------------------------------------------------------------


def test_a_restored_snapshot_is_identical_and_keeps_counting_the_same_windows():
    desk = Desk()
    desk.gate.set_limits(
        Scope.strategy("mm-1"),
        limits(max_orders_per_window=3, rate_window_ns=SECOND, duplicate_window_ns=SECOND, max_position="9"),
    )
    desk.gate.set_limits(Scope.firm(), limits(restricted_symbols=("ESM4",), price_collar_pct="2.5"))
    desk.submit(price=999)
    desk.submit(price=998)
    desk.gate.on_message_sent(desk.clock.now(), strategy_id="mm-1", symbol=SYM)
    data = desk.gate.snapshot()

    restored = RiskGate(desk.clock, INSTRUMENTS, desk.oms, desk.portfolio, desk.states)
    restored.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(data)))

    assert restored.snapshot() == data
    assert restored.limits() == desk.gate.limits()
    order = desk.oms.new_order(
        strategy_id="mm-1",
        client_order_id="dup",
        symbol=SYM,
        side=BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=998,
        quantity=1000,
    )
    assert code(restored.check(order, reference_price=REF)) == "RISK_DUPLICATE_ORDER"


def test_the_gate_reports_limits_sorted_for_the_state_snapshot():
    desk = Desk()
    desk.gate.set_limits(Scope.instrument(SYM), limits(max_open_orders=5))
    desk.gate.set_limits(Scope.firm(), limits(max_open_orders=9))

    listed = desk.gate.limits()

    assert [scope for scope, _ in listed] == [Scope.firm(), Scope.instrument(SYM)]
    assert desk.gate.scope_limits()[1].limits == limits(max_open_orders=5)


def test_codes_are_prefixed_by_subsystem():
    assert all(c.value.startswith(("RISK_", "STATE_")) for c in RiskCode)


# --- property: no sequence of orders, fills and cancels gets the worst case past a position limit ------------------

_ACTIONS = st.lists(
    st.one_of(
        st.tuples(
            st.just("order"),
            st.sampled_from(["mm-1", "mm-2"]),
            st.sampled_from([BUY, SELL]),
            st.integers(1, 6),
            st.integers(-3, 3),
        ),
        st.tuples(st.just("fill"), st.integers(0, 20), st.integers(1, 6)),
        st.tuples(st.just("cancel"), st.integers(0, 20)),
    ),
    max_size=40,
)


def _report(desk: Desk, order, exec_type: ExecType, **kw) -> list:
    desk.reports += 1
    fields = {
        "exec_id": f"e{desk.reports}",
        "client_order_id": order.client_order_id,
        "venue_order_id": desk.reports,
        "account": "ACC-1",
        "symbol": order.symbol,
        "side": order.side,
        "order_type": order.order_type,
        "time_in_force": order.time_in_force,
        "exec_type": exec_type,
        "price": order.price,
        "quantity": order.quantity,
        "ts": desk.clock.now(),
    }
    fields.update(kw)
    return desk.oms.on_execution_report(ExecutionReport(**fields))


@settings(max_examples=60, deadline=None)
@given(actions=_ACTIONS)
def test_no_sequence_of_orders_fills_and_cancels_gets_the_worst_case_position_past_a_limit(actions):
    desk = Desk()
    desk.reports = 0
    desk.gate.set_limits(Scope.firm(), limits(max_position="0.010"))  # 10 lots net over both strategies
    desk.gate.set_limits(Scope.strategy("mm-1"), limits(max_position="0.006"))

    for action in actions:
        desk.clock.advance(1_000)
        if action[0] == "order":
            _, strategy, side, qty, offset = action
            desk.submit(strategy=strategy, side=side, qty=qty, price=REF + offset)
        else:
            working = desk.oms.working_orders()
            if not working:
                continue
            order = working[action[1] % len(working)]
            if action[0] == "fill":
                qty = min(action[2], order.leaves_quantity)
                cum = order.cum_quantity + qty
                events = _report(
                    desk,
                    order,
                    ExecType.TRADE,
                    status=OrderStatus.FILLED if cum == order.quantity else OrderStatus.PARTIALLY_FILLED,
                    last_price=order.price,
                    last_quantity=qty,
                    leaves_quantity=order.quantity - cum,
                    cum_quantity=cum,
                )
                for event in events:
                    if isinstance(event, OrderFilled):  # a fill on PENDING_NEW also acknowledges the order
                        desk.fill(strategy=event.strategy_id, side=event.side, price=event.last_price, qty=qty)
            else:
                _report(
                    desk,
                    order,
                    ExecType.CANCELED,
                    status=OrderStatus.CANCELED,
                    leaves_quantity=0,
                    cum_quantity=order.cum_quantity,
                )

        for side in (BUY, SELL):
            s = int(side)
            net = desk.portfolio.net_position(SYM) * s + desk.oms.working_quantity(symbol=SYM, side=side)
            own = desk.portfolio.position("mm-1", SYM) * s + desk.oms.working_quantity(
                strategy_id="mm-1", symbol=SYM, side=side
            )
            assert net <= 10
            assert own <= 6


# --- self-match from the OMS's counters against a scan ---------------------------------------------------------------

_RESTING = st.lists(
    st.tuples(
        st.sampled_from(["mm-1", "mm-2", "mm-3"]),
        st.sampled_from([BUY, SELL]),
        st.integers(-4, 4),  # price offset from REF
        st.booleans(),  # MARKET (rests only for this test: the counters must still see it)
        st.integers(-4, 4),  # 0 = no replace in flight, else its price offset
    ),
    max_size=12,
)


def _crossing_by_scan(desk: Desk, strategy: str, side: Side, price: int, market: bool):
    """The first working order of another strategy the order would trade against, by a pass over every working
    order in creation order: what the gate decided before the OMS kept counters."""
    for working in desk.oms.working_orders(symbol=SYM):
        if working.side == side or working.strategy_id == strategy:
            continue
        pending = working.pending_price
        if side == BUY:
            crosses = working.price <= price or (pending and pending <= price)
        else:
            crosses = working.price >= price or (pending and pending >= price)
        if market or working.order_type == OrderType.MARKET or crosses:
            return working
    return None


@settings(max_examples=150, deadline=None)
@given(
    resting=_RESTING,
    strategy=st.sampled_from(["mm-1", "mm-2", "mm-3"]),
    side=st.sampled_from([BUY, SELL]),
    offset=st.integers(-5, 5),
    market=st.booleans(),
)
def test_self_match_from_the_counters_denies_exactly_what_a_scan_finds_and_names_the_same_order(
    resting, strategy, side, offset, market
):
    desk = Desk()
    for owner, resting_side, resting_offset, resting_market, replace_offset in resting:
        order = desk.oms.new_order(
            strategy_id=owner,
            client_order_id=desk.oms.next_client_order_id(owner),
            symbol=SYM,
            side=resting_side,
            order_type=OrderType.MARKET if resting_market else OrderType.LIMIT,
            time_in_force=TimeInForce.GTC,
            price=0 if resting_market else REF + resting_offset,
            quantity=1000,
        )
        if replace_offset and not resting_market:
            desk.oms.request_replace(order.client_order_id, REF + replace_offset, 2000)
    price = 0 if market else REF + offset
    expected = _crossing_by_scan(desk, strategy, side, price, market)

    denial = desk.submit(strategy=strategy, side=side, price=price, market=market)

    if expected is None:
        assert denial is None
    else:
        assert code(denial) == "RISK_SELF_MATCH"
        assert f"would cross {expected.client_order_id} of strategy {expected.strategy_id} " in denial.reason
