"""Limit changes against the real engine process and PostgreSQL: tightening at once, loosening only after a second
officer's approval, stale versions, overrides that revert, and the engine's acknowledgement recorded."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from compliance.models import AuditAction, AuditEvent
from riskdesk.models import LimitChange, LimitScope, LimitStatus, LimitVersion
from riskdesk.services import limits
from riskdesk.services.engine import snapshot_limits
from riskdesk.services.limit_rules import LimitError
from tests.riskdesk.conftest import accepted, submit

BTC = ("instrument", "BTCUSDT")


def engine_limits(engine) -> dict:
    return snapshot_limits(engine.snapshot())


def propose(officer, limits_, *, base=0, kind="instrument", name="BTCUSDT", **extra):
    return limits.propose_limits(
        actor=officer, kind=kind, name=name, limits=limits_, base_version=base, reason="test change", **extra
    )


def test_a_tightened_limit_is_in_force_at_once_with_the_engines_acknowledgement(desk_engine, risk_officer):
    version = propose(risk_officer, {"max_order_quantity": Decimal("0.01")})

    assert version.status == LimitStatus.IN_FORCE and version.change == LimitChange.TIGHTEN, version.engine_reason
    assert version.acknowledged_at is not None and version.engine_event_seq > 0
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}
    assert LimitScope.objects.get(kind="instrument", name="BTCUSDT").in_force == version
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {
        AuditAction.LIMIT_PROPOSED,
        AuditAction.LIMIT_APPLIED,
    }


def test_an_order_one_lot_past_a_tightened_limit_is_denied_by_the_engine(desk_engine, risk_officer):
    propose(risk_officer, {"max_order_quantity": Decimal("0.01")})

    at_limit = submit(desk_engine, "at-limit", quantity="0.010")
    past_limit = submit(desk_engine, "past-limit", quantity="0.011")

    assert accepted(at_limit)
    assert not accepted(past_limit) and past_limit.code == "RISK_MAX_ORDER_QTY"


def test_a_loosened_limit_is_not_in_force_until_a_second_officer_approves_it(desk_engine, risk_officer, second_officer):
    propose(risk_officer, {"max_order_quantity": Decimal("0.01")})

    loosened = propose(risk_officer, {"max_order_quantity": Decimal("0.05")}, base=1)

    assert loosened.status == LimitStatus.PENDING_APPROVAL and loosened.change == LimitChange.LOOSEN
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}
    assert submit(desk_engine, "still-denied", quantity="0.02").code == "RISK_MAX_ORDER_QTY"

    with pytest.raises(LimitError) as own:
        limits.approve_limit_change(actor=risk_officer, version_id=loosened.pk)
    assert own.value.code == "LIMIT_SELF_APPROVAL"
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}

    approved = limits.approve_limit_change(actor=second_officer, version_id=loosened.pk, comment="agreed")

    assert approved.status == LimitStatus.IN_FORCE and approved.approved_by == second_officer
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.05"}
    assert accepted(submit(desk_engine, "now-allowed", quantity="0.02"))


def test_removing_the_engines_start_up_limit_counts_as_loosening(desk_engine, risk_officer):
    version = propose(
        risk_officer, {"max_order_notional": Decimal("250000"), "max_open_orders": 200}, kind="firm", name=""
    )

    assert version.status == LimitStatus.PENDING_APPROVAL
    assert engine_limits(desk_engine)[("firm", "")]["max_daily_loss"] == "5000"


def test_a_rejected_change_never_reaches_the_engine(desk_engine, risk_officer, second_officer):
    propose(risk_officer, {"max_order_quantity": Decimal("0.01")})
    loosened = propose(risk_officer, {"max_order_quantity": Decimal("1")}, base=1)

    limits.reject_limit_change(actor=second_officer, version_id=loosened.pk, comment="too large")

    assert LimitVersion.objects.get(pk=loosened.pk).status == LimitStatus.REJECTED
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}
    with pytest.raises(LimitError) as again:
        limits.approve_limit_change(actor=second_officer, version_id=loosened.pk)
    assert again.value.code == "LIMIT_NOT_PENDING"


def test_two_officers_editing_the_same_version_the_second_gets_a_stale_version_and_nothing_changes(
    desk_engine, risk_officer, second_officer
):
    propose(risk_officer, {"max_order_quantity": Decimal("0.01")}, base=0)

    with pytest.raises(LimitError) as stale:
        propose(second_officer, {"max_order_quantity": Decimal("0.005")}, base=0)

    assert stale.value.code == "LIMIT_STALE_VERSION"
    assert LimitVersion.objects.count() == 1
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}


def test_an_instrument_limit_above_its_strategys_is_refused_and_nothing_changes(desk_engine, risk_officer):
    propose(risk_officer, {"max_position": Decimal("0.5")}, kind="strategy", name="manual")

    with pytest.raises(LimitError) as above:
        propose(risk_officer, {"max_position": Decimal("0.8")})

    assert above.value.code == "LIMIT_ABOVE_PARENT"
    assert BTC not in engine_limits(desk_engine)
    assert not LimitVersion.objects.filter(scope__kind="instrument").exists()


def test_a_temporary_override_reverts_to_the_previous_limits_when_it_expires(desk_engine, risk_officer, second_officer):
    base = propose(risk_officer, {"max_order_quantity": Decimal("0.01")})
    override = propose(
        risk_officer,
        {"max_order_quantity": Decimal("0.05")},
        base=1,
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    limits.approve_limit_change(actor=second_officer, version_id=override.pk)
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.05"}

    reverts = limits.revert_expired_overrides(now=timezone.now() + dt.timedelta(minutes=6))

    assert [v.status for v in reverts] == [LimitStatus.IN_FORCE]
    assert reverts[0].limits == base.limits and reverts[0].change == LimitChange.REVERT
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}
    assert AuditEvent.objects.filter(action=AuditAction.LIMIT_OVERRIDE_EXPIRED).count() == 1
    assert limits.revert_expired_overrides(now=timezone.now() + dt.timedelta(minutes=7)) == []


def test_a_change_the_engine_cannot_be_reached_for_stays_unacknowledged_and_is_resent(
    desk_engine, risk_officer, settings
):
    first = propose(risk_officer, {"max_order_quantity": Decimal("0.05")})
    desk_engine.pause()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 200, 1
    try:
        version = propose(risk_officer, {"max_order_quantity": Decimal("0.01")}, base=1)
    finally:
        desk_engine.resume()

    assert version.status == LimitStatus.APPROVED and version.engine_code == "ENGINE_UNAVAILABLE"
    assert LimitScope.objects.get(kind="instrument").in_force == first

    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 2000, 15
    assert limits.resend_unacknowledged(older_than_s=0) == 1

    assert LimitVersion.objects.get(pk=version.pk).status == LimitStatus.IN_FORCE
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}


def test_a_scope_never_changed_here_cannot_be_changed_while_the_engine_is_silent(desk_engine, risk_officer, settings):
    desk_engine.pause()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 200, 1
    try:
        with pytest.raises(LimitError) as silent:
            # Would drop the engine's start-up daily loss limit: a loosening only the engine's snapshot reveals.
            propose(risk_officer, {"max_order_notional": Decimal("1000")}, kind="firm", name="")
    finally:
        desk_engine.resume()

    assert silent.value.code == "ENGINE_UNAVAILABLE"
    assert not LimitVersion.objects.exists()


def test_an_override_that_expired_while_waiting_cannot_be_approved(desk_engine, risk_officer, second_officer):
    propose(risk_officer, {"max_order_quantity": Decimal("0.01")})
    override = propose(
        risk_officer,
        {"max_order_quantity": Decimal("0.05")},
        base=1,
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    LimitVersion.objects.filter(pk=override.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    with pytest.raises(LimitError) as late:
        limits.approve_limit_change(actor=second_officer, version_id=override.pk)

    assert late.value.code == "LIMIT_OVERRIDE_EXPIRED"
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}


def test_recording_the_engines_start_up_limits_as_they_are_puts_them_in_force_here_without_approval(
    desk_engine, risk_officer
):
    startup = engine_limits(desk_engine)[("firm", "")]

    adopted = propose(risk_officer, startup, kind="firm", name="")

    assert adopted.status == LimitStatus.IN_FORCE and adopted.limits == startup
    with pytest.raises(LimitError) as again:
        propose(risk_officer, startup, kind="firm", name="", base=1)
    assert again.value.code == "LIMIT_UNCHANGED"


def test_two_officers_proposing_at_the_same_moment_one_wins_and_the_other_is_told_it_is_stale(
    desk_engine, risk_officer, second_officer, transactional_db
):
    import threading

    from django.db import connection

    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def edit(officer, quantity: str) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[officer.username] = propose(officer, {"max_order_quantity": Decimal(quantity)}).status
        except LimitError as exc:
            outcomes[officer.username] = exc.code
        finally:
            connection.close()

    threads = [
        threading.Thread(target=edit, args=(risk_officer, "0.01")),
        threading.Thread(target=edit, args=(second_officer, "0.02")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes.values()) == sorted([LimitStatus.IN_FORCE, "LIMIT_STALE_VERSION"])
    assert LimitVersion.objects.count() == 1
    assert engine_limits(desk_engine)[BTC] == LimitVersion.objects.get().limits


def test_an_expired_overrides_revert_whose_send_rolled_back_is_sent_by_the_resend_task(
    desk_engine, risk_officer, second_officer, monkeypatch
):
    from riskdesk import tasks
    from riskdesk.services import versioned

    propose(risk_officer, {"max_order_quantity": Decimal("0.01")})
    override = propose(
        risk_officer,
        {"max_order_quantity": Decimal("0.05")},
        base=1,
        expires_at=timezone.now() + dt.timedelta(minutes=5),
    )
    limits.approve_limit_change(actor=second_officer, version_id=override.pk)
    real_send = versioned.send_command

    def dies(cmd):
        raise RuntimeError("worker killed mid-send")

    monkeypatch.setattr(versioned, "send_command", dies)
    with pytest.raises(RuntimeError):
        limits.revert_expired_overrides(now=timezone.now() + dt.timedelta(minutes=6))
    monkeypatch.setattr(versioned, "send_command", real_send)
    revert = LimitVersion.objects.get(change=LimitChange.REVERT)
    assert revert.status == LimitStatus.APPROVED and revert.sent_at is None

    sent = tasks.resend_unacknowledged_limits()

    assert sent == 1
    assert LimitVersion.objects.get(pk=revert.pk).status == LimitStatus.IN_FORCE
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}
    applied = AuditEvent.objects.filter(action=AuditAction.LIMIT_APPLIED).latest("id")
    assert applied.actor is None and applied.actor_username == "riskdesk"
