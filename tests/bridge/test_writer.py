"""The batch writer on the real database: exactly once and an unbroken hash chain, even with two writers."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.conf import settings

from engine.enums import OrderType, Side, TimeInForce
from engine.protocol import (
    EventEnvelope,
    OrderAccepted,
    OrderFilled,
    OrderSubmitted,
    Scope,
    StrategyState,
    StrategyStateChanged,
    TopOfBookChanged,
    TriggersChanged,
    TriggerSettings,
)
from tests.bridge.conftest import unique_engine_id
from tests.bridge.helpers import INSTRUMENTS, assert_hash_chain_holds
from trading.bridge.committer import Committer
from trading.bridge.livestate import LiveState
from trading.bridge.rows import Units, payload_of, ts_datetime
from trading.bridge.service import BridgeStats
from trading.bridge.writer import Pending, Writer, conninfo_from_settings
from trading.models import BridgeCheckpoint, DeadLetter, Fill, Order, OrderEvent, Strategy, Tick


def submitted(engine_id: str, seq: int, cid: str) -> Pending:
    event = OrderSubmitted(
        strategy_id="manual",
        client_order_id=cid,
        symbol="BTCUSDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=600000,
        quantity=2,
    )
    return Pending(seq=seq, env=EventEnvelope(engine_id=engine_id, seq=seq, ts=time.time_ns(), event=event))


def accepted(engine_id: str, seq: int, cid: str) -> Pending:
    event = OrderAccepted(strategy_id="manual", client_order_id=cid, symbol="BTCUSDT", venue_order_id=seq)
    return Pending(seq=seq, env=EventEnvelope(engine_id=engine_id, seq=seq, ts=time.time_ns(), event=event))


@pytest.fixture
def writers(transactional_db):
    engine_id = unique_engine_id("writer")
    made = [
        Writer(
            conninfo=conninfo_from_settings(settings.DATABASES["default"]),
            engine_id=engine_id,
            units=Units(INSTRUMENTS),
        )
        for _ in range(2)
    ]
    for writer in made:
        writer.connect()
    try:
        yield made
    finally:
        for writer in made:
            writer.close()


def test_two_writers_taking_turns_on_one_engine_write_each_event_once_and_keep_one_hash_chain(writers):
    first, second = writers
    engine_id = first.engine_id
    events = [submitted(engine_id, 1, "a"), accepted(engine_id, 2, "a"), submitted(engine_id, 3, "b")]
    events += [accepted(engine_id, 4, "b"), submitted(engine_id, 5, "c"), accepted(engine_id, 6, "c")]

    first.flush(events[:3])
    second.flush(events[:5])  # 1-3 are already committed: only 4 and 5 are written
    first.flush(events[3:])  # its cached chain head (seq 3) is stale: it must chain after seq 5, not 3

    seqs = list(OrderEvent.objects.filter(engine_id=engine_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert_hash_chain_holds(engine_id)
    assert BridgeCheckpoint.objects.get(engine_id=engine_id).last_seq == 6
    statuses = dict(Order.objects.filter(engine_id=engine_id).values_list("client_order_id", "status"))
    assert statuses == {"a": "NEW", "b": "NEW", "c": "NEW"}


def test_a_batch_already_committed_is_skipped_whole_when_it_is_written_again(writers):
    writer = writers[0]
    engine_id = writer.engine_id
    batch = [submitted(engine_id, 1, "a"), accepted(engine_id, 2, "a")]
    writer.flush(batch)

    writer.reset_caches()  # as after a lost connection whose COMMIT had in fact gone through
    checkpoint, fresh = writer.flush(batch)

    assert (checkpoint, fresh) == (2, [])
    assert OrderEvent.objects.filter(engine_id=engine_id).count() == 2


def test_an_event_the_database_cannot_store_becomes_a_dead_letter_and_the_rest_of_its_batch_is_written(writers):
    writer = writers[0]
    engine_id = writer.engine_id
    # A commission of 5e18 is a valid protocol Decimal (below 1e19) but overflows numeric(30, 12).
    fill = OrderFilled(
        strategy_id="manual",
        client_order_id="a",
        symbol="BTCUSDT",
        side=Side.BUY,
        exec_id="x-1",
        venue_order_id=2,
        last_price=600000,
        last_quantity=2,
        leaves_quantity=0,
        cum_quantity=2,
        commission=Decimal("5e18"),
    )
    batch = [submitted(engine_id, 1, "a"), accepted(engine_id, 2, "a")]
    batch.append(Pending(seq=3, env=EventEnvelope(engine_id=engine_id, seq=3, ts=time.time_ns(), event=fill)))
    batch.append(submitted(engine_id, 4, "b"))
    committer = Committer(
        writer=writer, live=None, stats=BridgeStats(), checkpoint=0, stopping=lambda: False, max_delay_s=1
    )
    committer.start()

    committer.submit(batch)
    committer.finish(timeout=60)

    assert committer.error is None and committer.checkpoint == 4
    dead = DeadLetter.objects.get(engine_id=engine_id)
    assert (dead.seq, dead.reason_code) == (3, "DB_22003")
    seqs = list(OrderEvent.objects.filter(engine_id=engine_id).order_by("seq").values_list("seq", flat=True))
    assert seqs == [1, 2, 4]
    assert not Fill.objects.filter(engine_id=engine_id).exists()
    assert_hash_chain_holds(engine_id)


def test_tick_rows_written_as_binary_copy_records_hold_the_engine_values_and_empty_sides_as_null(writers):
    writer = writers[0]
    engine_id = writer.engine_id
    ts = 1_795_000_000_123_456_789
    books = [
        (650_000, 5, 650_010, 7),  # BTCUSDT ticks of 0.1, lots of 0.001
        (0, 0, 650_020, 1),  # no bid
        (649_990, 123_456, 0, 0),  # no ask
        (2**40, 2**40, 2**40 + 1, 1),  # far from any memoised value
    ]
    batch = [
        Pending(
            seq=i + 1,
            env=EventEnvelope(
                engine_id=engine_id,
                seq=i + 1,
                ts=ts + i,
                event=TopOfBookChanged(symbol="BTCUSDT", bid_price=b, bid_size=bs, ask_price=a, ask_size=az),
            ),
        )
        for i, (b, bs, a, az) in enumerate(books)
    ]

    writer.flush(batch)

    btc = INSTRUMENTS.get("BTCUSDT")

    def side(ticks, lots):
        return (None, None) if ticks == 0 and lots == 0 else (btc.ticks_to_price(ticks), btc.lots_to_qty(lots))

    stored = [
        (t.seq, t.ts, t.ts_ns, t.symbol, t.bid_price, t.bid_size, t.ask_price, t.ask_size)
        for t in Tick.objects.filter(engine_id=engine_id).order_by("seq")
    ]
    assert stored == [
        (i + 1, ts_datetime(ts + i), ts + i, "BTCUSDT", *side(b, bs), *side(a, az))
        for i, (b, bs, a, az) in enumerate(books)
    ]


def test_a_triggers_change_is_stored_in_the_order_event_chain_with_who_set_it_and_its_scope(writers):
    writer = writers[0]
    engine_id = writer.engine_id
    event = TriggersChanged(
        scope=Scope.instrument("BTCUSDT"),
        triggers=TriggerSettings(reject_rate=Decimal("0.5"), reject_rate_window_ns=1_000_000_000),
        operator="rita_risk",
        command_id="cmd-triggers-1",
    )
    changed = Pending(seq=2, env=EventEnvelope(engine_id=engine_id, seq=2, ts=time.time_ns(), event=event))

    writer.flush([submitted(engine_id, 1, "a"), changed])

    row = OrderEvent.objects.get(engine_id=engine_id, seq=2)
    assert (row.kind, row.symbol, row.operator, row.command_id) == (
        "TriggersChanged",
        "BTCUSDT",
        "rita_risk",
        "cmd-triggers-1",
    )
    assert bytes(row.payload) == payload_of(changed.env)
    assert_hash_chain_holds(engine_id)


def strategy_state(engine_id: str, seq: int, strategy_id: str, state: StrategyState) -> Pending:
    event = StrategyStateChanged(strategy_id=strategy_id, state=state, previous=StrategyState.STOPPED)
    return Pending(seq=seq, env=EventEnvelope(engine_id=engine_id, seq=seq, ts=time.time_ns(), event=event))


def test_a_strategy_state_from_an_engine_under_a_new_id_applies_though_its_seq_is_below_the_old_engines(writers):
    old = writers[0]
    new = Writer(conninfo=old.conninfo, engine_id=unique_engine_id("writer"), units=old.units)
    new.connect()
    strategy_id = unique_engine_id("strat")
    old.flush([strategy_state(old.engine_id, 500, strategy_id, StrategyState.RUNNING)])

    try:
        new.flush([strategy_state(new.engine_id, 1, strategy_id, StrategyState.FAILED)])
    finally:
        new.close()

    row = Strategy.objects.get(strategy_id=strategy_id)
    assert (row.state, row.engine_id, row.last_seq) == ("FAILED", new.engine_id, 1)


def test_a_batch_whose_commit_went_through_unacknowledged_still_reaches_the_live_state_and_counters_on_retry(
    writers,
):
    writer, other = writers
    engine_id = writer.engine_id
    batch = [submitted(engine_id, 1, "a"), accepted(engine_id, 2, "a")]
    writer.checkpoint()  # what this writer knows committed: nothing yet
    # The COMMIT of this batch goes through but its acknowledgement never reaches the writer (the connection
    # breaks): the rows and checkpoint are in the database, the writer still stands at 0. Committed here on a
    # second connection, the database ends in exactly that state.
    other.flush(batch)
    live = LiveState(engine_id=engine_id, units=writer.units)
    stats = BridgeStats()
    committer = Committer(writer=writer, live=live, stats=stats, checkpoint=0, stopping=lambda: False, max_delay_s=1)
    committer.start()

    committer.submit(batch)  # the retry
    committer.finish(timeout=60)

    assert committer.error is None and committer.checkpoint == 2
    assert (stats.events, stats.dead_letters) == (2, 0)
    published = {m["topic"]: m for m in live.take()}
    assert published["orders"]["seq"] == 2
    assert [(o["client_order_id"], o["status"]) for o in published["orders"]["data"]["working"]] == [("a", "NEW")]
    assert OrderEvent.objects.filter(engine_id=engine_id).count() == 2


def test_a_batch_handed_over_just_as_the_commit_thread_gives_up_is_counted_as_uncommitted(writers):
    writer = writers[0]
    engine_id = writer.engine_id
    writer.conn.close()  # PostgreSQL gone, and the bridge is stopping: the thread gives up at once
    committer = Committer(
        writer=writer, live=None, stats=BridgeStats(), checkpoint=0, stopping=lambda: True, max_delay_s=1
    )
    committer.start()
    committer.submit([submitted(engine_id, 1, "a"), accepted(engine_id, 2, "a")])
    committer.join(timeout=60)
    # The main thread's put that won the race with the thread's exit: the batch lands after the queue was drained.
    committer.queue.put([submitted(engine_id, 3, "b")])

    stop_refused = committer.submit(None)
    committer.finish(timeout=60)

    assert stop_refused is False
    assert (committer.is_alive(), committer.error, committer.uncommitted) == (False, None, 3)
