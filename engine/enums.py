"""Enumerations shared by every engine component and the wire protocol (any thread: immutable).

IntEnums so they travel as small integers in MessagePack and compare fast on the hot path.
Values are part of the wire format: append new members, never renumber.
"""

from __future__ import annotations

from enum import IntEnum


class Side(IntEnum):
    # +1/-1 so that signed quantity = side * quantity, which keeps position arithmetic branch-free.
    BUY = 1
    SELL = -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(IntEnum):
    LIMIT = 1
    MARKET = 2


class TimeInForce(IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3
    DAY = 4


class OrderStatus(IntEnum):
    PENDING_NEW = 1
    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELED = 5
    REJECTED = 6
    EXPIRED = 7
    PENDING_CANCEL = 8
    PENDING_REPLACE = 9


class ExecType(IntEnum):
    """What an execution report announces (FIX tag 150 semantics)."""

    NEW = 1
    TRADE = 2
    CANCELED = 3
    REPLACED = 4
    REJECTED = 5
    EXPIRED = 6
    ORDER_STATUS = 7
    CANCEL_REJECTED = 8


class TradingState(IntEnum):
    ACTIVE = 1
    REDUCING = 2
    HALTED = 3


class BookAction(IntEnum):
    """L3 (market-by-order) actions, named after the Databento MBO action codes."""

    ADD = 1
    CANCEL = 2
    MODIFY = 3
    CLEAR = 4
    TRADE = 5
    FILL = 6
