"""Each role sees its own desk and gets 403 on the others'; anonymous users are sent to log in."""

from __future__ import annotations

import pytest
from django.urls import reverse

DESK_PAGES = {
    "trading:home": {"trader", "admin"},
    "riskdesk:home": {"risk_officer", "admin"},
    "compliance:home": {"compliance_officer", "admin"},
}
PAGES_FOR_EVERY_USER = ["home", "status"]  # status needs a role; tested in test_celery_and_health
USERS = ["trader", "risk_officer", "compliance_officer", "admin_user", "outsider"]


def role_of(fixture_name: str) -> str:
    return "admin" if fixture_name == "admin_user" else fixture_name


@pytest.mark.parametrize("user_fixture", USERS)
@pytest.mark.parametrize("page", sorted(DESK_PAGES))
def test_a_desk_page_is_open_only_to_its_roles(client, request, user_fixture, page):
    client.force_login(request.getfixturevalue(user_fixture))

    response = client.get(reverse(page))

    expected = 200 if role_of(user_fixture) in DESK_PAGES[page] else 403
    assert response.status_code == expected


@pytest.mark.parametrize("page", sorted(DESK_PAGES) + PAGES_FOR_EVERY_USER)
def test_an_anonymous_visitor_is_sent_to_the_login_page(client, db, page):
    response = client.get(reverse(page))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("user_fixture", USERS)
def test_the_home_page_offers_exactly_the_desks_of_the_users_role(client, request, user_fixture):
    client.force_login(request.getfixturevalue(user_fixture))

    html = client.get(reverse("home")).content.decode()

    for page, roles in DESK_PAGES.items():
        link = f'href="{reverse(page)}"'
        assert (link in html) == (role_of(user_fixture) in roles), page


def test_a_user_without_a_role_is_told_so_on_the_home_page(client, outsider):
    client.force_login(outsider)

    html = client.get(reverse("home")).content.decode()

    assert "no role" in html


def test_the_trading_desk_lists_the_configured_instruments(client, trader):
    client.force_login(trader)

    html = client.get(reverse("trading:home")).content.decode()

    for symbol in ("BTCUSDT", "ESM4", "USDJPY"):
        assert symbol in html


def test_the_compliance_desk_filters_the_audit_trail_by_action(client, compliance_officer, trader):
    client.login(username=trader.username, password="wrong password")
    client.force_login(compliance_officer)

    failed = client.get(reverse("compliance:home"), {"action": "auth.login_failed"}).content.decode()
    logins = client.get(reverse("compliance:home"), {"action": "auth.login"}).content.decode()

    assert "username:tina_trader" in failed
    assert "username:tina_trader" not in logins
