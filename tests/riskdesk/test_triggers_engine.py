"""Automatic trigger settings against the real engine process: sent as SetTriggers, in force only when the engine
acknowledges them, differences between the desk and the engine shown, resent when unanswered, and a trigger set
from the desk really trips the engine and raises the trigger_fired alert."""

from __future__ import annotations

import pytest

from compliance.models import AuditAction, AuditEvent
from riskdesk import selectors
from riskdesk.models import Alert, AlertKind, TriggerSetting, TriggerStatus
from riskdesk.services import triggers, watcher
from riskdesk.services.triggers import TriggerError
from tests.riskdesk.conftest import START_LIMITS, accepted, submit, wait_until

REJECT_RATE = {
    "reject_rate": "0.5",
    "reject_rate_window_ns": 60_000_000_000,
    "reject_rate_min_orders": 2,
    "reject_rate_action": "HALTED",
}


def change(officer, config, *, kind="strategy", name="manual", base=None, reason="tune triggers"):
    return triggers.change_triggers(
        actor=officer, kind=kind, name=name, config=config, reason=reason, base_version=base
    )


def engine_triggers(engine) -> dict:
    return {key: triggers.shown(value) for key, value in triggers.snapshot_triggers(engine.snapshot()).items()}


def test_a_trigger_change_is_in_force_once_the_engine_acknowledges_it(desk_engine, risk_officer):
    setting = change(risk_officer, {"daily_loss": "1500", "daily_loss_action": "REDUCING"}, base=0)

    assert setting.status == TriggerStatus.IN_FORCE, setting.engine_reason
    assert setting.acknowledged_at is not None and setting.engine_event_seq > 0
    assert engine_triggers(desk_engine)[("strategy", "manual")] == {
        "daily_loss": "1500",
        "daily_loss_action": "REDUCING",
    }
    audited = AuditEvent.objects.filter(
        action__in=[AuditAction.TRIGGERS_PROPOSED, AuditAction.TRIGGERS_CHANGED]
    ).order_by("id")
    assert [(e.action, e.details.get("engine_event_seq")) for e in audited] == [
        (AuditAction.TRIGGERS_PROPOSED, None),
        (AuditAction.TRIGGERS_CHANGED, setting.engine_event_seq),
    ]


def test_a_newer_version_supersedes_the_one_in_force_and_an_empty_set_removes_the_triggers(
    desk_engine, risk_officer, second_officer
):
    first = change(risk_officer, {"drawdown": "800"}, base=0)

    proposed = change(risk_officer, {}, base=1, reason="drawdown trigger off for the auction")
    second = triggers.approve_trigger_change(actor=second_officer, setting_id=proposed.pk)

    assert second.status == TriggerStatus.IN_FORCE
    assert TriggerSetting.objects.get(pk=first.pk).status == TriggerStatus.SUPERSEDED
    assert ("strategy", "manual") not in engine_triggers(desk_engine)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"config": {"drawdown": "800"}, "base": 0}, "TRIGGER_STALE_VERSION"),
        ({"config": {"daily_loss": "1500.00", "daily_loss_action": "REDUCING"}, "base": 1}, "TRIGGER_UNCHANGED"),
        ({"config": {"reject_rate": "0"}, "base": 1}, "TRIGGER_INVALID"),
        ({"config": {"drawdown": "-1"}, "base": 1}, "TRIGGER_INVALID"),
        ({"config": {"drawdown": "800"}, "base": 1, "reason": " "}, "TRIGGER_REASON_REQUIRED"),
        ({"config": {"daily_loss": "10"}, "base": 0, "kind": "instrument", "name": "BTCUSDT"}, "TRIGGER_INVALID"),
    ],
)
def test_a_refused_trigger_change_records_nothing_and_leaves_the_engine_as_it_was(
    desk_engine, risk_officer, kwargs, code
):
    change(risk_officer, {"daily_loss": "1500", "daily_loss_action": "REDUCING"}, base=0)
    before = engine_triggers(desk_engine)

    with pytest.raises(TriggerError) as refused:
        change(risk_officer, **kwargs)

    assert refused.value.code == code
    assert TriggerSetting.objects.count() == 1
    assert engine_triggers(desk_engine) == before


def test_a_trader_cannot_change_triggers(desk_engine, trader):
    with pytest.raises(TriggerError) as refused:
        change(trader, {"drawdown": "1"}, base=0)

    assert refused.value.code == "PERMISSION_DENIED"
    assert not TriggerSetting.objects.exists() and not engine_triggers(desk_engine)


def test_an_unanswered_trigger_change_stays_unacknowledged_and_is_resent(desk_engine, risk_officer, settings):
    change(risk_officer, {"drawdown": "1000"}, base=0)
    desk_engine.pause()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 200, 1
    try:
        setting = change(risk_officer, {"drawdown": "800"}, base=1)
        panels = selectors.trigger_panels(selectors.engine_view(operator="tester"))
    finally:
        desk_engine.resume()

    assert setting.status == TriggerStatus.APPROVED and setting.engine_code == "ENGINE_UNAVAILABLE"
    assert [p.unacknowledged for p in panels if p.slug == "strategy:manual"] == [setting]

    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 2000, 15
    assert triggers.resend_unacknowledged(older_than_s=0) == 1

    assert TriggerSetting.objects.get(pk=setting.pk).status == TriggerStatus.IN_FORCE
    assert engine_triggers(desk_engine)[("strategy", "manual")] == {
        "drawdown": "800",
        "drawdown_action": "HALTED",
    }


def test_the_engines_start_up_triggers_show_as_a_difference_until_the_desk_records_them(
    engine_process, settings, risk_officer
):
    from trading.models import Strategy

    engine = engine_process(limits=START_LIMITS, triggers=[("firm", {"daily_loss": "4000"})])
    engine.apply_settings(settings)
    Strategy.objects.create(strategy_id="manual", name="manual", symbol="BTCUSDT")

    def firm_panel():
        return next(p for p in selectors.trigger_panels(selectors.engine_view(operator="t")) if p.slug == "firm")

    before = firm_panel()
    setting = change(risk_officer, {"daily_loss": "4000.0", "daily_loss_action": "HALTED"}, kind="firm", name="")
    after = firm_panel()

    assert before.drift and [(r.name, r.db_value, r.engine_value) for r in before.rows if r.differs] == [
        ("daily_loss", None, "4000"),
        ("daily_loss_action", None, "HALTED"),
    ]
    assert setting.status == TriggerStatus.IN_FORCE
    assert not after.drift and after.in_force == setting


def post_only_buy(engine, cid: str):
    # Far through the ask near 65,000: the venue refuses a post-only.
    return submit(engine, cid, price="70000.0", quantity="0.001", post_only=True)


def test_a_reject_rate_trigger_set_from_the_desk_halts_the_strategy_and_raises_the_trigger_fired_alert(
    desk_engine, risk_officer
):
    watcher.scan_engine_events()  # the watcher starts reading here
    setting = change(risk_officer, REJECT_RATE, base=0)
    assert setting.status == TriggerStatus.IN_FORCE

    sent = []

    def tripped():
        reply = post_only_buy(desk_engine, f"cross-{len(sent)}")
        sent.append(reply)
        states = {(s.scope.kind.name, s.scope.name): s for s in desk_engine.snapshot().trading_states}
        state = states.get(("STRATEGY", "manual"))
        return state if state is not None and state.state.name != "ACTIVE" else None

    state = wait_until(tripped, timeout=60, what="the reject-rate trigger")
    assert accepted(sent[0])  # the gate let them through: the venue rejected them
    assert state.state.name == "HALTED" and state.operator == ""

    def alert():
        watcher.scan_engine_events()
        return Alert.objects.filter(kind=AlertKind.TRIGGER_FIRED).first()

    fired = wait_until(alert, what="the trigger_fired alert")
    assert fired.severity == "critical" and fired.detail["code"] == "STATE_TRIGGER_REJECT_RATE"
    assert fired.detail["state"] == "HALTED"


def test_an_unanswered_version_replaced_by_a_newer_one_is_never_resent_over_it(desk_engine, risk_officer, settings):
    change(risk_officer, {"drawdown": "1000"}, base=0)
    desk_engine.pause()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 200, 1
    try:
        old = change(risk_officer, {"drawdown": "800"}, base=1)
    finally:
        desk_engine.resume()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 2000, 15
    new = change(risk_officer, {"drawdown": "500"}, base=2)

    resent = triggers.resend_unacknowledged(older_than_s=0)

    assert resent == 0 and new.status == TriggerStatus.IN_FORCE
    assert TriggerSetting.objects.get(pk=old.pk).status == TriggerStatus.SUPERSEDED
    assert engine_triggers(desk_engine)[("strategy", "manual")]["drawdown"] == "500"


def test_a_setting_the_engine_refuses_is_recorded_with_its_code_and_changes_nothing(desk_engine, risk_officer):
    # The desk refuses this itself (TRIGGER_INVALID); written straight to the table, it reaches the engine as a
    # version made before a rule changed would.
    from console.engine_client import new_command_id

    stray = TriggerSetting.objects.create(
        scope_kind="strategy",
        scope_name="manual",
        version=1,
        config={"heartbeat_timeout_ns": 30_000_000_000},
        reason="made before the rule",
        changed_by=risk_officer,
        command_id=new_command_id(),
    )

    refused = triggers.send_trigger_setting(setting=stray)
    panel = next(
        p for p in selectors.trigger_panels(selectors.engine_view(operator="t")) if p.slug == "strategy:manual"
    )

    assert refused.status == TriggerStatus.ENGINE_REJECTED and refused.engine_code == "STATE_BAD_TRIGGER_CONFIG"
    assert panel.refused == refused and panel.in_force is None
    assert not engine_triggers(desk_engine)
