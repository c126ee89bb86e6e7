"""Readers for the recorded data in ../shared/data (Binance, Databento MBO, L1 CSVs) and the Binance replay."""

from __future__ import annotations

import gzip
from collections import Counter
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest

from engine.book import L2Book, L3Book
from engine.enums import BookAction, Side
from engine.instruments import Instrument, InstrumentError, InstrumentRegistry
from engine.marketdata.binance import (
    BinanceBookSync,
    BinanceFormatError,
    DepthDiff,
    DepthSnapshot,
    iter_binance_file,
)
from engine.marketdata.databento import (
    F_LAST,
    MboEvent,
    MboReplayStats,
    MboSequenceCheck,
    apply_mbo_event,
    iter_mbo_file,
    replay_mbo,
)
from engine.marketdata.l1csv import L1FormatError, iter_histdata_csv, iter_truefx_csv
from engine.marketdata.paths import shared_data_dir
from engine.marketdata.replay import measure_binance_agreement

DATA = shared_data_dir()
BINANCE = DATA / "hftbacktest/examples/usdm/btcusdt_20240808.gz"
MBO = (
    DATA / "nautilus_trader/tests/test_data/databento/order_book_deltas_catalog/databento/"
    "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
)
TRUEFX = DATA / "nautilus_trader/tests/test_data/truefx/usdjpy-ticks.csv"
HISTDATA = DATA / "nautilus_trader/tests/test_data/quote_tick_data.csv"


def test_shared_data_dir_honours_the_environment_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SHARED_DATA_DIR", str(tmp_path))

    assert shared_data_dir() == tmp_path


def test_shared_data_dir_defaults_to_shared_data_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("SHARED_DATA_DIR", raising=False)
    repo_root = Path(__file__).resolve().parents[2]

    assert shared_data_dir() == repo_root.parent / "shared" / "data"


needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared market data folder {DATA} is missing")

INSTRUMENTS = InstrumentRegistry.from_toml()
BTC = INSTRUMENTS.get("BTCUSDT")
ESM4 = INSTRUMENTS.get("ESM4")


# --- Binance reader -----------------------------------------------------------------------------------------


@needs_data
def test_binance_capture_reads_every_line_with_the_counts_in_sources():
    counts = Counter(type(record).__name__ for record in iter_binance_file(BINANCE, BTC))

    # SOURCES.md: 6,551 depth diffs, 66,089 bookTicker, 21,313 trades and 1 other line (the REST snapshot).
    assert counts == {"DepthDiff": 6551, "BookTicker": 66089, "Trade": 21313, "DepthSnapshot": 1}


def _write_capture(tmp_path, *lines: str):
    path = tmp_path / "capture.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def test_binance_lines_become_integer_records_with_both_timestamps(tmp_path):
    path = _write_capture(
        tmp_path,
        '5 {"stream":"btcusdt@depth@0ms","data":{"e":"depthUpdate","E":1000,"T":999,"s":"BTCUSDT",'
        '"U":10,"u":12,"pu":9,"b":[["61800.20","2.507"]],"a":[["61800.30","0.000"]]}}',
        '6 {"stream":"btcusdt@trade","data":{"e":"trade","E":1001,"T":1001,"s":"BTCUSDT","t":77,'
        '"p":"61800.30","q":"0.006","X":"MARKET","m":true}}',
    )

    diff, trade = list(iter_binance_file(path, BTC))

    assert diff == DepthDiff(
        recv_ns=5,
        event_ns=1_000_000_000,
        transact_ns=999_000_000,
        first_update_id=10,
        last_update_id=12,
        prev_last_update_id=9,
        bids=((618002, 2507),),
        asks=((618003, 0),),
    )
    assert (trade.price, trade.quantity, trade.aggressor) == (618003, 6, Side.SELL)  # m=true: the seller took


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ('"s":"ETHUSDT","b":"1.0","B":"1","a":"1.1","A":"1"', "BINANCE_WRONG_SYMBOL"),
        ('"s":"BTCUSDT","b":"61800.25","B":"1","a":"61800.3","A":"1"', "PRICE_OFF_TICK"),
        ('"s":"BTCUSDT","b":"61800.2","B":"0.0005","a":"61800.3","A":"1"', "QUANTITY_OFF_LOT"),
    ],
)
def test_binance_bad_line_is_refused_with_a_reason_code_and_its_line_number(tmp_path, data, code):
    path = _write_capture(tmp_path, '1 {"stream":"x","data":{"e":"bookTicker","u":1,"E":1,"T":1,' + data + "}}")

    with pytest.raises(BinanceFormatError) as excinfo:
        list(iter_binance_file(path, BTC))

    assert excinfo.value.code == code
    assert ":1:" in excinfo.value.reason


# --- Binance sync rules -------------------------------------------------------------------------------------


def diff(first: int, last: int, prev: int, bids=(), asks=()) -> DepthDiff:
    return DepthDiff(
        recv_ns=0,
        event_ns=0,
        transact_ns=0,
        first_update_id=first,
        last_update_id=last,
        prev_last_update_id=prev,
        bids=tuple(bids),
        asks=tuple(asks),
    )


def rest_snapshot(last: int, bids=((100, 5),), asks=((101, 5),)) -> DepthSnapshot:
    return DepthSnapshot(recv_ns=0, event_ns=0, transact_ns=0, last_update_id=last, bids=bids, asks=asks)


def test_binance_sync_drops_diffs_before_the_snapshot_and_starts_from_the_one_spanning_it():
    sync = BinanceBookSync(L2Book())
    sync.on_diff(diff(1, 5, 0, bids=[(100, 1)]))
    sync.on_diff(diff(6, 9, 5, bids=[(100, 2)]))
    sync.on_diff(diff(10, 14, 9, bids=[(100, 3)]))

    applied = sync.on_snapshot(rest_snapshot(8))
    sync.on_diff(diff(15, 15, 14, asks=[(101, 7)]))

    assert applied == 2 and sync.diffs_dropped == 1
    assert sync.synced and sync.last_update_id == 15
    assert (sync.book.best_bid_size, sync.book.best_ask_size) == (3, 7)


def test_binance_sync_break_in_the_pu_chain_is_a_gap_that_waits_for_a_new_snapshot():
    sync = BinanceBookSync(L2Book())
    sync.on_snapshot(rest_snapshot(4))
    sync.on_diff(diff(3, 6, 2, bids=[(100, 1)]))

    applied = sync.on_diff(diff(9, 12, 8, bids=[(100, 9)]))

    assert not applied
    assert sync.gaps == 1 and sync.needs_snapshot
    assert sync.book.best_bid_size == 1


def test_binance_sync_drops_and_counts_a_repeated_diff_without_losing_sync():
    sync = BinanceBookSync(L2Book())
    sync.on_snapshot(rest_snapshot(4))
    sync.on_diff(diff(3, 6, 2, bids=[(100, 1)]))
    sync.on_diff(diff(7, 9, 6, bids=[(100, 2)]))

    repeated = sync.on_diff(diff(7, 9, 6, bids=[(100, 2)]))
    older = sync.on_diff(diff(3, 6, 2, bids=[(100, 1)]))
    after = sync.on_diff(diff(10, 11, 9, bids=[(100, 3)]))

    assert (repeated, older, after) == (False, False, True)
    assert sync.duplicates == 2 and sync.gaps == 0
    assert sync.synced and not sync.needs_snapshot
    assert sync.last_update_id == 11 and sync.book.best_bid_size == 3


def test_binance_sync_reordered_pair_is_a_gap_then_recovers_without_a_snapshot():
    sync = BinanceBookSync(L2Book())
    sync.on_snapshot(rest_snapshot(4))
    sync.on_diff(diff(3, 6, 2, bids=[(100, 1)]))

    early = sync.on_diff(diff(10, 12, 9, bids=[(100, 3)]))
    late = sync.on_diff(diff(7, 9, 6, bids=[(100, 2)]))
    next_in_chain = sync.on_diff(diff(13, 13, 12, asks=[(101, 8)]))

    assert (early, late, next_in_chain) == (False, True, True)
    assert sync.gaps == 1 and sync.out_of_order == 1 and sync.duplicates == 0
    assert sync.synced and sync.last_update_id == 13
    assert (sync.book.best_bid_size, sync.book.best_ask_size) == (3, 8)


def test_binance_sync_duplicate_buffered_before_the_snapshot_is_dropped_not_a_gap():
    sync = BinanceBookSync(L2Book())
    sync.on_diff(diff(6, 9, 5, bids=[(100, 2)]))
    sync.on_diff(diff(6, 9, 5, bids=[(100, 2)]))
    sync.on_diff(diff(10, 14, 9, bids=[(100, 3)]))

    applied = sync.on_snapshot(rest_snapshot(8))

    assert applied == 2 and sync.duplicates == 1 and sync.gaps == 0
    assert sync.synced and sync.last_update_id == 14


def test_binance_sync_snapshot_older_than_every_buffered_diff_is_not_enough():
    sync = BinanceBookSync(L2Book())
    sync.on_diff(diff(10, 14, 9, bids=[(100, 3)]))

    sync.on_snapshot(rest_snapshot(8))

    assert not sync.synced and sync.needs_snapshot


def test_binance_progressive_fill_applies_from_the_first_diff_and_restarts_on_a_gap():
    sync = BinanceBookSync(L2Book(), use_snapshot=False)
    sync.on_diff(diff(1, 5, 0, bids=[(100, 1), (99, 4)]))

    sync.on_diff(diff(9, 12, 8, asks=[(101, 2)]))

    assert sync.gaps == 1 and sync.synced
    assert (sync.book.best_bid, sync.book.best_ask) == (None, 101)  # the old levels went with the gap


# --- Binance replay agreement -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot_mode_stats():
    return measure_binance_agreement(BINANCE, BTC)


@needs_data
def test_binance_replay_top_of_book_agrees_with_every_aligned_book_ticker(snapshot_mode_stats):
    stats = snapshot_mode_stats

    # Aligned by update id the comparison is exact (the bookTicker stream reports every change of the top), so
    # the only acceptable rate is 100%: any disagreement is a bug in the book, the sync or the reader.
    assert stats.compared > 6500
    assert dict(stats.disagreements) == {}
    assert stats.rate == 1.0
    assert stats.gaps == 0 and stats.diffs_dropped == 4
    assert stats.exact_id_compared == stats.exact_id_agreed > 600


@needs_data
def test_binance_replay_without_the_snapshot_fills_in_and_agrees_too():
    stats = measure_binance_agreement(BINANCE, BTC, use_snapshot=False)

    assert stats.filled_in_after_diffs is not None and stats.filled_in_after_diffs <= 10
    assert stats.rate == 1.0


@needs_data
def test_binance_replay_in_receive_order_mostly_sees_tickers_ahead_of_the_depth_stream(snapshot_mode_stats):
    stats = snapshot_mode_stats
    by_relation = Counter()
    for key, count in stats.receive_order_classes.items():
        by_relation[key.split(":")[0]] += count

    # The bookTicker stream is pushed ~26 ms before the depth diff carrying the same update, so comparing each
    # ticker with the book as received is mostly comparing with the past.
    assert stats.receive_order_rate < 0.05
    assert by_relation.most_common(1)[0][0] == "ticker_ahead_of_depth"
    assert stats.lead_percentile_ns(50) > 0
    assert stats.receive_order_classes["same_update_id:agree"] >= 100


# --- Databento MBO ------------------------------------------------------------------------------------------


@needs_data
def test_databento_mbo_replay_counts_match_sources_and_the_book_ends_sane():
    book, stats = replay_mbo(MBO, ESM4)

    assert stats.actions == {"R": 1, "A": 13678, "C": 80, "M": 27, "T": 5, "F": 5}
    assert stats.refused == {} and stats.modify_of_unknown_order == 0
    assert stats.crossed_at_event_end == 0
    assert not book.is_crossed() and not book.is_locked()
    assert (ESM4.ticks_to_price(book.best_bid), ESM4.ticks_to_price(book.best_ask)) == (
        Decimal("5214.00"),
        Decimal("5214.25"),
    )
    assert len(book) == 13678 - 80  # each cancel in this file removes a whole order; modifies keep it
    # The CME sequence is the channel's: 5 numbers are skipped by messages that carry no ESM4 record.
    assert (stats.sequence_gaps, stats.duplicates, stats.out_of_order) == (5, 0, 0)


@needs_data
def test_databento_mbo_price_off_the_instrument_grid_is_refused():
    half_point = Instrument(
        symbol="ESM4", tick_size=Decimal("0.5"), lot_size=Decimal(1), price_precision=1, size_precision=0
    )

    with pytest.raises(InstrumentError) as excinfo:
        list(iter_mbo_file(MBO, half_point))

    assert excinfo.value.code == "PRICE_OFF_TICK"


def mbo(action: BookAction, order_id: int, side: int, price: int, size: int, sequence: int = 0) -> MboEvent:
    return MboEvent(
        ts_recv=0,
        ts_event=0,
        action=action,
        side=side,
        order_id=order_id,
        price=price,
        size=size,
        flags=F_LAST,
        sequence=sequence,
        instrument_id=1,
    )


def test_databento_replay_drops_a_duplicated_record_and_counts_a_dropped_one_as_a_gap():
    book, stats, sequence = L3Book(), MboReplayStats(), MboSequenceCheck()
    records = [
        mbo(BookAction.ADD, 1, 1, 99, 5, sequence=10),
        mbo(BookAction.ADD, 2, -1, 101, 4, sequence=11),
        mbo(BookAction.CANCEL, 2, -1, 101, 1, sequence=11),
        mbo(BookAction.CANCEL, 2, -1, 101, 1, sequence=11),  # duplicated: would take a second lot
        # sequence 12 was lost
        mbo(BookAction.CANCEL, 1, 1, 99, 2, sequence=13),
        mbo(BookAction.CANCEL, 1, 1, 99, 2, sequence=10),  # late: older than what was applied
    ]

    for record in records:
        apply_mbo_event(book, record, stats, sequence=sequence)

    assert book.order(2) == (-1, 101, 3)
    assert book.order(1) == (1, 99, 3)
    assert (stats.duplicates, stats.sequence_gaps, stats.out_of_order) == (1, 1, 1)
    assert stats.applied == 4 and stats.refused == {}


def test_databento_identical_trade_prints_in_one_message_are_all_kept():
    book, stats, sequence = L3Book(), MboReplayStats(), MboSequenceCheck()

    for _ in range(2):
        apply_mbo_event(book, mbo(BookAction.TRADE, 7, 1, 100, 1, sequence=5), stats, sequence=sequence)

    assert stats.prints == 2 and stats.duplicates == 0


def test_databento_trade_and_fill_are_prints_and_the_following_cancel_removes_the_liquidity():
    book, stats = L3Book(), MboReplayStats()
    apply_mbo_event(book, mbo(BookAction.ADD, 1, -1, 100, 5), stats)

    apply_mbo_event(book, mbo(BookAction.TRADE, 2, 1, 100, 2), stats)
    apply_mbo_event(book, mbo(BookAction.FILL, 1, -1, 100, 2), stats)
    size_after_prints = book.size_at(-1, 100)
    apply_mbo_event(book, mbo(BookAction.CANCEL, 1, -1, 100, 2), stats)

    assert size_after_prints == 5
    assert book.order(1) == (-1, 100, 3)
    assert stats.prints == 2 and stats.applied == 2


def test_databento_modify_of_an_unknown_order_is_an_add():
    book, stats = L3Book(), MboReplayStats()

    apply_mbo_event(book, mbo(BookAction.MODIFY, 9, 1, 99, 4), stats)

    assert book.order(9) == (1, 99, 4)
    assert stats.modify_of_unknown_order == 1


# --- L1 CSVs ------------------------------------------------------------------------------------------------


@needs_data
def test_truefx_csv_has_1000_rows_on_the_usdjpy_grid_in_time_order():
    usdjpy = INSTRUMENTS.get("USDJPY")
    raw_rows = TRUEFX.read_text().splitlines()[1:]

    quotes = list(iter_truefx_csv(TRUEFX, usdjpy))

    assert len(quotes) == 1000
    # On grid: converting back gives exactly the decimals in the file.
    assert [(str(usdjpy.ticks_to_price(q.bid)), str(usdjpy.ticks_to_price(q.ask))) for q in quotes] == [
        tuple(row.split(",")[1:3]) for row in raw_rows
    ]
    assert all(a.ts <= b.ts for a, b in pairwise(quotes))
    assert quotes[0].ts == 1_357_077_600_295_000_000  # 2013-01-01 22:00:00.295 UTC


@needs_data
def test_histdata_csv_timestamps_are_fixed_est_converted_to_utc():
    quotes = list(iter_histdata_csv(HISTDATA, INSTRUMENTS.get("EURUSD")))

    assert len(quotes) == 9500
    assert quotes[0].ts == 1_577_916_000_065_000_000  # 20200101 170000065 EST = 2020-01-01 22:00:00.065 UTC
    assert (quotes[0].bid, quotes[0].ask) == (112120, 112172)
    assert all(q.bid <= q.ask for q in quotes)


@pytest.mark.parametrize(
    ("row", "code"),
    [
        ("2013-01-01 22:00:00.295000+00:00,86.6555,86.728", "PRICE_OFF_TICK"),
        ("2013-01-01 22:00:00.295000+00:00,86.800,86.728", "L1_CROSSED_QUOTE"),
        ("2013-01-01 22:00:00.295000,86.655,86.728", "L1_BAD_TIMESTAMP"),
    ],
)
def test_truefx_bad_row_is_refused_with_a_reason_code(tmp_path, row, code):
    path = tmp_path / "ticks.csv"
    path.write_text("timestamp,bid,ask\n" + row + "\n")

    with pytest.raises(L1FormatError) as excinfo:
        list(iter_truefx_csv(path, INSTRUMENTS.get("USDJPY")))

    assert excinfo.value.code == code
