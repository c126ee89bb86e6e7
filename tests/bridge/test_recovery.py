"""The bridge survives its own crash, the engine's restart and PostgreSQL going away, losing and doubling nothing."""

from __future__ import annotations

import time

import psycopg

from engine.enums import Side
from tests.bridge.conftest import unique_engine_id
from tests.bridge.helpers import (
    assert_hash_chain_holds,
    assert_no_missing_and_no_duplicate_rows,
    order,
    persisted_events,
)
from tests.conftest import wait_for
from tests.engine_process import BTC_FLOW
from trading.bridge.writer import APPLICATION_NAME

# A busy market: hundreds of events a second, so every batch has rows in it when something breaks.
BUSY_FLOW = {**BTC_FLOW, "intensity": 400.0}


def _bridge_in_transaction(database_url: str) -> bool:
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL",
            (APPLICATION_NAME,),
        ).fetchone()
    return row[0] > 0


def test_a_bridge_killed_mid_batch_and_restarted_leaves_no_missing_and_no_duplicate_rows(
    engine_process, bridge_process
):
    engine = engine_process(engine_id=unique_engine_id("kill"), flow=[BUSY_FLOW])
    bridge = bridge_process(engine).start()
    client = engine.client()
    client.request(order(engine, "before-kill"))
    bridge.wait_for_checkpoint(engine.snapshot().seq)
    # Catch it with a transaction open (rows copied, checkpoint not yet committed) and kill it there.
    wait_for(lambda: _bridge_in_transaction(bridge.database_url), timeout=60, interval=0.001, what="a batch")

    bridge.kill()
    at_kill = bridge.checkpoint()
    client.request(order(engine, "while-down", side=Side.SELL, price="70000.0"))
    bridge.start()
    target = engine.snapshot().seq
    bridge.wait_for_checkpoint(target)
    status = bridge.terminate()

    assert status == 0, bridge.log_text()
    checkpoint = bridge.checkpoint()
    assert at_kill < target <= checkpoint
    assert_no_missing_and_no_duplicate_rows(engine.engine_id, persisted_events(engine, checkpoint))
    assert_hash_chain_holds(engine.engine_id)


def test_an_engine_restart_is_followed_through_its_replay_with_the_sequence_continuing(engine_process, bridge_process):
    engine = engine_process(engine_id=unique_engine_id("erestart"))
    bridge = bridge_process(engine).start()
    client = engine.client()
    client.request(order(engine, "before-restart"))
    bridge.wait_for_checkpoint(engine.snapshot().seq)

    engine.restart()  # SIGKILL, then recovery from the same journal
    client.request(order(engine, "after-restart"))
    target = engine.snapshot().seq
    bridge.wait_for_checkpoint(target)
    status = bridge.terminate()

    assert status == 0, bridge.log_text()
    checkpoint = bridge.checkpoint()
    events = persisted_events(engine, checkpoint)
    assert_no_missing_and_no_duplicate_rows(engine.engine_id, events)
    assert_hash_chain_holds(engine.engine_id)
    submitted = [e.event.client_order_id for e in events if type(e.event).__name__ == "OrderSubmitted"]
    assert submitted == ["before-restart", "after-restart"]


def test_postgresql_stopped_and_started_during_a_session_is_waited_for_and_caught_up(
    engine_process, bridge_process, throwaway_postgres
):
    engine = engine_process(engine_id=unique_engine_id("pgrestart"), flow=[BUSY_FLOW])
    bridge = bridge_process(engine, database_url=throwaway_postgres.url).start()
    client = engine.client()
    client.request(order(engine, "before-outage"))
    bridge.wait_for_checkpoint(engine.snapshot().seq)

    throwaway_postgres.stop()
    client.request(order(engine, "during-outage", side=Side.SELL, price="70000.0"))
    wait_for(lambda: "PostgreSQL" in bridge.log_text(), timeout=60, what="the bridge to notice the outage")
    time.sleep(1.0)  # let the engine publish more while the database is away
    throwaway_postgres.start()
    target = engine.snapshot().seq
    bridge.wait_for_checkpoint(target)
    status = bridge.terminate()

    assert status == 0, bridge.log_text()
    checkpoint = bridge.checkpoint()
    events = persisted_events(engine, checkpoint)
    assert_no_missing_and_no_duplicate_rows(engine.engine_id, events, database_url=throwaway_postgres.url)
    with psycopg.connect(throwaway_postgres.url) as conn:
        orders = conn.execute(
            "SELECT client_order_id FROM trading_order WHERE engine_id = %s ORDER BY client_order_id",
            (engine.engine_id,),
        ).fetchall()
    assert [o[0] for o in orders] == ["before-outage", "during-outage"]


def test_sigterm_flushes_the_pending_batch_and_exits_zero(engine_process, bridge_process):
    engine = engine_process(engine_id=unique_engine_id("sigterm"))
    # A batch is only committed after a minute: whatever is written after start-up's catch-up is SIGTERM's flush.
    bridge = bridge_process(engine, args=["--flush-ms", "60000", "--max-batch", "1000000"]).start()
    caught_up = bridge.wait_for_checkpoint(1)
    engine.client().request(order(engine, "pending-at-sigterm"))
    target = engine.snapshot().seq
    wait_for(lambda: engine.snapshot().seq > target + 20, timeout=60, what="more events to be published")

    status = bridge.terminate()

    assert status == 0, bridge.log_text()
    checkpoint = bridge.checkpoint()
    assert checkpoint > target > caught_up
    events = persisted_events(engine, checkpoint)
    assert_no_missing_and_no_duplicate_rows(engine.engine_id, events)
    assert "stopped at checkpoint" in bridge.log_text()


def test_a_bridge_started_before_the_engine_waits_for_it_and_then_persists_from_the_first_event(
    engine_process, bridge_process
):
    engine = engine_process(engine_id=unique_engine_id("late"), start=False)
    bridge = bridge_process(engine).start()
    wait_for(lambda: "waiting for the engine" in bridge.log_text(), timeout=60, what="the bridge to wait")

    engine.start()
    engine.client().request(order(engine, "first-order"))
    target = engine.snapshot().seq
    bridge.wait_for_checkpoint(target)
    status = bridge.terminate()

    assert status == 0, bridge.log_text()
    events = persisted_events(engine, bridge.checkpoint())
    assert events[0].seq == 1
    assert_no_missing_and_no_duplicate_rows(engine.engine_id, events)
