"""Log-in, log-out and failed log-in are audited, and the audit trail cannot be rewritten."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.urls import reverse

from compliance.models import AuditAction, AuditEvent, AuditTrailImmutable
from compliance.services import record_audit_event
from tests.conftest import PASSWORD


def test_logging_in_through_the_login_page_writes_an_audit_event(client, trader):
    response = client.post(reverse("login"), {"username": trader.username, "password": PASSWORD})

    assert response.status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.LOGIN)
    assert event.actor == trader
    assert event.actor_username == trader.username
    assert event.ip_address == "127.0.0.1"


def test_a_failed_login_is_audited_with_the_name_that_was_tried_and_no_password(client, db):
    client.post(reverse("login"), {"username": "mallory", "password": "guess-1234"})

    event = AuditEvent.objects.get(action=AuditAction.LOGIN_FAILED)
    assert event.actor is None
    assert event.actor_username == "mallory"
    assert "guess-1234" not in str(event.details) + event.target + event.reason


def test_logging_out_writes_an_audit_event(client, trader):
    client.force_login(trader)

    client.post(reverse("logout"))

    assert AuditEvent.objects.filter(action=AuditAction.LOGOUT, actor=trader).count() == 1


def test_an_audit_event_cannot_be_changed_through_the_orm(trader):
    event = record_audit_event(actor=trader, action=AuditAction.LOGIN, target="user:1", reason="first")
    event.reason = "rewritten"

    with pytest.raises(AuditTrailImmutable):
        event.save()
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(AuditTrailImmutable):
        AuditEvent(pk=event.pk, action=AuditAction.LOGIN, reason="rewritten").save()

    assert AuditEvent.objects.get(pk=event.pk).reason == "first"


def test_an_audit_event_cannot_be_deleted_through_the_orm(trader):
    event = record_audit_event(actor=trader, action=AuditAction.LOGIN)

    with pytest.raises(AuditTrailImmutable):
        event.delete()
    with pytest.raises(AuditTrailImmutable):
        AuditEvent.objects.all().delete()

    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE compliance_auditevent SET reason = 'rewritten' WHERE id = %s",
        "DELETE FROM compliance_auditevent WHERE id = %s",
    ],
)
def test_the_database_itself_refuses_update_and_delete_on_the_audit_table(trader, statement):
    event = record_audit_event(actor=trader, action=AuditAction.LOGIN, reason="first")

    with pytest.raises(DatabaseError, match="AUDIT_IMMUTABLE"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [event.pk])

    assert AuditEvent.objects.get(pk=event.pk).reason == "first"


def test_a_user_with_audit_history_cannot_be_deleted(trader):
    from django.db.models import ProtectedError

    record_audit_event(actor=trader, action=AuditAction.LOGIN)

    with pytest.raises(ProtectedError):
        trader.delete()
