"""The console's heartbeat to the engine, and what it last heard back.

The engine's dead-man trigger (config/engine.toml [[triggers]]) moves trading to REDUCING or HALTED
when the console stops beating, so the console must beat on its own schedule (Celery beat, every
ENGINE_HEARTBEAT_INTERVAL_S), not only when a page happens to be open. Each beat's outcome is kept
in Redis so /healthz and the pages can say how the engine link is without opening engine sockets.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis
from django.conf import settings

from console.engine_client import EngineClient, EngineClientError
from engine.protocol import CommandAccepted

SYSTEM_OPERATOR = "console"


@dataclass(frozen=True)
class EngineLink:
    ok: bool
    detail: str
    at: float  # unix seconds of the beat

    @property
    def age_s(self) -> float:
        return max(0.0, time.time() - self.at)


def _key() -> str:
    return f"{settings.CHANNEL_LAYER_PREFIX}:engine:heartbeat"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)


def beat_engine() -> EngineLink:
    """Send one Heartbeat command to the engine and record the outcome. Never raises for an engine problem."""
    link = EngineLink(*_heartbeat(), time.time())
    client_redis = _redis()
    try:
        # Expires well after it goes stale, so an old answer is shown as stale rather than vanishing.
        client_redis.set(_key(), json.dumps({"ok": link.ok, "detail": link.detail, "at": link.at}), ex=300)
    finally:
        client_redis.close()
    return link


def _heartbeat() -> tuple[bool, str]:
    """(answered and accepted, what happened), for one Heartbeat command."""
    try:
        client = EngineClient.from_settings(retries=1)
        try:
            reply = client.heartbeat(operator=SYSTEM_OPERATOR)
        finally:
            client.close()
    except EngineClientError as exc:  # no keys, no answer: both mean the link is down, and say why
        return False, str(exc)
    if type(reply) is CommandAccepted:
        return True, f"heartbeat accepted, engine event seq {reply.event_seq}"
    return False, f"heartbeat refused: {getattr(reply, 'code', type(reply).__name__)}"


def last_engine_link() -> EngineLink | None:
    client_redis = _redis()
    try:
        raw = client_redis.get(_key())
    finally:
        client_redis.close()
    if raw is None:
        return None
    data = json.loads(raw)
    return EngineLink(bool(data["ok"]), str(data["detail"]), float(data["at"]))
