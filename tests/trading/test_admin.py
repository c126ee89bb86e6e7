"""The trading tables are visible in the admin to staff with the trading desk permission, and never editable."""

from __future__ import annotations

import pytest
from django.urls import reverse

from trading.models import Instrument
from trading.services.reference import sync_reference_data

pytestmark = pytest.mark.django_db


def test_the_admin_role_sees_synced_instruments_but_cannot_add_change_or_delete_them(client, admin_user):
    sync_reference_data()
    btc = Instrument.objects.get(symbol="BTCUSDT")
    client.force_login(admin_user)

    listing = client.get(reverse("admin:trading_instrument_changelist"))
    add = client.get(reverse("admin:trading_instrument_add"))
    change = client.post(reverse("admin:trading_instrument_change", args=[btc.pk]), {"symbol": "HACKED"})
    delete = client.post(reverse("admin:trading_instrument_delete", args=[btc.pk]), {"post": "yes"})

    assert listing.status_code == 200
    assert b"BTCUSDT" in listing.content
    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    assert Instrument.objects.get(pk=btc.pk).symbol == "BTCUSDT"


@pytest.mark.parametrize("name", ["order", "position", "strategy", "deadletter", "bridgecheckpoint"])
def test_each_trading_admin_page_opens_for_the_admin_role(client, admin_user, name):
    client.force_login(admin_user)

    response = client.get(reverse(f"admin:trading_{name}_changelist"))

    assert response.status_code == 200
