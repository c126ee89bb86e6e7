"""The bridge stops, loudly and with a non-zero status, rather than write a stream it cannot place: an engine whose
sequence is behind the checkpoint (a fresh journal under the same engine id), or another engine's events."""

from __future__ import annotations

import shutil

from tests.bridge.conftest import WAIT_S, unique_engine_id
from tests.bridge.helpers import assert_no_missing_and_no_duplicate_rows, order, persisted_events
from tests.engine_process import BTC_FLOW
from trading.bridge.service import EXIT_ENGINE_ID_MISMATCH, EXIT_SEQUENCE_BEHIND
from trading.models import BridgeCheckpoint, DeadLetter, Tick

BUSY_FLOW = {**BTC_FLOW, "intensity": 400.0}


def fresh_journal(engine, *, engine_id: str | None = None) -> None:
    """Stop the engine and start it again on an empty journal, without market flow (so its new sequence stays far
    below the old one), under the same engine id or the one given."""
    engine.stop()
    engine.journal_path.unlink(missing_ok=True)
    shutil.rmtree(engine.dir / "snapshots", ignore_errors=True)
    config = engine.config.read_text().split("[[venue.flow]]")[0]
    if engine_id is not None:
        config = config.replace(f'engine_id = "{engine.engine_id}"', f'engine_id = "{engine_id}"')
        engine.engine_id = engine_id
    engine.config.write_text(config)
    engine.start()


def run_until_checkpoint(engine, bridge, at_least: int) -> int:
    bridge.wait_for_checkpoint(at_least)
    return bridge.wait_for_checkpoint(engine.snapshot().seq)


def test_a_bridge_started_against_a_fresh_journal_under_the_same_engine_id_exits_non_zero_and_writes_nothing(
    engine_process, bridge_process
):
    engine = engine_process(engine_id=unique_engine_id("fresh"), flow=[BUSY_FLOW])
    bridge = bridge_process(engine).start()
    run_until_checkpoint(engine, bridge, 1000)
    assert bridge.terminate() == 0, bridge.log_text()
    before = bridge.checkpoint()
    ticks = Tick.objects.filter(engine_id=engine.engine_id).count()
    fresh_journal(engine)
    engine.client().request(order(engine, "on-the-new-journal"))
    assert engine.snapshot().seq < before

    bridge.start()
    status = bridge.proc.wait(timeout=WAIT_S)

    assert status == EXIT_SEQUENCE_BEHIND, bridge.log_text()
    assert "fresh journal under the same engine id" in bridge.log_text()
    assert bridge.checkpoint() == before
    assert Tick.objects.filter(engine_id=engine.engine_id).count() == ticks
    assert not DeadLetter.objects.filter(engine_id=engine.engine_id).exists()


def test_a_running_bridge_whose_engine_comes_back_on_a_fresh_journal_exits_non_zero_having_dropped_nothing(
    engine_process, bridge_process
):
    engine = engine_process(engine_id=unique_engine_id("freshrun"), flow=[BUSY_FLOW])
    bridge = bridge_process(engine).start()
    held = run_until_checkpoint(engine, bridge, 1000)

    fresh_journal(engine)
    status = bridge.proc.wait(timeout=WAIT_S)

    assert status == EXIT_SEQUENCE_BEHIND, bridge.log_text()
    assert "seq went backwards" in bridge.log_text()
    assert "fresh journal under the same engine id" in bridge.log_text()
    checkpoint = bridge.checkpoint()
    assert checkpoint >= held > engine.snapshot().seq
    # Nothing of the new journal was written: no row lies beyond the old sequence's checkpoint.
    assert not Tick.objects.filter(engine_id=engine.engine_id, seq__gt=checkpoint).exists()
    assert not DeadLetter.objects.filter(engine_id=engine.engine_id).exists()


def test_another_engines_events_on_the_stream_cost_one_dead_letter_and_an_exit_and_a_restart_follows_the_new_id(
    engine_process, bridge_process
):
    old_id, new_id = unique_engine_id("oldid"), unique_engine_id("newid")
    engine = engine_process(engine_id=old_id)
    bridge = bridge_process(engine).start()
    engine.client().request(order(engine, "on-the-old-id"))
    run_until_checkpoint(engine, bridge, 1)

    fresh_journal(engine, engine_id=new_id)
    status = bridge.proc.wait(timeout=WAIT_S)

    assert status == EXIT_ENGINE_ID_MISMATCH, bridge.log_text()
    dead = list(DeadLetter.objects.filter(engine_id=old_id))
    assert [d.reason_code for d in dead] == ["ENGINE_ID_MISMATCH"]
    assert new_id in dead[0].reason and dead[0].seq is None
    # The supervisor starts it again: it now follows the engine's new id from its first event.
    engine.client().request(order(engine, "on-the-new-id"))
    bridge.start()
    target = engine.snapshot().seq
    bridge.wait_for_checkpoint(target)
    assert bridge.terminate() == 0, bridge.log_text()
    assert BridgeCheckpoint.objects.get(engine_id=new_id).last_seq >= target
    assert_no_missing_and_no_duplicate_rows(new_id, persisted_events(engine, bridge.checkpoint()))
