"""Demo users, one per role, for the run command and for trying the console."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from console.roles import Role, sync_roles

DEMO_USERS: dict[str, Role] = {
    "trader": Role.TRADER,
    "risk": Role.RISK_OFFICER,
    "compliance": Role.COMPLIANCE_OFFICER,
    "admin": Role.ADMIN,
}


@dataclass(frozen=True)
class SeededUser:
    username: str
    role: Role
    created: bool
    password: str | None  # set only when this call chose or reset the password


def _password_for(username: str) -> tuple[str, bool]:
    """The password from DEMO_PASSWORD_<USER> or DEMO_PASSWORD, else a fresh random one (and say so)."""
    value = os.environ.get(f"DEMO_PASSWORD_{username.upper()}") or os.environ.get("DEMO_PASSWORD")
    if value:
        return value, False
    return secrets.token_urlsafe(12), True


@transaction.atomic
def seed_demo_users(*, reset_passwords: bool = False) -> list[SeededUser]:
    sync_roles()
    User = get_user_model()
    seeded = []
    for username, role in DEMO_USERS.items():
        user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@demo.invalid"})
        password = None
        if created or reset_passwords:
            password, _generated = _password_for(username)
            user.set_password(password)
        user.is_staff = role is Role.ADMIN
        user.is_active = True
        user.save()
        user.groups.set([Group.objects.get(name=role.value)])
        seeded.append(SeededUser(username, role, created, password))
    return seeded
