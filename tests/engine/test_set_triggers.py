"""SetTriggers: the risk desk changes a scope's automatic kill-switch triggers while the engine runs; bad ones are
refused with a reason and change nothing; the change is journaled and replays."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import recovery_session as rs
from console_harness import MS, START, Desk

from engine.clock import FakeClock
from engine.core import Engine
from engine.enums import TradingState
from engine.gateway import NullGateway
from engine.protocol import (
    CommandAccepted,
    CommandRejected,
    Heartbeat,
    ProtocolError,
    ProtocolErrorCode,
    RequestStateSnapshot,
    Scope,
    ScopeTriggerSettings,
    SetTriggers,
    TradingStateChanged,
    TriggersChanged,
    TriggerSettings,
)

LOSS = TriggerSettings(daily_loss=Decimal("250"), drawdown=Decimal("400"), drawdown_action=TradingState.REDUCING)


def test_a_strategy_gets_new_triggers_in_force_announced_and_in_the_snapshot() -> None:
    desk = Desk()

    reply = desk.cmd(SetTriggers, scope=Scope.strategy("as1"), triggers=LOSS)

    assert type(reply) is CommandAccepted
    assert desk.events(TriggersChanged) == [
        TriggersChanged(scope=Scope.strategy("as1"), triggers=LOSS, operator="risk-1", command_id=reply.command_id)
    ]
    config = desk.engine.trading_states.triggers(Scope.strategy("as1"))
    assert (config.daily_loss, config.drawdown, config.drawdown_action) == (
        Decimal("250"),
        Decimal("400"),
        TradingState.REDUCING,
    )
    assert desk.cmd(RequestStateSnapshot).triggers == (
        ScopeTriggerSettings(scope=Scope.strategy("as1"), triggers=LOSS),
    )


@pytest.mark.parametrize(
    ("scope", "triggers"),
    [
        (Scope.strategy("as1"), TriggerSettings(heartbeat_timeout_ns=1_000 * MS)),  # the dead-man is firm-wide
        (Scope.instrument(rs.SYMBOL), TriggerSettings(daily_loss=Decimal("10"))),  # no P&L per instrument
    ],
    ids=["heartbeat-on-a-strategy", "loss-on-an-instrument"],
)
def test_a_trigger_the_scope_cannot_carry_is_refused_and_changes_nothing(scope, triggers) -> None:
    desk = Desk()

    reply = desk.cmd(SetTriggers, scope=scope, triggers=triggers)

    assert type(reply) is CommandRejected
    assert reply.code == "STATE_BAD_TRIGGER_CONFIG"
    assert desk.events() == []
    assert desk.engine.trading_states.triggers(scope) is None
    assert desk.engine.trading_states.snapshot()["configs"] == []


def test_settings_with_no_threshold_remove_the_scope_triggers() -> None:
    desk = Desk()
    desk.cmd(SetTriggers, scope=Scope.strategy("as1"), triggers=LOSS)

    desk.cmd(SetTriggers, scope=Scope.strategy("as1"), triggers=TriggerSettings())

    assert desk.engine.trading_states.triggers(Scope.strategy("as1")) is None
    assert desk.cmd(RequestStateSnapshot).triggers == ()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"reject_rate": Decimal("0.5")}, "reject_rate_window_ns"),
        ({"reject_rate": Decimal("1.5"), "reject_rate_window_ns": 1}, "reject_rate"),
        ({"daily_loss": Decimal("-1")}, "daily_loss"),
        ({"daily_loss": Decimal("1"), "daily_loss_action": TradingState.ACTIVE}, "daily_loss_action"),
    ],
    ids=["rate-without-window", "rate-above-one", "negative-loss", "active-action"],
)
def test_trigger_settings_out_of_range_cannot_be_built(fields: dict, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        TriggerSettings(**fields)

    assert caught.value.code == ProtocolErrorCode.INVALID_FIELD
    assert field in caught.value.reason


def test_a_dead_man_trigger_set_at_run_time_trips_and_replays_from_the_journal(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    desk.cmd(SetTriggers, scope=Scope.firm(), triggers=TriggerSettings(heartbeat_timeout_ns=1_000 * MS))
    desk.cmd(Heartbeat)

    desk.timer(START + 5_000 * MS)  # no heartbeat for ~5 s
    published = desk.engine.drain()
    recovered = Engine.recover(
        desk.config, FakeClock(START), rs.INSTRUMENTS, NullGateway(supports_mass_cancel=True), tmp_path / "j"
    )

    [tripped] = [e.event for e in published if type(e.event) is TradingStateChanged]
    assert (tripped.state, tripped.code) == (TradingState.HALTED, "STATE_TRIGGER_HEARTBEAT")
    assert recovered.recovered_events == published
    assert recovered.state_hash() == desk.engine.state_hash()
