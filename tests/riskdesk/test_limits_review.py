"""Limit changes that must not slip past four eyes or bring replaced limits back: a permanent change made while a
temporary override is in force, an override made over an override, an approval whose proposal no longer fits the
limits in force, and an older version sent after a newer one — against the real engine process."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from console.engine_client import new_command_id
from riskdesk.models import LimitChange, LimitScope, LimitStatus, LimitVersion
from riskdesk.services import limits
from riskdesk.services.limit_rules import LimitError
from tests.riskdesk.test_limits_engine import BTC, engine_limits, propose


def override_in_force(officer, approver, quantity: str, *, base: int, minutes: int = 5) -> LimitVersion:
    override = propose(
        officer,
        {"max_order_quantity": Decimal(quantity)},
        base=base,
        expires_at=timezone.now() + dt.timedelta(minutes=minutes),
    )
    approved = limits.approve_limit_change(actor=approver, version_id=override.pk)
    assert approved.status == LimitStatus.IN_FORCE, approved.engine_reason
    return approved


def test_a_permanent_change_under_a_looser_override_needs_a_second_officer_when_it_loosens_the_permanent_limits(
    desk_engine, risk_officer, second_officer
):
    propose(risk_officer, {"max_order_quantity": Decimal("0.01")})
    override_in_force(risk_officer, second_officer, "0.05", base=1)

    # Tighter than the override, but looser than the permanent 0.01 the override returns to.
    permanent = propose(risk_officer, {"max_order_quantity": Decimal("0.04")}, base=2)

    assert permanent.status == LimitStatus.PENDING_APPROVAL and permanent.change == LimitChange.LOOSEN
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.05"}


def test_an_override_made_over_an_override_returns_to_the_permanent_limits(desk_engine, risk_officer, second_officer):
    base = propose(risk_officer, {"max_order_quantity": Decimal("0.01")})
    override_in_force(risk_officer, second_officer, "0.05", base=1, minutes=5)

    second = propose(
        risk_officer,
        {"max_order_quantity": Decimal("0.03")},
        base=2,
        expires_at=timezone.now() + dt.timedelta(minutes=30),
    )
    assert second.status == LimitStatus.PENDING_APPROVAL and second.reverts_to == base
    limits.approve_limit_change(actor=second_officer, version_id=second.pk)

    reverts = limits.revert_expired_overrides(now=timezone.now() + dt.timedelta(minutes=31))

    assert [(v.status, v.limits) for v in reverts] == [(LimitStatus.IN_FORCE, base.limits)]
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}


def test_an_approval_checks_the_proposal_again_against_the_limits_in_force_now(
    desk_engine, risk_officer, second_officer
):
    propose(risk_officer, {"max_position": Decimal("0.5")}, kind="strategy", name="manual")
    propose(risk_officer, {"max_position": Decimal("0.3")})
    loosened = propose(risk_officer, {"max_position": Decimal("0.4")}, base=1)
    assert loosened.status == LimitStatus.PENDING_APPROVAL
    # Meanwhile the strategy's limit is tightened below the waiting proposal.
    propose(risk_officer, {"max_position": Decimal("0.35")}, kind="strategy", name="manual", base=1)

    with pytest.raises(LimitError) as refused:
        limits.approve_limit_change(actor=second_officer, version_id=loosened.pk)

    assert refused.value.code == "LIMIT_ABOVE_PARENT"
    assert LimitVersion.objects.get(pk=loosened.pk).status == LimitStatus.PENDING_APPROVAL
    assert engine_limits(desk_engine)[BTC] == {"max_position": "0.3"}


def test_a_tightening_replaces_an_unanswered_version_which_is_then_never_sent(desk_engine, risk_officer, settings):
    propose(risk_officer, {"max_order_quantity": Decimal("0.05")})
    desk_engine.pause()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 200, 1
    try:
        unanswered = propose(risk_officer, {"max_order_quantity": Decimal("0.02")}, base=1)
    finally:
        desk_engine.resume()
    settings.ENGINE_TIMEOUT_MS, settings.ENGINE_COMMAND_RETRIES = 2000, 15
    assert unanswered.status == LimitStatus.APPROVED

    newer = propose(risk_officer, {"max_order_quantity": Decimal("0.01")}, base=2)
    late = limits.send_limit_version(version=unanswered)  # a resend that read its list before the newer version

    assert newer.status == LimitStatus.IN_FORCE
    assert late.status == LimitStatus.SUPERSEDED and late.acknowledged_at is None
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.01"}


def test_an_older_version_is_not_sent_while_a_newer_one_is_approved(desk_engine, risk_officer, second_officer):
    first = propose(risk_officer, {"max_order_quantity": Decimal("0.05")})
    scope = LimitScope.objects.get(kind="instrument", name="BTCUSDT")
    # Two approved versions waiting for the engine, as a slow engine and a second officer's approval leave them.
    older, newer = (
        LimitVersion.objects.create(
            scope=scope,
            version=number,
            limits={"max_order_quantity": quantity},
            change=LimitChange.TIGHTEN,
            status=LimitStatus.APPROVED,
            reason="waiting for the engine",
            proposed_by=risk_officer,
            command_id=new_command_id(),
        )
        for number, quantity in ((2, "0.02"), (3, "0.03"))
    )
    LimitScope.objects.filter(pk=scope.pk).update(version=3)

    refused = limits.send_limit_version(version=older)
    sent = limits.send_limit_version(version=newer)

    assert refused.status == LimitStatus.SUPERSEDED and refused.sent_at is None
    assert sent.status == LimitStatus.IN_FORCE
    assert LimitVersion.objects.get(pk=first.pk).status == LimitStatus.SUPERSEDED
    assert engine_limits(desk_engine)[BTC] == {"max_order_quantity": "0.03"}
