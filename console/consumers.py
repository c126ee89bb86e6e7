"""The console's websocket: authenticated, one connection per page, multiplexing live topics (docs/console.md).

Page -> server: {"type": "subscribe", "topics": [...]}, {"type": "unsubscribe", "topics": [...]}, {"type": "ping"}.
Server -> page: "hello"; "snapshot" (the latest state of the topics just subscribed); "batch" (the newest state of
every topic that changed, at most one frame per BATCH_INTERVAL_S); "heartbeat" (the console's own, from Celery);
"error" with a reason code. Every snapshot and batch carries `frame`, counting up by one per frame on this socket,
so a page that misses one (or reconnects) knows to subscribe again and reload the snapshot.

Access is read again on every console heartbeat (every 2 s), not only at connect: a socket whose session was logged
out, expired or whose user was deactivated is closed with 4401; one whose user lost every role is closed with 4403;
a topic the user may no longer see is dropped, with an error "TOPIC_REVOKED" naming it, so a role taken away stops
the stream within one heartbeat rather than when the page is closed.

Topic `alerts` carries the newest alerts, each with its own audience (riskdesk.services.alerts); the consumer sends
each socket only the alerts meant for one of its roles, and nothing at all when that filtered list has not changed,
so a page learns nothing of alerts raised for other roles, not even that one was raised.

The socket is read-only: engine commands go through the audited HTTP views. A message naming a topic the user may
not see, another user's stream, or an engine command the user has no permission for is refused with a reason code
and recorded in the audit trail (FORGED_MESSAGE); it changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib import auth
from django.http import HttpRequest

from compliance.models import AuditAction
from compliance.services import record_audit_event
from console import topics as live_topics
from console.realtime import BROADCAST_GROUP, hub
from console.roles import roles_of, sees_alert
from trading.live import alatest

# Close codes in the private-use range (4000-4999). Before accept() they refuse the handshake; after it (access lost
# while the page is open) live.js reads them as "do not reconnect: reload the page".
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NO_ROLE = 4403
CLOSE_TOO_MANY_REFUSALS = 4429
MAX_FRAME_BYTES = 8192
BATCH_INTERVAL_S = 0.1  # at most 10 frames a second per socket (issue 7)
# A socket that keeps sending refused messages is closed, so a hostile page cannot fill the audit trail.
MAX_REFUSALS = 20
# Access is re-read on every console heartbeat (2 s); should the heartbeats stop (Celery beat down), a socket still
# streaming re-reads it before a frame once its last check is this old, so a lost role never streams on for long.
ACCESS_MAX_AGE_S = 10.0
ALERTS_TOPIC = "alerts"
TOPIC_REVOKED = "TOPIC_REVOKED"


class ConsoleConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            # Closing before accept() refuses the handshake (HTTP 403): an anonymous client never gets a socket.
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user = user
        # The key the access checks look up again on every heartbeat: a logout deletes that session row.
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        access = await database_sync_to_async(_access)(self.session_key, user.pk)
        if access.close_code is not None:
            await self.close(code=access.close_code)
            return
        self.roles, self.permissions = access.roles, access.permissions
        self._access_checked_at = asyncio.get_running_loop().time()
        self.topics: set[str] = set()
        self.closing = False
        # The alerts this socket was last sent (encoded): an update that changes none of them is not sent.
        self._alerts_sent = _encode({"alerts": []})
        self.frame = 0
        self.refusals = 0
        self._dirty: set[str] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        await self.channel_layer.group_add(BROADCAST_GROUP, self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello", "user": user.get_username(), "roles": self.roles, "ts": time.time()})

    async def dispatch(self, message) -> None:
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except BaseException:
            # Channels ends the consumer on a handler's exception (the database or Redis gone mid-subscribe)
            # without calling disconnect(): leave the hub here, or it keeps this dead socket subscribed.
            self.closing = True
            await self._stop_streaming()
            raise

    async def disconnect(self, code: int) -> None:
        self.closing = True
        # A socket refused in connect() never got these attributes.
        await self._stop_streaming()
        await self.channel_layer.group_discard(BROADCAST_GROUP, self.channel_name)

    async def _stop_streaming(self) -> None:
        handle = getattr(self, "_flush_handle", None)
        if handle is not None:
            handle.cancel()
            self._flush_handle = None
        if getattr(self, "topics", None):
            topics, self.topics = self.topics, set()
            await hub().unsubscribe(self, topics)

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        # Parse here rather than in the base class so a malformed frame gets a reasoned error, not a dropped socket.
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self._error("BAD_FRAME", "frames must be JSON text of at most 8 KiB")
            return
        try:
            content = json.loads(text_data)
        except json.JSONDecodeError as exc:
            await self._error("MALFORMED", f"not JSON: {exc.msg}")
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("MALFORMED", "a message is a JSON object with a string 'type'")
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        kind = content["type"]
        if kind == "ping":
            await self.send_json({"type": "pong", "id": content.get("id"), "ts": time.time()})
        elif kind == "subscribe":
            await self._subscribe(content.get("topics"))
        elif kind == "unsubscribe":
            await self._unsubscribe(content.get("topics"))
        elif kind in live_topics.COMMAND_PERMISSIONS:
            await self._command(kind)
        else:
            await self._error("UNKNOWN_MESSAGE_TYPE", f"unknown message type {kind[:64]!r}")

    # --- subscriptions --------------------------------------------------------------------------------------

    async def _subscribe(self, requested) -> None:
        if not isinstance(requested, list) or not 0 < len(requested) <= live_topics.MAX_TOPICS_PER_SUBSCRIBE:
            await self._error("MALFORMED", f"'topics' is a list of 1..{live_topics.MAX_TOPICS_PER_SUBSCRIBE} names")
            return
        # Read again for every subscribe: a role taken away while the page is open stops new subscriptions.
        if not await self._recheck_access():
            return
        allowed: list[str] = []
        refused: list[live_topics.TopicRefusal] = []
        username = self.user.get_username()
        for topic in dict.fromkeys(map(str, requested)):
            refusal = live_topics.check_topic(topic, username=username, permissions=self.permissions)
            if refusal is None:
                allowed.append(topic)
            else:
                refused.append(refusal)
        if refused:
            first = refused[0]
            await self._refuse(
                first.code,
                "; ".join(f"{r.topic}: {r.reason}" for r in refused),
                details={"message": "subscribe", "refused": [r.as_dict() for r in refused]},
                refused=[r.as_dict() for r in refused],
            )
        if not allowed:
            return
        # Noted before the hub is joined, so a failure half-way still leaves every joined topic to unsubscribe.
        self.topics.update(allowed)
        await hub().subscribe(self, allowed)
        await self._send_snapshot(allowed)

    async def _unsubscribe(self, requested) -> None:
        if not isinstance(requested, list):
            await self._error("MALFORMED", "'topics' is a list of names")
            return
        leaving = self.topics.intersection(map(str, requested))
        self.topics -= leaving
        self._dirty -= leaving
        await hub().unsubscribe(self, leaving)

    async def _send_snapshot(self, topics: list[str]) -> None:
        """The latest state of `topics`: the stored one (trading.live) or the hub's, whichever is newer."""
        stored = await alatest(topics)
        held = hub().latest
        updates = []
        for topic in topics:
            best = held.get(topic)
            from_store = stored.get(topic)
            if from_store is not None and (best is None or from_store.get("seq", 0) > best["seq"]):
                best = {"topic": topic, **from_store}
            if best is not None:
                if topic == ALERTS_TOPIC:
                    best = {**best, "data": self._visible_alerts(best.get("data"))}
                    self._alerts_sent = _encode(best["data"])
                updates.append(_wire(topic, best))
            self._dirty.discard(topic)  # the snapshot already carries it
        await self._send_frame("snapshot", updates, topics=topics)

    # --- conflation ---------------------------------------------------------------------------------------------

    def topics_changed(self, topics: Iterable[str]) -> None:
        """Called by the hub when a topic this socket follows has a newer state. Sends nothing itself: it marks
        the topic and makes sure one flush is scheduled no sooner than BATCH_INTERVAL_S after the last."""
        self._dirty.update(topics)
        if self._flush_handle is None and not self.closing:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last_flush + BATCH_INTERVAL_S - loop.time())
            self._flush_handle = loop.call_later(delay, lambda: asyncio.ensure_future(self._flush()))

    async def _flush(self) -> None:
        # _flush_handle stays set while this runs, so updates arriving meanwhile only mark topics dirty: a second
        # flush must not overtake this one's access re-check or send within the batch interval of it.
        try:
            await self._send_dirty()
        finally:
            self._flush_handle = None
            if self._dirty and not self.closing:
                self.topics_changed(())

    async def _send_dirty(self) -> None:
        if self.closing:
            return
        if asyncio.get_running_loop().time() - self._access_checked_at > ACCESS_MAX_AGE_S:
            if not await self._recheck_access():
                return
        self._last_flush = asyncio.get_running_loop().time()
        dirty, self._dirty = self._dirty, set()
        held = hub().latest
        encoded = []
        for topic in sorted(dirty):
            if topic not in self.topics or topic not in held:
                continue
            if topic == ALERTS_TOPIC:
                alerts = self._alerts_update(held[topic])
                if alerts is not None:
                    encoded.append(alerts)
            else:
                encoded.append(held[topic]["json"])
        if encoded:
            self.frame += 1
            # The same frame as _send_frame, assembled from updates the hub encoded once for every socket.
            head = f'{{"type":"batch","frame":{self.frame},"server_ts":{time.time()!r},"updates":['
            await self.send(text_data=head + ",".join(encoded) + "]}")

    def _visible_alerts(self, data: object) -> dict:
        """The `alerts` data cut to the alerts whose audience includes one of this socket's roles (the
        administrator sees all: `sees_alert`). Only the list is passed on, so no other key of the topic can carry an
        alert past the filter."""
        alerts = data.get("alerts") if isinstance(data, dict) else None
        if not isinstance(alerts, list):
            return {"alerts": []}
        return {
            "alerts": [
                alert for alert in alerts if isinstance(alert, dict) and sees_alert(self.roles, alert.get("audience"))
            ]
        }

    def _alerts_update(self, state: dict) -> str | None:
        """The encoded update of `alerts` for this socket, or None when the alerts it may see did not change."""
        data = self._visible_alerts(state.get("data"))
        encoded = _encode(data)
        if encoded == self._alerts_sent:
            return None
        self._alerts_sent = encoded
        return _encode({"topic": ALERTS_TOPIC, "seq": state.get("seq", 0), "ts": state.get("ts", 0), "data": data})

    async def _send_frame(self, kind: str, updates: list[dict], **extra) -> None:
        self.frame += 1
        # server_ts lets the page age the engine heartbeat on the server's clock, not its own.
        await self.send_json({"type": kind, "frame": self.frame, "server_ts": time.time(), "updates": updates, **extra})

    # --- refusals -----------------------------------------------------------------------------------------------

    async def _command(self, kind: str) -> None:
        needed = live_topics.COMMAND_PERMISSIONS[kind]
        if needed not in self.permissions:
            await self._refuse(
                "COMMAND_FORBIDDEN",
                f"{kind} needs {needed}",
                details={"message": kind, "needs": needed},
            )
            return
        await self._error("COMMAND_NOT_ON_SOCKET", f"{kind} is sent from the desk's forms, not the websocket")

    async def _refuse(self, code: str, reason: str, *, details: dict, **extra) -> None:
        await self._error(code, reason, **extra)
        client = self.scope.get("client") or (None,)
        await database_sync_to_async(record_audit_event)(
            actor=self.user,
            action=AuditAction.FORGED_MESSAGE,
            target="ws:/ws/console/",
            details={"code": code, **details},
            reason=f"{code}: {reason}"[:500],
            ip_address=client[0],
        )
        self.refusals += 1
        if self.refusals >= MAX_REFUSALS:
            await self._shut(CLOSE_TOO_MANY_REFUSALS)

    async def console_heartbeat(self, event) -> None:
        # The heartbeat (Celery beat, every 2 s) is also the clock of the access re-check: a logout, a deactivated
        # user or a role taken away ends the stream within one beat, without a query per live update.
        if not await self._recheck_access():
            return
        await self.send_json({"type": "heartbeat", "ts": event["ts"], "source": event["source"]})

    async def _recheck_access(self) -> bool:
        """Read the session, the user and their permissions again; close the socket (False) when the session is
        gone or the user has no role left, else drop every subscribed topic the user may no longer see."""
        if self.closing:
            return False
        # Noted before the read, so the flushes scheduled meanwhile do not each start another one.
        self._access_checked_at = asyncio.get_running_loop().time()
        access = await database_sync_to_async(_access)(self.session_key, self.user.pk)
        if access.close_code is not None:
            await self._shut(access.close_code)
            return False
        self.roles, self.permissions = access.roles, access.permissions
        username = self.user.get_username()
        revoked = [
            refusal
            for refusal in (
                live_topics.check_topic(topic, username=username, permissions=self.permissions)
                for topic in sorted(self.topics)
            )
            if refusal is not None
        ]
        if revoked:
            gone = {refusal.topic for refusal in revoked}
            self.topics -= gone
            self._dirty -= gone
            await hub().unsubscribe(self, gone)
            # Not a forgery (the user did nothing), so not audited as one: the page is told and stops asking.
            await self._error(
                TOPIC_REVOKED,
                "; ".join(f"{r.topic}: {r.reason}" for r in revoked),
                refused=[r.as_dict() for r in revoked],
            )
        return True

    async def _shut(self, code: int) -> None:
        # Stop the stream before the close frame goes out: a flush already scheduled must not send after it. A
        # heartbeat and a flush may both find the access gone; the socket is closed once.
        if self.closing:
            return
        self.closing = True
        await self._stop_streaming()
        await self.close(code=code)

    async def _error(self, code: str, reason: str, **extra) -> None:
        await self.send_json({"type": "error", "code": code, "reason": reason, **extra})


@dataclass(frozen=True)
class Access:
    close_code: int | None  # None: the socket may stay open
    roles: list[str]
    permissions: frozenset[str]


def _access(session_key: str | None, user_id: int) -> Access:
    """What the socket's session allows now. The session is read from its store afresh (the one the middleware
    loaded at connect is a cached copy), through Django's own auth.get_user, so a logout (session deleted), an
    expired session, a changed password (session hash) or a deactivated user (the backend refuses it) all end the
    socket. The user object is fresh too: Django caches permissions on the instance it loaded."""
    user = None
    if session_key:
        request = HttpRequest()
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = auth.get_user(request)
    if user is None or not user.is_authenticated or user.pk != user_id:
        return Access(CLOSE_UNAUTHENTICATED, [], frozenset())
    roles = [role.value for role in roles_of(user)]
    if not roles:
        return Access(CLOSE_NO_ROLE, [], frozenset())
    return Access(None, roles, frozenset(user.get_all_permissions()))


def _encode(value: dict) -> str:
    return json.dumps(value, separators=(",", ":"))


def _wire(topic: str, state: dict) -> dict:
    return {"topic": topic, "seq": state.get("seq", 0), "ts": state.get("ts", 0), "data": state.get("data", {})}
