"""Channel-layer groups the console's websockets listen to, and the per-process hub that fans live topics out.

Why a hub: the bridge publishes each topic up to 20 times a second; if every browser socket joined `live.<topic>`
itself, Redis would carry (topics x sockets) messages and daphne would decode each one per socket, which falls
behind at a few thousand messages a second (issue 7). The hub joins each group once per process on its own channel,
keeps the latest update per topic (latest state wins) and tells the subscribed sockets which topics changed; each
socket then sends at most one batch per 100 ms holding the newest state of every changed topic. Redis traffic is
then per topic, not per socket, and a slow browser only ever has one pending state per topic.

Event-loop only: a hub belongs to one asyncio loop (daphne has one; each async test has its own).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from console.topics import group_name, user_topic
from trading import live

BROADCAST_GROUP = "console.broadcast"
GROUP_REFRESH_S = 3600.0
log = logging.getLogger(__name__)


def broadcast_heartbeat(*, source: str) -> dict:
    message = {"type": "console.heartbeat", "ts": time.time(), "source": source}
    async_to_sync(get_channel_layer().group_send)(BROADCAST_GROUP, message)
    return message


def publish_to_user(*, username: str, data: dict) -> None:
    """Tell the user's own open pages (topic `user.<username>`) the outcome of something they did. Sync callers
    only (a view or service, usually from transaction.on_commit). `seq` is wall-clock ns: these updates do not
    come from the engine's sequence, and a later one must win."""
    topic = user_topic(username)
    now = time.time_ns()
    update = live.message(topic, seq=now, ts=now, engine_id="console", data=data)
    async_to_sync(get_channel_layer().group_send)(group_name(topic), update)


class Subscriber(Protocol):
    def topics_changed(self, topics: Iterable[str]) -> None: ...


class LiveHub:
    """Latest state per topic for this process, fed by one channel-layer channel that joins `live.<topic>` groups
    while at least one socket of this process is subscribed to the topic."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.latest: dict[str, dict] = {}
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._channel: str | None = None
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    async def subscribe(self, subscriber: Subscriber, topics: Iterable[str]) -> None:
        async with self._lock:
            if self._channel is None:
                # The default prefix on purpose: channels_redis reads every process-specific channel of one prefix
                # with a single blocking pop, and channels of another prefix would wait behind it.
                self._channel = await self.layer.new_channel()
                self._task = asyncio.ensure_future(self._run(self._channel))
            for topic in topics:
                members = self._subscribers.setdefault(topic, set())
                if not members:
                    await self.layer.group_add(group_name(topic), self._channel)
                members.add(subscriber)

    async def unsubscribe(self, subscriber: Subscriber, topics: Iterable[str] | None = None) -> None:
        async with self._lock:
            emptied = []
            for topic in list(self._subscribers if topics is None else topics):
                members = self._subscribers.get(topic)
                if members is None:
                    continue
                members.discard(subscriber)
                if not members:
                    del self._subscribers[topic]
                    self.latest.pop(topic, None)  # nobody here watches it: a stale copy must not serve a snapshot
                    emptied.append(topic)
            channel, task = self._channel, None
            if not self._subscribers and self._task is not None:
                task, self._task, self._channel = self._task, None, None
                # The last socket left: stop reading first, before any Redis round trip that a cancelled disconnect
                # could cut short, so no reader outlives its sockets.
                task.cancel()
            for topic in emptied:
                await self.layer.group_discard(group_name(topic), channel)
            if task is not None:
                # Wait until the reader has unwound: channels_redis counts receivers and binds its receive lock to
                # their loop, and a cancel never run through leaves both behind for whatever loop receives next.
                # asyncio.wait, not awaiting the task: its CancelledError is not ours, but a cancel of this call is.
                await asyncio.wait([task])

    def accept(self, message: dict) -> bool:
        """Keep `message` if it is newer than what we hold for its topic. An update from another engine id
        (an engine restart starts its seq again) always wins."""
        topic = message.get("topic")
        if not isinstance(topic, str) or topic not in self._subscribers:
            return False
        held = self.latest.get(topic)
        if held is not None and held["engine_id"] == message.get("engine_id") and held["seq"] > message.get("seq", 0):
            return False
        state = {
            "topic": topic,
            "seq": message.get("seq", 0),
            "ts": message.get("ts", 0),
            "engine_id": message.get("engine_id", ""),
            "data": message.get("data", {}),
        }
        # Encoded once here, not once per socket: with 50 pages on a topic this is most of the CPU a batch costs.
        wire = {key: state[key] for key in ("topic", "seq", "ts", "data")}
        state["json"] = json.dumps(wire, separators=(",", ":"))
        self.latest[topic] = state
        return True

    async def _run(self, channel: str) -> None:
        refresher = asyncio.ensure_future(self._refresh_groups(channel))
        try:
            await self._receive_loop(channel)
        finally:
            refresher.cancel()
            await asyncio.wait([refresher])

    async def _refresh_groups(self, channel: str) -> None:
        # channels_redis drops a group member after `group_expiry` (a day by default) unless it is added again; a
        # daphne that runs for days with pages always open would otherwise go quiet without an error.
        while True:
            await asyncio.sleep(GROUP_REFRESH_S)
            try:
                async with self._lock:
                    for topic in list(self._subscribers):
                        await self.layer.group_add(group_name(topic), channel)
            except Exception:  # a Redis hiccup must not end the refreshing: the next round adds them again
                log.exception("live hub group refresh failed; retrying at the next round")

    async def _receive_loop(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # a Redis hiccup must not end live updates for every page of this process
                log.exception("live hub receive failed; retrying")
                await asyncio.sleep(0.5)
                continue
            if message.get("type") != live.MESSAGE_TYPE or not self.accept(message):
                continue
            for subscriber in list(self._subscribers.get(message["topic"], ())):
                subscriber.topics_changed((message["topic"],))


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LiveHub] = weakref.WeakKeyDictionary()


def hub() -> LiveHub:
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = LiveHub(get_channel_layer())
    return found
