"""Who may do what on the trading desk: every view and every live topic, for each role, the anonymous visitor and
the signed-in outsider with no role. A POST refused here never reaches the engine (none is running)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from compliance.models import AuditAction, AuditEvent
from console.asgi import application
from tests.console.test_websocket import session_headers

pytestmark = pytest.mark.django_db

ROLES = ("trader", "risk_officer", "compliance_officer", "admin_user", "outsider")
VIEW_DESK = {"trader", "admin_user"}
SUBMIT = {"trader", "admin_user"}
CONTROL = {"trader", "admin_user"}

# (method, url, who may) -- POSTs carry no valid form: an allowed role gets a 422 form error, never a 403.
VIEWS = [
    ("get", "/trading/", VIEW_DESK),
    ("get", "/trading/instrument/BTCUSDT/", VIEW_DESK),
    ("get", "/trading/strategy/as-btc/", VIEW_DESK),
    ("get", "/trading/blotter/", VIEW_DESK),
    ("get", "/trading/blotter.csv", VIEW_DESK),
    ("get", "/trading/ticket/", SUBMIT),
    ("post", "/trading/ticket/", SUBMIT),
    ("post", "/trading/orders/cancel/", SUBMIT),
    ("post", "/trading/orders/cancel-all/", SUBMIT),
    ("post", "/trading/strategy/as-btc/start/", CONTROL),
    ("post", "/trading/strategy/as-btc/stop/", CONTROL),
    ("post", "/trading/strategy/as-btc/params/", CONTROL),
    ("post", "/trading/strategy/as-btc/rollback/", CONTROL),
]


@pytest.fixture
def reference(db):
    from trading.services.reference import sync_reference_data

    sync_reference_data()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "url", "allowed"), VIEWS, ids=[f"{m} {u}" for m, u, _ in VIEWS])
def test_each_trading_view_answers_each_role_as_the_matrix_says(request, reference, role, method, url, allowed):
    user = request.getfixturevalue(role)
    client = Client()
    client.force_login(user)

    response = getattr(client, method)(url)

    if role in allowed:
        assert response.status_code in (200, 422), response.status_code
    else:
        assert response.status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="trading.").exists()  # nothing was sent


@pytest.mark.parametrize(("method", "url", "allowed"), VIEWS, ids=[f"{m} {u}" for m, u, _ in VIEWS])
def test_an_anonymous_visitor_is_sent_to_log_in_from_every_trading_view(reference, method, url, allowed):
    response = getattr(Client(), method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_a_post_from_a_page_without_its_csrf_token_is_refused(reference, trader):
    client = Client(enforce_csrf_checks=True)
    client.force_login(trader)

    response = client.post("/trading/orders/cancel-all/", {"scope_kind": "STRATEGY", "scope_name": "as-btc"})

    assert response.status_code == 403


TOPICS = ["heartbeat", "trading_state", "alerts", "pnl", "positions", "orders", "fills", "strategies", "limits",
          "risk", "tob.BTCUSDT", "book.BTCUSDT", "trades.BTCUSDT", "recon"]  # fmt: skip
DESK_TOPICS = {"pnl", "positions", "orders", "fills", "strategies", "limits", "risk", "tob.BTCUSDT", "book.BTCUSDT",
               "trades.BTCUSDT"}  # fmt: skip
EVERYONE = {"heartbeat", "trading_state", "alerts"}
CONSUMER_MATRIX = {
    "trader": EVERYONE | DESK_TOPICS,
    "risk_officer": EVERYONE | DESK_TOPICS,
    "compliance_officer": EVERYONE | {"recon"},
    "admin_user": set(TOPICS),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", sorted(CONSUMER_MATRIX))
async def test_each_role_gets_exactly_its_live_topics_and_the_rest_are_refused_and_audited(request, role):
    user = await sync_to_async(request.getfixturevalue)(role)
    headers = await sync_to_async(session_headers)(user)
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    assert (await communicator.connect(timeout=10))[0]
    await communicator.receive_json_from(timeout=5)  # hello
    own = f"user.{user.username}"

    await communicator.send_json_to({"type": "subscribe", "topics": [*TOPICS, own]})
    frames = [await communicator.receive_json_from(timeout=5)]
    if frames[0]["type"] == "error":
        frames.append(await communicator.receive_json_from(timeout=5))
    snapshot = frames[-1]
    refused = {r["topic"] for f in frames if f["type"] == "error" for r in f["refused"]}
    audited = await database_sync_to_async(
        AuditEvent.objects.filter(action=AuditAction.FORGED_MESSAGE, actor=user).count
    )()

    assert set(snapshot["topics"]) == CONSUMER_MATRIX[role] | {own}
    assert refused == set(TOPICS) - CONSUMER_MATRIX[role]
    assert audited == (1 if refused else 0)
    await communicator.disconnect()
