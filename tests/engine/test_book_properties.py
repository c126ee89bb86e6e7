"""Property tests: the fast books agree with the references on random operation sequences, and book invariants hold."""

from __future__ import annotations

from collections import defaultdict
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.book import BookError, L2Book, L3Book, ReferenceL2Book, ReferenceL3Book


def weighted(*choices: tuple[int, st.SearchStrategy]) -> st.SearchStrategy:
    """Draw from the strategies in proportion to their weights (`one_of` would merge repeated strategies)."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]).flatmap(lambda s: s)


# Small id and price ranges so operations collide: shared levels, duplicate and unknown ids, reused ids.
ORDER_IDS = st.integers(min_value=0, max_value=7)
PRICES = st.integers(min_value=0, max_value=4)
SIDES = st.sampled_from([1, -1])
ANY_SIDE = weighted((3, SIDES), (1, st.sampled_from([0, 2])))  # mostly valid, sometimes not
ANY_PRICE = weighted((3, PRICES), (1, st.just(-1)))
ORDER_SIZE = weighted((3, st.integers(min_value=1, max_value=6)), (1, st.integers(min_value=-1, max_value=0)))

EXAMPLES = settings(max_examples=150, deadline=None)


# The fast books rebuild their best-price heaps when stale entries pile up; with the production slack that
# only happens in books far deeper than these examples, so the comparison tests shrink it to rebuild often.
def tiny_heap_slack():
    return mock.patch("engine.book.l2._HEAP_SLACK", 0)


def outcome(call, *args):
    """None when the operation succeeded, else the refusal code; any other exception propagates."""
    try:
        call(*args)
    except BookError as error:
        return error.code
    return None


def top(book) -> tuple:
    return book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size


def l2_state(book) -> tuple:
    levels = (book.level_count(1), book.level_count(-1))
    return (*top(book), book.depth(), book.depth(1), book.depth(3), *levels, book.is_crossed(), book.is_locked())


# -- L2 --------------------------------------------------------------------------------------------

LEVEL_SIZE = weighted((6, st.integers(min_value=1, max_value=9)), (3, st.just(0)), (1, st.just(-1)))
LEVELS = st.lists(st.tuples(ANY_PRICE, st.integers(min_value=-1, max_value=5)), max_size=8)


# Mostly valid updates: clears and snapshots reset the book, so if frequent they keep it too shallow to matter.
L2_OPS = weighted(
    (12, st.tuples(st.just("apply"), SIDES, PRICES, LEVEL_SIZE)),
    (2, st.tuples(st.just("apply"), ANY_SIDE, ANY_PRICE, LEVEL_SIZE)),
    # `apply_deltas` repeats `apply`'s body in the fast book, so it gets as many (and as bad) updates.
    (4, st.tuples(st.just("deltas"), st.lists(st.tuples(SIDES, PRICES, LEVEL_SIZE), max_size=8))),
    (2, st.tuples(st.just("deltas"), st.lists(st.tuples(ANY_SIDE, ANY_PRICE, LEVEL_SIZE), max_size=5))),
    (1, st.tuples(st.just("snapshot"), LEVELS, LEVELS)),
    (1, st.tuples(st.just("clear"))),
)


def run_l2(book, op):
    kind = op[0]
    if kind == "apply":
        return outcome(book.apply, *op[1:])
    if kind == "deltas":
        return outcome(book.apply_deltas, op[1])
    if kind == "snapshot":
        return outcome(book.load_snapshot, op[1], op[2])
    return outcome(book.clear)


@EXAMPLES
@given(st.lists(L2_OPS, min_size=10, max_size=80))
def test_fast_l2_book_matches_the_reference_after_every_operation(ops):
    with tiny_heap_slack():
        fast, reference = L2Book(), ReferenceL2Book()

        for op in ops:
            assert run_l2(fast, op) == run_l2(reference, op), op

            assert l2_state(fast) == l2_state(reference), op


@EXAMPLES
@given(st.lists(st.tuples(SIDES, PRICES, LEVEL_SIZE.filter(lambda size: size >= 0)), max_size=120))
def test_l2_best_prices_are_the_extremes_of_the_levels_and_depth_is_sorted(updates):
    book = L2Book()
    levels: dict[int, dict[int, int]] = {1: {}, -1: {}}

    for side, price, size in updates:
        book.apply(side, price, size)
        if size:
            levels[side][price] = size
        else:
            levels[side].pop(price, None)

        bids, asks = levels[1], levels[-1]
        assert book.best_bid == (max(bids) if bids else None)
        assert book.best_ask == (min(asks) if asks else None)
        assert book.best_bid_size == bids.get(book.best_bid, 0)
        assert book.best_ask_size == asks.get(book.best_ask, 0)
        depth_bids, depth_asks = book.depth()
        assert [p for p, _ in depth_bids] == sorted(bids, reverse=True)
        assert [p for p, _ in depth_asks] == sorted(asks)
        assert book.is_crossed() == (bool(bids) and bool(asks) and max(bids) > min(asks))


# Dense runs of neighbouring ticks and sparse far-apart levels: the fast books walk tick by tick from the best
# price for a few levels and fall back to a selection when the levels are too far apart.
LADDER = st.dictionaries(
    weighted((1, st.integers(min_value=0, max_value=40)), (1, st.integers(min_value=0, max_value=3000))),
    st.integers(min_value=1, max_value=9),
    max_size=40,
)


@EXAMPLES
@given(LADDER, LADDER, st.integers(min_value=0, max_value=12))
def test_depth_of_n_is_the_first_n_levels_of_the_full_depth_in_dense_and_sparse_books(bid_ladder, ask_ladder, n):
    l2, l3 = L2Book(), L3Book()
    order_ids = iter(range(1000))
    for side, ladder in ((1, bid_ladder), (-1, ask_ladder)):
        for price, size in ladder.items():
            l2.apply(side, price, size)
            l3.add(next(order_ids), side, price, size)

    for book in (l2, l3):
        bids, asks = book.depth()
        assert book.depth(n) == (bids[:n], asks[:n])
        assert bids == sorted(bid_ladder.items(), reverse=True)
        assert asks == sorted(ask_ladder.items())


# -- L3 --------------------------------------------------------------------------------------------

CANCEL_SIZE = st.one_of(st.none(), st.integers(min_value=-1, max_value=7))
L3_OPS = weighted(
    (6, st.tuples(st.just("add"), ORDER_IDS, SIDES, PRICES, st.integers(min_value=1, max_value=6))),
    (1, st.tuples(st.just("add"), ORDER_IDS, ANY_SIDE, ANY_PRICE, ORDER_SIZE)),
    (3, st.tuples(st.just("cancel"), ORDER_IDS, CANCEL_SIZE)),
    (2, st.tuples(st.just("modify"), ORDER_IDS, ANY_PRICE, ORDER_SIZE)),
    # A modify at the order's current price by a size delta, so the keep-or-lose-priority rule is hit often.
    (3, st.tuples(st.just("resize"), ORDER_IDS, st.integers(min_value=-2, max_value=2))),
    (3, st.tuples(st.just("execute"), ORDER_IDS, st.integers(min_value=-1, max_value=7))),
    (1, st.tuples(st.just("clear"))),
)


def resolved(book, op: tuple) -> tuple:
    """A "resize" as the modify it stands for, at the order's current price and size + delta (an arbitrary
    price and size if the id is unknown: the modify is refused anyway)."""
    if op[0] == "resize":
        _, price, size = book.order(op[1]) if outcome(book.order, op[1]) is None else (0, 0, 1)
        return ("modify", op[1], price, size + op[2])
    return op


def run_l3(book, op):
    kind, *args = op
    return outcome(getattr(book, kind), *args)


def l3_state(book, ids) -> tuple:
    live = sorted(oid for oid in ids if outcome(book.order, oid) is None)
    orders = tuple((oid, book.order(oid), book.queue_position(oid)) for oid in live)
    queues = tuple((side, price, tuple(book.orders_at(side, price))) for side in (1, -1) for price in range(-1, 6))
    return (*l2_state(book), len(book), orders, queues)


@EXAMPLES
@given(st.lists(L3_OPS, min_size=20, max_size=80))
def test_fast_l3_book_matches_the_reference_after_every_operation(ops):
    ids = range(8)
    with tiny_heap_slack():
        fast, reference = L3Book(), ReferenceL3Book()

        for op in ops:
            op = resolved(reference, op)  # noqa: PLW2901
            assert run_l3(fast, op) == run_l3(reference, op), op

            assert l3_state(fast, ids) == l3_state(reference, ids), op


def resting_total(book, ids) -> int:
    return sum(book.order(oid)[2] for oid in ids if outcome(book.order, oid) is None)


def expected_change(book, op) -> int:
    """How much resting size the operation should add (negative: remove), read from the book before it."""
    kind = op[0]
    if kind == "add":
        return op[4]
    if kind == "clear":
        return -resting_total(book, range(8))
    remaining = book.order(op[1])[2]
    if kind == "cancel":
        return -remaining if op[2] is None else -min(op[2], remaining)
    if kind == "modify":
        return op[3] - remaining
    return -op[2]  # execute


@EXAMPLES
@given(st.lists(L3_OPS, min_size=20, max_size=100))
def test_l3_invariants_hold_after_every_operation(ops):
    for book_cls in (L3Book, ReferenceL3Book):
        book = book_cls()
        ids = range(8)
        total = 0
        # Priority stamps: when each live order last joined the back of a queue (add, or a modify that loses
        # priority). FIFO within a level means the queue is in stamp order.
        stamps: dict[int, int] = {}
        l2_view = L2Book()

        for clock, unresolved in enumerate(ops):
            op = resolved(book, unresolved)
            before = {oid: book.order(oid) for oid in ids if outcome(book.order, oid) is None}
            change = expected_change(book, op) if op[0] in ("add", "clear") or op[1] in before else 0

            refused = run_l3(book, op)

            # A refused operation changes nothing; an accepted one changes the resting size by exactly its amount.
            after = {oid: book.order(oid) for oid in ids if outcome(book.order, oid) is None}
            if refused is not None:
                assert after == before, op
            else:
                total += change
            assert sum(size for _, _, size in after.values()) == total, op

            if refused is None and op[0] == "clear":
                stamps.clear()
            elif refused is None and op[0] in ("add", "modify"):
                _, old_price, old_size = before.get(op[1], (0, None, 0))
                keeps_priority = op[0] == "modify" and op[2] == old_price and op[3] <= old_size
                if not keeps_priority:
                    stamps[op[1]] = clock

            # FIFO within each level.
            levels: dict[tuple[int, int], list[int]] = defaultdict(list)
            for oid, (side, price, _) in after.items():
                levels[side, price].append(oid)
            for (side, price), members in levels.items():
                queue = book.orders_at(side, price)
                assert sorted(queue) == sorted(members)
                assert [stamps[oid] for oid in queue] == sorted(stamps[oid] for oid in queue), (side, price)

            # The L2 view of the L3 book is the aggregate of its orders, and an L2 book fed the level totals agrees.
            aggregate: dict[int, dict[int, int]] = {1: defaultdict(int), -1: defaultdict(int)}
            for side, price, size in after.values():
                aggregate[side][price] += size
            bids, asks = book.depth()
            assert bids == sorted(aggregate[1].items(), reverse=True)
            assert asks == sorted(aggregate[-1].items())
            touched = {(side, price) for side, price, _ in (*before.values(), *after.values())}
            for side, price in touched:
                l2_view.apply(side, price, book.size_at(side, price))
            assert top(l2_view) == top(book)
            assert l2_view.depth() == book.depth()
