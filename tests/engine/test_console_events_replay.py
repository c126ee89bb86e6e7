"""The events added for the consoles are part of the deterministic engine: a journal replayed, from the start or from a
snapshot taken while a halt or a venue query was still pending, publishes them again with the same seq and content."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import recovery_session as rs
from console_harness import MS, START, SYMBOL, Desk

from engine.clock import FakeClock
from engine.core import Engine, replay_events_from_journal
from engine.enums import Side
from engine.gateway import NullGateway
from engine.journal import read_journal
from engine.protocol import (
    BookDepth,
    Codec,
    HaltCompleted,
    HaltTrading,
    MarketTrade,
    QueryVenueOrders,
    ResumeTrading,
    RiskLimits,
    RiskUtilisation,
    Scope,
    SetLimits,
    StartStrategy,
    VenueOrderStatus,
    VenueStatusComplete,
)


def _session(desk: Desk) -> None:
    """Everything the new events come from: limits, quoting, trades, depth, a halt and a venue query whose answers
    are held back over a timer tick, a fill with fees, utilisation."""
    limits = RiskLimits(max_open_orders=10, max_position=Decimal("0.05"))
    desk.cmd(SetLimits, scope=Scope.instrument(SYMBOL), limits=limits)
    desk.cmd(StartStrategy, strategy_id="as1")
    desk.market()
    desk.submit("m1", Side.BUY, "99.00", "0.002", strategy_id="alpha")
    desk.pump()
    desk.other(Side.BUY, 10_010, 1, "t-1", account="TAKER")
    desk.timer(START + 150 * MS)
    desk.gateway.hold = True
    desk.cmd(QueryVenueOrders, scope=Scope.firm(), timeout_ns=10_000 * MS)
    desk.cmd(HaltTrading, scope=Scope.strategy("alpha"), reason="drill")
    desk.timer(START + 1_200 * MS)


def _finish(desk: Desk) -> None:
    desk.clock.advance(4 * MS)
    desk.gateway.hold = False
    desk.gateway.release()
    desk.pump()
    desk.cmd(ResumeTrading, scope=Scope.strategy("alpha"), reason="drill over")
    desk.other(Side.SELL, 9_990, 2, "t-2", account="TAKER")
    desk.timer(START + 2_500 * MS)


def test_a_full_replay_publishes_every_new_event_again_with_the_same_seq(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    _session(desk)
    _finish(desk)
    published = desk.engine.drain()

    recovered = Engine.recover(
        desk.config, FakeClock(START), rs.INSTRUMENTS, NullGateway(supports_mass_cancel=True), tmp_path / "j"
    )
    regenerated = replay_events_from_journal(desk.config, rs.INSTRUMENTS, tmp_path / "j", 1, supports_mass_cancel=True)

    kinds = {type(e.event) for e in published}
    assert {MarketTrade, BookDepth, HaltCompleted, RiskUtilisation, VenueOrderStatus, VenueStatusComplete} <= kinds
    assert recovered.recovered_events == published
    assert regenerated == published
    assert recovered.state_hash() == desk.engine.state_hash()


def test_an_engine_recovered_from_a_snapshot_with_a_halt_and_a_query_pending_finishes_them_identically(
    tmp_path: Path,
) -> None:
    (tmp_path / "live").mkdir()
    desk = Desk(tmp_path / "live")
    _session(desk)
    assert desk.engine._halts.active and desk.engine._queries.active  # the point of the test
    desk.engine.snapshot()
    desk.engine.drain()
    shutil.copytree(tmp_path / "live", tmp_path / "copy")
    inputs_from = desk.journal.last_seq

    _finish(desk)
    live_events = desk.engine.drain()
    recovered = Engine.recover(
        desk.config,
        FakeClock(START),
        rs.INSTRUMENTS,
        NullGateway(supports_mass_cancel=True),
        tmp_path / "copy" / "j",
        snapshot_dir=tmp_path / "copy" / "snapshots",
    )
    for record in _records_after(tmp_path / "live" / "j", inputs_from):
        recovered._apply_record(record)  # the live engine's later inputs, from its journal

    assert recovered.recovered_from == inputs_from
    assert recovered.drain() == live_events
    assert {HaltCompleted, VenueStatusComplete} <= {type(e.event) for e in live_events}
    assert recovered.state_hash() == desk.engine.state_hash()


def _records_after(path: Path, seq: int) -> list:
    return [r for r in read_journal(path, Codec(rs.INSTRUMENTS)) if r.seq > seq]
