"""The engine's FIX 4.4 gateway: a QuickFIX initiator session to a venue (engine thread calls `send` / `poll`;
QuickFIX's thread runs the session and queues what arrives).

`FixGateway` implements `engine.gateway.Gateway.send` and an inbound queue like `InProcessGateway.inbox`:

    gateway = FixGateway(config, instruments, var_dir=..., on_reconnect=ask_status_of_working_orders)
    gateway.start()
    ...                                    # engine loop
    gateway.send(VenuePlaceOrder(...))     # engine thread
    for msg in gateway.poll():             # ExecutionReport / MassCancelReport / VenueCommandRejected, in order
        engine.handle_venue_message(msg)

The session layer is QuickFIX's: logon, heartbeats and test requests, sequence numbers kept in a FileStore under
`var_dir` (never reset on logon, logout or disconnect, so a restart on either side resumes the session and a gap is
filled by a resend request), reconnection every `reconnect_s` seconds with backoff while the venue stays away
(pauses of 1, 2, 4 ... up to `reconnect_backoff_max_s` seconds between windows of attempts), and validation of every
message against FIX44.xml. Inbound messages are converted to protocol messages on QuickFIX's thread (the engine
thread does not pay for parsing) and appended to a deque; `poll()` drains it on the engine thread. A report the
venue resends with PossDupFlag whose ExecID was already queued is dropped, so the engine never sees one twice.

Each logon (the first, and every reconnection) queues a marker; `poll()` meets it on the engine thread and calls
`on_reconnect()` there, so the engine can send a `VenueQueryOrder` for every working order and reconcile the
ORDER_STATUS answers (`Oms.reconcile`) - orders the venue no longer knows come back UNKNOWN_ORDER.

While the session is down `send` refuses new orders, replaces and status requests at once with a
`VenueCommandRejected` (code GATEWAY_DISCONNECTED, queued for `poll`) rather than letting QuickFIX store them for a
resend minutes later. A cancel or mass cancel is refused the same way; the venue cancels on disconnect anyway.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import quickfix as fix

from engine.enums import OrderType, Side, TimeInForce
from engine.fix import convert
from engine.fix.convert import FixConvertError, OrderRecord
from engine.fix.settings import FixSessionConfig, session_ids, session_settings
from engine.instruments import InstrumentRegistry
from engine.protocol import (
    ProtocolError,
    VenueCancelOrder,
    VenueCommandRejected,
    VenueMassCancel,
    VenuePlaceOrder,
    VenueQueryOrder,
    VenueReplaceOrder,
)

log = logging.getLogger("engine.fix")

_LOGON_MARKER = object()
_MAX_RECORDS = 200_000
_MAX_EXEC_IDS = 200_000


def _placeholder(symbol: str) -> OrderRecord:
    return OrderRecord(symbol, Side.BUY, OrderType.LIMIT, TimeInForce.GTC, 0, 0)


class _InitiatorApp(fix.Application):
    """QuickFIX callbacks (QuickFIX's thread)."""

    def __init__(self, gateway: FixGateway) -> None:
        super().__init__()
        self._gateway = gateway

    def onCreate(self, session_id: fix.SessionID) -> None:
        pass

    def onLogon(self, session_id: fix.SessionID) -> None:
        self._gateway._on_logon()

    def onLogout(self, session_id: fix.SessionID) -> None:
        self._gateway._on_logout()

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        if convert.msg_type(message) == convert.SESSION_REJECT:
            self._gateway._inbound_reject(message)

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        self._gateway._inbound(message)


class FixGateway:
    """A `Gateway` over one FIX 4.4 initiator session. `send`, `poll` and `on_reconnect`: engine thread."""

    def __init__(
        self,
        config: FixSessionConfig,
        instruments: InstrumentRegistry,
        *,
        var_dir: Path | str,
        account: str = "",
        on_reconnect: Callable[[], None] | None = None,
        wake: Callable[[], None] | None = None,
        supports_mass_cancel: bool = True,
    ) -> None:
        if config.role != "initiator":
            raise ValueError("FixGateway needs an initiator config")
        self.config = config
        self.instruments = instruments
        self.on_reconnect = on_reconnect
        self.supports_mass_cancel = supports_mass_cancel  # the kill switch sends OrderMassCancelRequest when True
        self._wake = wake
        self._inbox: deque = deque()
        self._records: OrderedDict[str, OrderRecord] = OrderedDict()
        self._exec_ids: set[str] = set()
        self._exec_order: deque[str] = deque()
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._backoff_thread: threading.Thread | None = None
        self.backoff_pauses = 0  # times the backoff disabled reconnection while the venue was away
        self._session_id = session_ids(config)[0]
        self._settings = session_settings(config, var_dir)
        self._app = _InitiatorApp(self)
        # QuickFIX holds plain C++ references to the factories: keep the Python objects alive as long as the initiator.
        self._store_factory = fix.FileStoreFactory(self._settings)
        self._log_factory = fix.FileLogFactory(self._settings) if config.file_log else None
        if self._log_factory is not None:
            self._initiator = fix.SocketInitiator(self._app, self._store_factory, self._settings, self._log_factory)
        else:
            self._initiator = fix.SocketInitiator(self._app, self._store_factory, self._settings)
        self.sent = 0
        self.logons = 0
        self.duplicates_dropped = 0
        self.inbound_errors = 0
        self.mass_cancel_reports: deque[tuple[str, int]] = deque(maxlen=1000)  # (ClOrdID, TotalAffectedOrders)
        self._mass_accounts: dict[str, str] = {}  # mass cancel ClOrdID -> the account it named (engine thread writes)
        # The engine's account: a 35=r has no Account field, and after a restart the request it answers may be one
        # this process never sent (or the venue's cancel-on-disconnect), so the report is named with this.
        self._account = account

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._initiator.start()
        if self.config.reconnect_backoff_max_s:
            self._backoff_thread = threading.Thread(target=self._backoff, name="fix-backoff", daemon=True)
            self._backoff_thread.start()

    def _backoff(self) -> None:
        """Reconnect with backoff (own thread). QuickFIX retries at a fixed `ReconnectInterval` while a session is
        enabled; an initiator skips a disabled one. So while the venue stays away, alternate a window of attempts
        with a pause during which the session is disabled, doubling the pause up to `reconnect_backoff_max_s`."""
        base = self.config.reconnect_s
        pause = base
        while not self._stopping.is_set():
            if self._connected.wait(0.2):
                pause = base
                self._stopping.wait(0.2)
                continue
            # A window of attempts at QuickFIX's own interval...
            if self._connected.wait(2 * base) or self._stopping.is_set():
                continue
            session = fix.Session.lookupSession(self._session_id)
            if session is None or session.isLoggedOn():
                continue
            # ...then none for `pause` seconds. `logout()` on a session that is not connected only disables it.
            session.logout("reconnect backoff")
            self.backoff_pauses += 1
            self._stopping.wait(pause)
            if self._stopping.is_set():
                return
            session.logon()  # enable again: the initiator resumes its attempts
            pause = min(2 * pause, self.config.reconnect_backoff_max_s)

    def stop(self, timeout: float = 5.0) -> None:
        """Log out (waiting up to `timeout` for the venue's answer), then stop QuickFIX's thread. Final: a stopped
        gateway cannot be started again (build a new one on the same var dir to resume the session)."""
        if self._initiator is None:
            return
        self._stopping.set()
        if self._backoff_thread is not None:
            self._backoff_thread.join(5)
        # QuickFIX 1.16's Python build occasionally crashed in `stop()` when it had to log a live session out
        # itself; logging out first avoids it.
        session = fix.Session.lookupSession(self._session_id)
        if session is not None and session.isLoggedOn():
            session.logout("engine stopping")
            deadline = time.monotonic() + timeout
            while session.isLoggedOn() and time.monotonic() < deadline:
                time.sleep(0.02)
        self._initiator.stop()
        # QuickFIX registers sessions by SessionID process-wide until the initiator is destroyed; drop it now
        # rather than whenever the collector breaks our cycle with the app, so a new gateway can take the same id.
        self._initiator = None
        self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def seq_nums(self) -> tuple[int, int]:
        """(next sequence number we send, next we expect) as the persistent store has them."""
        session = fix.Session.lookupSession(self._session_id)
        return session.getExpectedSenderNum(), session.getExpectedTargetNum()

    # ------------------------------------------------------------------ engine thread

    def send(self, command: Any) -> None:
        """Hand one Venue* command to the venue. Never calls back into the engine: refusals go to the inbox."""
        kind = type(command)
        if not self._connected.is_set():
            self._refuse(command, "GATEWAY_DISCONNECTED", "the FIX session to the venue is not logged on")
            return
        records = self._records
        if kind is VenuePlaceOrder:
            self._remember(
                command.client_order_id,
                OrderRecord(
                    command.symbol,
                    command.side,
                    command.order_type,
                    command.time_in_force,
                    command.price,
                    command.quantity,
                ),
            )
            msg = convert.place_to_fix(command, self.instruments)
        elif kind is VenueCancelOrder:
            record = records.get(command.orig_client_order_id)
            # An order this process never sent (known from the journal only): placeholders, as the venue uses for
            # a cancel it cannot place, so that a cancel reject still becomes a report on the right symbol.
            self._remember(command.client_order_id, record or _placeholder(command.symbol))
            msg = convert.cancel_to_fix(command, record)
        elif kind is VenueReplaceOrder:
            record = records.get(command.orig_client_order_id)
            base = record or _placeholder(command.symbol)
            replaced = OrderRecord(
                base.symbol, base.side, base.order_type, base.time_in_force, command.price, command.quantity
            )
            self._remember(command.client_order_id, replaced)
            msg = convert.replace_to_fix(command, record, self.instruments)
        elif kind is VenueMassCancel:
            self._mass_accounts[command.client_order_id] = command.account
            if len(self._mass_accounts) > _MAX_EXEC_IDS:
                del self._mass_accounts[next(iter(self._mass_accounts))]
            msg = convert.mass_cancel_to_fix(command)
        elif kind is VenueQueryOrder:
            msg = convert.query_to_fix(command, records.get(command.client_order_id))
        else:
            self._refuse(command, "VENUE_UNKNOWN_COMMAND", f"the FIX gateway does not send {kind.__name__}")
            return
        if not self._account:  # a gateway built without one learns it from the first order command
            self._account = getattr(command, "account", "")
        if not fix.Session.sendToTarget(msg, self._session_id):
            self._refuse(command, "GATEWAY_SEND_FAILED", "QuickFIX did not take the message")
            return
        self.sent += 1

    def poll(self) -> list:
        """Everything received since the last poll, in arrival order (ExecutionReport, VenueCommandRejected).
        Calls `on_reconnect` (on this thread) where a logon happened, before what arrived after it."""
        inbox = self._inbox
        out: list = []
        while inbox:
            item = inbox.popleft()
            if item is _LOGON_MARKER:
                if self.on_reconnect is not None:
                    self.on_reconnect()
                continue
            out.append(item)
        return out

    def _remember(self, client_order_id: str, record: OrderRecord) -> None:
        records = self._records
        records[client_order_id] = record
        if len(records) > _MAX_RECORDS:
            records.popitem(last=False)

    def _refuse(self, command: Any, code: str, reason: str) -> None:
        self._inbox.append(
            VenueCommandRejected(
                command=type(command).__name__[:64],
                code=code,
                symbol=getattr(command, "symbol", ""),
                client_order_id=getattr(command, "client_order_id", ""),
                reason=reason,
                ts=time.time_ns(),
            )
        )

    # ------------------------------------------------------------------ QuickFIX thread

    def _on_logon(self) -> None:
        self.logons += 1
        self._connected.set()
        self._push(_LOGON_MARKER)
        log.info("FIX session %s logged on (seq %s)", self._session_id.toString(), self.seq_nums())

    def _on_logout(self) -> None:
        self._connected.clear()
        log.info("FIX session %s logged out", self._session_id.toString())

    def _push(self, item: Any) -> None:
        self._inbox.append(item)
        if self._wake is not None:
            self._wake()

    def _inbound(self, message: fix.Message) -> None:
        raw = message
        message = convert.Fields.of(message)  # one call into QuickFIX for all the fields
        kind = message[convert.MSG_TYPE]
        try:
            if kind in {convert.EXECUTION_REPORT_TYPE, convert.ORDER_CANCEL_REJECT}:
                report = convert.fix_to_report(message, self.instruments, self._records)
                if not self._first_time(report.exec_id):
                    self.duplicates_dropped += 1
                    return
                self._push(report)
            elif kind == convert.BUSINESS_MESSAGE_REJECT:
                self._push(convert.fix_to_command_rejected(message))
            elif kind == convert.ORDER_MASS_CANCEL_REPORT:
                request_id = convert.get(message, convert.CL_ORD_ID, "")
                affected = convert.get(message, convert.TOTAL_AFFECTED_ORDERS, "0")
                self.mass_cancel_reports.append((request_id, int(affected)))
                # 35=r has no Account: the one our request named (or, for one we never sent, such as the venue's
                # cancel-on-disconnect, the engine's account this gateway was built with).
                account = self._mass_accounts.get(request_id) or self._account or "?"
                report = convert.fix_to_mass_cancel_report(raw.toString(), account)
                if report is not None:
                    # The venue answers a 35=q with one 35=r; only a resend (PossDupFlag) of the very same report is
                    # a duplicate. Another 35=r under the same request id is new content and must reach the engine.
                    content = hashlib.sha256(msgspec.msgpack.encode(report)).hexdigest()
                    first = self._first_time(f"35=r:{request_id}:{content}")
                    if not first and message.get(convert.POSS_DUP_FLAG) == "Y":
                        self.duplicates_dropped += 1
                        return
                    self._push(report)
            else:
                raise fix.UnsupportedMessageType()
        except (FixConvertError, ProtocolError, ValueError) as exc:
            # The venue sent something the protocol cannot hold (off-grid price, unknown symbol): keep the session,
            # count it, say so. The engine learns the order's real state from its next status request.
            self.inbound_errors += 1
            log.error("unusable %s from the venue: %s", kind, exc)

    def _inbound_reject(self, message: fix.Message) -> None:
        self._push(convert.fix_to_command_rejected(message))

    def _first_time(self, exec_id: str) -> bool:
        seen = self._exec_ids
        if exec_id in seen:
            return False
        seen.add(exec_id)
        order = self._exec_order
        order.append(exec_id)
        if len(order) > _MAX_EXEC_IDS:
            seen.discard(order.popleft())
        return True
