"""The risk desk's commands to the engine: one client per call (sockets are not thread-safe), closed after use."""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import cache
from typing import Any

import msgspec
from django.conf import settings

from console.engine_client import EngineClient, EngineClientError, codec_from_settings


@cache
def _codec_for(path: str):
    return codec_from_settings()


def codec():
    """The protocol codec on the configured instruments (built once per instruments file)."""
    return _codec_for(str(settings.ENGINE_INSTRUMENTS_FILE))


@contextmanager
def engine_client(**overrides: Any):
    client = EngineClient.from_settings(codec=codec(), **overrides)
    try:
        yield client
    finally:
        client.close()


def send_command(cmd: Any) -> Any:
    """The engine's one reply to `cmd`. Raises `EngineClientError` (with a code) when the engine cannot be reached;
    resending the same command later is safe, the engine answers a repeated command id with its first reply."""
    with engine_client() as client:
        return client.request(cmd)


def state_snapshot(*, operator: str, timeout_ms: int = 1500) -> Any | None:
    """The engine's StateSnapshot, or None when it does not answer quickly (the page then says so)."""
    try:
        with engine_client(timeout_ms=timeout_ms, retries=1) as client:
            return client.snapshot(operator=operator)
    except EngineClientError:
        return None


KIND_NAMES = {1: "firm", 2: "strategy", 3: "instrument"}


def scope_key(scope: Any) -> tuple[str, str]:
    """A protocol Scope as the desk's (kind, name)."""
    return (KIND_NAMES[int(scope.kind)], scope.name)


def snapshot_limits(snapshot: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> canonical limits, from a StateSnapshot."""
    from riskdesk.services.limit_rules import canonical

    return {
        scope_key(entry.scope): canonical({k: v for k, v in msgspec.structs.asdict(entry.limits).items() if k != "v"})
        for entry in snapshot.limits
    }


def now_ns() -> int:
    return time.time_ns()
