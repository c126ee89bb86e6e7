"""The console websocket over the real Redis channel layer: authenticated users only."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from console.asgi import application
from console.consumers import BATCH_INTERVAL_S, CLOSE_NO_ROLE, CLOSE_UNAUTHENTICATED, ConsoleConsumer
from console.realtime import BROADCAST_GROUP, hub

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def session_headers(user, client: Client | None = None) -> list[tuple[bytes, bytes]]:
    client = client or signed_in(user)
    return [ORIGIN, (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]


async def connected(user, client: Client | None = None) -> WebsocketCommunicator:
    headers = await sync_to_async(session_headers)(user, client)
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


# --- live topics: subscribe, snapshot, conflated batches, refusals (issue 7) ------------------------------------


async def subscribed(user, topics: list[str]) -> tuple[WebsocketCommunicator, dict]:
    communicator = await connected(user)
    await communicator.receive_json_from(timeout=5)  # hello
    await communicator.send_json_to({"type": "subscribe", "topics": topics})
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "snapshot", snapshot
    return communicator, snapshot


def update(topic: str, seq: int, data: dict, engine_id: str = "engine-t") -> dict:
    return {"type": "live.update", "topic": topic, "seq": seq, "engine_id": engine_id, "ts": seq * 1000, "data": data}


async def forged_events(user) -> list[dict]:
    from compliance.models import AuditAction, AuditEvent

    rows = AuditEvent.objects.filter(actor=user, action=AuditAction.FORGED_MESSAGE).order_by("occurred_at", "id")
    # database_sync_to_async closes its connection afterwards, so the test database can be dropped at the end.
    return await database_sync_to_async(lambda: [{"target": r.target, "reason": r.reason, **r.details} for r in rows])()


async def test_a_subscribe_is_answered_with_the_stored_latest_state_of_each_topic(trader):
    from trading.live import publish

    await sync_to_async(publish)("pnl", data={"scopes": [{"scope_kind": "FIRM", "realized": "12.5"}]}, seq=41, ts=7)

    communicator, snapshot = await subscribed(trader, ["pnl", "positions"])

    assert snapshot["frame"] == 1
    assert snapshot["topics"] == ["pnl", "positions"]
    # Other tests of the run may have stored "positions" already; "pnl" is the one this test wrote.
    pnl = [u for u in snapshot["updates"] if u["topic"] == "pnl"]
    assert pnl == [
        {"topic": "pnl", "seq": 41, "ts": 7, "data": {"scopes": [{"scope_kind": "FIRM", "realized": "12.5"}]}}
    ]
    await communicator.disconnect()


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    # Polls state on the test's own event loop (the consumer and the hub run on it), yielding between looks.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_updates_arriving_while_a_frame_is_due_are_conflated_into_it_with_the_latest_state_winning(
    trader, monkeypatch
):
    # Hold the socket's next flush until every update has reached the hub: what arrives meanwhile must replace
    # the pending state per topic, not queue behind it, however fast or slow this machine is.
    gate = asyncio.Event()
    flush = ConsoleConsumer._flush

    async def held_flush(self):
        await gate.wait()
        await flush(self)

    monkeypatch.setattr(ConsoleConsumer, "_flush", held_flush)
    communicator, _ = await subscribed(trader, ["orders", "fills"])
    layer = get_channel_layer()

    for seq in range(1, 201):
        await layer.group_send("live.orders", update("orders", seq, {"working": [{"n": seq}]}))
    await layer.group_send("live.fills", update("fills", 500, {"fills": [{"exec_id": "x"}]}))
    await until(lambda: hub().latest.get("orders", {}).get("seq") == 200 and "fills" in hub().latest, "the hub")
    gate.set()
    frame = await communicator.receive_json_from(timeout=5)

    assert frame["type"] == "batch" and frame["frame"] == 2
    assert [(u["topic"], u["seq"]) for u in frame["updates"]] == [("fills", 500), ("orders", 200)]
    assert frame["updates"][1]["data"] == {"working": [{"n": 200}]}
    assert await communicator.receive_nothing(timeout=0.3)  # 201 updates, one frame
    await communicator.disconnect()


async def test_a_socket_sends_its_next_frame_no_sooner_than_the_batch_interval_after_the_last(trader):
    # The rate limit as the consumer computes it, on the loop's clock: no sleeping, no wall time.
    communicator, _ = await subscribed(trader, ["pnl"])
    consumer = next(iter(hub()._subscribers["pnl"]))
    loop = asyncio.get_running_loop()
    scheduled = []
    real_call_later = loop.call_later

    def recording_call_later(delay, callback, *args):
        scheduled.append(delay)
        return real_call_later(delay, callback, *args)

    consumer._last_flush = loop.time()
    loop.call_later = recording_call_later
    try:
        consumer.topics_changed(["pnl"])
        consumer.topics_changed(["pnl"])  # already due: no second flush
    finally:
        del loop.call_later

    assert len(scheduled) == 1
    assert 0 < scheduled[0] <= BATCH_INTERVAL_S
    await communicator.disconnect()


async def test_an_older_update_than_the_one_held_is_dropped(trader):
    communicator, _ = await subscribed(trader, ["positions"])
    layer = get_channel_layer()

    await layer.group_send("live.positions", update("positions", 10, {"positions": ["new"]}))
    first = await communicator.receive_json_from(timeout=5)
    await layer.group_send("live.positions", update("positions", 9, {"positions": ["old"]}))
    await layer.group_send("live.positions", update("positions", 11, {"positions": ["newer"]}))
    second = await communicator.receive_json_from(timeout=5)

    assert first["updates"][0]["data"] == {"positions": ["new"]}
    assert [u["data"] for u in second["updates"]] == [{"positions": ["newer"]}]
    await communicator.disconnect()


async def test_updates_of_a_topic_not_subscribed_never_reach_the_socket(trader):
    communicator, _ = await subscribed(trader, ["pnl"])
    layer = get_channel_layer()

    await layer.group_send("live.fills", update("fills", 1, {"fills": []}))
    await layer.group_send("live.pnl", update("pnl", 2, {"scopes": []}))
    frame = await communicator.receive_json_from(timeout=5)

    assert [u["topic"] for u in frame["updates"]] == ["pnl"]
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


async def test_after_unsubscribe_the_topic_stops_arriving(trader):
    communicator, _ = await subscribed(trader, ["pnl", "fills"])
    layer = get_channel_layer()

    await communicator.send_json_to({"type": "unsubscribe", "topics": ["pnl"]})
    await communicator.send_json_to({"type": "ping", "id": 1})
    assert (await communicator.receive_json_from(timeout=5))["type"] == "pong"  # the unsubscribe was handled
    await layer.group_send("live.pnl", update("pnl", 3, {"scopes": []}))
    await layer.group_send("live.fills", update("fills", 4, {"fills": []}))
    frame = await communicator.receive_json_from(timeout=5)

    assert [u["topic"] for u in frame["updates"]] == ["fills"]
    await communicator.disconnect()


async def test_when_the_last_socket_leaves_the_hub_has_stopped_receiving_before_the_disconnect_returns(trader):
    # A reader left mid-receive keeps channels_redis's receiver count and loop-bound lock; the next loop to
    # receive on the layer (the next test here, a restarted loop in a server) would then fail.
    communicator, _ = await subscribed(trader, ["pnl"])
    layer = get_channel_layer()
    # The socket's own channel and the hub's reader.
    await until(lambda: layer.receive_count == 2, "the hub to start receiving")

    await communicator.disconnect()

    assert hub()._task is None
    assert layer.receive_count == 0
    assert layer.receive_lock is None


async def test_a_disconnect_cut_short_while_leaving_the_groups_still_stops_the_hubs_reader(trader, monkeypatch):
    # An ASGI server may cancel a disconnect that takes too long; the reader must not outlive the last socket.
    communicator, _ = await subscribed(trader, ["pnl"])
    live = hub()
    reader = live._task
    discarding = asyncio.Event()

    async def slow_group_discard(group, channel):
        discarding.set()
        await asyncio.sleep(60)

    monkeypatch.setattr(live.layer, "group_discard", slow_group_discard)
    consumer = next(iter(live._subscribers["pnl"]))
    leaving = asyncio.ensure_future(live.unsubscribe(consumer))
    await discarding.wait()
    leaving.cancel()
    await asyncio.wait([leaving])
    await asyncio.wait([reader], timeout=5)

    assert leaving.cancelled()
    assert reader.done()
    assert live._task is None
    monkeypatch.undo()
    await communicator.disconnect()


async def test_a_subscribe_that_fails_half_way_leaves_no_trace_of_the_socket_in_the_hub(trader, monkeypatch):
    # Redis going away between two group joins ends the consumer with the error, and Channels then never calls
    # disconnect(): the hub must not keep streaming to the dead socket.
    communicator = await connected(trader)
    await communicator.receive_json_from(timeout=5)  # hello
    live = hub()
    real_group_add = live.layer.group_add
    joined = []

    async def failing_second_group_add(group, channel):
        if joined:
            raise ConnectionError("redis went away")
        joined.append(group)
        await real_group_add(group, channel)

    monkeypatch.setattr(live.layer, "group_add", failing_second_group_add)
    await communicator.send_json_to({"type": "subscribe", "topics": ["fills", "pnl"]})
    with pytest.raises(ConnectionError):
        await communicator.receive_output(timeout=5)

    assert joined == ["live.fills"]
    assert live._subscribers == {}
    assert live._task is None


async def test_a_users_own_stream_carries_the_outcome_of_their_actions(trader):
    from console.realtime import publish_to_user

    communicator, _ = await subscribed(trader, [f"user.{trader.username}"])

    await sync_to_async(publish_to_user, thread_sensitive=False)(username=trader.username, data={"action": {"ok": 1}})
    frame = await communicator.receive_json_from(timeout=5)

    assert frame["updates"][0]["topic"] == f"user.{trader.username}"
    assert frame["updates"][0]["data"] == {"action": {"ok": 1}}
    await communicator.disconnect()


async def test_a_user_with_a_long_unicode_name_gets_the_outcome_of_their_own_actions(db):
    # Django allows 150 characters of any letters in a username; channel-layer group names allow neither.
    from console.realtime import publish_to_user
    from tests.conftest import _make_user

    name = "zoë.ünïcode+desk@example.com" + "x" * 120
    user = await database_sync_to_async(_make_user)(name, "trader")
    communicator, snapshot = await subscribed(user, [f"user.{name}"])

    await sync_to_async(publish_to_user, thread_sensitive=False)(username=name, data={"action": {"ok": 1}})
    frame = await communicator.receive_json_from(timeout=5)

    assert snapshot["topics"] == [f"user.{name}"]
    assert frame["updates"][0]["data"] == {"action": {"ok": 1}}
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ({"type": "subscribe", "topics": ["no_such_topic"]}, "UNKNOWN_TOPIC"),
        ({"type": "subscribe", "topics": ["*"]}, "UNKNOWN_TOPIC"),
        ({"type": "subscribe", "topics": ["book.NOPE"]}, "UNKNOWN_TOPIC"),
        ({"type": "subscribe", "topics": ["recon"]}, "TOPIC_FORBIDDEN"),
        ({"type": "subscribe", "topics": ["user.rick_risk"]}, "OTHER_USERS_STREAM"),
        ({"type": "HaltTrading", "scope": {"kind": 1, "name": ""}}, "COMMAND_FORBIDDEN"),
        ({"type": "SetLimits"}, "COMMAND_FORBIDDEN"),
    ],
)
async def test_a_forged_message_is_refused_with_a_reason_audited_and_changes_nothing(trader, message, code):
    communicator = await connected(trader)
    await communicator.receive_json_from(timeout=5)

    await communicator.send_json_to(message)
    error = await communicator.receive_json_from(timeout=5)
    audited = await forged_events(trader)
    await communicator.send_json_to({"type": "ping", "id": 2})
    still_open = await communicator.receive_json_from(timeout=5)

    assert error["type"] == "error" and error["code"] == code and error["reason"]
    assert len(audited) == 1
    assert audited[0]["code"] == code and audited[0]["target"] == "ws:/ws/console/"
    assert still_open["type"] == "pong"  # no snapshot came: nothing was subscribed
    await communicator.disconnect()


async def test_a_command_the_role_may_send_is_still_not_taken_over_the_socket_and_not_called_forged(trader):
    communicator = await connected(trader)
    await communicator.receive_json_from(timeout=5)

    await communicator.send_json_to({"type": "SubmitOrder", "symbol": "BTCUSDT"})
    error = await communicator.receive_json_from(timeout=5)

    assert error["code"] == "COMMAND_NOT_ON_SOCKET"
    assert await forged_events(trader) == []
    await communicator.disconnect()


async def test_a_mixed_subscribe_gets_the_allowed_topics_and_a_refusal_for_the_rest(compliance_officer):
    communicator = await connected(compliance_officer)
    await communicator.receive_json_from(timeout=5)

    await communicator.send_json_to({"type": "subscribe", "topics": ["heartbeat", "positions", "recon"]})
    error = await communicator.receive_json_from(timeout=5)
    snapshot = await communicator.receive_json_from(timeout=5)

    assert error["code"] == "TOPIC_FORBIDDEN"
    assert [r["topic"] for r in error["refused"]] == ["positions"]
    assert snapshot["type"] == "snapshot" and snapshot["topics"] == ["heartbeat", "recon"]
    await communicator.disconnect()


async def test_a_socket_that_keeps_sending_forged_messages_is_closed(trader):
    from console.consumers import CLOSE_TOO_MANY_REFUSALS, MAX_REFUSALS

    communicator = await connected(trader)
    await communicator.receive_json_from(timeout=5)

    for _ in range(MAX_REFUSALS):
        await communicator.send_json_to({"type": "subscribe", "topics": ["recon"]})
        await communicator.receive_json_from(timeout=5)
    closed = await communicator.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": CLOSE_TOO_MANY_REFUSALS}
    assert len(await forged_events(trader)) == MAX_REFUSALS


# --- access read again on every heartbeat (review finding 4) ---------------------------------------------------


async def heartbeat() -> None:
    await get_channel_layer().group_send(BROADCAST_GROUP, {"type": "console.heartbeat", "ts": 1.0, "source": "test"})


def remove_role(user, role: str) -> None:
    from django.contrib.auth.models import Group

    user.groups.remove(Group.objects.get(name=role))


async def test_a_role_taken_away_while_the_page_is_open_closes_the_socket_at_the_next_subscribe(trader):
    communicator, _ = await subscribed(trader, ["pnl"])

    await database_sync_to_async(remove_role)(trader, "trader")
    await communicator.send_json_to({"type": "subscribe", "topics": ["positions"]})
    closed = await communicator.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": CLOSE_NO_ROLE}


async def test_a_user_whose_last_role_is_taken_away_is_disconnected_at_the_next_heartbeat(trader):
    communicator, _ = await subscribed(trader, ["pnl", "positions"])

    await database_sync_to_async(remove_role)(trader, "trader")
    await heartbeat()
    closed = await communicator.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": CLOSE_NO_ROLE}


async def test_a_socket_whose_user_logged_out_is_closed_at_the_next_heartbeat(trader):
    client = await sync_to_async(signed_in)(trader)
    communicator = await connected(trader, client)
    await communicator.receive_json_from(timeout=5)  # hello
    await heartbeat()
    assert (await communicator.receive_json_from(timeout=5))["type"] == "heartbeat"  # still signed in

    await sync_to_async(client.logout)()
    await heartbeat()
    closed = await communicator.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_without_heartbeats_a_streaming_socket_still_rereads_access_before_sending(trader, monkeypatch):
    from console import consumers

    client = await sync_to_async(signed_in)(trader)
    communicator = await connected(trader, client)
    await communicator.receive_json_from(timeout=5)  # hello
    await communicator.send_json_to({"type": "subscribe", "topics": ["pnl"]})
    await communicator.receive_json_from(timeout=5)  # snapshot
    monkeypatch.setattr(consumers, "ACCESS_MAX_AGE_S", 0.0)  # every frame is "too long" after the last check

    await sync_to_async(client.logout)()
    await get_channel_layer().group_send("live.pnl", update("pnl", 5, {"scopes": []}))
    closed = await communicator.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_a_socket_of_a_deactivated_user_is_closed_at_the_next_heartbeat(risk_officer):
    communicator, _ = await subscribed(risk_officer, ["risk"])

    await database_sync_to_async(
        lambda: type(risk_officer).objects.filter(pk=risk_officer.pk).update(is_active=False)
    )()
    await heartbeat()
    closed = await communicator.receive_output(timeout=5)

    assert closed == {"type": "websocket.close", "code": CLOSE_UNAUTHENTICATED}


async def test_a_topic_the_user_may_no_longer_see_is_dropped_and_the_rest_keeps_streaming(compliance_officer):
    from django.contrib.auth.models import Group

    await database_sync_to_async(lambda: compliance_officer.groups.add(Group.objects.get(name="trader")))()
    communicator, _ = await subscribed(compliance_officer, ["pnl", "trading_state"])
    layer = get_channel_layer()

    await database_sync_to_async(remove_role)(compliance_officer, "trader")
    await heartbeat()
    revoked = await communicator.receive_json_from(timeout=5)
    beat = await communicator.receive_json_from(timeout=5)
    await layer.group_send("live.pnl", update("pnl", 7, {"scopes": []}))
    await layer.group_send("live.trading_state", update("trading_state", 8, {"states": []}))
    frame = await communicator.receive_json_from(timeout=5)

    assert revoked["type"] == "error" and revoked["code"] == "TOPIC_REVOKED"
    assert [r["topic"] for r in revoked["refused"]] == ["pnl"]
    assert beat["type"] == "heartbeat"
    assert [u["topic"] for u in frame["updates"]] == ["trading_state"]
    assert await forged_events(compliance_officer) == []  # the user did nothing wrong
    await communicator.disconnect()


# --- alerts: the newest alerts as one list, filtered per alert (review finding 9) ------------------------------


def alert(alert_id: int, *audience: str) -> dict:
    return {"id": alert_id, "severity": "warning", "title": f"alert {alert_id}", "audience": list(audience)}


async def no_stored_alerts() -> None:
    # The topic's stored state (Redis) outlasts the rows of earlier tests: start from an empty list.
    from trading.live import publish

    await sync_to_async(publish)("alerts", data={"alerts": []})


async def test_a_socket_gets_only_the_alerts_of_its_roles_and_nothing_when_none_of_them_changed(compliance_officer):
    await no_stored_alerts()
    communicator, _ = await subscribed(compliance_officer, ["alerts"])
    layer = get_channel_layer()

    await layer.group_send("live.alerts", update("alerts", 1, {"alerts": [alert(1, "risk_officer")]}))
    assert await communicator.receive_nothing(timeout=0.5)
    data = {"alerts": [alert(3, "compliance_officer"), alert(2, "risk_officer"), alert(1, "risk_officer")]}
    await layer.group_send("live.alerts", update("alerts", 2, data))
    frame = await communicator.receive_json_from(timeout=5)

    assert frame["updates"] == [
        {"topic": "alerts", "seq": 2, "ts": 2000, "data": {"alerts": [alert(3, "compliance_officer")]}}
    ]
    await communicator.disconnect()


async def test_an_alert_for_another_role_raised_just_after_one_for_yours_does_not_hide_it(trader):
    await no_stored_alerts()
    communicator, _ = await subscribed(trader, ["alerts"])
    layer = get_channel_layer()

    # Two alerts in the same instant: the topic's latest state holds both, newest first.
    data = {"alerts": [alert(6, "risk_officer"), alert(5, "risk_officer", "trader"), alert(4, "trader")]}
    await layer.group_send("live.alerts", update("alerts", 1, data))
    frame = await communicator.receive_json_from(timeout=5)

    assert [a["id"] for a in frame["updates"][0]["data"]["alerts"]] == [5, 4]
    await communicator.disconnect()


async def test_the_alerts_snapshot_is_cut_to_the_users_roles_and_the_administrator_sees_all(trader, admin_user):
    from trading.live import publish

    data = {"alerts": [alert(9, "risk_officer"), alert(8, "trader"), {"id": 7, "title": "no audience"}]}
    await sync_to_async(publish)("alerts", data=data)

    as_trader, trader_snapshot = await subscribed(trader, ["alerts"])
    as_admin, admin_snapshot = await subscribed(admin_user, ["alerts"])

    assert [a["id"] for a in trader_snapshot["updates"][0]["data"]["alerts"]] == [8]
    assert [a["id"] for a in admin_snapshot["updates"][0]["data"]["alerts"]] == [9, 8, 7]
    await as_trader.disconnect()
    await as_admin.disconnect()


async def test_alerts_raised_through_the_risk_desk_reach_exactly_the_roles_they_name(trader, compliance_officer):
    from riskdesk.services.alerts import raise_alert

    as_trader, _ = await subscribed(trader, ["alerts"])
    as_compliance, _ = await subscribed(compliance_officer, ["alerts"])
    raise_ = database_sync_to_async(raise_alert)

    for_trader = await raise_(kind="limit_breach", severity="warning", title="for the trader", audience=("trader",))
    for_risk = await raise_(kind="limit_breach", severity="critical", title="for risk", audience=("risk_officer",))
    seen: list[int] = []
    while for_trader.pk not in seen:
        frame = await as_trader.receive_json_from(timeout=5)
        seen = [a["id"] for a in frame["updates"][0]["data"]["alerts"]]

    assert for_risk.pk not in seen
    assert await as_trader.receive_nothing(timeout=0.5)  # the risk alert changed nothing the trader may see
    assert await as_compliance.receive_nothing(timeout=0.1)
    await as_trader.disconnect()
    await as_compliance.disconnect()


async def test_the_hub_joins_its_groups_again_before_the_channel_layer_would_expire_them(trader, monkeypatch):
    from console import realtime

    monkeypatch.setattr(realtime, "GROUP_REFRESH_S", 0.2)
    communicator, _ = await subscribed(trader, ["pnl"])
    layer = get_channel_layer()
    # What the expiry does: the hub's channel is no longer a member of the group.
    await layer.group_discard("live.pnl", realtime.hub()._channel)

    await asyncio.sleep(0.6)
    await layer.group_send("live.pnl", update("pnl", 3, {"scopes": []}))
    frame = await communicator.receive_json_from(timeout=5)

    assert [u["topic"] for u in frame["updates"]] == ["pnl"]
    await communicator.disconnect()


async def test_a_redis_error_during_a_group_refresh_does_not_end_the_refreshing(trader, monkeypatch):
    from console import realtime

    monkeypatch.setattr(realtime, "GROUP_REFRESH_S", 0.2)
    communicator, _ = await subscribed(trader, ["pnl"])
    live = realtime.hub()
    real_group_add = live.layer.group_add
    failures = []

    async def failing_once(group, channel):
        if not failures:
            failures.append(group)
            raise ConnectionError("redis went away")
        await real_group_add(group, channel)

    monkeypatch.setattr(live.layer, "group_add", failing_once)
    await live.layer.group_discard("live.pnl", live._channel)  # expired meanwhile

    await until(lambda: failures, "the failed refresh")
    await asyncio.sleep(0.6)  # the next rounds
    await live.layer.group_send("live.pnl", update("pnl", 3, {"scopes": []}))
    frame = await communicator.receive_json_from(timeout=5)

    assert [u["topic"] for u in frame["updates"]] == ["pnl"]
    monkeypatch.undo()
    await communicator.disconnect()
