"""Kill switches against the real engine process: every working order in scope canceled, new orders denied until a
risk officer resumes with a reason, the engine's acknowledgement and time-to-flat recorded, all audited."""

from __future__ import annotations

import pytest

from compliance.models import AuditAction, AuditEvent
from riskdesk.errors import DeskError
from riskdesk.models import KillSwitchAction
from riskdesk.services import killswitch, watcher
from riskdesk.services.killswitch import KillSwitchError
from tests.riskdesk.conftest import accepted, submit, wait_until, working_orders


def halt(officer, *, kind="strategy", name="manual", reason="runaway quoting", confirmed=True):
    return killswitch.set_trading_state(
        actor=officer, action="halt", kind=kind, name=name, reason=reason, confirmed=confirmed
    )


def test_a_strategy_kill_switch_cancels_its_working_orders_and_denies_new_ones_until_resumed(desk_engine, risk_officer):
    watcher.scan_engine_events()  # the watcher starts reading here
    for i in range(3):
        assert accepted(submit(desk_engine, f"resting-{i}", price=f"6000{i}.0"))
    wait_until(lambda: len(working_orders(desk_engine, "manual")) == 3, what="three working orders")

    action = halt(risk_officer)

    assert action.engine_state == "HALTED" and action.acknowledged_at is not None
    wait_until(lambda: not working_orders(desk_engine, "manual"), what="every manual order canceled")
    denied = submit(desk_engine, "after-halt")
    assert not accepted(denied) and denied.code == "STATE_HALTED"

    def halt_completed():
        watcher.scan_engine_events()
        return KillSwitchAction.objects.get(pk=action.pk).halt_elapsed_ns is not None

    wait_until(halt_completed, what="the engine's HaltCompleted on the action")
    assert KillSwitchAction.objects.get(pk=action.pk).orders_canceled == 3

    resumed = killswitch.set_trading_state(
        actor=risk_officer, action="resume", kind="strategy", name="manual", reason="fixed", confirmed=True
    )

    assert resumed.engine_state == "ACTIVE"
    assert accepted(submit(desk_engine, "after-resume"))
    kills = AuditEvent.objects.filter(action=AuditAction.KILL)
    assert [(e.reason, e.details["engine_state"]) for e in kills] == [("runaway quoting", "HALTED")]
    assert AuditEvent.objects.filter(action=AuditAction.RESUME, reason="fixed").count() == 1


def test_an_instrument_kill_switch_leaves_other_instruments_trading(desk_engine, risk_officer):
    assert accepted(submit(desk_engine, "btc-1"))

    halt(risk_officer, kind="instrument", name="BTCUSDT")

    wait_until(lambda: not working_orders(desk_engine), what="the BTCUSDT order canceled")
    assert submit(desk_engine, "btc-2").code == "STATE_HALTED"
    states = {(s.scope.kind.name, s.scope.name): s.state.name for s in desk_engine.snapshot().trading_states}
    assert states[("INSTRUMENT", "BTCUSDT")] == "HALTED"
    assert states.get(("FIRM", ""), "ACTIVE") == "ACTIVE"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"reason": "  "}, "STATE_REASON_REQUIRED"),
        ({"confirmed": False}, "STATE_NOT_CONFIRMED"),
        ({"name": "no-such-strategy"}, "SCOPE_UNKNOWN"),
    ],
)
def test_a_kill_without_reason_confirmation_or_a_real_scope_is_refused_and_nothing_is_sent(
    desk_engine, risk_officer, fields, code
):
    assert accepted(submit(desk_engine, "keeps-working"))

    with pytest.raises(DeskError) as refused:
        halt(risk_officer, **fields)

    assert refused.value.code == code
    assert not KillSwitchAction.objects.exists()
    assert [o.client_order_id for o in working_orders(desk_engine)] == ["keeps-working"]


def test_a_trader_cannot_use_the_kill_switch_or_resume(desk_engine, trader):
    for action in ("halt", "resume"):
        with pytest.raises(KillSwitchError) as refused:
            killswitch.set_trading_state(
                actor=trader, action=action, kind="firm", name="", reason="try", confirmed=True
            )
        assert refused.value.code == "PERMISSION_DENIED"
    assert not KillSwitchAction.objects.exists()


def test_reduce_only_denies_orders_that_would_grow_the_position(desk_engine, risk_officer):
    action = killswitch.set_trading_state(
        actor=risk_officer,
        action="reduce",
        kind="strategy",
        name="manual",
        reason="inventory too large",
        confirmed=True,
    )

    denied = submit(desk_engine, "grows-flat-position")

    assert action.engine_state == "REDUCING"
    assert not accepted(denied) and denied.code == "STATE_REDUCING"
    assert AuditEvent.objects.get(action=AuditAction.KILL).details["action"] == "reduce"


def test_a_kill_switch_the_engine_applied_raises_an_alert_the_traders_see_with_the_officers_reason(
    desk_engine, risk_officer
):
    from riskdesk.models import Alert, AlertKind

    action = halt(risk_officer, reason="venue outage")

    alert = Alert.objects.get(kind=AlertKind.TRADING_STATE)
    assert alert.severity == "critical" and alert.audience == ["risk_officer", "trader"]
    assert alert.detail["reason"] == "venue outage" and alert.detail["command_id"] == action.command_id
    assert alert.detail["state"] == "HALTED"
