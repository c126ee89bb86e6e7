"""The console websocket over the real Redis channel layer: authenticated users only."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from console.asgi import application
from console.consumers import CLOSE_NO_ROLE, CLOSE_UNAUTHENTICATED
from console.realtime import BROADCAST_GROUP

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def session_headers(user) -> list[tuple[bytes, bytes]]:
    client = Client()
    client.force_login(user)
    return [ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def connected(user) -> WebsocketCommunicator:
    headers = await sync_to_async(session_headers)(user)
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    return communicator


async def test_an_anonymous_websocket_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=[ORIGIN])

    connected, code = await communicator.connect(timeout=10)

    assert not connected
    assert code == CLOSE_UNAUTHENTICATED


async def test_a_signed_in_user_without_a_role_is_refused(outsider):
    headers = await sync_to_async(session_headers)(outsider)
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)

    connected, code = await communicator.connect(timeout=10)

    assert not connected
    assert code == CLOSE_NO_ROLE


async def test_a_websocket_from_a_foreign_origin_is_refused(trader):
    cookie = (await sync_to_async(session_headers)(trader))[1]
    headers = [(b"origin", b"http://evil.example.com"), cookie]
    communicator = WebsocketCommunicator(application, "/ws/console/", headers=headers)

    connected, _ = await communicator.connect(timeout=10)

    assert not connected


async def test_a_signed_in_user_is_greeted_with_their_name_and_roles(trader):
    communicator = await connected(trader)

    hello = await communicator.receive_json_from(timeout=5)

    assert hello["type"] == "hello"
    assert hello["user"] == trader.username
    assert hello["roles"] == ["trader"]
    await communicator.disconnect()


async def test_a_heartbeat_sent_through_the_redis_channel_layer_reaches_the_socket(risk_officer):
    from channels_redis.core import RedisChannelLayer

    communicator = await connected(risk_officer)
    await communicator.receive_json_from(timeout=5)  # hello
    layer = get_channel_layer()

    await layer.group_send(BROADCAST_GROUP, {"type": "console.heartbeat", "ts": 1234.5, "source": "test"})
    message = await communicator.receive_json_from(timeout=5)

    assert isinstance(layer, RedisChannelLayer)
    assert message == {"type": "heartbeat", "ts": 1234.5, "source": "test"}
    await communicator.disconnect()


async def test_a_ping_is_answered_with_a_pong_carrying_its_id(compliance_officer):
    communicator = await connected(compliance_officer)
    await communicator.receive_json_from(timeout=5)

    await communicator.send_json_to({"type": "ping", "id": 7})
    reply = await communicator.receive_json_from(timeout=5)

    assert reply["type"] == "pong"
    assert reply["id"] == 7
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "MALFORMED"),
        ("[1, 2, 3]", "MALFORMED"),
        ('{"type": 5}', "MALFORMED"),
        ('{"type": "format_disk"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"type": "ping", "pad": "' + "x" * 9000 + '"}', "BAD_FRAME"),
    ],
)
async def test_a_bad_frame_gets_an_error_with_a_reason_code_and_the_socket_stays_open(trader, frame, code):
    communicator = await connected(trader)
    await communicator.receive_json_from(timeout=5)

    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from(timeout=5)
    await communicator.send_json_to({"type": "ping", "id": 1})
    still_open = await communicator.receive_json_from(timeout=5)

    assert error["type"] == "error"
    assert error["code"] == code
    assert error["reason"]
    assert still_open["type"] == "pong"
    await communicator.disconnect()
