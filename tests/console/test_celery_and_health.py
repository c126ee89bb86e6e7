"""Celery runs real tasks on a real worker; /healthz reports each dependency."""

from __future__ import annotations

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.urls import reverse

from console.realtime import BROADCAST_GROUP
from console.tasks import broadcast_heartbeat


def test_the_heartbeat_task_runs_on_a_real_worker_and_reaches_the_channel_layer(celery_worker_process):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(BROADCAST_GROUP, channel)

    result = broadcast_heartbeat.delay().get(timeout=30)
    received = async_to_sync(asyncio.wait_for)(layer.receive(channel), 10)

    assert result["source"] == "celery"
    assert received["type"] == "console.heartbeat"
    assert received["ts"] == result["ts"]
    async_to_sync(layer.group_discard)(BROADCAST_GROUP, channel)


@pytest.mark.django_db
def test_healthz_reports_database_redis_and_a_running_worker(client, celery_worker_process, settings):
    # A prefix of its own: earlier tests of the run beat a real engine and left its link state in Redis.
    settings.CHANNEL_LAYER_PREFIX = f"healthz-test-{time.monotonic_ns()}"
    response = client.get(reverse("healthz"))

    body = response.json()
    assert response.status_code == 200
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["redis"]["status"] == "ok"
    assert body["checks"]["celery"]["status"] == "ok"
    assert body["checks"]["engine"]["status"] == "unknown"


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get(reverse("healthz"))

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "down"


@pytest.mark.django_db
def test_the_status_page_shows_details_to_users_with_a_role_only(client, trader, outsider):
    anonymous = client.get(reverse("status"))
    client.force_login(outsider)
    without_role = client.get(reverse("status"))
    client.force_login(trader)
    with_role = client.get(reverse("status"))

    assert anonymous.status_code == 302
    assert without_role.status_code == 403
    assert with_role.status_code == 200
    assert b"PostgreSQL" in with_role.content
