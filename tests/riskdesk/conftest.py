"""Risk desk fixtures: a real engine process with the console pointed at it, strategies synced, two officers."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from engine.protocol import CommandAccepted, OrderType, Side, SubmitOrder, TimeInForce
from tests.conftest import _make_user
from tests.engine_process import AS_BTC, EngineProcess, engine_process  # noqa: F401 - the fixture

START_LIMITS = [("firm", {"max_order_notional": "250000", "max_open_orders": 200, "max_daily_loss": "5000"})]


@pytest.fixture
def fresh_prefix(settings):
    """A channel-layer prefix of the test's own: no earlier test's engine heartbeat or live topic state (kept in
    Redis under the run's prefix, which the database rollback does not undo) is read."""
    settings.CHANNEL_LAYER_PREFIX = f"riskdesk-test-{time.monotonic_ns()}"
    return settings.CHANNEL_LAYER_PREFIX


@pytest.fixture
def second_officer(db):
    return _make_user("rita_risk", "risk_officer")


@pytest.fixture
def desk_engine(engine_process, settings, db) -> EngineProcess:  # noqa: F811 - the imported fixture
    """The engine (AS-BTC stopped, a manual strategy for scripted orders, the firm's start-up limits), the
    console's settings pointed at it, and the strategies in the trading app's table as the bridge syncs them."""
    from trading.models import Strategy

    engine = engine_process(strategies=[AS_BTC], limits=START_LIMITS)
    engine.apply_settings(settings)
    Strategy.objects.create(strategy_id="as-btc", name="avellaneda_stoikov", symbol="BTCUSDT")
    Strategy.objects.create(strategy_id="manual", name="manual", symbol="BTCUSDT")
    return engine


def submit(
    engine: EngineProcess,
    cid: str,
    *,
    quantity: str = "0.002",
    price: str = "60000.0",
    side=Side.BUY,
    post_only: bool = False,
):
    client = engine.client(track=False)
    try:
        return client.request(
            engine.command(
                SubmitOrder,
                operator="tina_trader",
                strategy_id="manual",
                client_order_id=cid,
                symbol="BTCUSDT",
                side=side,
                order_type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                price=Decimal(price),
                quantity=Decimal(quantity),
                post_only=post_only,
            )
        )
    finally:
        client.close()


def working_orders(engine: EngineProcess, strategy_id: str | None = None) -> list:
    return [o for o in engine.snapshot().orders if strategy_id is None or o.strategy_id == strategy_id]


def wait_until(predicate, *, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def accepted(reply) -> bool:
    return type(reply) is CommandAccepted


@pytest.fixture
def engine_worker(desk_engine, transactional_db, tmp_path):
    """A real Celery worker on this run's queue, pointed at the desk's engine."""
    import os
    import socket
    import subprocess
    import sys

    from django.conf import settings as django_settings

    from console.celery import app
    from tests.conftest import ROOT, subprocess_env, wait_for

    name = f"risk-{os.getpid()}@{socket.gethostname()}"
    with open(tmp_path / "celery-worker.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "console", "worker", "--pool=solo", "--loglevel=INFO", "-Q",
             django_settings.CELERY_TASK_DEFAULT_QUEUE, "-n", name, "--without-mingle", "--without-gossip"],
            cwd=ROOT,
            env=subprocess_env(**desk_engine.env()),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(lambda: app.control.ping(timeout=0.5, destination=[name]), timeout=60, what="the worker")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
