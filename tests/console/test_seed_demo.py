"""seed_demo creates one user per role; passwords come from the environment or are printed once."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from console.services.demo import DEMO_USERS

pytestmark = pytest.mark.django_db


def seed(capsys, *args) -> str:
    call_command("seed_demo", *args)
    return capsys.readouterr().out


def test_seed_demo_creates_one_user_per_role_and_prints_each_generated_password_once(capsys, monkeypatch):
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)

    first = seed(capsys)
    second = seed(capsys)

    passwords = dict(re.findall(r"demo user (\w+)\s+role \w+\s+created; password: (\S+)", first))
    assert set(passwords) == set(DEMO_USERS)
    assert len(set(passwords.values())) == len(DEMO_USERS)
    for username, password in passwords.items():
        user = authenticate(username=username, password=password)
        assert user is not None
        assert [group.name for group in user.groups.all()] == [DEMO_USERS[username].value]
        assert password not in second
    assert "password unchanged" in second


def test_seed_demo_takes_passwords_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "shared-demo-password-1")
    monkeypatch.setenv("DEMO_PASSWORD_RISK", "risk-own-password-2")

    seed(capsys)

    assert authenticate(username="trader", password="shared-demo-password-1") is not None
    assert authenticate(username="risk", password="risk-own-password-2") is not None


def test_only_the_demo_admin_can_use_the_admin_site(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "shared-demo-password-1")

    seed(capsys)

    from django.contrib.auth import get_user_model

    staff = set(get_user_model().objects.filter(is_staff=True).values_list("username", flat=True))
    assert staff == {"admin"}


def test_reset_passwords_replaces_an_existing_password(capsys, monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "shared-demo-password-1")
    seed(capsys)
    monkeypatch.setenv("DEMO_PASSWORD", "rotated-password-22")

    seed(capsys, "--reset-passwords")

    assert authenticate(username="compliance", password="rotated-password-22") is not None
