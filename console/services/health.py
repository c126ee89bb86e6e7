"""Reachability of the services the console depends on, for /healthz and the pages' status strip."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum

import redis
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import connection

from console.celery import app as celery_app
from console.services.engine_link import last_engine_link


class Status(StrEnum):
    OK = "ok"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    latency_ms: float | None = None


def _timed(name: str, probe) -> Check:
    started = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:  # any failure of a probe means the service is down; say why
        return Check(name, Status.DOWN, f"{type(exc).__name__}: {exc}"[:200])
    return Check(name, Status.OK, detail, round((time.perf_counter() - started) * 1000, 2))


def check_database() -> Check:
    def probe() -> str:
        with connection.cursor() as cursor:
            cursor.execute("select version()")
            return cursor.fetchone()[0].split(" on ")[0]

    return _timed("database", probe)


def check_redis() -> Check:
    def probe() -> str:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        try:
            return "redis " + client.info("server")["redis_version"]
        finally:
            client.close()

    return _timed("redis", probe)


def check_celery(timeout: float = 0.5) -> Check:
    def probe() -> str:
        # limit=1: return as soon as one worker answers instead of waiting out the timeout for stragglers.
        replies = celery_app.control.ping(timeout=timeout, limit=1)
        if not replies:
            raise RuntimeError("no worker answered a ping")
        return f"{len(replies)} worker(s): " + ", ".join(sorted(name for reply in replies for name in reply))

    return _timed("celery", probe)


def check_engine() -> Check:
    """From the console's last heartbeat to the engine (console.services.engine_link), not a new probe:
    probing on every /healthz request would journal a command in the engine per load-balancer check."""
    try:
        link = last_engine_link()
    except redis.RedisError as exc:
        return Check("engine", Status.UNKNOWN, f"cannot read the last engine heartbeat: {exc}"[:200])
    if link is None:
        return Check("engine", Status.UNKNOWN, f"no heartbeat sent yet (endpoint {settings.ENGINE_COMMAND_ENDPOINT})")
    if link.age_s > settings.ENGINE_HEARTBEAT_STALE_S:
        return Check("engine", Status.DOWN, f"no heartbeat answer for {link.age_s:.0f} s ({link.detail})"[:200])
    return Check("engine", Status.OK if link.ok else Status.DOWN, link.detail[:200])


REQUIRED = ("database", "redis")


def system_health() -> list[Check]:
    """For sync callers (the status page): the same concurrent checks as /healthz."""
    return async_to_sync(system_health_async)()


async def system_health_async() -> list[Check]:
    """The same checks, concurrently. Redis and Celery probes run in their own threads so a slow or
    absent worker never holds Django's single shared sync thread (every sync view waits on it)."""
    database = sync_to_async(check_database)  # thread-sensitive: Django's connection lives on the sync thread
    redis_probe = sync_to_async(check_redis, thread_sensitive=False)
    celery_probe = sync_to_async(check_celery, thread_sensitive=False)
    results = await asyncio.gather(database(), redis_probe(), celery_probe())
    return [*results, check_engine()]


def is_healthy(checks: list[Check]) -> bool:
    return all(check.status is Status.OK for check in checks if check.name in REQUIRED)
