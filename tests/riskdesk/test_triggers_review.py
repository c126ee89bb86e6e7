"""Four eyes on the automatic kill triggers: a change that raises a threshold, removes a trigger or weakens its
action waits for a second officer, a tightening applies at once, and an older version is never sent after a newer
one — against the real engine process."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.models import AuditAction, AuditEvent
from console.engine_client import new_command_id
from riskdesk.models import TriggerSetting, TriggerStatus
from riskdesk.services import triggers
from riskdesk.services.triggers import TriggerError
from tests.conftest import PASSWORD
from tests.riskdesk.conftest import START_LIMITS
from tests.riskdesk.test_triggers_engine import change, engine_triggers

MANUAL = ("strategy", "manual")
DRAWDOWN = {"drawdown": "800", "drawdown_action": "HALTED"}


@pytest.mark.parametrize(
    ("old", "new", "weakened"),
    [
        (DRAWDOWN, {"drawdown": "900"}, ["drawdown"]),
        (DRAWDOWN, {"drawdown": "700"}, []),
        (DRAWDOWN, {}, ["drawdown"]),
        (DRAWDOWN, {"drawdown": "800", "drawdown_action": "REDUCING"}, ["drawdown_action"]),
        ({"drawdown": "800", "drawdown_action": "REDUCING"}, DRAWDOWN, []),
        ({}, {"daily_loss": "100"}, []),
        (DRAWDOWN, {"drawdown": "800.00", "daily_loss": "100"}, []),
        ({"heartbeat_timeout_ns": 5_000_000_000}, {"heartbeat_timeout_ns": 9_000_000_000}, ["heartbeat_timeout_ns"]),
        (
            {"reject_rate": "0.5", "reject_rate_window_ns": 10**9, "reject_rate_min_orders": 5},
            {"reject_rate": "0.5", "reject_rate_window_ns": 10**9, "reject_rate_min_orders": 50},
            ["reject_rate_min_orders"],
        ),
        (
            {"reject_rate": "0.5", "reject_rate_window_ns": 10**9},
            {"reject_rate": "0.4", "reject_rate_window_ns": 2 * 10**9},
            ["reject_rate_window_ns"],
        ),
    ],
)
def test_a_change_weakens_exactly_the_triggers_it_lets_more_through(old, new, weakened):
    assert triggers.weakened_fields(old, new) == weakened


def test_raising_a_threshold_waits_for_a_second_officer_while_the_engine_keeps_the_old_one(
    desk_engine, risk_officer, second_officer
):
    change(risk_officer, DRAWDOWN, base=0)

    raised = change(risk_officer, {"drawdown": "5000"}, base=1, reason="wider for the open")

    assert raised.status == TriggerStatus.PENDING_APPROVAL and raised.weakened == ["drawdown"]
    assert engine_triggers(desk_engine)[MANUAL]["drawdown"] == "800"
    with pytest.raises(TriggerError) as own:
        triggers.approve_trigger_change(actor=risk_officer, setting_id=raised.pk)
    assert own.value.code == "TRIGGER_SELF_APPROVAL"

    approved = triggers.approve_trigger_change(actor=second_officer, setting_id=raised.pk, comment="agreed")

    assert approved.status == TriggerStatus.IN_FORCE and approved.approved_by == second_officer
    assert engine_triggers(desk_engine)[MANUAL]["drawdown"] == "5000"
    approval = AuditEvent.objects.get(action=AuditAction.TRIGGERS_APPROVED)
    assert (approval.actor, approval.target, approval.reason) == (second_officer, "triggers strategy manual", "agreed")


@pytest.mark.parametrize("weaker", [{}, {"drawdown": "800", "drawdown_action": "REDUCING"}])
def test_removing_a_trigger_or_softening_its_action_is_not_sent_without_approval(desk_engine, risk_officer, weaker):
    change(risk_officer, DRAWDOWN, base=0)

    proposed = change(risk_officer, weaker, base=1)

    assert proposed.status == TriggerStatus.PENDING_APPROVAL and proposed.sent_at is None
    assert engine_triggers(desk_engine)[MANUAL] == DRAWDOWN


def test_a_tightening_applies_at_once(desk_engine, risk_officer):
    change(risk_officer, DRAWDOWN, base=0)

    tighter = change(risk_officer, {"drawdown": "500", "daily_loss": "300"}, base=1)

    assert tighter.status == TriggerStatus.IN_FORCE and tighter.weakened == []
    assert engine_triggers(desk_engine)[MANUAL]["drawdown"] == "500"


def test_the_engines_start_up_trigger_cannot_be_weakened_by_one_officer(engine_process, settings, risk_officer):
    engine = engine_process(limits=START_LIMITS, triggers=[("firm", {"daily_loss": "4000"})])
    engine.apply_settings(settings)

    raised = change(risk_officer, {"daily_loss": "90000"}, kind="firm", name="")

    assert raised.status == TriggerStatus.PENDING_APPROVAL and raised.weakened == ["daily_loss"]
    assert engine_triggers(engine)[("firm", "")]["daily_loss"] == "4000"


def test_a_rejected_weakening_never_reaches_the_engine(desk_engine, risk_officer, second_officer):
    change(risk_officer, DRAWDOWN, base=0)
    proposed = change(risk_officer, {}, base=1)

    with pytest.raises(TriggerError) as silent:
        triggers.reject_trigger_change(actor=second_officer, setting_id=proposed.pk, comment=" ")
    rejected = triggers.reject_trigger_change(actor=second_officer, setting_id=proposed.pk, comment="keep it")

    assert silent.value.code == "TRIGGER_COMMENT_REQUIRED"
    assert rejected.status == TriggerStatus.REJECTED and rejected.review_comment == "keep it"
    with pytest.raises(TriggerError) as again:
        triggers.approve_trigger_change(actor=second_officer, setting_id=proposed.pk)
    assert again.value.code == "TRIGGER_NOT_PENDING"
    assert engine_triggers(desk_engine)[MANUAL] == DRAWDOWN


def test_an_older_trigger_version_is_not_sent_while_a_newer_one_is_approved(desk_engine, risk_officer):
    older, newer = (
        TriggerSetting.objects.create(
            scope_kind="strategy",
            scope_name="manual",
            version=number,
            config={"drawdown": drawdown},
            reason="waiting for the engine",
            changed_by=risk_officer,
            command_id=new_command_id(),
        )
        for number, drawdown in ((1, "700"), (2, "600"))
    )

    refused = triggers.send_trigger_setting(setting=older)
    sent = triggers.send_trigger_setting(setting=newer)

    assert refused.status == TriggerStatus.SUPERSEDED and refused.sent_at is None
    assert sent.status == TriggerStatus.IN_FORCE
    assert engine_triggers(desk_engine)[MANUAL]["drawdown"] == "600"


def test_a_weakening_waits_on_the_desk_and_a_second_officer_approves_it_there(
    client, risk_officer, second_officer, desk_engine
):
    client.login(username=risk_officer.username, password=PASSWORD)
    url = reverse("riskdesk:edit_triggers", kwargs={"scope": "strategy:manual"})
    client.post(url, {"base_version": 0, "reason": "cap", "drawdown": "800", "drawdown_action": "HALTED"})
    proposed = client.post(url, {"base_version": 1, "reason": "wider", "drawdown": "3000"}, follow=True)
    pending = TriggerSetting.objects.get(version=2)
    own_page = client.get(reverse("riskdesk:home")).content.decode()
    client.logout()
    client.login(username=second_officer.username, password=PASSWORD)

    page = client.get(reverse("riskdesk:home")).content.decode()
    client.post(reverse("riskdesk:approve_triggers", kwargs={"setting_id": pending.pk}), {"comment": "ok for today"})
    history = client.get(url).content.decode()

    assert "waiting for a second risk officer" in proposed.content.decode()
    assert f'data-trigger-version="{pending.pk}"' in own_page and "another officer must approve" in own_page
    assert reverse("riskdesk:approve_triggers", kwargs={"setting_id": pending.pk}) in page
    assert TriggerSetting.objects.get(pk=pending.pk).status == TriggerStatus.IN_FORCE
    assert engine_triggers(desk_engine)[MANUAL]["drawdown"] == "3000"
    assert "weakens drawdown" in history and f"approved by {second_officer.username}: ok for today" in history


def test_the_settings_of_a_superseded_proposal_can_be_proposed_again_after_its_replacement_was_rejected(
    desk_engine, risk_officer, second_officer
):
    change(risk_officer, DRAWDOWN, base=0)
    first_try = change(risk_officer, {"drawdown": "900"}, base=1)
    replacement = change(risk_officer, {"drawdown": "1000"}, base=2)
    triggers.reject_trigger_change(actor=second_officer, setting_id=replacement.pk, comment="too wide")
    assert TriggerSetting.objects.get(pk=first_try.pk).status == TriggerStatus.SUPERSEDED

    again = change(risk_officer, {"drawdown": "900"}, base=3)

    assert again.status == TriggerStatus.PENDING_APPROVAL and again.weakened == ["drawdown"]
    with pytest.raises(TriggerError) as unchanged:
        change(risk_officer, DRAWDOWN, base=4)
    assert unchanged.value.code == "TRIGGER_UNCHANGED"


def test_an_approved_trigger_change_reaches_the_engine_in_the_approvers_name(desk_engine, risk_officer, second_officer):
    from engine.protocol import TriggersChanged

    change(risk_officer, DRAWDOWN, base=0)
    raised = change(risk_officer, {"drawdown": "900"}, base=1)

    approved = triggers.approve_trigger_change(actor=second_officer, setting_id=raised.pk, comment="agreed")

    events = [env.event for env in desk_engine.events() if isinstance(env.event, TriggersChanged)]
    assert [e.operator for e in events if e.command_id == approved.command_id] == ["rita_risk"]
    in_force = AuditEvent.objects.get(action=AuditAction.TRIGGERS_CHANGED, details__version=approved.version)
    assert in_force.actor == second_officer
