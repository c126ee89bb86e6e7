"""The venue's order records, reason codes and report status rules (venue thread only).

Split from `venue.py` so that the order-entry logic there reads on its own; nothing here touches a book.
"""

from __future__ import annotations

from enum import StrEnum

from engine.enums import OrderStatus, OrderType, Side, TimeInForce
from engine.errors import EngineError


class Reason(StrEnum):
    """Reason codes carried by execution reports (`reason_code`) and `VenueCommandRejected.code`.

    A StrEnum: each member is its string value, so reports, journals and comparisons with plain strings see the
    same codes as before they were an enum."""

    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INVALID_QUANTITY = "INVALID_QUANTITY"  # zero or negative quantity
    INVALID_PRICE = "INVALID_PRICE"  # LIMIT without a positive price, MARKET with one
    INVALID_ORDER = "INVALID_ORDER"  # post-only on a MARKET, IOC or FOK order; an unknown order type or TIF
    INVALID_SIDE = "INVALID_SIDE"  # side neither BUY (1) nor SELL (-1); the reject report shows BUY as a placeholder
    INVALID_ID = "INVALID_ID"  # an id, account or symbol that is not 1..64 (symbol 1..32) characters of text
    DUPLICATE_CLIENT_ORDER_ID = "DUPLICATE_CLIENT_ORDER_ID"  # the account used this id before on this venue
    POST_ONLY_WOULD_CROSS = "POST_ONLY_WOULD_CROSS"
    FOK_NOT_FILLABLE = "FOK_NOT_FILLABLE"
    IOC_REMAINDER = "IOC_REMAINDER"  # the unfilled rest of an IOC or MARKET order
    UNKNOWN_ORDER = "UNKNOWN_ORDER"  # no open order with that id for that account
    WRONG_ACCOUNT = "WRONG_ACCOUNT"  # the order id is open, but under another account
    SYMBOL_MISMATCH = "SYMBOL_MISMATCH"  # the order exists on another symbol than the one named
    SELF_TRADE_PREVENTED = "SELF_TRADE_PREVENTED"  # resting order canceled because its own account crossed it
    REPLACE_BELOW_FILLED = "REPLACE_BELOW_FILLED"  # replaced to a quantity at or below what already filled
    MASS_CANCEL = "MASS_CANCEL"
    DAY_EXPIRY = "DAY_EXPIRY"
    # Handed something that is not a venue command; the string is the code it had when it was a VenueError.
    UNKNOWN_COMMAND = "VENUE_UNKNOWN_COMMAND"


class VenueError(EngineError):
    """A request that is not an order problem but a caller bug (snapshot of an unknown symbol, unknown message)."""


class VenueOrder:
    """The venue's record of one order; hung on the matching core's order list as its tag."""

    __slots__ = (
        "account",
        "client_order_id",
        "cum_quantity",
        "order_type",
        "orig_client_order_id",
        "post_only",
        "price",
        "quantity",
        "side",
        "symbol",
        "time_in_force",
        "venue_order_id",
    )

    def __init__(
        self,
        *,
        venue_order_id: int,
        client_order_id: str,
        account: str,
        symbol: str,
        side: Side,
        order_type: OrderType,
        time_in_force: TimeInForce,
        price: int,
        quantity: int,
        post_only: bool,
    ) -> None:
        self.venue_order_id = venue_order_id
        self.client_order_id = client_order_id
        self.orig_client_order_id = ""
        self.account = account
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.time_in_force = time_in_force
        self.price = price
        self.quantity = quantity
        self.cum_quantity = 0
        self.post_only = post_only

    @property
    def leaves_quantity(self) -> int:
        return self.quantity - self.cum_quantity


def placeholder(client_order_id: str, account: str, symbol: str) -> VenueOrder:
    """Order fields for a report about an order the venue cannot (or may not) show: unknown, or another account's."""
    return VenueOrder(
        venue_order_id=0,
        client_order_id=client_order_id,
        account=account,
        symbol=symbol,
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        price=0,
        quantity=0,
        post_only=False,
    )


def status_after_fill(leaves: int) -> OrderStatus:
    return OrderStatus.PARTIALLY_FILLED if leaves else OrderStatus.FILLED


def status_open(order: VenueOrder) -> OrderStatus:
    return OrderStatus.PARTIALLY_FILLED if order.cum_quantity else OrderStatus.NEW
