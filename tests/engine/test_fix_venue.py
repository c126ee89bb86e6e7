"""`python -m engine.venue` as a process: FIX 4.4 sessions, orders, market data, malformed input, cancel-on-disconnect.

Every test starts the real venue process on free local ports (FIX over TCP on 127.0.0.1, market data over ipc in the
test's tmp dir) and kills it in a finally. Waits are bounded upper limits; nothing is timed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import zmq

from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.fix.initiator import FixGateway
from engine.fix.settings import FixSessionConfig
from engine.instruments import InstrumentRegistry
from engine.protocol import (
    BookDeltas,
    BookSnapshot,
    Codec,
    TradePrinted,
    VenueCommandRejected,
    VenuePlaceOrder,
    VenueRequestSnapshot,
)
from tests.engine.fix_helpers import ROOT, WAIT_S, RawFixClient, VenueProcess, snapshot, wait_for

pytestmark = pytest.mark.timeout(240)

INSTRUMENTS = InstrumentRegistry.from_toml()
CODEC = Codec(INSTRUMENTS)


def gateway(venue: VenueProcess, tmp_path, comp_id: str) -> FixGateway:
    config = FixSessionConfig(
        role="initiator", sender_comp_id=comp_id, target_comp_ids=("VENUE",), port=venue.port, file_log=False
    )
    gw = FixGateway(config, INSTRUMENTS, var_dir=tmp_path / comp_id)
    gw.start()
    if not gw.wait_connected(WAIT_S):
        gw.stop()
        raise AssertionError(f"{comp_id} did not log on")
    return gw


def limit(cl_id: str, account: str, side: Side, price: int, quantity: int, tif=TimeInForce.GTC) -> VenuePlaceOrder:
    return VenuePlaceOrder(
        client_order_id=cl_id,
        account=account,
        symbol="BTCUSDT",
        side=side,
        order_type=OrderType.LIMIT,
        time_in_force=tif,
        price=price,
        quantity=quantity,
    )


def collect(gw: FixGateway, into: list, predicate) -> list:
    def done():
        into.extend(gw.poll())
        return predicate(into)

    wait_for(done)
    return into


def test_two_sessions_log_on_and_their_crossing_orders_fill_each_other_over_fix(tmp_path):
    with VenueProcess(tmp_path) as venue:
        maker, taker = gateway(venue, tmp_path, "ENGINE"), gateway(venue, tmp_path, "TRADER2")
        try:
            maker_reports: list = []
            taker_reports: list = []

            maker.send(limit("m-1", "MM1", Side.SELL, 600_000, 5))
            collect(maker, maker_reports, lambda r: any(x.exec_type == ExecType.NEW for x in r))
            taker.send(limit("t-1", "T2", Side.BUY, 600_010, 2, TimeInForce.IOC))
            collect(maker, maker_reports, lambda r: any(x.exec_type == ExecType.TRADE for x in r))
            collect(taker, taker_reports, lambda r: any(x.exec_type == ExecType.TRADE for x in r))

            maker_fill = next(r for r in maker_reports if r.exec_type == ExecType.TRADE)
            taker_fill = next(r for r in taker_reports if r.exec_type == ExecType.TRADE)
            assert (maker_fill.last_price, maker_fill.last_quantity, maker_fill.is_maker) == (600_000, 2, True)
            assert (maker_fill.status, maker_fill.leaves_quantity) == (OrderStatus.PARTIALLY_FILLED, 3)
            assert (taker_fill.account, taker_fill.status, taker_fill.is_maker) == ("T2", OrderStatus.FILLED, False)
            assert all(r.account == "MM1" for r in maker_reports)  # each session sees only its own orders
        finally:
            maker.stop()
            taker.stop()


def test_market_data_is_published_with_contiguous_sequence_numbers_and_a_snapshot_matches_them(tmp_path):
    with VenueProcess(tmp_path) as venue:
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"BTCUSDT")
        sub.connect(venue.pub)
        gw = gateway(venue, tmp_path, "ENGINE")
        try:
            wait_for(lambda: gw.send(limit("warm", "MM1", Side.BUY, 1, 1)) or sub.poll(200))  # PUB/SUB joined
            received = []
            for i in range(5):
                gw.send(limit(f"b-{i}", "MM1", Side.BUY, 599_990 + i, 1))
            gw.send(limit("s-0", "MM1", Side.SELL, 599_994, 1))  # cancels our b-4 (self-trade prevention), rests

            def five_more():
                while sub.poll(0):
                    topic, body = sub.recv_multipart()
                    received.append((topic, CODEC.decode_venue_event(body)))
                return sum(type(m) is BookDeltas for _, m in received) >= 7

            wait_for(five_more)
            answer = CODEC.decode_venue_event(
                snapshot(venue.snapshot, CODEC.encode(VenueRequestSnapshot(symbol="BTCUSDT")))
            )

            seqs = [m.seq for _, m in received]
            assert all(topic == b"BTCUSDT" for topic, _ in received)
            assert all(type(m) in {BookDeltas, TradePrinted} for _, m in received)
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert type(answer) is BookSnapshot
            assert answer.seq == seqs[-1]
            assert answer.bids[:2] == ((599_993, 1), (599_992, 1))  # b-4 canceled by self-trade prevention
            assert answer.asks == ((599_994, 1),)
        finally:
            gw.stop()
            sub.close()


def test_garbage_on_the_snapshot_socket_is_answered_with_a_reason_and_the_venue_keeps_serving(tmp_path):
    with VenueProcess(tmp_path) as venue:
        garbage = CODEC.decode_venue_event(snapshot(venue.snapshot, b"\xc1 not msgpack"))
        unknown = CODEC.decode_venue_event(
            snapshot(venue.snapshot, CODEC.encode(VenueRequestSnapshot(symbol="ETHUSDT")))
        )
        good = CODEC.decode_venue_event(snapshot(venue.snapshot, CODEC.encode(VenueRequestSnapshot(symbol="BTCUSDT"))))

        assert (type(garbage), garbage.code) == (VenueCommandRejected, "MALFORMED")
        assert (type(unknown), unknown.code) == (VenueCommandRejected, "UNKNOWN_SYMBOL")
        assert type(good) is BookSnapshot


def test_malformed_fix_is_rejected_by_the_session_layer_and_the_venue_keeps_serving(tmp_path):
    with VenueProcess(tmp_path) as venue:
        raw = RawFixClient(venue.port)
        try:
            raw.logon()
            order = [(11, "r-1"), (1, "RAW"), (55, "BTCUSDT"), (54, "1"), (60, "20261122-01:00:00.000")]
            order += [(38, "0.001"), (40, "2"), (44, "60000.0"), (59, "1")]

            raw.send_fields("D", order, bad_checksum=True)  # garbled: dropped, its sequence number not consumed
            raw.send_fields("D", [f for f in order if f[0] != 54])  # Side missing
            missing = raw.expect(lambda m: m[35] == "3")
            raw.send_fields("ZZ", [(11, "r-2")])  # no such MsgType
            unknown_type = raw.expect(lambda m: m[35] == "3")
            raw.send_fields("R", [(131, "q-1"), (146, "1"), (55, "BTCUSDT")])  # QuoteRequest: valid FIX, not taken
            unsupported = raw.expect(lambda m: m[35] == "j")
            raw.send_fields("D", [(11, "r-3")] + [f for f in order if f[0] not in {11, 44}] + [(44, "60000.05")])
            off_grid = raw.expect(lambda m: m[35] == "j")
            raw.send_fields("D", [(11, "r-4"), *order[1:]])
            accepted = raw.expect(lambda m: m[35] == "8")

            assert (missing[373], missing[371]) == ("1", "54")  # required tag missing, which tag
            assert unknown_type[373] == "11"  # invalid MsgType
            assert unsupported[380] == "3"  # unsupported message type
            assert (off_grid[380], off_grid[379]) == ("0", "r-3")
            assert off_grid[58].startswith("PRICE_OFF_TICK")
            assert (accepted[11], accepted[150], accepted[39]) == ("r-4", "0", "0")
            assert int(accepted[34]) >= 5  # the garbled message took no sequence number on either side
        finally:
            raw.close()


def test_an_account_owned_by_one_session_is_refused_to_another(tmp_path):
    with VenueProcess(tmp_path) as venue:
        first, second = gateway(venue, tmp_path, "ENGINE"), gateway(venue, tmp_path, "TRADER2")
        try:
            first_reports: list = []
            second_reports: list = []

            first.send(limit("a-1", "MM1", Side.BUY, 10, 1))
            collect(first, first_reports, lambda r: r)
            second.send(limit("a-2", "MM1", Side.BUY, 10, 1))
            collect(second, second_reports, lambda r: r)

            assert second_reports[0].code == "ACCOUNT_IN_USE"
            assert second_reports[0].client_order_id == "a-2"
        finally:
            first.stop()
            second.stop()


def test_a_session_that_logs_out_has_its_resting_orders_canceled(tmp_path):
    with VenueProcess(tmp_path) as venue:
        gw = gateway(venue, tmp_path, "ENGINE")
        try:
            reports: list = []
            gw.send(limit("c-1", "MM1", Side.BUY, 599_000, 3))
            gw.send(limit("c-2", "MM1", Side.SELL, 601_000, 3))
            collect(gw, reports, lambda r: sum(x.exec_type == ExecType.NEW for x in r) == 2)
            request = CODEC.encode(VenueRequestSnapshot(symbol="BTCUSDT"))
            before = CODEC.decode_venue_event(snapshot(venue.snapshot, request))
        finally:
            gw.stop()

        def book_emptied():
            book = CODEC.decode_venue_event(snapshot(venue.snapshot, request))
            return not book.bids and not book.asks

        wait_for(book_emptied)
        assert (before.bids, before.asks) == (((599_000, 3),), ((601_000, 3),))


def test_a_bad_config_value_stops_start_up_with_the_name_of_the_key(tmp_path):
    config = tmp_path / "venue.toml"
    config.write_text('[fix]\nrole = "acceptor"\nsender_comp_id = "VENUE"\ntarget_comp_ids = ["E"]\nport = 70000\n')

    result = subprocess.run(
        [sys.executable, "-m", "engine.venue", "--config", str(config)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=WAIT_S * 2,
    )

    assert result.returncode == 2
    assert "VENUE_CONFIG_INVALID" in result.stderr
    assert "$.fix.port" in result.stderr
