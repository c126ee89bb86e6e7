"""Trading states (the kill switch): every transition, latching, the hierarchy, and each automatic trigger."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from engine.clock import FakeClock
from engine.enums import Side, TradingState
from engine.instruments import InstrumentRegistry
from engine.portfolio import Portfolio
from engine.protocol import Scope, ScopeKind, ScopeTradingState, TradingStateChanged
from engine.trading_state import StateCode, TradingStateError, TradingStates, TriggerConfig

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED
SECOND = 1_000_000_000
BUY, SELL = Side.BUY, Side.SELL
FIRM = Scope.firm()
STRAT = Scope.strategy("mm-1")
INSTR = Scope.instrument("BTCUSDT")
SCOPES = [FIRM, STRAT, INSTR]


def put_in(states: TradingStates, scope: Scope, state: TradingState) -> None:
    if state is REDUCING:
        states.reduce(scope, operator="rick", reason="setup")
    elif state is HALTED:
        states.halt(scope, operator="rick", reason="setup")


# (state before, command, state after, whether a TradingStateChanged is returned)
TRANSITIONS = [
    (ACTIVE, "halt", HALTED, True),
    (ACTIVE, "reduce", REDUCING, True),
    (ACTIVE, "resume", ACTIVE, False),
    (REDUCING, "halt", HALTED, True),  # escalates
    (REDUCING, "reduce", REDUCING, False),
    (REDUCING, "resume", ACTIVE, True),
    (HALTED, "halt", HALTED, False),
    (HALTED, "reduce", HALTED, False),  # never de-escalates
    (HALTED, "resume", ACTIVE, True),
]


@pytest.mark.parametrize("scope", SCOPES, ids=lambda s: s.kind.name)
@pytest.mark.parametrize(("before", "command", "after", "changes"), TRANSITIONS)
def test_every_command_from_every_state_moves_to_the_table_state(scope, before, command, after, changes):
    states = TradingStates(FakeClock(5))
    put_in(states, scope, before)

    event = getattr(states, command)(scope, operator="olga", reason="why not", command_id="cmd-9")

    assert states.state(scope) is after
    if changes:
        assert event == TradingStateChanged(
            scope=scope, state=after, previous=before, reason="why not", operator="olga", command_id="cmd-9"
        )
    else:
        assert event is None


@pytest.mark.parametrize(
    ("operator", "reason", "code"),
    [("", "ok", "STATE_RESUME_NEEDS_OPERATOR"), ("olga", "", "STATE_RESUME_NEEDS_REASON")],
)
def test_resume_without_an_operator_or_a_reason_is_refused_and_the_state_stays_latched(operator, reason, code):
    states = TradingStates(FakeClock())
    states.halt(FIRM, operator="rick", reason="runaway algo")

    with pytest.raises(TradingStateError) as raised:
        states.resume(FIRM, operator=operator, reason=reason)

    assert raised.value.code == code
    assert states.state(FIRM) is HALTED


def test_a_state_latches_however_much_time_passes():
    clock = FakeClock()
    states = TradingStates(clock)
    states.reduce(STRAT, operator="rick", reason="inventory")

    clock.advance(3600 * SECOND)
    events = states.on_timer(clock.now())

    assert events == []
    assert states.state(STRAT) is REDUCING


@pytest.mark.parametrize(
    ("firm", "strategy", "instrument", "expected"),
    [
        (ACTIVE, ACTIVE, ACTIVE, ACTIVE),
        (REDUCING, ACTIVE, ACTIVE, REDUCING),
        (ACTIVE, REDUCING, ACTIVE, REDUCING),
        (ACTIVE, ACTIVE, REDUCING, REDUCING),
        (HALTED, ACTIVE, ACTIVE, HALTED),
        (ACTIVE, HALTED, REDUCING, HALTED),
        (REDUCING, ACTIVE, HALTED, HALTED),
        (REDUCING, REDUCING, REDUCING, REDUCING),
    ],
)
def test_the_state_for_an_order_is_the_most_restrictive_of_its_three_scopes(firm, strategy, instrument, expected):
    states = TradingStates(FakeClock())
    put_in(states, FIRM, firm)
    put_in(states, STRAT, strategy)
    put_in(states, INSTR, instrument)

    state = states.state_for("mm-1", "BTCUSDT")

    assert state is expected
    assert states.levels_for("mm-1", "BTCUSDT") == (firm, strategy, instrument)


def test_a_strategy_or_instrument_state_does_not_reach_other_strategies_or_instruments():
    states = TradingStates(FakeClock())
    states.halt(STRAT, operator="rick", reason="bad fills")
    states.reduce(INSTR, operator="rick", reason="news")

    other = states.state_for("mm-2", "ETHUSDT")

    assert other is ACTIVE
    assert states.state_for("mm-2", "BTCUSDT") is REDUCING
    assert states.state_for("mm-1", "ETHUSDT") is HALTED


def test_resume_returns_the_scope_to_active_for_the_hierarchy():
    states = TradingStates(FakeClock())
    states.halt(STRAT, operator="rick", reason="bad fills")

    states.resume(STRAT, operator="olga", reason="fixed")

    assert states.all_active
    assert states.state_for("mm-1", "BTCUSDT") is ACTIVE
    assert states.scope_states() == ()


def test_scope_states_lists_every_latched_scope_sorted_for_the_state_snapshot():
    states = TradingStates(FakeClock())
    states.reduce(INSTR, operator="rick", reason="news")
    states.halt(FIRM, operator="olga", reason="drill")

    listed = states.scope_states()

    assert listed == (
        ScopeTradingState(scope=FIRM, state=HALTED, operator="olga", reason="drill"),
        ScopeTradingState(scope=INSTR, state=REDUCING, operator="rick", reason="news"),
    )


# --- dead-man heartbeat --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [REDUCING, HALTED])
def test_no_heartbeat_for_the_timeout_trips_the_firm_into_the_configured_state(action):
    clock = FakeClock(10 * SECOND)
    states = TradingStates(clock)
    states.configure_triggers(FIRM, TriggerConfig(heartbeat_timeout_ns=5 * SECOND, heartbeat_action=action))
    states.on_heartbeat(11 * SECOND)

    before = states.on_timer(16 * SECOND - 1)
    after = states.on_timer(16 * SECOND)

    assert before == []
    assert len(after) == 1
    assert after[0].scope == FIRM
    assert after[0].state is action
    assert after[0].previous is ACTIVE
    assert after[0].operator == ""
    assert after[0].code == "STATE_TRIGGER_HEARTBEAT"
    assert states.state(FIRM) is action


def test_arming_the_heartbeat_starts_its_clock_then_and_not_at_the_epoch():
    clock = FakeClock(1_000 * SECOND)
    states = TradingStates(clock)

    states.configure_triggers(FIRM, TriggerConfig(heartbeat_timeout_ns=5 * SECOND))

    assert states.on_timer(1_004 * SECOND) == []
    assert [e.code for e in states.on_timer(1_005 * SECOND)] == ["STATE_TRIGGER_HEARTBEAT"]


def test_a_tripped_trigger_fires_once_and_a_resume_is_not_overridden_by_the_same_breach():
    clock = FakeClock()
    states = TradingStates(clock)
    states.configure_triggers(FIRM, TriggerConfig(heartbeat_timeout_ns=5 * SECOND, heartbeat_action=REDUCING))
    assert len(states.on_timer(5 * SECOND)) == 1
    states.halt(FIRM, operator="rick", reason="escalate by hand")
    states.resume(FIRM, operator="olga", reason="console restarted")

    still_silent = states.on_timer(30 * SECOND)

    assert still_silent == []
    assert states.state(FIRM) is ACTIVE


def test_a_trigger_re_arms_after_resume_once_its_condition_clears_and_trips_on_a_new_breach():
    clock = FakeClock()
    states = TradingStates(clock)
    states.configure_triggers(FIRM, TriggerConfig(heartbeat_timeout_ns=5 * SECOND))
    states.on_timer(5 * SECOND)
    states.resume(FIRM, operator="olga", reason="console back")
    states.on_heartbeat(6 * SECOND)
    assert states.on_timer(7 * SECOND) == []  # clear: re-armed

    events = states.on_timer(11 * SECOND)

    assert [(e.state, e.code) for e in events] == [(HALTED, "STATE_TRIGGER_HEARTBEAT")]


def test_without_a_resume_a_cleared_condition_does_not_re_arm_the_trigger():
    clock = FakeClock()
    states = TradingStates(clock)
    states.configure_triggers(FIRM, TriggerConfig(heartbeat_timeout_ns=5 * SECOND, heartbeat_action=REDUCING))
    states.on_timer(5 * SECOND)
    states.on_heartbeat(6 * SECOND)
    states.on_timer(7 * SECOND)

    events = states.on_timer(20 * SECOND)

    assert events == []
    assert states.state(FIRM) is REDUCING


def test_the_heartbeat_trigger_belongs_to_the_firm_scope_only():
    states = TradingStates(FakeClock())

    with pytest.raises(TradingStateError) as raised:
        states.configure_triggers(STRAT, TriggerConfig(heartbeat_timeout_ns=SECOND))

    assert raised.value.code == "STATE_BAD_TRIGGER_CONFIG"


# --- reject rate ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orders", "rejects", "expected"),
    [
        (4, 1, []),  # 25 % < 50 %
        (4, 2, ["STATE_TRIGGER_REJECT_RATE"]),  # exactly at the rate trips
        (3, 3, []),  # fewer orders than the minimum: noise
        (10, 4, []),
        (10, 5, ["STATE_TRIGGER_REJECT_RATE"]),
    ],
)
def test_the_reject_rate_trips_when_rejects_over_orders_reach_the_rate_with_enough_orders(orders, rejects, expected):
    clock = FakeClock(SECOND)
    states = TradingStates(clock)
    config = TriggerConfig(reject_rate=Decimal("0.5"), reject_rate_window_ns=SECOND, reject_rate_min_orders=4)
    states.configure_triggers(STRAT, config)
    for _ in range(orders):
        states.on_order_sent(strategy_id="mm-1", symbol="BTCUSDT")

    events = []
    for _ in range(rejects):
        events += states.on_reject(strategy_id="mm-1", symbol="BTCUSDT")

    assert [e.code for e in events] == expected
    assert states.state(STRAT) is (HALTED if expected else ACTIVE)


def test_rejects_and_orders_leave_the_reject_window_as_it_slides():
    clock = FakeClock(SECOND)
    states = TradingStates(clock)
    states.configure_triggers(
        FIRM, TriggerConfig(reject_rate=Decimal("0.5"), reject_rate_window_ns=SECOND, reject_rate_action=REDUCING)
    )
    for _ in range(2):
        states.on_order_sent(strategy_id="mm-1", symbol="BTCUSDT")
    clock.advance(SECOND // 2)
    for _ in range(2):
        states.on_order_sent(strategy_id="mm-1", symbol="BTCUSDT")
    states.on_reject(strategy_id="mm-1", symbol="BTCUSDT")  # 1 of 4
    clock.advance(SECOND // 2)  # the first two orders slide out: 1 of 2

    events = states.on_timer(clock.now())

    assert [(e.state, e.code) for e in events] == [(REDUCING, "STATE_TRIGGER_REJECT_RATE")]


def test_rejects_of_another_strategy_do_not_count_against_a_strategy_reject_rate():
    states = TradingStates(FakeClock(SECOND))
    states.configure_triggers(STRAT, TriggerConfig(reject_rate=Decimal("0.1"), reject_rate_window_ns=SECOND))
    states.on_order_sent(strategy_id="mm-1", symbol="BTCUSDT")

    events = states.on_reject(strategy_id="mm-2", symbol="BTCUSDT")

    assert events == []
    assert states.state(STRAT) is ACTIVE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"daily_loss_action": ACTIVE},
        {"heartbeat_action": ACTIVE},
        {"drawdown": Decimal(-1)},
        {"reject_rate": Decimal("1.5"), "reject_rate_window_ns": SECOND},
        {"reject_rate": Decimal("0.5")},
        {"reject_rate_min_orders": 0},
        {"heartbeat_timeout_ns": 0},
    ],
)
def test_an_invalid_trigger_configuration_is_refused_with_its_code(kwargs):
    with pytest.raises(TradingStateError) as raised:
        TriggerConfig(**kwargs)

    assert raised.value.code == StateCode.BAD_TRIGGER_CONFIG


def test_p_and_l_triggers_need_a_portfolio():
    states = TradingStates(FakeClock())

    with pytest.raises(TradingStateError) as raised:
        states.configure_triggers(FIRM, TriggerConfig(daily_loss=Decimal(100)))

    assert raised.value.code == "STATE_NO_PORTFOLIO"


# --- snapshot ------------------------------------------------------------------------------------------------------


def test_a_restored_snapshot_is_identical_and_keeps_latches_and_windows():
    clock = FakeClock(SECOND)
    states = TradingStates(clock)
    states.configure_triggers(
        FIRM,
        TriggerConfig(heartbeat_timeout_ns=5 * SECOND, reject_rate=Decimal("0.5"), reject_rate_window_ns=SECOND),
    )
    states.reduce(STRAT, operator="rick", reason="inventory")
    states.on_order_sent(strategy_id="mm-1", symbol="BTCUSDT")
    states.on_timer(6 * SECOND)  # heartbeat trips the firm
    data = states.snapshot()

    restored = TradingStates(FakeClock(6 * SECOND))
    restored.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(data)))

    assert restored.snapshot() == data
    assert restored.state_for("mm-1", "BTCUSDT") is HALTED
    assert restored.state(STRAT) is REDUCING
    restored.resume(FIRM, operator="olga", reason="back")
    assert restored.on_timer(7 * SECOND) == []  # still latched: no heartbeat since


def test_scope_keys_in_the_snapshot_are_plain_ints_and_strings():
    states = TradingStates(FakeClock())
    states.halt(Scope(kind=ScopeKind.INSTRUMENT, name="ESM4"), operator="rick", reason="halt")

    data = states.snapshot()

    assert data["states"] == [[3, "ESM4", 3, "rick", "halt", "", 0]]


# --- P&L triggers, on the real portfolio ---------------------------------------------------------------------------

SYM = "BTCUSDT"  # tick 0.1, lot 0.001: 1000 lots @ 1000 ticks = 100.0


class Book:
    def __init__(self) -> None:
        self.clock = FakeClock(1_700_000_000 * SECOND)
        self.portfolio = Portfolio(self.clock, InstrumentRegistry.from_toml())
        self.states = TradingStates(self.clock, portfolio=self.portfolio)

    def fill(self, side, price, qty, strategy="mm-1"):
        self.portfolio.on_fill(
            strategy_id=strategy, symbol=SYM, side=side, price=price, quantity=qty, commission=Decimal(0)
        )
        return self.states.on_fill(strategy_id=strategy, symbol=SYM)


@pytest.mark.parametrize("action", [REDUCING, HALTED])
def test_the_daily_loss_trigger_trips_on_the_fill_that_reaches_the_loss(action):
    book = Book()
    book.states.configure_triggers(FIRM, TriggerConfig(daily_loss=Decimal(10), daily_loss_action=action))
    book.fill(BUY, 1000, 1000)
    assert book.fill(SELL, 901, 1000) == []  # -9.9
    book.fill(BUY, 1001, 1)

    events = book.fill(SELL, 1, 1)  # another -0.1: -10.0

    assert [(e.scope, e.state, e.code, e.operator) for e in events] == [(FIRM, action, "STATE_TRIGGER_DAILY_LOSS", "")]


def test_the_daily_loss_trigger_sees_a_loss_made_by_the_mark_on_the_next_timer():
    book = Book()
    book.states.configure_triggers(STRAT, TriggerConfig(daily_loss=Decimal(10)))
    book.fill(BUY, 1000, 1000)
    book.portfolio.mark(SYM, 2 * 901)
    assert book.states.on_timer(book.clock.now()) == []

    book.portfolio.mark(SYM, 2 * 900)
    events = book.states.on_timer(book.clock.now())

    assert [(e.scope, e.state, e.code) for e in events] == [(STRAT, HALTED, "STATE_TRIGGER_DAILY_LOSS")]


def test_another_strategys_loss_does_not_trip_a_strategy_trigger_but_trips_the_firms():
    book = Book()
    book.states.configure_triggers(STRAT, TriggerConfig(daily_loss=Decimal(5)))
    book.states.configure_triggers(FIRM, TriggerConfig(daily_loss=Decimal(5), daily_loss_action=REDUCING))
    book.fill(BUY, 1000, 1000, strategy="mm-2")

    events = book.fill(SELL, 950, 1000, strategy="mm-2")

    assert [(e.scope, e.state) for e in events] == [(FIRM, REDUCING)]
    assert book.states.state(STRAT) is ACTIVE


def test_the_drawdown_trigger_trips_when_equity_falls_the_threshold_from_its_peak():
    book = Book()
    book.states.configure_triggers(STRAT, TriggerConfig(drawdown=Decimal(5), drawdown_action=REDUCING))
    book.fill(BUY, 1000, 1000)
    book.portfolio.mark(SYM, 2 * 1100)  # +10.0: the peak
    book.portfolio.mark(SYM, 2 * 1051)  # 4.9 below it
    assert book.states.on_timer(book.clock.now()) == []

    book.portfolio.mark(SYM, 2 * 1050)
    events = book.states.on_timer(book.clock.now())

    assert [(e.state, e.code) for e in events] == [(REDUCING, "STATE_TRIGGER_DRAWDOWN")]


def test_p_and_l_triggers_apply_to_firm_and_strategy_scopes_only():
    book = Book()

    with pytest.raises(TradingStateError) as raised:
        book.states.configure_triggers(INSTR, TriggerConfig(drawdown=Decimal(5)))

    assert raised.value.code == "STATE_BAD_TRIGGER_CONFIG"
