"""Standing users for console tests: one per role plus an outsider with no role."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"  # test-only credential for throw-away users in the test database


def _make_user(username: str, role: str | None):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    if role is not None:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def trader(db):
    return _make_user("tina_trader", "trader")


@pytest.fixture
def risk_officer(db):
    return _make_user("rick_risk", "risk_officer")


@pytest.fixture
def compliance_officer(db):
    return _make_user("cora_compliance", "compliance_officer")


@pytest.fixture
def admin_user(db):
    user = _make_user("ada_admin", "admin")
    user.is_staff = True
    user.save()
    return user


@pytest.fixture
def outsider(db):
    return _make_user("otto_outsider", None)


# Tables the bridge (a subprocess in many tests) commits into. Rows committed by another process survive the
# rollback of a `db` test, and the partitioned ones are unmanaged models that Django's flush never empties, so
# without this a test would see the orders, events and ticks of every test before it.
BRIDGE_WRITTEN_TABLES = (
    "trading_orderevent",
    "trading_fill",
    "trading_tick",
    "trading_trade",
    "trading_order",
    "trading_position",
    "trading_positionsnapshot",
    "trading_pnlsnapshot",
    "trading_risklimitversion",
    "trading_tradingstatechange",
    "trading_strategyparamversion",
    "trading_bridgecheckpoint",
    "trading_deadletter",
)


@pytest.fixture(scope="session")
def _side_connection(django_db_setup, django_db_blocker):
    """An autocommit connection of its own to the test database, outside every test's transaction."""
    import psycopg

    with django_db_blocker.unblock():
        url = database_url_for_subprocesses()
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET lock_timeout = '5s'")
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(autouse=True)
def _no_committed_bridge_rows_from_earlier_tests(request):
    """Before each database test, empty the bridge's tables if an earlier test left committed rows in them."""
    if request.node.get_closest_marker("django_db") is None and not {"db", "transactional_db"} & set(
        request.fixturenames
    ):
        return
    conn = request.getfixturevalue("_side_connection")
    exists = " OR ".join(f"EXISTS (SELECT 1 FROM {table})" for table in BRIDGE_WRITTEN_TABLES)
    if conn.execute(f"SELECT {exists}").fetchone()[0]:
        conn.execute(f"TRUNCATE {', '.join(BRIDGE_WRITTEN_TABLES)}")


@pytest.fixture(scope="session")
def _redis():
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _no_live_state_from_earlier_tests(_redis):
    """The latest state of each live topic lives in Redis under the run's prefix and outlives the database flush:
    without this a page would load the alerts and positions an earlier test published."""
    from trading.live import latest_key

    _redis.delete(latest_key())


@pytest.fixture(autouse=True)
def _a_channel_layer_of_its_own():
    """Each async test runs on its own event loop, but Channels keeps one layer object per process, and
    channels_redis binds its receive lock and receiver count to the loop that received first. A server process has
    one loop for its life; a test run has hundreds, so each test gets a layer that no earlier loop has touched."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_subprocesses() -> str:
    """A DATABASE_URL pointing at the database the tests are using right now (the test database)."""
    from django.db import connection

    db = connection.settings_dict
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host", "")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgresql://{quote(db['USER'] or '')}@{quote(host, safe='')}{port}/{db['NAME']}"


def subprocess_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url_for_subprocesses()
    env["DJANGO_SETTINGS_MODULE"] = "console.settings.test"
    env["PYTHONPATH"] = str(ROOT)
    env.update(overrides)
    return env


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def celery_worker_process(tmp_path):
    """A real Celery worker in its own process, on this run's private queue and the real Redis broker."""
    from django.conf import settings

    from console.celery import app

    # Tasks queued by earlier tests that ran without a worker (on-commit alerts, VaR runs...) would otherwise run
    # first in this one and skew what it measures (a worker's peak memory, for one).
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)
    log = open(tmp_path / "celery-worker.log", "w")

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "console",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
            "-n",
            f"test-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: app.control.ping(timeout=0.5, destination=[f"test-{os.getpid()}@{socket.gethostname()}"]),
            timeout=60,
            what="the celery worker to answer a ping",
        )
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
