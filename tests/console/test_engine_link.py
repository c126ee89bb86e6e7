"""The console beats the real engine process and /healthz reports what the last beat heard."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from console.services.engine_link import beat_engine, last_engine_link
from console.services.health import Status, check_engine
from tests.conftest import wait_for
from tests.console.test_engine_client import engine, engine_dir  # noqa: F401 - fixtures: the real engine process


@pytest.fixture
def fresh_link(settings):
    # A prefix of its own, so no other test's (or a running system's) last beat is read.
    settings.CHANNEL_LAYER_PREFIX = f"engine-link-test-{time.monotonic_ns()}"


def test_before_any_heartbeat_the_engine_link_is_unknown(fresh_link):
    assert last_engine_link() is None
    assert check_engine().status is Status.UNKNOWN


def test_a_heartbeat_nobody_answers_marks_the_engine_down(fresh_link, settings, tmp_path):
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"
    settings.ENGINE_TIMEOUT_MS = 200

    link = beat_engine()

    assert not link.ok
    assert check_engine().status is Status.DOWN


def test_a_heartbeat_answered_by_the_engine_process_marks_the_link_ok(fresh_link, engine, settings):  # noqa: F811
    settings.ENGINE_TIMEOUT_MS = 2000

    link = wait_for(lambda: (beat := beat_engine()).ok and beat, timeout=60, interval=0.5, what="the engine")

    assert "heartbeat accepted" in link.detail
    assert check_engine().status is Status.OK


@pytest.mark.django_db
def test_healthz_reports_a_stale_engine_link_as_down(fresh_link, settings, client, tmp_path):
    settings.ENGINE_COMMAND_ENDPOINT = f"ipc://{tmp_path}/nobody"
    settings.ENGINE_TIMEOUT_MS = 100
    settings.ENGINE_HEARTBEAT_STALE_S = 1
    beat_engine()

    time.sleep(1.2)  # older than the stale threshold; this waits for time to pass, it measures nothing
    body = client.get(reverse("healthz")).json()

    assert body["checks"]["engine"]["status"] == "down"
