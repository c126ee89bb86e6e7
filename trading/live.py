"""Live updates for the console: channel-layer groups `live.<topic>` and the latest state of every topic in Redis.

The bridge (`manage.py engine_bridge`) is the main publisher: it conflates engine events into at most one update
per topic per 50 ms (latest state wins) and sends them with `AsyncPublisher.send` after the rows behind them are
committed. Other publishers (riskdesk's alerts) call `publish` from sync code. A page that (re)connects reads
`latest(topics)` for a snapshot, then listens to the groups; `seq` lets it drop an update older than its snapshot.

Message sent to group `live.<topic>`:
    {"type": "live.update", "topic": ..., "seq": <engine seq>, "engine_id": ..., "ts": <engine ts ns>, "data": {...}}
Latest state (one Redis hash per channel-layer prefix, field = topic): {"seq", "ts", "engine_id", "data"} as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

GROUP_PREFIX = "live."
MESSAGE_TYPE = "live.update"
# Channel-layer group names allow ASCII letters, digits, hyphens, underscores and periods, under 100 characters.
_TOPIC_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,90}$")


class LiveTopicInvalid(ValueError):
    code = "LIVE_TOPIC_INVALID"


def group_name(topic: str) -> str:
    if not _TOPIC_RE.match(topic):
        raise LiveTopicInvalid(f"{topic!r} is not a valid live topic")
    return GROUP_PREFIX + topic


def latest_key() -> str:
    """The Redis hash holding the latest state per topic. Namespaced by the channel-layer prefix, so test runs
    (one prefix each) never read each other's state."""
    return f"{settings.CHANNEL_LAYER_PREFIX}:live:latest"


def message(topic: str, *, seq: int, ts: int, engine_id: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": MESSAGE_TYPE, "topic": topic, "seq": seq, "engine_id": engine_id, "ts": ts, "data": data}


def _stored(msg: dict[str, Any]) -> str:
    return json.dumps({"seq": msg["seq"], "ts": msg["ts"], "engine_id": msg["engine_id"], "data": msg["data"]})


# Several processes publish the same topic (web and worker processes raising alerts): a publisher that stalled
# between reading its state and storing it must not replace a newer state, so the store is compare-and-set on seq
# within one engine id. (The bridge is the only writer of its engine's topics and stores with AsyncPublisher.)
_STORE_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  local ok, old = pcall(cjson.decode, current)
  if ok and old.engine_id == ARGV[3] and tonumber(old.seq) > tonumber(ARGV[2]) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1
"""


def publish(topic: str, *, data: dict[str, Any], seq: int = 0, ts: int = 0, engine_id: str = "") -> dict[str, Any]:
    """Store `data` as the topic's latest state, unless a newer one (higher seq, same engine id) is stored already,
    and send it to group `live.<topic>` (sync callers; call it on commit). Values in `data` must be JSON-ready:
    Decimals as strings."""
    msg = message(topic, seq=seq, ts=ts, engine_id=engine_id, data=data)
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        stored = client.eval(_STORE_IF_NEWER, 1, latest_key(), topic, str(seq), engine_id, _stored(msg))
    finally:
        client.close()
    if stored:
        async_to_sync(get_channel_layer().group_send)(group_name(topic), msg)
    return msg


class AsyncPublisher:
    """One connection for a long-running publisher (the bridge's publishing thread): `send` many updates at once,
    storing them in one Redis round trip, then one group_send per topic."""

    def __init__(self) -> None:
        self._redis = redis.asyncio.Redis.from_url(settings.REDIS_URL)
        self._layer = get_channel_layer()

    async def send(self, messages: Iterable[dict[str, Any]]) -> int:
        messages = list(messages)
        if not messages:
            return 0
        await self._redis.hset(latest_key(), mapping={m["topic"]: _stored(m) for m in messages})
        for msg in messages:
            await self._layer.group_send(group_name(msg["topic"]), msg)
        return len(messages)

    async def close(self) -> None:
        await self._redis.aclose()


def latest(topics: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{topic: {"seq", "ts", "engine_id", "data"}} for each topic that has been published (others are absent)."""
    topics = list(topics)
    if not topics:
        return {}
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        values = client.hmget(latest_key(), topics)
    finally:
        client.close()
    return {topic: json.loads(value) for topic, value in zip(topics, values, strict=True) if value is not None}


async def alatest(topics: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`latest` for async callers (websocket consumers)."""
    topics = list(topics)
    if not topics:
        return {}
    client = redis.asyncio.Redis.from_url(settings.REDIS_URL)
    try:
        values = await client.hmget(latest_key(), topics)
    finally:
        await client.aclose()
    return {topic: json.loads(value) for topic, value in zip(topics, values, strict=True) if value is not None}
