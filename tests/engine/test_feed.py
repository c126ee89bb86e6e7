"""SequencedFeed: in-sequence apply, duplicates, gaps, snapshot recovery, buffer bounds, rejected messages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book import L2Book, ReferenceL2Book
from engine.enums import Side
from engine.feed import FeedError, FeedOutcome, SequencedFeed
from engine.instruments import InstrumentRegistry
from engine.protocol import BookDeltas, BookSnapshot, TradePrinted

SYMBOL = "BTCUSDT"


def deltas(seq: int, *levels: tuple[int, int, int]) -> BookDeltas:
    return BookDeltas(symbol=SYMBOL, seq=seq, ts=seq * 1_000, deltas=levels)


def bid(seq: int, price: int = 100, size: int | None = None) -> BookDeltas:
    """A one-level bid update whose size encodes its sequence number, so the book shows what was applied."""
    return deltas(seq, (Side.BUY, price, seq if size is None else size))


def snapshot(seq: int, bids=((100, 1),), asks=((101, 1),)) -> BookSnapshot:
    return BookSnapshot(symbol=SYMBOL, seq=seq, ts=seq * 1_000, bids=tuple(bids), asks=tuple(asks))


def make_feed(**kwargs):
    requests: list[str] = []
    trades: list[TradePrinted] = []
    feed = SequencedFeed(
        symbol=SYMBOL, book=L2Book(SYMBOL), request_snapshot=requests.append, on_trade=trades.append, **kwargs
    )
    return feed, requests, trades


def test_in_sequence_messages_are_applied_and_trades_delivered_in_order():
    feed, requests, trades = make_feed()
    trade = TradePrinted(symbol=SYMBOL, seq=2, ts=2, trade_id=7, price=101, quantity=3, aggressor=Side.BUY)

    outcomes = [feed.on_message(bid(1)), feed.on_message(trade), feed.on_message(deltas(3, (Side.SELL, 101, 4)))]

    assert outcomes == [FeedOutcome.APPLIED] * 3
    assert (feed.book.best_bid, feed.book.best_bid_size, feed.book.best_ask, feed.book.best_ask_size) == (
        100,
        1,
        101,
        4,
    )
    assert trades == [trade]
    assert feed.last_seq == 3 and not feed.stale and requests == []
    assert feed.counters.applied == 3 and feed.counters.trades == 1


def test_duplicate_packet_is_dropped_and_counted():
    feed, requests, _ = make_feed()
    feed.on_book_deltas(bid(1))
    feed.on_book_deltas(bid(2))

    outcome = feed.on_book_deltas(bid(1, size=99))

    assert outcome is FeedOutcome.DUPLICATE
    assert feed.book.best_bid_size == 2
    assert feed.counters.duplicates == 1 and feed.counters.applied == 2
    assert not feed.stale and requests == []


def test_dropped_packet_marks_the_book_stale_requests_one_snapshot_and_buffers():
    feed, requests, _ = make_feed()
    feed.on_book_deltas(bid(1))

    outcomes = [feed.on_book_deltas(bid(3)), feed.on_book_deltas(bid(4))]

    assert outcomes == [FeedOutcome.BUFFERED, FeedOutcome.BUFFERED]
    assert feed.stale
    assert requests == [SYMBOL]
    assert feed.counters.gaps == 1 and feed.counters.snapshots_requested == 1
    assert feed.book.best_bid_size == 1  # nothing past the hole was applied
    assert feed.last_seq == 1


def test_reordered_pair_counts_as_a_gap_then_recovers_without_a_snapshot():
    feed, requests, _ = make_feed()
    for seq in (1, 2, 3):
        feed.on_book_deltas(bid(seq))

    first = feed.on_book_deltas(bid(5))
    second = feed.on_book_deltas(bid(4))

    assert (first, second) == (FeedOutcome.BUFFERED, FeedOutcome.APPLIED)
    assert not feed.stale
    assert feed.last_seq == 5 and feed.book.best_bid_size == 5
    assert feed.counters.gaps == 1 and feed.counters.out_of_order == 1 and feed.counters.applied == 5
    assert requests == [SYMBOL]


def test_snapshot_older_than_the_buffer_is_loaded_and_the_buffered_run_applied():
    feed, _, _ = make_feed()
    feed.on_book_deltas(bid(1))
    for seq in (4, 5, 6):
        feed.on_book_deltas(bid(seq))

    outcome = feed.on_snapshot(snapshot(3, bids=((100, 30), (99, 7))))

    assert outcome is FeedOutcome.SNAPSHOT_LOADED
    assert not feed.stale
    assert feed.last_seq == 6
    assert feed.book.depth(2)[0] == [(100, 6), (99, 7)]
    assert feed.counters.snapshots_applied == 1 and feed.counters.superseded == 0


def test_snapshot_newer_than_the_buffer_discards_the_covered_messages():
    feed, _, _ = make_feed()
    feed.on_book_deltas(bid(1))
    for seq in (4, 5, 6):
        feed.on_book_deltas(bid(seq))

    feed.on_snapshot(snapshot(8, bids=((100, 80),)))
    after = feed.on_book_deltas(bid(9))

    assert after is FeedOutcome.APPLIED
    assert not feed.stale
    assert feed.last_seq == 9 and feed.book.best_bid_size == 9
    assert feed.counters.superseded == 3


def test_snapshot_that_leaves_a_hole_before_the_buffer_keeps_the_book_stale_and_asks_again():
    feed, requests, _ = make_feed()
    feed.on_book_deltas(bid(1))
    for seq in (5, 6):
        feed.on_book_deltas(bid(seq))

    outcome = feed.on_snapshot(snapshot(3, bids=((100, 30),)))
    stale_after_first, requests_after_first = feed.stale, list(requests)
    feed.on_snapshot(snapshot(6, bids=((100, 60),)))

    assert outcome is FeedOutcome.SNAPSHOT_LOADED
    assert stale_after_first and feed.last_seq == 6
    assert requests_after_first == [SYMBOL, SYMBOL]
    assert requests == [SYMBOL, SYMBOL]
    assert not feed.stale
    assert feed.last_seq == 6 and feed.book.best_bid_size == 60


def test_snapshot_older_than_the_book_is_ignored():
    feed, _, _ = make_feed()
    for seq in (1, 2, 3):
        feed.on_book_deltas(bid(seq))

    outcome = feed.on_snapshot(snapshot(2, bids=((100, 20),)))

    assert outcome is FeedOutcome.SNAPSHOT_IGNORED
    assert feed.book.best_bid_size == 3 and feed.last_seq == 3
    assert feed.counters.snapshots_ignored == 1


def test_joining_mid_stream_recovers_through_the_first_snapshot():
    feed, requests, _ = make_feed()

    feed.on_book_deltas(bid(41))
    feed.on_book_deltas(bid(42))
    feed.on_snapshot(snapshot(40, bids=((100, 40),), asks=((105, 2),)))

    assert requests == [SYMBOL]
    assert not feed.stale
    assert (feed.book.best_bid, feed.book.best_bid_size, feed.book.best_ask) == (100, 42, 105)


def test_buffer_overflow_drops_the_oldest_counts_and_requests_again_once():
    feed, requests, _ = make_feed(max_buffer=3)
    feed.on_book_deltas(bid(1))

    for seq in range(3, 9):
        feed.on_book_deltas(bid(seq))
    feed.on_snapshot(snapshot(5, bids=((100, 50),)))

    assert feed.counters.buffered_dropped == 3
    assert requests == [SYMBOL, SYMBOL]  # the gap, then one re-request on overflow
    assert not feed.stale  # 6, 7, 8 were kept and follow the snapshot at 5
    assert feed.last_seq == 8 and feed.book.best_bid_size == 8


def test_duplicate_of_a_buffered_message_is_dropped():
    feed, _, _ = make_feed()
    feed.on_book_deltas(bid(1))
    feed.on_book_deltas(bid(3))

    outcome = feed.on_book_deltas(bid(3, size=99))
    feed.on_book_deltas(bid(2))

    assert outcome is FeedOutcome.DUPLICATE
    assert feed.book.best_bid_size == 3
    assert feed.counters.duplicates == 1


def _top(book: L2Book) -> tuple:
    return book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size, book.depth(10)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (BookDeltas(symbol="ETHUSDT", seq=3, ts=0, deltas=((1, 100, 5),)), "FEED_WRONG_SYMBOL"),
        # Built without the protocol's own validation, as an adapter decoding a foreign wire format would.
        (SimpleNamespace(symbol=SYMBOL, seq=3, ts=0, deltas=((1, 100, 5), (-1, 101, -2))), "FEED_SIZE_NEGATIVE"),
        (SimpleNamespace(symbol=SYMBOL, seq=3, ts=0, deltas=((1, 0, 5),)), "FEED_PRICE_NOT_POSITIVE"),
        (SimpleNamespace(symbol=SYMBOL, seq=3, ts=0, deltas=((2, 100, 5),)), "FEED_BAD_SIDE"),
        (
            SimpleNamespace(symbol=SYMBOL, seq=3, ts=0, trade_id=1, price=100, quantity=0, aggressor=Side.BUY),
            "FEED_SIZE_NOT_POSITIVE",
        ),
        (SimpleNamespace(symbol=SYMBOL, seq=3, ts=0, bids=((100, 0),), asks=()), "FEED_SIZE_NOT_POSITIVE"),
    ],
)
def test_bad_message_is_rejected_with_a_reason_code_and_the_book_unchanged(message, code):
    feed, _, _ = make_feed()
    feed.on_book_deltas(bid(1))
    feed.on_book_deltas(deltas(2, (Side.SELL, 101, 4)))
    before = _top(feed.book)

    outcome = feed.on_message(message)

    assert outcome is FeedOutcome.REJECTED
    assert feed.last_reject.code == code
    assert _top(feed.book) == before
    assert feed.last_seq == 2 and feed.counters.rejected == 1


def test_off_grid_decimal_price_is_rejected_and_on_grid_decimals_are_applied():
    btc = InstrumentRegistry.from_toml().get(SYMBOL)
    feed, _, _ = make_feed(instrument=btc)

    bad = feed.on_decimal_deltas(symbol=SYMBOL, seq=1, ts=0, deltas=[(1, "61800.10", "0.5"), (-1, "61800.25", "1")])
    good = feed.on_decimal_deltas(symbol=SYMBOL, seq=1, ts=0, deltas=[(1, "61800.10", "0.5"), (-1, "61800.2", "1")])

    assert bad is FeedOutcome.REJECTED and feed.last_reject.code == "PRICE_OFF_TICK"
    assert good is FeedOutcome.APPLIED
    assert (feed.book.best_bid, feed.book.best_bid_size, feed.book.best_ask) == (618001, 500, 618002)


def test_rejected_message_leaves_a_hole_that_recovers_through_a_snapshot():
    feed, requests, _ = make_feed()
    feed.on_book_deltas(bid(1))
    feed.on_message(SimpleNamespace(symbol=SYMBOL, seq=2, ts=0, deltas=((1, 100, -1),)))

    feed.on_book_deltas(bid(3))
    feed.on_snapshot(snapshot(2, bids=((100, 20),)))

    assert requests == [SYMBOL]
    assert not feed.stale and feed.last_seq == 3 and feed.book.best_bid_size == 3


def test_feed_refuses_an_empty_buffer_bound():
    with pytest.raises(FeedError) as excinfo:
        make_feed(max_buffer=0)

    assert excinfo.value.code == "FEED_BAD_CONFIG"


# --- property: whatever the network does, a live (non-stale) book equals the venue's book at last_seq ----------

venue_updates = st.lists(
    st.tuples(st.sampled_from((1, -1)), st.integers(90, 110), st.integers(0, 5)), min_size=1, max_size=40
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates=venue_updates, data=st.data())
def test_live_book_always_equals_the_venue_book_at_the_last_applied_sequence(updates, data):
    # The venue: one delta per sequence number, and its book state after each one.
    venue_book = ReferenceL2Book(SYMBOL)
    states = {0: ((), ())}
    messages = []
    for seq, (side, wanted_price, size) in enumerate(updates, start=1):
        price = wanted_price
        if side == 1 and venue_book.best_ask is not None and size and price >= venue_book.best_ask:
            price = venue_book.best_ask - 1  # keep the venue's own book uncrossed
        if side == -1 and venue_book.best_bid is not None and size and price <= venue_book.best_bid:
            price = venue_book.best_bid + 1
        venue_book.apply(side, price, size)
        messages.append(deltas(seq, (side, price, size)))
        bids, asks = venue_book.depth(None)
        states[seq] = (tuple(bids), tuple(asks))
    # The network: drops, duplicates and local reordering, chosen by hypothesis.
    wire = []
    for message in messages:
        fate = data.draw(st.sampled_from(("send", "send", "send", "drop", "duplicate", "swap")))
        if fate == "drop":
            continue
        wire.append(message)
        if fate == "duplicate":
            wire.append(message)
        elif fate == "swap" and len(wire) >= 2:
            wire[-1], wire[-2] = wire[-2], wire[-1]
    # A lost tail is only noticed when something later arrives: the venue's last message gets through in the end.
    wire.append(messages[-1])
    pending_snapshots: list[int] = []
    feed = SequencedFeed(
        symbol=SYMBOL, book=L2Book(SYMBOL), request_snapshot=lambda _: pending_snapshots.append(0), max_buffer=8
    )
    sent_up_to = 0

    def check() -> None:
        if not feed.stale:
            assert feed.book.depth(None) == tuple(list(side) for side in states[feed.last_seq])

    for message in wire:
        feed.on_book_deltas(message)
        sent_up_to = max(sent_up_to, message.seq)
        check()
        if pending_snapshots and data.draw(st.booleans()):
            # Answered with the venue's state as of the newest message sent so far.
            pending_snapshots.pop()
            bids, asks = states[sent_up_to]
            feed.on_snapshot(BookSnapshot(symbol=SYMBOL, seq=sent_up_to, ts=0, bids=bids, asks=asks))
            check()
    if feed.stale:
        bids, asks = states[len(messages)]
        feed.on_snapshot(BookSnapshot(symbol=SYMBOL, seq=len(messages), ts=0, bids=bids, asks=asks))

    assert not feed.stale
    assert feed.last_seq == len(messages)
    check()


def test_a_lost_snapshot_reply_is_requested_again_after_the_timeout_on_the_engine_clock():
    feed, requests, _ = make_feed(snapshot_timeout_ns=1_000)
    feed.on_book_deltas(bid(1))
    feed.on_book_deltas(bid(3))  # gap: one request, whose reply is lost

    ticks = [feed.on_timer(now) for now in (10_000, 10_500, 10_999, 11_000, 11_500, 12_000)]

    assert ticks == [False, False, False, True, False, True]
    assert requests == [SYMBOL] * 3
    assert feed.stale and feed.counters.snapshot_timeouts == 2


def test_the_timer_asks_for_nothing_while_the_book_is_live_or_once_the_snapshot_arrived():
    feed, requests, _ = make_feed(snapshot_timeout_ns=1_000)
    feed.on_book_deltas(bid(1))
    live = [feed.on_timer(now) for now in (0, 5_000)]
    feed.on_book_deltas(bid(3))
    feed.on_timer(10_000)

    feed.on_snapshot(snapshot(3))
    after = [feed.on_timer(now) for now in (20_000, 40_000)]

    assert live == [False, False] and after == [False, False]
    assert requests == [SYMBOL] and not feed.stale
    assert feed.counters.snapshot_timeouts == 0


def test_a_snapshot_timeout_below_one_nanosecond_is_refused_at_start_up():
    with pytest.raises(FeedError) as excinfo:
        make_feed(snapshot_timeout_ns=0)

    assert excinfo.value.code == "FEED_BAD_CONFIG"
