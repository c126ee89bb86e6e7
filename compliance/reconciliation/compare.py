"""Three-way comparison of engine, database and venue views; pure functions over plain values (any thread).

Quantities are Decimals in instrument units on every side (engine lots are converted before they get here), and
statuses are the engine enum's names, so a difference is a real difference and not a unit mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from compliance.models import BreakKind, BreakSeverity

# Orders the engine can still trade (the engine's OrderStatus names; trading.models.WORKING_STATUSES agrees).
WORKING = frozenset({"PENDING_NEW", "NEW", "PARTIALLY_FILLED", "PENDING_CANCEL", "PENDING_REPLACE"})


@dataclass(frozen=True)
class OrderView:
    client_order_id: str
    strategy_id: str
    symbol: str
    status: str
    leaves: Decimal
    cum: Decimal
    last_seq: int = 0  # DB side only: the engine seq of the row's latest change


@dataclass(frozen=True)
class VenueView:
    client_order_id: str
    strategy_id: str
    symbol: str
    known: bool
    status: str
    leaves: Decimal
    cum: Decimal
    engine_status: str
    engine_leaves: Decimal
    engine_cum: Decimal


PositionKey = tuple[str, str]  # (strategy_id, symbol)


@dataclass
class Sides:
    """Everything one run compares. `venue` is None when the venue could not be asked."""

    engine_seq: int
    engine_orders: dict[str, OrderView]
    engine_positions: dict[PositionKey, Decimal]
    db_orders: dict[str, OrderView]  # working in the DB, plus any order the engine holds as working
    db_positions: dict[PositionKey, Decimal]
    fill_positions: dict[PositionKey, Decimal]
    fills_without_order: list[tuple[str, str, str, str]] = field(default_factory=list)  # exec, order, strategy, sym
    venue: list[VenueView] | None = None
    venue_unanswered: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    kind: BreakKind
    severity: BreakSeverity
    detail: str
    strategy_id: str = ""
    symbol: str = ""
    client_order_id: str = ""
    values: dict = field(default_factory=dict)


def _num(value: Decimal | int) -> str:
    """numeric(30,12) comes back as 0.002000000000; show and store 0.002."""
    return format(Decimal(value).normalize(), "f")


def _order_values(order: OrderView) -> dict:
    return {"status": order.status, "leaves": _num(order.leaves), "cum": _num(order.cum)}


def compare_orders(sides: Sides) -> list[Finding]:
    found: list[Finding] = []
    for cid, engine in sorted(sides.engine_orders.items()):
        db = sides.db_orders.get(cid)
        where = {"strategy_id": engine.strategy_id, "symbol": engine.symbol, "client_order_id": cid}
        if db is None:
            found.append(
                Finding(
                    BreakKind.ORDER_MISSING_IN_DB,
                    BreakSeverity.CRITICAL,
                    f"the engine has {cid} working ({engine.status}); the database has no such order",
                    values={"engine": _order_values(engine)},
                    **where,
                )
            )
        elif db.last_seq > sides.engine_seq:
            continue  # the database already holds a later change than the snapshot: in flight, not a break
        elif (db.status, db.leaves, db.cum) != (engine.status, engine.leaves, engine.cum):
            found.append(
                Finding(
                    BreakKind.ORDER_MISMATCH,
                    BreakSeverity.WARNING,
                    f"{cid}: engine {engine.status} leaves {_num(engine.leaves)} cum {_num(engine.cum)}; "
                    f"database {db.status} leaves {_num(db.leaves)} cum {_num(db.cum)}",
                    values={"engine": _order_values(engine), "db": _order_values(db)},
                    **where,
                )
            )
    for cid, db in sorted(sides.db_orders.items()):
        if db.status in WORKING and cid not in sides.engine_orders and db.last_seq <= sides.engine_seq:
            found.append(
                Finding(
                    BreakKind.ORDER_MISSING_IN_ENGINE,
                    BreakSeverity.CRITICAL,
                    f"the database has {cid} working ({db.status}); the engine does not",
                    strategy_id=db.strategy_id,
                    symbol=db.symbol,
                    client_order_id=cid,
                    values={"db": _order_values(db)},
                )
            )
    return found


def compare_venue(sides: Sides) -> list[Finding]:
    found: list[Finding] = []
    for venue in sides.venue or ():
        where = {"strategy_id": venue.strategy_id, "symbol": venue.symbol, "client_order_id": venue.client_order_id}
        engine_side = {
            "status": venue.engine_status,
            "leaves": _num(venue.engine_leaves),
            "cum": _num(venue.engine_cum),
        }
        if not venue.known:
            found.append(
                Finding(
                    BreakKind.ORDER_MISSING_AT_VENUE,
                    BreakSeverity.CRITICAL,
                    f"the engine has {venue.client_order_id} working; the venue does not know it",
                    values={"engine": engine_side},
                    **where,
                )
            )
        elif (venue.status, venue.leaves, venue.cum) != (venue.engine_status, venue.engine_leaves, venue.engine_cum):
            found.append(
                Finding(
                    BreakKind.VENUE_MISMATCH,
                    BreakSeverity.CRITICAL,
                    f"{venue.client_order_id}: engine {venue.engine_status} leaves {_num(venue.engine_leaves)} cum "
                    f"{_num(venue.engine_cum)}; venue {venue.status} leaves {_num(venue.leaves)} cum {_num(venue.cum)}",
                    values={
                        "engine": engine_side,
                        "venue": {"status": venue.status, "leaves": _num(venue.leaves), "cum": _num(venue.cum)},
                    },
                    **where,
                )
            )
    for cid in sides.venue_unanswered:
        engine = sides.engine_orders.get(cid)
        found.append(
            Finding(
                BreakKind.ORDER_MISSING_AT_VENUE,
                BreakSeverity.WARNING,
                f"the venue did not answer for {cid} in time",
                strategy_id=engine.strategy_id if engine else "",
                symbol=engine.symbol if engine else "",
                client_order_id=cid,
            )
        )
    return found


def _compare_positions(
    engine: dict[PositionKey, Decimal], other: dict[PositionKey, Decimal], kind: BreakKind, label: str
) -> list[Finding]:
    found: list[Finding] = []
    for strategy_id, symbol in sorted(set(engine) | set(other)):
        ours, theirs = engine.get((strategy_id, symbol), Decimal(0)), other.get((strategy_id, symbol), Decimal(0))
        if ours != theirs:
            found.append(
                Finding(
                    kind,
                    BreakSeverity.CRITICAL,
                    f"{strategy_id}/{symbol}: engine position {_num(ours)}, {label} {_num(theirs)} "
                    f"(difference {_num(theirs - ours)})",
                    strategy_id=strategy_id,
                    symbol=symbol,
                    values={"engine": _num(ours), label: _num(theirs)},
                )
            )
    return found


def compare_positions(sides: Sides) -> list[Finding]:
    found = _compare_positions(sides.engine_positions, sides.db_positions, BreakKind.POSITION_MISMATCH, "database")
    found += _compare_positions(
        sides.engine_positions, sides.fill_positions, BreakKind.FILLS_POSITION_MISMATCH, "from fills"
    )
    for exec_id, cid, strategy_id, symbol in sides.fills_without_order:
        found.append(
            Finding(
                BreakKind.FILL_WITHOUT_ORDER,
                BreakSeverity.CRITICAL,
                f"fill {exec_id} is for {cid}, an order the database does not hold",
                strategy_id=strategy_id,
                symbol=symbol,
                client_order_id=cid,
                values={"exec_id": exec_id},
            )
        )
    return found


def compare(sides: Sides) -> list[Finding]:
    return compare_orders(sides) + compare_venue(sides) + compare_positions(sides)
