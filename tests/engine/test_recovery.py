"""Crash tests: cut a scripted session at random points, recover from snapshot + journal, finish it, compare.

The reference is the same seeded session run without a crash. After recovery the final state hash, every published
event (sequence numbers included) and every command reply must equal the reference's: nothing accepted is lost or
duplicated, and replay regenerates the events exactly.
"""

from __future__ import annotations

import random
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import recovery_session as rs

from engine.clock import FakeClock
from engine.core import Engine, replay_events_from_journal
from engine.enums import Side
from engine.gateway import NullGateway
from engine.journal import (
    MAGIC,
    VERSION,
    JournalSchemaMismatch,
    RecordKind,
    encode_record,
    snapshots_newest_first,
)
from engine.protocol import COMMAND_TYPES, Codec, ExecutionReport, MassCancelReport

SEED = 7
CUTS = sorted(random.Random(20240607).sample(range(2, 3000), 4))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> rs.Run:
    return rs.Run(SEED, tmp_path_factory.mktemp("reference")).run()


def _record_of(item: object) -> tuple[RecordKind, object]:
    if type(item) is rs.TimerTick:
        return RecordKind.TIMER, None
    if type(item) is ExecutionReport:
        return RecordKind.EXECUTION_REPORT, item
    if type(item) is MassCancelReport:
        return RecordKind.MASS_CANCEL_REPORT, item
    if type(item) in COMMAND_TYPES:
        return RecordKind.COMMAND, item
    return RecordKind.MARKET_DATA, item


def _crash_and_finish(directory: Path, cut: int, *, tear: bool, snapshot_every: int, use_snapshots: bool = True):
    run = rs.Run(SEED, directory, snapshot_every=snapshot_every).run(until_inputs=cut)
    published = list(run.events)
    journal = run.engine.journal
    if tear:
        # The process dies while the next input's record is half written: it was never applied nor acknowledged.
        item = run.world.next_input()
        kind, message = _record_of(item)
        data = encode_record(Codec(rs.INSTRUMENTS), journal.last_seq + 1, kind, run.world.clock.now(), message)
        with open(journal.path, "ab") as f:
            f.write(data[: len(data) // 2])
    journal.close()  # the process is gone: its descriptors close, nothing else happens
    run.engine = rs.recover(run.world, directory, snapshot_every=snapshot_every, use_snapshots=use_snapshots)
    recovered = run.engine
    run.events = list(published)
    run.run()
    return run, recovered, published


@pytest.mark.parametrize("cut", CUTS)
@pytest.mark.parametrize(
    ("tear", "snapshot_every", "use_snapshots"),
    [(False, 0, False), (True, 0, False), (False, 400, True), (True, 400, True)],
    ids=["journal-only", "torn-journal-only", "snapshot+journal", "torn-snapshot+journal"],
)
def test_a_session_recovered_after_a_crash_ends_identical_to_the_uncrashed_reference(
    tmp_path, reference, cut, tear, snapshot_every, use_snapshots
):
    run, recovered, published = _crash_and_finish(
        tmp_path, cut, tear=tear, snapshot_every=snapshot_every, use_snapshots=use_snapshots
    )

    assert run.engine.state_hash() == reference.engine.state_hash()
    assert [e.seq for e in run.events] == list(range(1, len(run.events) + 1))
    assert run.events == reference.events
    assert run.replies == reference.replies
    if recovered.recovered_events:
        assert recovered.recovered_events == published[-len(recovered.recovered_events) :]


def test_recovery_starts_from_the_newest_snapshot_and_replays_only_what_follows_it(tmp_path):
    run = rs.Run(SEED, tmp_path, snapshot_every=400).run(until_inputs=CUTS[-1])
    expected = run.engine.state_hash()
    run.engine.journal.close()
    newest = max(s.journal_seq for s in snapshots_newest_first(tmp_path / "snapshots"))

    engine = rs.recover(run.world, tmp_path, snapshot_every=400)

    assert engine.recovered_from == newest > 0
    assert engine.journal_seq == run.engine.journal_seq
    assert engine.state_hash() == expected


def test_a_corrupt_newest_snapshot_is_skipped_for_an_older_one(tmp_path, reference):
    run = rs.Run(SEED, tmp_path, snapshot_every=400).run(until_inputs=CUTS[-1])
    expected = run.engine.state_hash()
    run.engine.journal.close()
    newest = sorted((tmp_path / "snapshots").glob("snapshot-*.msgpack"))[-1]
    newest.write_bytes(newest.read_bytes()[:-10])

    engine = rs.recover(run.world, tmp_path, snapshot_every=400)

    assert 0 < engine.recovered_from < int(newest.stem.split("-")[1])
    assert engine.state_hash() == expected


def test_a_snapshot_whose_state_does_not_match_its_hash_is_refused(tmp_path):
    run = rs.Run(SEED, tmp_path, snapshot_every=400).run(until_inputs=900)
    expected = run.engine.state_hash()
    run.engine.journal.close()
    for path in (tmp_path / "snapshots").glob("snapshot-*.msgpack"):
        path.unlink()
    run.engine.snapshot()  # a valid file ...
    snap = next(snapshots_newest_first(tmp_path / "snapshots"))
    from engine.journal import Snapshot, write_snapshot

    forged = Snapshot(
        journal_seq=snap.journal_seq,
        journal_offset=snap.journal_offset,
        ts=snap.ts,
        event_seq=snap.event_seq,
        state_hash="0" * 64,  # ... whose hash no longer describes its state
        state=snap.state,
    )
    write_snapshot(tmp_path / "snapshots", forged)

    engine = rs.recover(run.world, tmp_path, snapshot_every=400)

    assert engine.recovered_from == 0  # replayed from the start instead
    assert engine.state_hash() == expected


def test_an_engine_killed_with_sigkill_recovers_to_the_reference_state_at_the_same_journal_record(tmp_path):
    directory = tmp_path / "killed"
    directory.mkdir()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "engine" / "recovery_session.py"), str(directory), str(SEED)],
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(random.Random(5).uniform(0.5, 1.5))  # a random moment, not a wall-time assertion
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    recovered = Engine.recover(
        rs.engine_config(snapshot_every=300),
        FakeClock(rs.START_NS),
        rs.INSTRUMENTS,
        NullGateway(),
        directory / "engine.journal",
        snapshot_dir=directory / "snapshots",
    )
    upto = recovered.journal_seq
    print("recovered up to journal record", upto, "from snapshot", recovered.recovered_from)
    (tmp_path / "ref").mkdir()
    reference = rs.Run(SEED, tmp_path / "ref", duration_ms=600_000, snapshot_every=300).run(until_journal_seq=upto)

    assert upto > 1
    assert reference.engine.journal_seq == upto
    assert recovered.state_hash() == reference.engine.state_hash()
    assert recovered.seq == reference.engine.seq
    regenerated = recovered.recovered_events
    assert regenerated == [e for e in reference.events if e.seq > recovered.seq - len(regenerated)]


class _Payload:
    """Unpickling this would run `touch` (what a hostile snapshot could do with pickles)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize("kind", ["pickle", "foreign class"])
def test_a_snapshot_state_is_plain_data_and_a_hostile_one_is_refused_without_running_anything(tmp_path, kind):
    import pickle

    import msgspec

    from engine.journal import Snapshot, write_snapshot

    run = rs.Run(SEED, tmp_path, snapshot_every=400).run(until_inputs=900)
    expected = run.engine.state_hash()
    run.engine.journal.close()
    for path in (tmp_path / "snapshots").glob("snapshot-*.msgpack"):
        path.unlink()
    run.engine.snapshot()
    snap = next(snapshots_newest_first(tmp_path / "snapshots"))
    plain = msgspec.msgpack.decode(snap.state)  # plain MessagePack: no classes, no code
    marker = tmp_path / "pwned"
    if kind == "pickle":
        state = pickle.dumps(_Payload(marker))
    else:
        _sid, strategy = plain["strategies"][0]
        strategy[2]["position"] = ["O", "subprocess.Popen", {"args": ["touch", str(marker)]}]
        state = msgspec.msgpack.encode(plain)
    hostile = Snapshot(
        journal_seq=snap.journal_seq,
        journal_offset=snap.journal_offset,
        ts=snap.ts,
        event_seq=snap.event_seq,
        state_hash=snap.state_hash,  # the hash of the honest state: only the state was swapped
        state=state,
    )
    write_snapshot(tmp_path / "snapshots", hostile)

    engine = rs.recover(run.world, tmp_path, snapshot_every=400)

    components = {"oms", "portfolio", "risk", "trading_states", "strategies", "books"}
    pending = {"halts", "venue_queries", "last_utilisation"}
    assert set(plain) == components | pending | {
        "version",
        "time",
        "seq",
        "applied",
        "replies",
        "last_beat",
        "venue_rejects",
    }
    assert not marker.exists()
    assert engine.recovered_from == 0  # refused: replayed from the start instead
    assert engine.state_hash() == expected


def _journal_with_schema(tmp_path: Path, version: int) -> Path:
    """A short session's journal, its header rewritten to name event schema `version`."""
    from console_harness import Desk

    desk = Desk(tmp_path)
    desk.market()
    desk.submit("m1", Side.BUY, "99.00", "0.001")
    desk.pump()
    desk.journal.close()
    path = tmp_path / "j"
    with open(path, "r+b") as f:
        f.seek(len(MAGIC))
        f.write(struct.pack("<I", version))
    return path


def test_recovering_a_journal_of_an_older_event_schema_is_refused_with_a_named_error_and_left_untouched(tmp_path):
    from console_harness import config

    path = _journal_with_schema(tmp_path, 1)
    before = path.read_bytes()

    with pytest.raises(JournalSchemaMismatch) as recover_refused:
        Engine.recover(config(), FakeClock(rs.START_NS), rs.INSTRUMENTS, NullGateway(), path)
    with pytest.raises(JournalSchemaMismatch) as replay_refused:
        replay_events_from_journal(config(), rs.INSTRUMENTS, path, 1)

    assert recover_refused.value.code == replay_refused.value.code == "JOURNAL_EVENT_SCHEMA_MISMATCH"
    assert "event schema 1" in recover_refused.value.reason
    assert "fresh journal" in recover_refused.value.reason
    assert path.read_bytes() == before


def test_a_journal_of_this_builds_event_schema_recovers(tmp_path):
    from console_harness import config

    path = _journal_with_schema(tmp_path, VERSION)

    engine = Engine.recover(config(), FakeClock(rs.START_NS), rs.INSTRUMENTS, NullGateway(), path)

    assert engine.oms.get("m1") is not None
    assert [e.seq for e in replay_events_from_journal(config(), rs.INSTRUMENTS, path, 1)] == [
        e.seq for e in engine.recovered_events
    ]
