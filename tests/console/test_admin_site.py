"""The `admin` role manages users' roles through the admin site, audited, without reaching superuser."""

from __future__ import annotations

from django.contrib.auth.models import Group
from django.urls import reverse

from compliance.models import AuditAction, AuditEvent


def change_form(client, user, **changes) -> dict:
    data = {
        "username": user.username,
        "is_active": "on",
        "groups": [group.pk for group in user.groups.all()],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "initial-date_joined_0": "2026-01-01",
        "initial-date_joined_1": "00:00:00",
    }
    data.update(changes)
    return client.post(reverse("admin:auth_user_change", args=[user.pk]), data)


def test_an_admin_can_change_a_users_role_and_the_change_is_audited(client, admin_user, trader):
    client.force_login(admin_user)
    risk = Group.objects.get(name="risk_officer")

    response = change_form(client, trader, groups=[risk.pk])

    assert response.status_code == 302
    assert list(trader.groups.values_list("name", flat=True)) == ["risk_officer"]
    event = AuditEvent.objects.get(action=AuditAction.USER_ROLES_CHANGED)
    assert event.actor == admin_user
    assert event.details == {"username": trader.username, "before": ["trader"], "after": ["risk_officer"]}


def test_an_admin_cannot_make_anyone_superuser_or_staff(client, admin_user, trader):
    client.force_login(admin_user)

    change_form(client, trader, is_superuser="on", is_staff="on")
    change_form(client, admin_user, is_superuser="on")

    trader.refresh_from_db()
    admin_user.refresh_from_db()
    assert not trader.is_superuser
    assert not trader.is_staff
    assert not admin_user.is_superuser


def test_roles_other_than_admin_cannot_open_the_user_admin(client, risk_officer):
    client.force_login(risk_officer)

    response = client.get(reverse("admin:auth_user_changelist"))

    assert response.status_code == 302  # the admin site sends non-staff users to its own log-in
