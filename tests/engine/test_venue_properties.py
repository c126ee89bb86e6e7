"""Property tests of the matching core and the venue: random command streams against invariants and a slow model."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.book import L2Book
from engine.enums import ExecType, OrderType, Side, TimeInForce
from engine.protocol import BookDeltas, ExecutionReport, MassCancelReport, TradePrinted
from engine.venue import MatchingCore, Venue
from engine.venue.matching import EV_FILL, EV_STP_CANCEL, FOK, GTC, IOC, KILLED_FOK, POST_ONLY, REJECTED_POST_ONLY

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A command: ("submit", account, side, price, qty, kind) | ("cancel", pick) | ("replace", pick, price, qty).
# `pick` selects one of the ids submitted so far (possibly already gone), so cancels hit live and dead orders.
submit_cmd = st.tuples(
    st.just("submit"),
    st.sampled_from("ABC"),
    st.sampled_from((1, -1)),
    st.integers(95, 105),
    st.integers(1, 6),
    st.sampled_from((GTC, GTC, IOC, FOK, POST_ONLY)),
)
cancel_cmd = st.tuples(st.just("cancel"), st.integers(0, 10_000))
replace_cmd = st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(95, 105), st.integers(1, 6))
commands = st.lists(st.one_of(submit_cmd, submit_cmd, cancel_cmd, replace_cmd), min_size=1, max_size=80)


class ModelBook:
    """Obviously-correct price-time matching on a flat list: the specification the core is checked against."""

    def __init__(self) -> None:
        self.orders: list[list] = []  # [oid, account, side, price, qty, arrival]
        self.arrival = 0
        self.events: list[tuple] = []  # ("fill", maker_oid, price, qty) | ("stp", maker_oid, qty)

    def _contra(self, side: int, price: int) -> list[list]:
        crossing = [o for o in self.orders if o[2] == -side and (o[3] <= price if side == 1 else o[3] >= price)]
        return sorted(crossing, key=lambda o: (o[3] * side, o[5]))

    def submit(self, oid, account, side, price, qty, kind):
        contra = self._contra(side, price)
        if contra and kind == POST_ONLY:
            return REJECTED_POST_ONLY
        if kind == FOK and sum(o[4] for o in contra if o[1] != account) < qty:
            return KILLED_FOK
        for o in contra:
            if qty == 0:
                break
            if o[1] == account:
                self.orders.remove(o)
                self.events.append(("stp", o[0], o[4]))
                continue
            take = min(qty, o[4])
            o[4] -= take
            qty -= take
            self.events.append(("fill", o[0], o[3], take))
            if o[4] == 0:
                self.orders.remove(o)
        if qty and kind in (GTC, POST_ONLY):
            self.arrival += 1
            self.orders.append([oid, account, side, price, qty, self.arrival])
        return qty

    def find(self, oid):
        return next((o for o in self.orders if o[0] == oid), None)

    def cancel(self, oid):
        o = self.find(oid)
        if o is None:
            return -3
        self.orders.remove(o)
        return o[4]

    def replace(self, oid, price, qty):
        o = self.find(oid)
        if o is None:
            return -3
        if price == o[3] and qty <= o[4]:
            o[4] = qty
            return qty
        self.orders.remove(o)
        return self.submit(oid, o[1], o[2], price, qty, GTC)

    def depth(self):
        levels: dict[tuple[int, int], int] = {}
        for o in self.orders:
            levels[(o[2], o[3])] = levels.get((o[2], o[3]), 0) + o[4]
        bids = sorted(((p, s) for (side, p), s in levels.items() if side == 1), reverse=True)
        asks = sorted((p, s) for (side, p), s in levels.items() if side == -1)
        return bids, asks

    def fifo(self, side, price):
        return [o[0] for o in sorted(self.orders, key=lambda o: o[5]) if o[2] == side and o[3] == price]


def core_events(core: MatchingCore) -> list[tuple]:
    out = []
    for e in core.events:
        if e[0] == EV_FILL:
            out.append(("fill", e[1].oid, e[2], e[3]))
        else:
            assert e[0] == EV_STP_CANCEL
            out.append(("stp", e[1].oid, e[2]))
    return out


@SETTINGS
@given(commands)
def test_core_matches_exactly_like_the_slow_price_time_model(cmds):
    core, model = MatchingCore(), ModelBook()
    oids: list[int] = []

    for cmd in cmds:
        if cmd[0] == "submit":
            oid = len(oids) + 1
            oids.append(oid)
            got, want = core.submit(oid, *cmd[1:]), model.submit(oid, *cmd[1:])
        elif cmd[0] == "cancel":
            if not oids:
                continue
            oid = oids[cmd[1] % len(oids)]
            got, want = core.cancel(oid), model.cancel(oid)
        else:
            if not oids:
                continue
            oid = oids[cmd[1] % len(oids)]
            got, want = core.replace(oid, cmd[2], cmd[3]), model.replace(oid, cmd[2], cmd[3])
        assert got == want, cmd
        assert core_events(core) == model.events, cmd
        core.events.clear()
        model.events.clear()
        assert core.depth() == model.depth()
        for side in (1, -1):
            for price, _size in core.depth()[0 if side == 1 else 1]:
                assert core.orders_at(side, price) == model.fifo(side, price)


@SETTINGS
@given(commands)
def test_core_book_is_never_crossed_and_fills_happen_at_the_resting_price(cmds):
    core = MatchingCore()
    n = 0

    for cmd in cmds:
        if cmd[0] == "submit":
            n += 1
            side, price = cmd[2], cmd[3]
            core.submit(n, *cmd[1:])
            for e in core.events:
                if e[0] == EV_FILL:
                    maker = e[1]
                    maker_price = maker.level[0]
                    assert e[2] == maker_price
                    assert (maker_price <= price) if side == 1 else (maker_price >= price)
        elif n:
            oid = cmd[1] % n + 1
            if cmd[0] == "cancel":
                core.cancel(oid)
            else:
                core.replace(oid, cmd[2], cmd[3])
        core.events.clear()
        assert not core.is_crossed()
        bids, asks = core.depth()
        assert core.best_bid == (bids[0][0] if bids else None)
        assert core.best_ask == (asks[0][0] if asks else None)


@SETTINGS
@given(commands)
def test_core_conserves_size_submitted_equals_resting_plus_both_sides_of_fills_plus_canceled(cmds):
    core = MatchingCore()
    submitted = filled = canceled = 0
    n = 0

    for cmd in cmds:
        if cmd[0] == "submit":
            n += 1
            qty = cmd[4]
            submitted += qty
            result = core.submit(n, *cmd[1:])
            if result < 0:
                canceled += qty  # rejected post-only / killed FOK: nothing happened to it
            elif cmd[5] in (IOC, FOK):
                canceled += result
        elif n:
            oid = cmd[1] % n + 1
            if cmd[0] == "cancel":
                got = core.cancel(oid)
                canceled += max(got, 0)
            else:
                order = core.order(oid)
                if order is None:
                    continue
                before = order.qty
                # A replace is a cancel of the old leaves and a submit of the new ones, as far as size goes.
                canceled += before
                submitted += cmd[3]
                core.replace(oid, cmd[2], cmd[3])
        for e in core.events:
            if e[0] == EV_FILL:
                filled += e[3]
            else:
                canceled += e[2]
        core.events.clear()
        resting = sum(s for s in (size for _, size in core.depth()[0])) + sum(size for _, size in core.depth()[1])
        assert submitted == resting + 2 * filled + canceled


place_cmd = st.tuples(
    st.just("place"),
    st.sampled_from("ABC"),
    st.sampled_from((Side.BUY, Side.SELL)),
    st.sampled_from((OrderType.LIMIT, OrderType.LIMIT, OrderType.LIMIT, OrderType.MARKET)),
    st.sampled_from((TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.DAY)),
    st.integers(95, 105),
    st.integers(1, 6),
    st.booleans(),
)
venue_cmd = st.one_of(
    place_cmd,
    place_cmd,
    st.tuples(st.just("cancel"), st.integers(0, 10_000)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.integers(95, 105), st.integers(1, 8)),
    st.tuples(st.just("mass"), st.sampled_from("ABC")),
)


@SETTINGS
@given(st.lists(venue_cmd, min_size=1, max_size=60), st.integers(0, 60))
def test_snapshot_plus_later_deltas_reproduces_the_venue_book_and_sequences_are_contiguous(cmds, snap_at):
    venue = Venue(["BTCUSDT"], clock=lambda: 1)
    mirror: L2Book | None = None
    last_seq = 0
    ids: list[tuple[str, str]] = []
    leaves_by_order: dict[int, int] = {}

    for i, cmd in enumerate(cmds):
        if i == snap_at:
            snap = venue.snapshot("BTCUSDT")
            assert snap.seq == last_seq
            mirror = L2Book("BTCUSDT")
            mirror.load_snapshot(snap.bids, snap.asks)
        if cmd[0] == "place":
            _, account, side, otype, tif, price, qty, post_only = cmd
            cl_id = f"o{i}"
            ids.append((account, cl_id))
            out = venue.place_order(
                client_order_id=cl_id,
                account=account,
                symbol="BTCUSDT",
                side=side,
                order_type=otype,
                time_in_force=tif,
                price=price if otype == OrderType.LIMIT else 0,
                quantity=qty,
                post_only=post_only,
            )
        elif not ids:
            continue
        elif cmd[0] == "cancel":
            account, cl_id = ids[cmd[1] % len(ids)]
            out = venue.cancel_order(
                client_order_id=f"c{i}", orig_client_order_id=cl_id, account=account, symbol="BTCUSDT"
            )
        elif cmd[0] == "replace":
            k = cmd[1] % len(ids)
            account, cl_id = ids[k]
            out = venue.replace_order(
                client_order_id=f"r{i}",
                orig_client_order_id=cl_id,
                account=account,
                symbol="BTCUSDT",
                price=cmd[2],
                quantity=cmd[3],
            )
            if any(isinstance(m, ExecutionReport) and m.exec_type != ExecType.CANCEL_REJECTED for m in out):
                ids[k] = (account, f"r{i}")
        else:
            out = venue.mass_cancel(client_order_id=f"m{i}", account=cmd[1])
        for m in out:
            if isinstance(m, (BookDeltas, TradePrinted)):
                assert m.seq == last_seq + 1
                last_seq = m.seq
            if isinstance(m, BookDeltas) and mirror is not None:
                for side, price, size in m.deltas:
                    mirror.apply(side, price, size)
            if isinstance(m, ExecutionReport) and m.venue_order_id:
                # Reports of one order never un-fill: cum is monotone and cum + leaves never exceeds the quantity.
                assert m.cum_quantity + m.leaves_quantity <= m.quantity
                leaves_by_order[m.venue_order_id] = m.leaves_quantity
            if isinstance(m, MassCancelReport):
                for _order_id, venue_order_id in m.canceled:
                    leaves_by_order[venue_order_id] = 0
        assert not venue.core("BTCUSDT").is_crossed()

    if mirror is not None:
        assert mirror.depth(1000) == venue.core("BTCUSDT").depth()
    open_leaves = {o.venue_order_id: o.leaves_quantity for o in venue.open_orders()}
    assert {k: v for k, v in leaves_by_order.items() if v} == open_leaves
