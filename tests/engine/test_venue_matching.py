"""Example-based tests of the matching core and the protocol-speaking venue."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from engine.book import L2Book
from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.feed import SequencedFeed
from engine.protocol import (
    BookDeltas,
    BookSnapshot,
    ExecutionReport,
    MassCancelReport,
    TradePrinted,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
    VenueRequestSnapshot,
)
from engine.venue import MatchingCore, Reason, Venue, VenueError
from engine.venue.matching import (
    EV_FILL,
    EV_STP_CANCEL,
    FOK,
    GTC,
    IOC,
    KILLED_FOK,
    POST_ONLY,
    REJECTED_POST_ONLY,
    UNKNOWN_ORDER,
)

SYM = "BTCUSDT"
BUY, SELL = Side.BUY, Side.SELL


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def venue() -> Venue:
    return Venue([SYM, "ETHUSDT"], clock=FakeClock())


def place(venue: Venue, cl_id: str, account: str, side: Side, price: int, qty: int, **kw) -> list:
    kw.setdefault("order_type", OrderType.LIMIT if price else OrderType.MARKET)
    kw.setdefault("time_in_force", TimeInForce.GTC)
    kw.setdefault("symbol", SYM)
    return venue.place_order(client_order_id=cl_id, account=account, side=side, price=price, quantity=qty, **kw)


def reports(messages: list) -> list[ExecutionReport]:
    return [m for m in messages if isinstance(m, ExecutionReport)]


def mass_reports(messages: list) -> list[MassCancelReport]:
    return [m for m in messages if isinstance(m, MassCancelReport)]


def reports_for(messages: list, cl_id: str) -> list[ExecutionReport]:
    return [m for m in reports(messages) if m.client_order_id == cl_id]


def book(venue: Venue, symbol: str = SYM) -> tuple[list, list]:
    return venue.core(symbol).depth()


# ---------------------------------------------------------------------------------------------- matching core


def test_core_fills_at_the_resting_price_and_rests_the_remainder_of_a_gtc_limit():
    core = MatchingCore()
    core.submit(1, "A", SELL, 101, 3)
    core.submit(2, "A", SELL, 100, 2)

    leaves = core.submit(3, "B", BUY, 105, 10, GTC)

    assert leaves == 5
    assert [(e[0], e[1].oid, e[2], e[3]) for e in core.events] == [(EV_FILL, 2, 100, 2), (EV_FILL, 1, 101, 3)]
    assert core.depth() == ([(105, 5)], [])
    assert core.best_bid == 105 and core.best_ask is None


def test_core_ioc_cancels_its_remainder_instead_of_resting():
    core = MatchingCore()
    core.submit(1, "A", SELL, 100, 2)

    leaves = core.submit(2, "B", BUY, 100, 5, IOC)

    assert leaves == 3
    assert core.depth() == ([], [])
    assert 2 not in core


def test_core_fok_that_cannot_fill_completely_leaves_the_book_untouched():
    core = MatchingCore()
    core.submit(1, "A", SELL, 100, 2)
    core.submit(2, "A", SELL, 102, 2)
    core.deltas.clear()

    result = core.submit(3, "B", BUY, 101, 3, FOK)

    assert result == KILLED_FOK
    assert core.events == [] and core.deltas == []
    assert core.depth() == ([], [(100, 2), (102, 2)])


def test_core_fok_that_can_fill_sweeps_several_levels():
    core = MatchingCore()
    core.submit(1, "A", SELL, 100, 2)
    core.submit(2, "A", SELL, 102, 2)

    result = core.submit(3, "B", BUY, 102, 3, FOK)

    assert result == 0
    assert core.depth() == ([], [(102, 1)])


def test_core_fok_does_not_count_own_liquidity_that_stp_would_cancel():
    core = MatchingCore()
    core.submit(1, "B", SELL, 100, 5)
    core.submit(2, "A", SELL, 100, 1)

    result = core.submit(3, "B", BUY, 100, 2, FOK)

    assert result == KILLED_FOK
    assert core.depth() == ([], [(100, 6)])


def test_core_post_only_that_would_cross_is_rejected_and_never_trades():
    core = MatchingCore()
    core.submit(1, "A", SELL, 100, 2)

    result = core.submit(2, "B", BUY, 100, 1, POST_ONLY)

    assert result == REJECTED_POST_ONLY
    assert core.events == []
    assert core.depth() == ([], [(100, 2)])


def test_core_keeps_fifo_within_a_level():
    core = MatchingCore()
    for oid in (1, 2, 3):
        core.submit(oid, f"M{oid}", BUY, 99, 1)

    core.submit(4, "T", SELL, 99, 2, IOC)

    assert [e[1].oid for e in core.events] == [1, 2]
    assert core.orders_at(BUY, 99) == [3]


def test_core_cancel_removes_the_order_and_reports_unknown_ids():
    core = MatchingCore()
    core.submit(1, "A", BUY, 99, 4)
    core.submit(2, "A", BUY, 99, 1)

    canceled = core.cancel(1)
    again = core.cancel(1)

    assert canceled == 4 and again == UNKNOWN_ORDER
    assert core.depth() == ([(99, 1)], [])
    assert core.orders_at(BUY, 99) == [2]


def test_core_replace_size_down_keeps_priority_but_price_change_or_size_up_loses_it():
    core = MatchingCore()
    for oid in (1, 2, 3):
        core.submit(oid, "A", BUY, 99, 5)

    core.replace(1, 99, 3)
    core.replace(2, 99, 6)
    core.replace(3, 98, 5)

    assert core.orders_at(BUY, 99) == [1, 2]
    assert core.queue_position(2) == (1, 3)
    assert core.orders_at(BUY, 98) == [3]


def test_core_replace_that_crosses_trades_immediately():
    core = MatchingCore()
    core.submit(1, "A", SELL, 101, 2)
    core.submit(2, "B", BUY, 99, 5)

    leaves = core.replace(2, 101, 5)

    assert leaves == 3
    assert core.depth() == ([(101, 3)], [])


def test_core_self_trade_prevention_cancels_the_resting_order_and_keeps_matching():
    core = MatchingCore()
    core.submit(1, "A", SELL, 100, 2)
    core.submit(2, "B", SELL, 100, 3)

    leaves = core.submit(3, "A", BUY, 100, 3, GTC)

    assert leaves == 0
    assert [(e[0], e[1].oid) for e in core.events] == [(EV_STP_CANCEL, 1), (EV_FILL, 2)]
    assert core.depth() == ([], [])


def test_core_without_stp_lets_an_account_trade_with_itself():
    core = MatchingCore(stp=False)
    core.submit(1, "A", SELL, 100, 2)

    leaves = core.submit(2, "A", BUY, 100, 2, GTC)

    assert leaves == 0
    assert core.events[0][0] == EV_FILL


def test_core_compacts_a_level_full_of_canceled_orders():
    core = MatchingCore()
    core.submit(1, "A", BUY, 99, 1)
    for oid in range(2, 200):
        core.submit(oid, "A", BUY, 99, 1)
        core.cancel(oid)

    level = core.order(1).level

    assert len(level[4]) < 40
    assert core.orders_at(BUY, 99) == [1]


def _traced_after(build) -> int:
    build()  # warm-up: first runs allocate one-off caches (specialised bytecode, int and string caches)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before


def test_orders_are_freed_when_their_core_is_discarded_or_their_level_is_emptied():
    # Orders are not tracked by the cyclic gc, so an order -> level -> deque cycle left unbroken would leak.
    def discard_core():
        core = MatchingCore()
        for oid in range(1, 5_001):
            core.submit(oid, "A", BUY, 100 - oid % 50, 1)
        del core

    def sweep_levels_with_tombstones_at_the_back():
        core = MatchingCore()
        oid = 0
        for price in range(1_000, 1_500):
            for k in range(16):
                oid += 1
                core.submit(oid, "A", SELL, price, 1)
                if k:
                    core.cancel(oid)
        core.submit(0, "B", BUY, 2_000, 10_000, IOC)
        assert len(core) == 0
        del core  # the swept levels are no longer in the core, so its __del__ cannot free them

    def cancel_levels_empty():
        core = MatchingCore()
        oid = 0
        for price in range(1_000, 1_500):
            for _ in range(10):
                oid += 1
                core.submit(oid, "A", BUY, price, 1)
        for victim in range(1, oid + 1):
            core.cancel(victim)
        del core

    leaks = [
        _traced_after(build) for build in (discard_core, sweep_levels_with_tombstones_at_the_back, cancel_levels_empty)
    ]

    assert all(leak < 20_000 for leak in leaks), leaks


# ---------------------------------------------------------------------------------------------- venue: orders


def test_limit_order_that_does_not_cross_is_acknowledged_and_published(venue):
    out = place(venue, "a1", "A", BUY, 100, 5)

    (new,) = reports(out)
    assert (new.exec_type, new.status, new.leaves_quantity, new.venue_order_id) == (ExecType.NEW, OrderStatus.NEW, 5, 1)
    assert out[-1] == BookDeltas(symbol=SYM, seq=1, ts=1_000, deltas=((BUY, 100, 5),))


def test_partial_fill_reports_both_sides_prints_a_trade_and_leaves_the_remainder_resting(venue):
    place(venue, "m1", "MAKER", SELL, 100, 3)

    out = place(venue, "t1", "TAKER", BUY, 101, 5)

    maker = reports_for(out, "m1")
    taker = reports_for(out, "t1")
    assert [(r.exec_type, r.status, r.last_price, r.last_quantity, r.is_maker) for r in maker] == [
        (ExecType.TRADE, OrderStatus.FILLED, 100, 3, True)
    ]
    assert [(r.exec_type, r.status, r.leaves_quantity, r.cum_quantity) for r in taker] == [
        (ExecType.NEW, OrderStatus.NEW, 5, 0),
        (ExecType.TRADE, OrderStatus.PARTIALLY_FILLED, 2, 3),
    ]
    trades = [m for m in out if isinstance(m, TradePrinted)]
    assert [(t.seq, t.price, t.quantity, t.aggressor, t.trade_id) for t in trades] == [(2, 100, 3, BUY, 1)]
    assert out[-1].seq == 3 and set(out[-1].deltas) == {(SELL, 100, 0), (BUY, 101, 2)}
    assert book(venue) == ([(101, 2)], [])


def test_ioc_remainder_expires_with_a_reason(venue):
    place(venue, "m1", "MAKER", SELL, 100, 1)

    out = place(venue, "t1", "TAKER", BUY, 100, 4, time_in_force=TimeInForce.IOC)

    last = reports_for(out, "t1")[-1]
    assert (last.exec_type, last.status, last.cum_quantity, last.reason_code) == (
        ExecType.EXPIRED,
        OrderStatus.EXPIRED,
        1,
        Reason.IOC_REMAINDER,
    )
    assert book(venue) == ([], [])


def test_market_order_sweeps_levels_and_never_rests(venue):
    place(venue, "m1", "MAKER", SELL, 100, 1)
    place(venue, "m2", "MAKER", SELL, 105, 1)

    out = place(venue, "t1", "TAKER", BUY, 0, 5)

    fills = [r for r in reports_for(out, "t1") if r.exec_type == ExecType.TRADE]
    assert [(r.last_price, r.last_quantity) for r in fills] == [(100, 1), (105, 1)]
    assert reports_for(out, "t1")[-1].exec_type == ExecType.EXPIRED
    assert book(venue) == ([], []) and venue.open_order("TAKER", "t1") is None


def test_market_order_on_an_empty_book_expires_without_trading(venue):
    out = place(venue, "t1", "TAKER", SELL, 0, 5)

    assert [r.exec_type for r in reports(out)] == [ExecType.NEW, ExecType.EXPIRED]
    assert not any(isinstance(m, (TradePrinted, BookDeltas)) for m in out)


def test_fok_that_cannot_fill_expires_without_touching_the_book(venue):
    place(venue, "m1", "MAKER", SELL, 100, 2)

    out = place(venue, "t1", "TAKER", BUY, 100, 3, time_in_force=TimeInForce.FOK)

    assert [(r.exec_type, r.reason_code) for r in reports(out)] == [
        (ExecType.NEW, ""),
        (ExecType.EXPIRED, Reason.FOK_NOT_FILLABLE),
    ]
    assert venue.md_seq(SYM) == 1
    assert book(venue) == ([], [(100, 2)])


def test_post_only_that_would_cross_is_rejected_and_the_book_is_unchanged(venue):
    place(venue, "m1", "MAKER", SELL, 100, 2)

    out = place(venue, "p1", "MM", BUY, 100, 1, post_only=True)

    (rej,) = reports(out)
    assert (rej.exec_type, rej.reason_code) == (ExecType.REJECTED, Reason.POST_ONLY_WOULD_CROSS)
    assert book(venue) == ([], [(100, 2)]) and venue.md_seq(SYM) == 1


def test_post_only_that_does_not_cross_rests(venue):
    place(venue, "m1", "MAKER", SELL, 100, 2)

    out = place(venue, "p1", "MM", BUY, 99, 1, post_only=True)

    assert reports(out)[0].exec_type == ExecType.NEW
    assert book(venue) == ([(99, 1)], [(100, 2)])


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"symbol": "NOPE"}, Reason.UNKNOWN_SYMBOL),
        ({"quantity": 0}, Reason.INVALID_QUANTITY),
        ({"quantity": -3}, Reason.INVALID_QUANTITY),
        ({"price": 0, "order_type": OrderType.LIMIT}, Reason.INVALID_PRICE),
        ({"price": 100, "order_type": OrderType.MARKET}, Reason.INVALID_PRICE),
        ({"post_only": True, "time_in_force": TimeInForce.IOC}, Reason.INVALID_ORDER),
        ({"client_order_id": "dup"}, Reason.DUPLICATE_CLIENT_ORDER_ID),
    ],
)
def test_invalid_orders_are_rejected_with_a_reason_and_leave_the_book_unchanged(venue, kwargs, reason):
    place(venue, "dup", "A", SELL, 105, 1)
    args = {
        "client_order_id": "x1",
        "account": "A",
        "symbol": SYM,
        "side": BUY,
        "order_type": OrderType.LIMIT,
        "time_in_force": TimeInForce.GTC,
        "price": 100,
        "quantity": 1,
    } | kwargs

    out = venue.place_order(**args)

    (rej,) = out
    assert (rej.exec_type, rej.status, rej.reason_code) == (ExecType.REJECTED, OrderStatus.REJECTED, reason)
    assert book(venue) == ([], [(105, 1)]) and venue.md_seq(SYM) == 1


def test_a_client_order_id_used_by_another_account_is_not_a_duplicate(venue):
    place(venue, "same", "A", BUY, 99, 1)

    out = place(venue, "same", "B", BUY, 98, 1)

    assert reports(out)[0].exec_type == ExecType.NEW


# ---------------------------------------------------------------------------------------------- venue: cancels


def test_cancel_removes_the_order_and_publishes_the_level_change(venue):
    place(venue, "a1", "A", BUY, 99, 2)
    place(venue, "a2", "A", BUY, 99, 3)

    out = venue.cancel_order(client_order_id="c1", orig_client_order_id="a1", account="A", symbol=SYM)

    (rep, deltas) = out
    assert (rep.exec_type, rep.status, rep.client_order_id, rep.orig_client_order_id, rep.leaves_quantity) == (
        ExecType.CANCELED,
        OrderStatus.CANCELED,
        "c1",
        "a1",
        0,
    )
    assert deltas.deltas == ((BUY, 99, 3),) and deltas.seq == 3


@pytest.mark.parametrize(
    ("account", "orig", "symbol", "reason"),
    [
        ("A", "nope", SYM, Reason.UNKNOWN_ORDER),
        ("B", "a1", SYM, Reason.WRONG_ACCOUNT),
        ("A", "a1", "ETHUSDT", Reason.SYMBOL_MISMATCH),
        ("A", "a1", "NOPE", Reason.SYMBOL_MISMATCH),
        ("B", "a1", "NOPE", Reason.UNKNOWN_SYMBOL),
    ],
)
def test_bad_cancels_are_rejected_with_a_reason_and_leave_the_book_unchanged(venue, account, orig, symbol, reason):
    place(venue, "a1", "A", BUY, 99, 2)

    out = venue.cancel_order(client_order_id="c1", orig_client_order_id=orig, account=account, symbol=symbol)

    (rej,) = out
    assert (rej.exec_type, rej.reason_code) == (ExecType.CANCEL_REJECTED, reason)
    assert book(venue) == ([(99, 2)], []) and venue.md_seq(SYM) == 1


def test_a_filled_order_can_no_longer_be_canceled(venue):
    place(venue, "a1", "A", BUY, 99, 2)
    place(venue, "b1", "B", SELL, 99, 2)

    out = venue.cancel_order(client_order_id="c1", orig_client_order_id="a1", account="A", symbol=SYM)

    assert out[0].reason_code == Reason.UNKNOWN_ORDER


def test_mass_cancel_cancels_only_that_accounts_orders_on_that_symbol_in_one_report(venue):
    place(venue, "a1", "A", BUY, 99, 1)
    place(venue, "a2", "A", SELL, 101, 1)
    place(venue, "a3", "A", BUY, 50, 1, symbol="ETHUSDT")
    place(venue, "b1", "B", BUY, 99, 4)

    out = venue.mass_cancel(client_order_id="mc", account="A", symbol=SYM)

    (report,) = mass_reports(out)
    assert reports(out) == []
    assert (report.client_order_id, report.account, report.symbol) == ("mc", "A", SYM)
    assert sorted(order_id for order_id, _venue_id in report.canceled) == ["a1", "a2"]
    assert report.reason_code == Reason.MASS_CANCEL
    assert book(venue) == ([(99, 4)], [])
    assert book(venue, "ETHUSDT") == ([(50, 1)], [])


def test_mass_cancel_with_no_symbol_cancels_across_symbols_with_one_delta_message_each(venue):
    place(venue, "a1", "A", BUY, 99, 1)
    place(venue, "a3", "A", BUY, 50, 1, symbol="ETHUSDT")

    out = venue.mass_cancel(client_order_id="mc", account="A")

    deltas = [m for m in out if isinstance(m, BookDeltas)]
    assert sorted((d.symbol, d.deltas) for d in deltas) == [("BTCUSDT", ((BUY, 99, 0),)), ("ETHUSDT", ((BUY, 50, 0),))]
    assert venue.open_orders("A") == []


def test_a_cancel_whose_own_id_is_a_live_orders_id_is_rejected_and_both_orders_stay(venue):
    place(venue, "a1", "A", BUY, 99, 2)
    place(venue, "b1", "A", BUY, 98, 3)

    out = venue.cancel_order(client_order_id="b1", orig_client_order_id="a1", account="A", symbol=SYM)

    (rej,) = out
    assert (rej.exec_type, rej.reason_code, rej.client_order_id, rej.orig_client_order_id) == (
        ExecType.CANCEL_REJECTED,
        Reason.DUPLICATE_CLIENT_ORDER_ID,
        "b1",
        "a1",
    )
    assert rej.status == OrderStatus.NEW and rej.leaves_quantity == 2
    assert book(venue) == ([(99, 2), (98, 3)], [])


def test_a_cancels_id_is_used_up_so_a_later_order_cannot_take_it(venue):
    place(venue, "a1", "A", BUY, 99, 2)
    venue.cancel_order(client_order_id="c1", orig_client_order_id="a1", account="A", symbol=SYM)

    out = place(venue, "c1", "A", BUY, 97, 1)
    again = place(venue, "a2", "A", BUY, 96, 1)
    second_cancel = venue.cancel_order(client_order_id="c1", orig_client_order_id="a2", account="A", symbol=SYM)

    assert [(r.exec_type, r.reason_code) for r in reports(out)] == [
        (ExecType.REJECTED, Reason.DUPLICATE_CLIENT_ORDER_ID)
    ]
    assert reports(again)[0].exec_type == ExecType.NEW
    assert second_cancel[0].reason_code == Reason.DUPLICATE_CLIENT_ORDER_ID
    assert book(venue) == ([(96, 1)], [])


def test_a_mass_cancel_reusing_an_id_is_rejected_and_its_own_id_is_used_up(venue):
    place(venue, "a1", "A", BUY, 99, 1)

    reused = venue.mass_cancel(client_order_id="a1", account="A", symbol=SYM)
    done = venue.mass_cancel(client_order_id="mc", account="A", symbol=SYM)
    place(venue, "a2", "A", BUY, 98, 1)
    again = venue.mass_cancel(client_order_id="mc", account="A", symbol=SYM)

    assert [(r.exec_type, r.reason_code) for r in reports(reused)] == [
        (ExecType.CANCEL_REJECTED, Reason.DUPLICATE_CLIENT_ORDER_ID)
    ]
    assert [(r.client_order_id, [order_id for order_id, _ in r.canceled]) for r in mass_reports(done)] == [
        ("mc", ["a1"])
    ]
    assert [r.reason_code for r in reports(again)] == [Reason.DUPLICATE_CLIENT_ORDER_ID]
    assert book(venue) == ([(98, 1)], [])


def test_an_all_symbols_mass_cancel_reusing_an_id_is_refused_without_raising_and_cancels_nothing(venue):
    place(venue, "a1", "A", BUY, 99, 1)

    [refusal] = venue.mass_cancel(client_order_id="a1", account="A", symbol="")

    assert type(refusal) is VenueCommandRejected
    assert (refusal.command, refusal.code, refusal.client_order_id) == (
        "VenueMassCancel",
        Reason.DUPLICATE_CLIENT_ORDER_ID,
        "a1",
    )
    assert book(venue) == ([(99, 1)], [])


# ---------------------------------------------------------------------------------------------- venue: bad input


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"side": 0}, Reason.INVALID_SIDE),
        ({"side": 2}, Reason.INVALID_SIDE),
        ({"order_type": 99}, Reason.INVALID_ORDER),
        ({"time_in_force": 0}, Reason.INVALID_ORDER),
        ({"quantity": 2**70}, Reason.INVALID_QUANTITY),
        ({"price": 2**70}, Reason.INVALID_PRICE),
    ],
)
def test_an_order_the_report_cannot_describe_is_still_rejected_with_a_reason_not_an_exception(venue, changes, reason):
    kw = {"side": BUY, "price": 99, "quantity": 1, "order_type": OrderType.LIMIT, "time_in_force": TimeInForce.GTC}
    kw.update(changes)

    out = venue.place_order(client_order_id="x1", account="A", symbol=SYM, **kw)

    (rej,) = out
    assert (rej.exec_type, rej.status, rej.reason_code) == (ExecType.REJECTED, OrderStatus.REJECTED, reason)
    assert book(venue) == ([], []) and venue.md_seq(SYM) == 0


def test_a_rejected_side_is_explained_in_the_reports_text():
    venue = Venue([SYM], clock=FakeClock())

    (rej,) = place(venue, "x1", "A", 0, 99, 1)

    assert rej.reason_code == Reason.INVALID_SIDE and "placeholder" in rej.text


@pytest.mark.parametrize(
    ("call", "command"),
    [
        (lambda v: place(v, "", "A", BUY, 99, 1), "VenuePlaceOrder"),
        (lambda v: place(v, "x" * 65, "A", BUY, 99, 1), "VenuePlaceOrder"),
        (lambda v: place(v, "x1", "", BUY, 99, 1), "VenuePlaceOrder"),
        (lambda v: place(v, "x1", "A", BUY, 99, 1, symbol=""), "VenuePlaceOrder"),
        (
            lambda v: v.cancel_order(client_order_id="", orig_client_order_id="a1", account="A", symbol=SYM),
            "VenueCancelOrder",
        ),
        (
            lambda v: v.cancel_order(client_order_id="c1", orig_client_order_id="", account="A", symbol=SYM),
            "VenueCancelOrder",
        ),
        (
            lambda v: v.replace_order(
                client_order_id="", orig_client_order_id="a1", account="A", symbol=SYM, price=99, quantity=1
            ),
            "VenueReplaceOrder",
        ),
        (lambda v: v.mass_cancel(client_order_id="", account="A"), "VenueMassCancel"),
        (lambda v: v.query_order(client_order_id="", account="A", symbol=SYM), "VenueQueryOrder"),
    ],
)
def test_ids_no_report_could_echo_are_answered_with_a_command_reject_and_change_nothing(venue, call, command):
    place(venue, "a1", "A", BUY, 99, 2)

    out = call(venue)

    (rej,) = out
    assert isinstance(rej, VenueCommandRejected)
    assert (rej.command, rej.code) == (command, Reason.INVALID_ID)
    assert book(venue) == ([(99, 2)], []) and venue.md_seq(SYM) == 1
    assert venue.open_order("A", "a1") is not None


# ---------------------------------------------------------------------------------------------- venue: replace


def test_replace_size_down_keeps_priority_and_size_up_loses_it(venue):
    place(venue, "a1", "A", BUY, 99, 5)
    place(venue, "b1", "B", BUY, 99, 5)

    venue.replace_order(client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=99, quantity=3)
    kept = venue.core(SYM).orders_at(BUY, 99)
    venue.replace_order(client_order_id="a3", orig_client_order_id="a2", account="A", symbol=SYM, price=99, quantity=9)
    lost = venue.core(SYM).orders_at(BUY, 99)

    assert kept == [1, 2] and lost == [2, 1]
    assert venue.open_order("A", "a3").quantity == 9 and venue.open_order("A", "a1") is None


def test_replace_reports_replaced_with_the_new_and_original_ids(venue):
    place(venue, "a1", "A", BUY, 99, 5)

    out = venue.replace_order(
        client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=98, quantity=4
    )

    rep = reports(out)[0]
    assert (rep.exec_type, rep.client_order_id, rep.orig_client_order_id, rep.price, rep.leaves_quantity) == (
        ExecType.REPLACED,
        "a2",
        "a1",
        98,
        4,
    )
    assert out[-1].deltas == ((BUY, 99, 0), (BUY, 98, 4))


def test_replace_to_at_most_the_filled_quantity_cancels_the_order(venue):
    place(venue, "a1", "A", BUY, 99, 5)
    place(venue, "b1", "B", SELL, 99, 2)

    out = venue.replace_order(
        client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=99, quantity=2
    )

    (rep, _deltas) = out
    assert (rep.exec_type, rep.reason_code, rep.cum_quantity, rep.leaves_quantity) == (
        ExecType.CANCELED,
        Reason.REPLACE_BELOW_FILLED,
        2,
        0,
    )
    assert book(venue) == ([], [])


def test_replace_of_a_partly_filled_order_counts_the_filled_part_in_the_new_quantity(venue):
    place(venue, "a1", "A", BUY, 99, 5)
    place(venue, "b1", "B", SELL, 99, 2)

    venue.replace_order(client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=99, quantity=4)

    assert book(venue) == ([(99, 2)], [])


def test_replace_that_crosses_matches_at_once(venue):
    place(venue, "s1", "S", SELL, 101, 2)
    place(venue, "a1", "A", BUY, 99, 5)

    out = venue.replace_order(
        client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=101, quantity=5
    )

    assert [r.exec_type for r in reports_for(out, "a2")] == [ExecType.REPLACED, ExecType.TRADE]
    assert book(venue) == ([(101, 3)], [])


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"orig_client_order_id": "zz"}, Reason.UNKNOWN_ORDER),
        ({"account": "B"}, Reason.WRONG_ACCOUNT),
        ({"quantity": 0}, Reason.INVALID_QUANTITY),
        ({"price": -1}, Reason.INVALID_PRICE),
        ({"client_order_id": "a0"}, Reason.DUPLICATE_CLIENT_ORDER_ID),
        ({"price": 101}, Reason.POST_ONLY_WOULD_CROSS),
    ],
)
def test_bad_replaces_are_rejected_and_leave_the_order_as_it_was(venue, kwargs, reason):
    place(venue, "a0", "A", BUY, 90, 1)
    place(venue, "s1", "S", SELL, 101, 1)
    place(venue, "a1", "A", BUY, 99, 5, post_only=True)
    args = {
        "client_order_id": "a2",
        "orig_client_order_id": "a1",
        "account": "A",
        "symbol": SYM,
        "price": 100,
        "quantity": 5,
    } | kwargs

    out = venue.replace_order(**args)

    (rej,) = out
    assert (rej.exec_type, rej.reason_code) == (ExecType.CANCEL_REJECTED, reason)
    assert book(venue) == ([(99, 5), (90, 1)], [(101, 1)])
    assert venue.open_order("A", "a1") is not None


# ---------------------------------------------------------------------------------------------- venue: STP, DAY, query


def test_self_trade_cancels_the_resting_order_and_the_aggressor_trades_with_others(venue):
    place(venue, "own", "A", SELL, 100, 2)
    place(venue, "other", "B", SELL, 100, 3)

    out = place(venue, "t1", "A", BUY, 100, 3)

    own = reports_for(out, "own")
    assert [(r.exec_type, r.reason_code) for r in own] == [(ExecType.CANCELED, Reason.SELF_TRADE_PREVENTED)]
    assert reports_for(out, "other")[0].last_quantity == 3
    assert book(venue) == ([], []) and venue.open_orders("A") == []


def test_day_orders_expire_at_the_end_of_the_day_and_gtc_orders_stay(venue):
    place(venue, "d1", "A", BUY, 99, 1, time_in_force=TimeInForce.DAY)
    place(venue, "g1", "A", BUY, 98, 1)

    out = venue.expire_day_orders()

    assert [(r.client_order_id, r.exec_type, r.reason_code) for r in reports(out)] == [
        ("d1", ExecType.EXPIRED, Reason.DAY_EXPIRY)
    ]
    assert book(venue) == ([(98, 1)], [])


def test_query_reports_the_live_state_or_unknown(venue):
    place(venue, "a1", "A", BUY, 99, 5)
    place(venue, "b1", "B", SELL, 99, 2)

    (known,) = venue.query_order(client_order_id="a1", account="A", symbol=SYM)
    (unknown,) = venue.query_order(client_order_id="zz", account="A", symbol=SYM)

    assert (known.exec_type, known.status, known.cum_quantity, known.leaves_quantity) == (
        ExecType.ORDER_STATUS,
        OrderStatus.PARTIALLY_FILLED,
        2,
        3,
    )
    assert (unknown.status, unknown.reason_code) == (OrderStatus.REJECTED, Reason.UNKNOWN_ORDER)


# ------------------------------------------------------------------------------ venue: protocol and market data


def test_handle_accepts_every_venue_command_from_the_protocol(venue):
    place_cmd = VenuePlaceOrder(
        client_order_id="a1",
        account="A",
        symbol=SYM,
        side=BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=99,
        quantity=5,
        ts=7,
    )

    placed = venue.handle(place_cmd)
    replaced = venue.handle(
        VenueReplaceOrder(
            client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=98, quantity=5
        )
    )
    queried = venue.handle(VenueQueryOrder(client_order_id="a2", account="A", symbol=SYM))
    snap = venue.handle(VenueRequestSnapshot(symbol=SYM))
    canceled = venue.handle(VenueCancelOrder(client_order_id="c", orig_client_order_id="a2", account="A", symbol=SYM))
    mass = venue.handle(VenueMassCancel(client_order_id="m", account="A"))

    assert placed[0].ts == 7 and placed[0].exec_type == ExecType.NEW
    assert replaced[0].exec_type == ExecType.REPLACED
    assert queried[0].status == OrderStatus.NEW
    assert snap == [BookSnapshot(symbol=SYM, seq=2, ts=1_000, bids=((98, 5),), asks=())]
    assert canceled[0].exec_type == ExecType.CANCELED
    assert mass == [MassCancelReport(client_order_id="m", account="A", reason_code=Reason.MASS_CANCEL, ts=1_000)]


def test_handle_answers_a_message_that_is_not_a_venue_command_with_a_reject_instead_of_raising(venue):
    out = venue.handle(BookSnapshot(symbol=SYM, seq=0, ts=0, bids=(), asks=()))

    assert out == [
        VenueCommandRejected(
            command="BookSnapshot",
            code="VENUE_UNKNOWN_COMMAND",
            reason="the venue does not handle BookSnapshot",
            ts=1_000,
        )
    ]


def test_a_snapshot_request_for_a_symbol_the_venue_does_not_list_is_rejected_not_raised():
    venue = Venue([SYM], clock=FakeClock())

    out = venue.handle(VenueRequestSnapshot(symbol="ETHUSDT"))

    (rej,) = out
    assert isinstance(rej, VenueCommandRejected)
    assert (rej.command, rej.code, rej.symbol) == ("VenueRequestSnapshot", Reason.UNKNOWN_SYMBOL, "ETHUSDT")


def test_a_wire_depth_of_zero_means_every_level_but_the_venue_never_asks_the_core_for_zero(venue):
    for i, price in enumerate((97, 98, 99)):
        place(venue, f"b{i}", "A", BUY, price, 1)

    (full,) = venue.handle(VenueRequestSnapshot(symbol=SYM, depth=0))
    (two,) = venue.handle(VenueRequestSnapshot(symbol=SYM, depth=2))

    assert full.bids == ((99, 1), (98, 1), (97, 1))
    assert two.bids == ((99, 1), (98, 1))
    # In-process, the core and Venue.snapshot follow the books: None is every level, 0 is none.
    assert venue.snapshot(SYM).bids == full.bids
    assert venue.snapshot(SYM, depth=0).bids == ()
    assert venue.core(SYM).depth(0) == ([], [])


def test_snapshot_depth_limits_the_levels_and_an_unknown_symbol_is_refused(venue):
    for i, price in enumerate((97, 98, 99)):
        place(venue, f"b{i}", "A", BUY, price, 1)

    snap = venue.snapshot(SYM, depth=2)

    assert snap.bids == ((99, 1), (98, 1)) and snap.seq == 3
    with pytest.raises(VenueError):
        venue.snapshot("NOPE")


def test_sequenced_feed_reading_the_venue_stream_mirrors_the_venue_book(venue):
    l2 = L2Book(SYM)
    feed = SequencedFeed(symbol=SYM, book=l2, request_snapshot=lambda _s: None)
    place(venue, "early", "A", BUY, 95, 1)
    feed.on_snapshot(venue.snapshot(SYM))
    script = [
        place(venue, "a1", "A", BUY, 99, 5),
        place(venue, "b1", "B", SELL, 101, 5),
        place(venue, "b2", "B", SELL, 99, 2),
        place(venue, "c1", "C", BUY, 0, 4),
        venue.replace_order(
            client_order_id="a2", orig_client_order_id="a1", account="A", symbol=SYM, price=100, quantity=6
        ),
        venue.mass_cancel(client_order_id="m", account="B"),
    ]

    for messages in script:
        for m in messages:
            if isinstance(m, (BookDeltas, TradePrinted)):
                feed.on_message(m)

    assert not feed.stale and feed.last_seq == venue.md_seq(SYM)
    assert l2.depth(10) == venue.core(SYM).depth()
