"""FIX 4.4 <-> protocol message mapping, decimals converted on the instrument grid (any thread: pure functions).

Both sides of the wire use this module: the venue (`engine.fix.acceptor`) turns inbound order messages into the
protocol's `Venue*` commands and its `ExecutionReport`s into FIX 35=8 / 35=9; the engine's gateway
(`engine.fix.initiator`) does the reverse. Prices and quantities are integer ticks and lots inside the engine and
decimal strings on the wire, converted exactly with `engine.instruments` (a value off the grid is refused, never
rounded). Tags are written by number: the data dictionary names them, and `fix.Message.setField(tag, str)` skips the
per-field Python class the generated wrappers would build.

What FIX cannot carry natively travels in standard fields:
- the venue's reason code (`ExecutionReport.reason_code`, `VenueCommandRejected.code`) leads Text (58) as
  "CODE: text", and the nearest standard enumeration goes in OrdRejReason (103) / CxlRejReason (102) /
  BusinessRejectReason (380) for counterparties that read only those;
- `is_maker` is LastLiquidityInd (851): 1 added liquidity, 2 removed it;
- post-only is ExecInst (18) = 6, "participate don't initiate";
- timestamps are TransactTime (60) with nanoseconds, so `ts` survives the round trip exactly.

A cancel or replace the venue refuses is an OrderCancelReject (35=9), which has no symbol, side or prices: the
gateway fills those in from the order it sent (`OrderRecord`), as any FIX client must.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import NamedTuple

import quickfix as fix

from engine.enums import ExecType, OrderStatus, OrderType, Side, TimeInForce
from engine.errors import EngineError
from engine.instruments import Instrument, InstrumentError, InstrumentRegistry
from engine.protocol import (
    ID_MAX_LENGTH,
    MAX_INT64,
    TEXT_MAX_LENGTH,
    ExecutionReport,
    MassCancelReport,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
)

# --- tags (FIX 4.4) ---------------------------------------------------------------------------------------------
ACCOUNT = 1
AVG_PX = 6
BEGIN_STRING = 8
CL_ORD_ID = 11
CUM_QTY = 14
EXEC_ID = 17
EXEC_INST = 18
LAST_PX = 31
LAST_QTY = 32
MSG_SEQ_NUM = 34
MSG_TYPE = 35
ORDER_ID = 37
ORDER_QTY = 38
ORD_STATUS = 39
ORD_TYPE = 40
ORIG_CL_ORD_ID = 41
POSS_DUP_FLAG = 43
PRICE = 44
REF_SEQ_NUM = 45
SENDER_COMP_ID = 49
SIDE = 54
SYMBOL = 55
TEXT = 58
TIME_IN_FORCE = 59
TRANSACT_TIME = 60
CXL_REJ_REASON = 102
ORD_REJ_REASON = 103
EXEC_TYPE = 150
LEAVES_QTY = 151
REF_MSG_TYPE = 372
BUSINESS_REJECT_REF_ID = 379
BUSINESS_REJECT_REASON = 380
CXL_REJ_RESPONSE_TO = 434
MASS_CANCEL_REQUEST_TYPE = 530
MASS_CANCEL_RESPONSE = 531
TOTAL_AFFECTED_ORDERS = 533
NO_AFFECTED_ORDERS = 534
_NO_AFFECTED_ORDERS_TEXT = str(NO_AFFECTED_ORDERS)
LAST_LIQUIDITY_IND = 851
SESSION_REJECT_REASON = 373
REF_TAG_ID = 371

# --- message types ----------------------------------------------------------------------------------------------
NEW_ORDER_SINGLE = "D"
ORDER_CANCEL_REQUEST = "F"
ORDER_CANCEL_REPLACE_REQUEST = "G"
ORDER_STATUS_REQUEST = "H"
ORDER_MASS_CANCEL_REQUEST = "q"
EXECUTION_REPORT_TYPE = "8"
ORDER_CANCEL_REJECT = "9"
ORDER_MASS_CANCEL_REPORT = "r"
BUSINESS_MESSAGE_REJECT = "j"
SESSION_REJECT = "3"

# --- enumerations -----------------------------------------------------------------------------------------------
SIDE_TO_FIX = {Side.BUY: "1", Side.SELL: "2"}
SIDE_FROM_FIX = {v: k for k, v in SIDE_TO_FIX.items()}
ORD_TYPE_TO_FIX = {OrderType.MARKET: "1", OrderType.LIMIT: "2"}
ORD_TYPE_FROM_FIX = {v: k for k, v in ORD_TYPE_TO_FIX.items()}
TIF_TO_FIX = {TimeInForce.DAY: "0", TimeInForce.GTC: "1", TimeInForce.IOC: "3", TimeInForce.FOK: "4"}
TIF_FROM_FIX = {v: k for k, v in TIF_TO_FIX.items()}
EXEC_TYPE_TO_FIX = {
    ExecType.NEW: "0",
    ExecType.TRADE: "F",
    ExecType.CANCELED: "4",
    ExecType.REPLACED: "5",
    ExecType.REJECTED: "8",
    ExecType.EXPIRED: "C",
    ExecType.ORDER_STATUS: "I",
}
EXEC_TYPE_FROM_FIX = {v: k for k, v in EXEC_TYPE_TO_FIX.items()}
STATUS_TO_FIX = {
    OrderStatus.PENDING_NEW: "A",
    OrderStatus.NEW: "0",
    OrderStatus.PARTIALLY_FILLED: "1",
    OrderStatus.FILLED: "2",
    OrderStatus.CANCELED: "4",
    OrderStatus.REJECTED: "8",
    OrderStatus.EXPIRED: "C",
    OrderStatus.PENDING_CANCEL: "6",
    OrderStatus.PENDING_REPLACE: "E",
}
STATUS_FROM_FIX = {v: k for k, v in STATUS_TO_FIX.items()}
POST_ONLY_EXEC_INST = "6"
MASS_CANCEL_SECURITY = "1"
MASS_CANCEL_ALL = "7"
CXL_REJ_TO_CANCEL = "1"
CXL_REJ_TO_REPLACE = "2"

# Nearest standard reasons for counterparties that do not read our codes in Text.
_ORD_REJ_REASON = {"UNKNOWN_SYMBOL": "1", "DUPLICATE_CLIENT_ORDER_ID": "6", "UNKNOWN_ORDER": "5"}
_CXL_REJ_REASON = {"UNKNOWN_ORDER": "1", "DUPLICATE_CLIENT_ORDER_ID": "6"}
_BUSINESS_REJECT_REASON = {"UNKNOWN_SYMBOL": "2", "UNSUPPORTED_MESSAGE": "3", "MISSING_FIELD": "5"}

_CODE_IN_TEXT = re.compile(r"^([A-Z][A-Z0-9_]{0,63})(?:: ?(.*))?$", re.DOTALL)
_NS_PER_S = 1_000_000_000


class FixConvertError(EngineError):
    """A FIX message that cannot become a protocol message. `tag` is the offending tag (0 = the message)."""

    def __init__(self, code: str, reason: str, tag: int = 0) -> None:
        super().__init__(code, reason)
        self.tag = tag


class OrderRecord(NamedTuple):
    """What the gateway sent for one order, to fill in what a FIX answer leaves out (35=9 has no symbol or side)."""

    symbol: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    price: int
    quantity: int


# --- time -------------------------------------------------------------------------------------------------------


_PREFIX_CACHE: dict[int, str] = {}


def format_utc_ns(ns: int) -> str:
    """UTCTimestamp with nanoseconds ("YYYYMMDD-HH:MM:SS.nnnnnnnnn"); QuickFIX 1.16 reads up to 9 digits."""
    seconds, frac = divmod(ns, _NS_PER_S)
    prefix = _PREFIX_CACHE.get(seconds)
    if prefix is None:
        if len(_PREFIX_CACHE) > 4096:
            _PREFIX_CACHE.clear()
        prefix = _PREFIX_CACHE[seconds] = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(seconds))
    return f"{prefix}.{frac:09d}"


_SECONDS_CACHE: dict[str, int] = {}


def parse_utc_ns(text: str) -> int:
    """Nanoseconds since the epoch of a UTCTimestamp with 0, 3, 6 or 9 fraction digits."""
    try:
        whole, _, frac = text.partition(".")
        seconds = _SECONDS_CACHE.get(whole)
        if seconds is None:
            # strptime costs microseconds; reports arrive in bursts within the same second.
            seconds = int(datetime.strptime(whole, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC).timestamp())
            if len(_SECONDS_CACHE) > 4096:
                _SECONDS_CACHE.clear()
            _SECONDS_CACHE[whole] = seconds
        if frac and (not frac.isdigit() or len(frac) > 9):
            raise ValueError(frac)
        return seconds * _NS_PER_S + int(frac.ljust(9, "0") or 0)
    except ValueError:
        raise FixConvertError("INVALID_FIELD", f"bad UTCTimestamp {text!r}", TRANSACT_TIME) from None


class Fields(dict):
    """A received message's fields by tag, read once from its text: one call into QuickFIX instead of two per field
    (`isSetField` + `getField` through SWIG cost about a microsecond each). Offers the few `fix.Message` methods
    the converters use. First occurrence of a tag wins (the messages converted here have no repeating groups)."""

    __slots__ = ()

    @classmethod
    def of(cls, msg: fix.Message | Fields) -> Fields:
        if type(msg) is cls:
            return msg
        fields = cls()
        for part in msg.toString().split("\x01"):
            tag, _, value = part.partition("=")
            if tag.isdigit():
                fields.setdefault(int(tag), value)
        return fields

    def isSetField(self, tag: int) -> bool:
        return tag in self

    def getField(self, tag: int) -> str:
        return self[tag]

    def getHeader(self) -> Fields:
        return self


# --- field helpers ----------------------------------------------------------------------------------------------


def msg_type(msg: fix.Message) -> str:
    return msg.getHeader().getField(MSG_TYPE)


def get(msg: fix.Message, tag: int, default: str | None = None) -> str:
    """Field `tag` as text; FixConvertError MISSING_FIELD when it is absent and no default is given."""
    if msg.isSetField(tag):
        return msg.getField(tag)
    if default is None:
        raise FixConvertError("MISSING_FIELD", f"tag {tag} is required", tag)
    return default


def _enum(table: dict, value: str, tag: int, what: str):
    try:
        return table[value]
    except KeyError:
        raise FixConvertError("INVALID_FIELD", f"{what} {value!r} is not supported", tag) from None


def _id(msg: fix.Message, tag: int, *, required: bool = True) -> str:
    value = get(msg, tag, None if required else "")
    if (required and not value) or len(value) > ID_MAX_LENGTH:
        raise FixConvertError("INVALID_ID", f"tag {tag} must be 1 to {ID_MAX_LENGTH} characters", tag)
    return value


# Valid conversions seen before, by (symbol, text): a burst of reports repeats the same few prices and sizes, and
# a Decimal grid check costs over a microsecond. Only successes are cached; the caches are cleared when large.
_TICKS_OF: dict[tuple[str, str], int] = {}
_LOTS_OF: dict[tuple[str, str], int] = {}


def _ticks(instruments: InstrumentRegistry, symbol: str, text: str, tag: int) -> int:
    cached = _TICKS_OF.get((symbol, text))
    if cached is not None:
        return cached
    try:
        ticks = instruments.get(symbol).price_to_ticks(Decimal(text))
    except (InstrumentError, ArithmeticError, ValueError) as exc:
        code = getattr(exc, "code", "INVALID_PRICE")
        raise FixConvertError(code, f"price {text!r}: {getattr(exc, 'reason', exc)}", tag) from None
    if not 0 < ticks <= MAX_INT64:
        raise FixConvertError("INVALID_PRICE", f"price {text!r} must be positive", tag)
    if len(_TICKS_OF) > 100_000:
        _TICKS_OF.clear()
    _TICKS_OF[symbol, text] = ticks
    return ticks


def _lots(instruments: InstrumentRegistry, symbol: str, text: str, tag: int, *, allow_zero: bool = False) -> int:
    cached = _LOTS_OF.get((symbol, text))
    if cached is not None and (cached or allow_zero):
        return cached
    try:
        lots = instruments.get(symbol).qty_to_lots(Decimal(text))
    except (InstrumentError, ArithmeticError, ValueError) as exc:
        code = getattr(exc, "code", "INVALID_QUANTITY")
        raise FixConvertError(code, f"quantity {text!r}: {getattr(exc, 'reason', exc)}", tag) from None
    if not (0 if allow_zero else 1) <= lots <= MAX_INT64:
        raise FixConvertError("INVALID_QUANTITY", f"quantity {text!r} must be positive", tag)
    if len(_LOTS_OF) > 100_000:
        _LOTS_OF.clear()
    _LOTS_OF[symbol, text] = lots
    return lots


def _symbol(instruments: InstrumentRegistry, msg: fix.Message) -> str:
    symbol = get(msg, SYMBOL)
    if symbol not in instruments:
        raise FixConvertError("UNKNOWN_SYMBOL", f"unknown symbol {symbol!r}", SYMBOL)
    return symbol


def _ts(msg: fix.Message) -> int:
    return parse_utc_ns(msg.getField(TRANSACT_TIME)) if msg.isSetField(TRANSACT_TIME) else 0


def _new(msg_type_: str) -> fix.Message:
    msg = fix.Message()
    msg.getHeader().setField(BEGIN_STRING, "FIX.4.4")
    msg.getHeader().setField(MSG_TYPE, msg_type_)
    return msg


_PRICE_TEXT: dict[tuple[str, int], str] = {}
_QTY_TEXT: dict[tuple[str, int], str] = {}


def price_text(instrument: Instrument, ticks: int) -> str:
    """The decimal string of `ticks`, cached: a quoting engine sends the same few prices over and over."""
    key = (instrument.symbol, ticks)
    text = _PRICE_TEXT.get(key)
    if text is None:
        if len(_PRICE_TEXT) > 100_000:
            _PRICE_TEXT.clear()
        text = _PRICE_TEXT[key] = str(instrument.ticks_to_price(ticks))
    return text


def qty_text(instrument: Instrument, lots: int) -> str:
    key = (instrument.symbol, lots)
    text = _QTY_TEXT.get(key)
    if text is None:
        if len(_QTY_TEXT) > 100_000:
            _QTY_TEXT.clear()
        text = _QTY_TEXT[key] = str(instrument.lots_to_qty(lots))
    return text


def _from_pairs(msg_type_: str, pairs: list[tuple[int, str]]) -> fix.Message:
    """A message from (tag, text) pairs; BodyLength and CheckSum are recomputed when QuickFIX sends it."""
    body = "".join([f"{tag}={value}\x01" for tag, value in pairs])
    msg = fix.Message()
    msg.setString(f"8=FIX.4.4\x019=0\x0135={msg_type_}\x01{body}10=000\x01", False)
    return msg


def text_with_code(code: str, text: str) -> str:
    joined = f"{code}: {text}" if code and text else code or text
    return joined[:TEXT_MAX_LENGTH]


def split_code(text: str) -> tuple[str, str]:
    """("CODE", "rest") from "CODE: rest"; ("", text) when Text does not start with a code."""
    match = _CODE_IN_TEXT.match(text)
    if match is None:
        return "", text[:TEXT_MAX_LENGTH]
    return match[1], (match[2] or "")[:TEXT_MAX_LENGTH]


# --- engine -> venue: protocol commands to FIX (gateway side) ---------------------------------------------------


def place_to_fix(cmd: VenuePlaceOrder, instruments: InstrumentRegistry) -> fix.Message:
    instrument = instruments.get(cmd.symbol)
    msg = _new(NEW_ORDER_SINGLE)
    msg.setField(CL_ORD_ID, cmd.client_order_id)
    msg.setField(ACCOUNT, cmd.account)
    msg.setField(SYMBOL, cmd.symbol)
    msg.setField(SIDE, SIDE_TO_FIX[cmd.side])
    msg.setField(TRANSACT_TIME, format_utc_ns(cmd.ts or time.time_ns()))
    msg.setField(ORDER_QTY, qty_text(instrument, cmd.quantity))
    msg.setField(ORD_TYPE, ORD_TYPE_TO_FIX[cmd.order_type])
    if cmd.order_type == OrderType.LIMIT:
        msg.setField(PRICE, price_text(instrument, cmd.price))
    msg.setField(TIME_IN_FORCE, TIF_TO_FIX[cmd.time_in_force])
    if cmd.post_only:
        msg.setField(EXEC_INST, POST_ONLY_EXEC_INST)
    return msg


def cancel_to_fix(cmd: VenueCancelOrder, record: OrderRecord | None) -> fix.Message:
    msg = _new(ORDER_CANCEL_REQUEST)
    msg.setField(ORIG_CL_ORD_ID, cmd.orig_client_order_id)
    msg.setField(CL_ORD_ID, cmd.client_order_id)
    msg.setField(ACCOUNT, cmd.account)
    msg.setField(SYMBOL, cmd.symbol)
    # Side is required by FIX 4.4; the venue identifies the order by OrigClOrdID, so an order we have no record of
    # (one the journal knows but this process never sent) goes with a placeholder.
    msg.setField(SIDE, SIDE_TO_FIX[record.side if record else Side.BUY])
    msg.setField(TRANSACT_TIME, format_utc_ns(cmd.ts or time.time_ns()))
    return msg


def replace_to_fix(cmd: VenueReplaceOrder, record: OrderRecord | None, instruments: InstrumentRegistry) -> fix.Message:
    instrument = instruments.get(cmd.symbol)
    msg = _new(ORDER_CANCEL_REPLACE_REQUEST)
    msg.setField(ORIG_CL_ORD_ID, cmd.orig_client_order_id)
    msg.setField(CL_ORD_ID, cmd.client_order_id)
    msg.setField(ACCOUNT, cmd.account)
    msg.setField(SYMBOL, cmd.symbol)
    msg.setField(SIDE, SIDE_TO_FIX[record.side if record else Side.BUY])
    msg.setField(TRANSACT_TIME, format_utc_ns(cmd.ts or time.time_ns()))
    msg.setField(ORDER_QTY, qty_text(instrument, cmd.quantity))
    msg.setField(ORD_TYPE, ORD_TYPE_TO_FIX[OrderType.LIMIT])
    msg.setField(PRICE, price_text(instrument, cmd.price))
    return msg


def mass_cancel_to_fix(cmd: VenueMassCancel) -> fix.Message:
    msg = _new(ORDER_MASS_CANCEL_REQUEST)
    msg.setField(CL_ORD_ID, cmd.client_order_id)
    if cmd.symbol:
        msg.setField(MASS_CANCEL_REQUEST_TYPE, MASS_CANCEL_SECURITY)
        msg.setField(SYMBOL, cmd.symbol)
    else:
        msg.setField(MASS_CANCEL_REQUEST_TYPE, MASS_CANCEL_ALL)
    msg.setField(TRANSACT_TIME, format_utc_ns(cmd.ts or time.time_ns()))
    return msg


def query_to_fix(cmd: VenueQueryOrder, record: OrderRecord | None) -> fix.Message:
    msg = _new(ORDER_STATUS_REQUEST)
    msg.setField(CL_ORD_ID, cmd.client_order_id)
    msg.setField(ACCOUNT, cmd.account)
    msg.setField(SYMBOL, cmd.symbol)
    msg.setField(SIDE, SIDE_TO_FIX[record.side if record else Side.BUY])
    return msg


# --- engine -> venue: FIX to protocol commands (venue side) -----------------------------------------------------


def fix_to_command(msg: fix.Message, account: str, instruments: InstrumentRegistry):
    """The `Venue*` command an inbound order message asks for, for `account` (the session's account: the venue
    trusts the session, not tag 1). Raises FixConvertError for a value the protocol cannot hold."""
    msg = Fields.of(msg)
    kind = msg_type(msg)
    if kind == NEW_ORDER_SINGLE:
        symbol = _symbol(instruments, msg)
        order_type = _enum(ORD_TYPE_FROM_FIX, get(msg, ORD_TYPE), ORD_TYPE, "OrdType")
        if order_type == OrderType.LIMIT:
            price = _ticks(instruments, symbol, get(msg, PRICE), PRICE)
        elif msg.isSetField(PRICE):
            raise FixConvertError("INVALID_PRICE", "a market order has no price", PRICE)
        else:
            price = 0
        return VenuePlaceOrder(
            client_order_id=_id(msg, CL_ORD_ID),
            account=account,
            symbol=symbol,
            side=_enum(SIDE_FROM_FIX, get(msg, SIDE), SIDE, "Side"),
            order_type=order_type,
            time_in_force=_enum(TIF_FROM_FIX, get(msg, TIME_IN_FORCE, "0"), TIME_IN_FORCE, "TimeInForce"),
            price=price,
            quantity=_lots(instruments, symbol, get(msg, ORDER_QTY), ORDER_QTY),
            post_only=POST_ONLY_EXEC_INST in get(msg, EXEC_INST, "").split(),
            ts=_ts(msg),
        )
    if kind == ORDER_CANCEL_REQUEST:
        return VenueCancelOrder(
            client_order_id=_id(msg, CL_ORD_ID),
            orig_client_order_id=_id(msg, ORIG_CL_ORD_ID),
            account=account,
            symbol=_symbol(instruments, msg),
            ts=_ts(msg),
        )
    if kind == ORDER_CANCEL_REPLACE_REQUEST:
        symbol = _symbol(instruments, msg)
        if get(msg, ORD_TYPE) != ORD_TYPE_TO_FIX[OrderType.LIMIT]:
            raise FixConvertError("INVALID_ORDER", "only limit orders can be replaced", ORD_TYPE)
        return VenueReplaceOrder(
            client_order_id=_id(msg, CL_ORD_ID),
            orig_client_order_id=_id(msg, ORIG_CL_ORD_ID),
            account=account,
            symbol=symbol,
            price=_ticks(instruments, symbol, get(msg, PRICE), PRICE),
            quantity=_lots(instruments, symbol, get(msg, ORDER_QTY), ORDER_QTY),
            ts=_ts(msg),
        )
    if kind == ORDER_MASS_CANCEL_REQUEST:
        request_type = get(msg, MASS_CANCEL_REQUEST_TYPE)
        if request_type == MASS_CANCEL_SECURITY:
            symbol = _symbol(instruments, msg)
        elif request_type == MASS_CANCEL_ALL:
            symbol = ""
        else:
            raise FixConvertError(
                "UNSUPPORTED_MESSAGE", f"MassCancelRequestType {request_type!r}", MASS_CANCEL_REQUEST_TYPE
            )
        return VenueMassCancel(client_order_id=_id(msg, CL_ORD_ID), account=account, symbol=symbol, ts=_ts(msg))
    if kind == ORDER_STATUS_REQUEST:
        return VenueQueryOrder(client_order_id=_id(msg, CL_ORD_ID), account=account, symbol=_symbol(instruments, msg))
    raise FixConvertError("UNSUPPORTED_MESSAGE", f"MsgType {kind!r} is not an order message", MSG_TYPE)


# --- venue -> engine: reports to FIX (venue side) ---------------------------------------------------------------


def report_to_fix(
    report: ExecutionReport,
    instruments: InstrumentRegistry,
    *,
    exec_prefix: str = "",
    order_id_base: int = 0,
    avg_px: Decimal | None = None,
    cxl_rej_response_to: str = CXL_REJ_TO_CANCEL,
) -> fix.Message:
    """35=8, or 35=9 for a CANCEL_REJECTED. `exec_prefix` and `order_id_base` keep ExecID and OrderID unique
    across venue restarts (the in-memory venue counts from 1 again each time)."""
    instrument = instruments.get(report.symbol)
    order_id = str(order_id_base + report.venue_order_id) if report.venue_order_id else "NONE"
    text = text_with_code(report.reason_code, report.text)
    if report.exec_type == ExecType.CANCEL_REJECTED:
        msg = _new(ORDER_CANCEL_REJECT)
        msg.setField(ORDER_ID, order_id)
        msg.setField(CL_ORD_ID, report.client_order_id)
        msg.setField(ORIG_CL_ORD_ID, report.orig_client_order_id or report.client_order_id)
        msg.setField(ORD_STATUS, STATUS_TO_FIX[report.status])
        msg.setField(ACCOUNT, report.account)
        msg.setField(TRANSACT_TIME, format_utc_ns(report.ts))
        msg.setField(CXL_REJ_RESPONSE_TO, cxl_rej_response_to)
        msg.setField(CXL_REJ_REASON, _CXL_REJ_REASON.get(report.reason_code, "99"))
        if text:
            msg.setField(TEXT, text)
        return msg
    # The hot path of a mass cancel: one string parsed once by QuickFIX instead of ~20 `setField` calls through
    # SWIG (2 us against 20).
    pairs = [
        (ORDER_ID, order_id),
        (CL_ORD_ID, report.client_order_id),
        (EXEC_ID, exec_prefix + report.exec_id),
        (EXEC_TYPE, EXEC_TYPE_TO_FIX[report.exec_type]),
        (ORD_STATUS, STATUS_TO_FIX[report.status]),
        (ACCOUNT, report.account),
        (SYMBOL, report.symbol),
        (SIDE, SIDE_TO_FIX[report.side]),
        (ORD_TYPE, ORD_TYPE_TO_FIX[report.order_type]),
        (TIME_IN_FORCE, TIF_TO_FIX[report.time_in_force]),
        (ORDER_QTY, qty_text(instrument, report.quantity)),
        (LEAVES_QTY, qty_text(instrument, report.leaves_quantity)),
        (CUM_QTY, qty_text(instrument, report.cum_quantity)),
        (AVG_PX, str(avg_px if avg_px is not None else Decimal(0))),
        (TRANSACT_TIME, format_utc_ns(report.ts)),
    ]
    if report.orig_client_order_id:
        pairs.append((ORIG_CL_ORD_ID, report.orig_client_order_id))
    if report.price:
        pairs.append((PRICE, price_text(instrument, report.price)))
    if report.last_quantity:
        pairs.append((LAST_PX, price_text(instrument, report.last_price)))
        pairs.append((LAST_QTY, qty_text(instrument, report.last_quantity)))
        pairs.append((LAST_LIQUIDITY_IND, "1" if report.is_maker else "2"))
    if report.exec_type == ExecType.REJECTED or report.status == OrderStatus.REJECTED:
        pairs.append((ORD_REJ_REASON, _ORD_REJ_REASON.get(report.reason_code, "99")))
    if text:
        pairs.append((TEXT, text.replace("\x01", " ")))
    return _from_pairs(EXECUTION_REPORT_TYPE, pairs)


def business_reject_to_fix(ref_seq_num: int, ref_msg_type: str, ref_id: str, code: str, text: str) -> fix.Message:
    """35=j: the venue could not turn an order message into a command (the protocol's VenueCommandRejected)."""
    msg = _new(BUSINESS_MESSAGE_REJECT)
    msg.setField(REF_SEQ_NUM, str(ref_seq_num))
    msg.setField(REF_MSG_TYPE, ref_msg_type)
    if ref_id:
        msg.setField(BUSINESS_REJECT_REF_ID, ref_id[:ID_MAX_LENGTH])
    msg.setField(BUSINESS_REJECT_REASON, _BUSINESS_REJECT_REASON.get(code, "0"))
    msg.setField(TEXT, text_with_code(code, text))
    return msg


def mass_cancel_report_to_fix(report: MassCancelReport, *, order_id_base: int = 0) -> fix.Message:
    """35=r answering a 35=q, with every order it canceled in its AffectedOrdGrp (534, then 41 = the order's client
    order id and 535 = its OrderID per order). This one message stands for the per-order CANCELED reports (FIX 4.4
    lets a venue list the affected orders here; ours sends nothing else for them). Built from text like the 35=8
    fast path, but parsed against FIX44.xml, since without the dictionary QuickFIX files a group's repeated tags by
    tag number and the entries come apart."""
    request_type = MASS_CANCEL_SECURITY if report.symbol else MASS_CANCEL_ALL
    canceled = report.canceled
    pairs = [
        (CL_ORD_ID, report.client_order_id),
        (ORDER_ID, report.client_order_id),
        (MASS_CANCEL_REQUEST_TYPE, request_type),
        (MASS_CANCEL_RESPONSE, request_type),  # "cancel orders for a security" / "all orders" = accepted
        (TOTAL_AFFECTED_ORDERS, str(len(canceled))),
        (TRANSACT_TIME, format_utc_ns(report.ts)),
    ]
    if report.symbol:
        pairs.append((SYMBOL, report.symbol))
    if report.reason_code:
        pairs.append((TEXT, report.reason_code))
    body = "".join([f"{tag}={value}\x01" for tag, value in pairs])
    if canceled:
        entries = "".join([f"41={order_id}\x01535={order_id_base + venue_id}\x01" for order_id, venue_id in canceled])
        body += f"{NO_AFFECTED_ORDERS}={len(canceled)}\x01{entries}"
    msg = fix.Message()
    msg.setString(f"8=FIX.4.4\x019=0\x0135={ORDER_MASS_CANCEL_REPORT}\x01{body}10=000\x01", False, data_dictionary())
    return msg


_DICTIONARY: list[fix.DataDictionary] = []


def data_dictionary() -> fix.DataDictionary:
    """FIX44.xml, loaded once (a few ms) on first use."""
    if not _DICTIONARY:
        from engine.fix.settings import data_dictionary_path

        _DICTIONARY.append(fix.DataDictionary(str(data_dictionary_path())))
    return _DICTIONARY[0]


def fix_to_mass_cancel_report(text: str, account: str) -> MassCancelReport | None:
    """The protocol `MassCancelReport` of a received 35=r (`text`: the message as `toString()` gives it), or None
    when it lists no affected orders: a venue that follows the letter of FIX 4.4 sends one CANCELED 35=8 per order
    as well, and those close the orders. `account`: the one our mass cancel named (35=r has no Account field).
    Raises FixConvertError for a group whose entries do not add up."""
    fields = text.split("\x01")
    values: dict[int, str] = {}
    canceled: list[tuple[str, int]] = []
    count = -1
    i, n = 0, len(fields)
    while i < n:
        tag, _, value = fields[i].partition("=")
        i += 1
        if tag != _NO_AFFECTED_ORDERS_TEXT:
            if tag.isdigit():
                values.setdefault(int(tag), value)
            continue
        count = int(value) if value.isdigit() else -1
        # The group's entries follow their count; each opens with 41 (the first field of AffectedOrdGrp).
        while i < n:
            tag, _, value = fields[i].partition("=")
            if tag == "41":
                canceled.append((value, 0))
            elif tag == "535" and canceled:
                canceled[-1] = (canceled[-1][0], int(value) if value.isdigit() and int(value) <= MAX_INT64 else 0)
            elif tag != "536":
                break
            i += 1
    if count < 0 and not canceled:
        return None
    if count != len(canceled):
        raise FixConvertError("BAD_GROUP", f"NoAffectedOrders says {count}, the group holds {len(canceled)}")
    code, _text = split_code(values.get(TEXT, ""))
    return MassCancelReport(
        client_order_id=values.get(CL_ORD_ID, "")[:ID_MAX_LENGTH] or "?",
        account=account,
        symbol=values.get(SYMBOL, ""),
        canceled=tuple(canceled),
        reason_code=code,
        ts=parse_utc_ns(values[TRANSACT_TIME]) if TRANSACT_TIME in values else 0,
    )


# --- venue -> engine: FIX to protocol (gateway side) ------------------------------------------------------------


def _order_id(msg: fix.Message) -> int:
    text = get(msg, ORDER_ID, "")
    return int(text) if text.isdigit() and int(text) <= MAX_INT64 else 0


def fix_to_report(msg: fix.Message, instruments: InstrumentRegistry, records: dict[str, OrderRecord]):
    """The protocol `ExecutionReport` of an inbound 35=8 or 35=9. Raises FixConvertError for what it cannot hold."""
    msg = Fields.of(msg)
    kind = msg_type(msg)
    code, text = split_code(get(msg, TEXT, ""))
    if kind == ORDER_CANCEL_REJECT:
        cl_ord_id = _id(msg, CL_ORD_ID)
        orig = _id(msg, ORIG_CL_ORD_ID)
        record = records.get(orig) or records.get(cl_ord_id)
        if record is None:
            raise FixConvertError("UNKNOWN_ORDER", f"cancel reject for {orig!r}, an order this gateway never sent")
        seq = msg.getHeader().getField(MSG_SEQ_NUM)
        return ExecutionReport(
            exec_id=f"CXLREJ-{cl_ord_id}-{seq}"[:ID_MAX_LENGTH],
            client_order_id=cl_ord_id,
            orig_client_order_id=orig,
            venue_order_id=_order_id(msg),
            account=get(msg, ACCOUNT, "") or "?",
            symbol=record.symbol,
            side=record.side,
            order_type=record.order_type,
            time_in_force=record.time_in_force,
            exec_type=ExecType.CANCEL_REJECTED,
            status=_enum(STATUS_FROM_FIX, get(msg, ORD_STATUS), ORD_STATUS, "OrdStatus"),
            price=record.price,
            quantity=record.quantity,
            leaves_quantity=0,
            cum_quantity=0,
            reason_code=code,
            text=text,
            ts=_ts(msg),
        )
    symbol = _symbol(instruments, msg)
    price_text = get(msg, PRICE, "")
    last_qty = get(msg, LAST_QTY, "0")
    return ExecutionReport(
        exec_id=_id(msg, EXEC_ID),
        client_order_id=_id(msg, CL_ORD_ID),
        orig_client_order_id=_id(msg, ORIG_CL_ORD_ID, required=False),
        venue_order_id=_order_id(msg),
        account=_id(msg, ACCOUNT),
        symbol=symbol,
        side=_enum(SIDE_FROM_FIX, get(msg, SIDE), SIDE, "Side"),
        order_type=_enum(ORD_TYPE_FROM_FIX, get(msg, ORD_TYPE, "2"), ORD_TYPE, "OrdType"),
        time_in_force=_enum(TIF_FROM_FIX, get(msg, TIME_IN_FORCE, "0"), TIME_IN_FORCE, "TimeInForce"),
        exec_type=_enum(EXEC_TYPE_FROM_FIX, get(msg, EXEC_TYPE), EXEC_TYPE, "ExecType"),
        status=_enum(STATUS_FROM_FIX, get(msg, ORD_STATUS), ORD_STATUS, "OrdStatus"),
        price=_ticks(instruments, symbol, price_text, PRICE) if price_text else 0,
        quantity=_lots(instruments, symbol, get(msg, ORDER_QTY, "0"), ORDER_QTY, allow_zero=True),
        last_price=_ticks(instruments, symbol, get(msg, LAST_PX), LAST_PX) if msg.isSetField(LAST_PX) else 0,
        last_quantity=_lots(instruments, symbol, last_qty, LAST_QTY, allow_zero=True),
        leaves_quantity=_lots(instruments, symbol, get(msg, LEAVES_QTY), LEAVES_QTY, allow_zero=True),
        cum_quantity=_lots(instruments, symbol, get(msg, CUM_QTY), CUM_QTY, allow_zero=True),
        is_maker=get(msg, LAST_LIQUIDITY_IND, "") == "1",
        reason_code=code,
        text=text,
        ts=_ts(msg),
    )


def fix_to_command_rejected(msg: fix.Message) -> VenueCommandRejected:
    """A 35=j (the venue refused an order message) or 35=3 (the session layer refused it) as the protocol's
    VenueCommandRejected."""
    kind = msg_type(msg)
    code, text = split_code(get(msg, TEXT, ""))
    if kind == SESSION_REJECT:
        code = code or f"FIX_SESSION_REJECT_{get(msg, SESSION_REJECT_REASON, '99')}"
        ref_type = get(msg, REF_MSG_TYPE, "?")
        ref_id = ""
    else:
        code = code or f"FIX_BUSINESS_REJECT_{get(msg, BUSINESS_REJECT_REASON, '0')}"
        ref_type = get(msg, REF_MSG_TYPE, "?")
        ref_id = get(msg, BUSINESS_REJECT_REF_ID, "")
    return VenueCommandRejected(
        command=_FIX_TO_COMMAND_NAME.get(ref_type, f"FIX_{ref_type}")[:64] or "FIX",
        code=code,
        client_order_id=ref_id[:ID_MAX_LENGTH],
        reason=text,
        ts=time.time_ns(),
    )


_FIX_TO_COMMAND_NAME = {
    NEW_ORDER_SINGLE: "VenuePlaceOrder",
    ORDER_CANCEL_REQUEST: "VenueCancelOrder",
    ORDER_CANCEL_REPLACE_REQUEST: "VenueReplaceOrder",
    ORDER_MASS_CANCEL_REQUEST: "VenueMassCancel",
    ORDER_STATUS_REQUEST: "VenueQueryOrder",
}
