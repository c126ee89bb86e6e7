"""The simulated venue as a FIX 4.4 acceptor with ZeroMQ market data (the venue thread owns the Venue; QuickFIX's
thread only decodes and queues).

Threads:
- QuickFIX's acceptor thread runs the session layer (logon, heartbeats, sequence numbers, resends, validation
  against FIX44.xml) and calls `VenueFixApp`. `fromApp` turns an order message into a protocol `Venue*` command
  and queues it; a message it cannot turn into one is answered there and then with a BusinessMessageReject (35=j)
  and never reaches the venue. Logons and logouts are queued the same way.
- The venue thread (`VenueService.run`) owns the `Venue`, the background flow or replay and the ZeroMQ sockets. It
  applies queued commands in arrival order, sends each ExecutionReport to the session that owns the order's
  account through `Session.sendToTarget` (QuickFIX serialises sends per session with its own mutex), publishes
  BookDeltas / TradePrinted on the PUB socket (topic = symbol, body = `Codec` MessagePack, each carrying the
  symbol's sequence number) and answers `VenueRequestSnapshot`s on the snapshot ROUTER socket.

Accounts: an order's account is its Account (1), or the session's TargetCompID when absent. The first session to
use an account owns it; another session naming it is refused (35=j, ACCOUNT_IN_USE), so reports always have one
place to go. Cancel-on-disconnect: when a session logs out or its connection drops, every open order of the
accounts it owns is canceled (the CANCELED reports are stored and reach the session by resend when it logs on
again). Venue state is in memory: a venue process that dies loses its books, so after a restart the orders are
simply unknown, which is what cancel-on-disconnect would have made them anyway; the engine learns it from the
OrderStatusRequests it sends on reconnect. ExecIDs and OrderIDs carry a boot number kept in the var dir so that
they never repeat across restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import msgspec
import quickfix as fix
import zmq

from engine.enums import ExecType, OrderStatus
from engine.fix import convert
from engine.fix.convert import FixConvertError
from engine.fix.settings import FixSessionConfig, session_ids, session_settings
from engine.instruments import InstrumentRegistry
from engine.protocol import (
    BookDeltas,
    Codec,
    ExecutionReport,
    MassCancelReport,
    ProtocolError,
    ProtocolErrorCode,
    TradePrinted,
    VenueCommandRejected,
    VenueMassCancel,
    VenueRequestSnapshot,
)
from engine.venue import Venue

log = logging.getLogger("engine.venue")

_ORDER_MESSAGES = frozenset(
    {
        convert.NEW_ORDER_SINGLE,
        convert.ORDER_CANCEL_REQUEST,
        convert.ORDER_CANCEL_REPLACE_REQUEST,
        convert.ORDER_MASS_CANCEL_REQUEST,
        convert.ORDER_STATUS_REQUEST,
    }
)
_LOGON, _LOGOUT, _COMMAND = range(3)
_TERMINAL = frozenset({OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED})


def _session_key(session_id: fix.SessionID) -> str:
    return session_id.getTargetCompID().getValue()


class VenueFixApp(fix.Application):
    """QuickFIX callbacks (QuickFIX's thread). Decodes order messages and queues them for the venue thread."""

    def __init__(self, instruments: InstrumentRegistry, submit: Callable[[tuple], None]) -> None:
        super().__init__()
        self._instruments = instruments
        self._submit = submit
        self._owners: dict[str, str] = {}  # account -> comp id of the session that owns it
        self._lock = threading.Lock()  # `_owners` is read here and by the venue thread

    def owner(self, account: str) -> str | None:
        with self._lock:
            return self._owners.get(account)

    def accounts_of(self, comp_id: str) -> list[str]:
        with self._lock:
            return [account for account, owner in self._owners.items() if owner == comp_id]

    def onCreate(self, session_id: fix.SessionID) -> None:
        pass

    def onLogon(self, session_id: fix.SessionID) -> None:
        self._submit((_LOGON, session_id, None, 0, ""))

    def onLogout(self, session_id: fix.SessionID) -> None:
        self._submit((_LOGOUT, session_id, None, 0, ""))

    def toAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromAdmin(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def toApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        pass

    def fromApp(self, message: fix.Message, session_id: fix.SessionID) -> None:
        kind = convert.msg_type(message)
        if kind not in _ORDER_MESSAGES:
            # A valid FIX message we do not take: the session layer answers BusinessMessageReject, 380=3.
            raise fix.UnsupportedMessageType()
        comp_id = _session_key(session_id)
        seq = int(message.getHeader().getField(convert.MSG_SEQ_NUM))
        ref_id = convert.get(message, convert.CL_ORD_ID, "")
        try:
            account = convert.get(message, convert.ACCOUNT, "") or comp_id
            if kind == convert.ORDER_MASS_CANCEL_REQUEST:
                # FIX 4.4's 35=q has no Account: it covers every account of the session (expanded by the venue).
                owner = comp_id
            else:
                with self._lock:
                    owner = self._owners.setdefault(account, comp_id)
            if owner != comp_id:
                raise FixConvertError("ACCOUNT_IN_USE", f"account {account!r} belongs to another session", 1)
            command = convert.fix_to_command(message, account, self._instruments)
        except (FixConvertError, ProtocolError) as exc:
            reject = convert.business_reject_to_fix(seq, kind, ref_id, exc.code, exc.reason)
            fix.Session.sendToTarget(reject, session_id)
            return
        self._submit((_COMMAND, session_id, command, seq, kind))


class VenueService:
    """The venue thread: one `Venue`, its background flow or replay, the FIX acceptor's queue and the ZeroMQ
    market-data sockets. Build it, `start()` it (spawns the venue thread and the acceptor), `stop()` it."""

    def __init__(
        self,
        *,
        venue: Venue,
        instruments: InstrumentRegistry,
        fix_config: FixSessionConfig,
        var_dir: Path | str,
        pub_endpoint: str,
        snapshot_endpoint: str,
        drivers: list | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.venue = venue
        self.instruments = instruments
        self.codec = Codec(instruments)
        self.var_dir = Path(var_dir)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        self._drivers = drivers or []  # PoissonFlow / ReplayMarket: poll() and observe()
        self._clock = clock
        self._queue: deque[tuple] = deque()
        self._ctx = zmq.Context.instance()
        self._wake_endpoint = f"inproc://venue-wake-{id(self)}"
        self._wake_local = threading.local()
        self._pub_endpoint = pub_endpoint
        self._snapshot_endpoint = snapshot_endpoint
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._avg: dict[int, list[int]] = {}  # venue_order_id -> [cum notional in tick*lots, cum lots]
        self.boot = self._next_boot()
        # Venue ids count from 1 each start; a boot-numbered prefix/base keeps them unique across restarts.
        self._exec_prefix = f"B{self.boot}-"
        self._order_id_base = self.boot * 10**12
        self.app = VenueFixApp(instruments, self._submit)
        convert.data_dictionary()  # loaded now, not on the first kill's clock
        self._settings = session_settings(fix_config, self.var_dir / "fix")
        self._session_ids = session_ids(fix_config)
        self._sender = fix_config.sender_comp_id
        self._owner_sessions: dict[str, fix.SessionID] = {}  # comp id -> SessionID, built once per counterparty
        # QuickFIX holds plain C++ references to the factories: keep the Python objects alive as long as the acceptor.
        self._store_factory = fix.FileStoreFactory(self._settings)
        self._log_factory = fix.FileLogFactory(self._settings) if fix_config.file_log else None
        if self._log_factory is not None:
            self._acceptor = fix.SocketAcceptor(self.app, self._store_factory, self._settings, self._log_factory)
        else:
            self._acceptor = fix.SocketAcceptor(self.app, self._store_factory, self._settings)
        self.published = 0
        self.commands = 0

    def _next_boot(self) -> int:
        path = self.var_dir / "boot"
        boot = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(boot))
        return boot

    # ------------------------------------------------------------------ lifecycle (main thread)

    def start(self, timeout: float = 10.0) -> None:
        self._thread = threading.Thread(target=self.run, name="venue", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("venue thread did not start")
        self._acceptor.start()

    def stop(self) -> None:
        """Log every session out (cancel-on-disconnect runs for each), then stop the venue thread."""
        # Logging out first, then stopping an acceptor with no live session: QuickFIX 1.16's Python build
        # occasionally crashed in `stop()` when it had to tear down logged-on sessions itself.
        for session_id in self._session_ids:
            session = fix.Session.lookupSession(session_id)
            if session is not None and session.isLoggedOn():
                session.logout("venue shutting down")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
            (s := fix.Session.lookupSession(sid)) is not None and s.isLoggedOn() for sid in self._session_ids
        ):
            time.sleep(0.05)
        self._acceptor.stop()
        self._stop.set()
        self._submit(None)
        if self._thread is not None:
            self._thread.join(10)

    def wait(self) -> None:
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # ------------------------------------------------------------------ queue (any thread)

    def _submit(self, item: tuple | None) -> None:
        if item is not None:
            self._queue.append(item)
        sock = getattr(self._wake_local, "sock", None)
        if sock is None:
            sock = self._ctx.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self._wake_endpoint)
            self._wake_local.sock = sock
        try:
            sock.send(b"", zmq.NOBLOCK)
        except zmq.Again:
            pass  # the venue thread has wake-ups pending already; it will drain the queue

    # ------------------------------------------------------------------ venue thread

    def run(self) -> None:
        wake = self._ctx.socket(zmq.PULL)
        wake.bind(self._wake_endpoint)
        self.pub = self._ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, 1_000_000)
        self.pub.bind(self._pub_endpoint)
        snap = self._ctx.socket(zmq.ROUTER)
        snap.bind(self._snapshot_endpoint)
        poller = zmq.Poller()
        poller.register(wake, zmq.POLLIN)
        poller.register(snap, zmq.POLLIN)
        self._ready.set()
        timeout_ms = 5 if self._drivers else 100
        try:
            for driver in self._drivers:
                self._dispatch(driver.prime() if hasattr(driver, "prime") else [], None, "")
            while not self._stop.is_set() or self._queue:
                events = dict(poller.poll(timeout_ms))
                if wake in events:
                    while True:
                        try:
                            wake.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                self._drain()
                if snap in events:
                    self._serve_snapshots(snap)
                for driver in self._drivers:
                    messages = driver.poll()
                    if messages:
                        self._dispatch(messages, driver, "")
        finally:
            for sock in (wake, self.pub, snap):
                sock.close(linger=0)

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            kind, session_id, command, _seq, fix_type = queue.popleft()
            if kind == _COMMAND:
                self.commands += 1
                if type(command) is VenueMassCancel:
                    self._mass_cancel(command, session_id, fix_type)
                    continue
                messages = self.venue.handle(command)
                self._dispatch(messages, None, fix_type, command, session_id)
            elif kind == _LOGOUT:
                self._cancel_on_disconnect(session_id)
            else:
                log.info("session %s logged on", session_id.toString())

    def _mass_cancel(self, command: VenueMassCancel, session_id: fix.SessionID, fix_type: str) -> None:
        """A 35=q covers every account the session owns (FIX 4.4 gives it no Account): one venue mass cancel per
        account, answered by ONE OrderMassCancelReport (35=r) listing every order they canceled. One 35=r per
        account, all under the request's ClOrdID and none naming its account, could not be told apart: the
        initiator would credit one account's orders to another and take the rest for a resend."""
        accounts = self.app.accounts_of(_session_key(session_id)) or [command.account]
        merged: MassCancelReport | None = None
        messages: list = []
        for i, account in enumerate(accounts):
            for msg in self.venue.handle(msgspec.structs.replace(command, account=account)):
                kind = type(msg)
                if kind is MassCancelReport:
                    merged = (
                        msg
                        if merged is None
                        else msgspec.structs.replace(merged, canceled=merged.canceled + msg.canceled)
                    )
                elif i == 0 or kind is BookDeltas or kind is TradePrinted:
                    # A refusal (unknown symbol, bad id) is the same for every account: answered once.
                    messages.append(msg)
        if merged is not None:
            messages.insert(0, merged)  # market data the cancels caused follows the report, as from the venue
        self._dispatch(messages, None, fix_type, command, session_id)

    def _cancel_on_disconnect(self, session_id: fix.SessionID) -> None:
        comp_id = _session_key(session_id)
        for account in self.app.accounts_of(comp_id):
            if not self.venue.open_orders(account):
                continue
            # One 35=8 per order: the session that gets them at its next logon never asked, and a 35=r would not
            # say whose orders they were (it has no Account field).
            messages = self.venue.mass_cancel(
                client_order_id=f"COD-{self.boot}-{time.time_ns()}", account=account, per_order_reports=True
            )
            log.info("cancel-on-disconnect: %s lost its session, %d messages", account, len(messages))
            self._dispatch(messages, None, "")

    def _dispatch(self, messages: list, source, fix_type: str, command=None, session_id=None) -> None:
        """Send reports to their sessions, publish market data, and let the flow/replay see the rest."""
        for msg in messages:
            kind = type(msg)
            if kind is ExecutionReport:
                self._send_report(msg, fix_type)
            elif kind is MassCancelReport:
                self._send_mass_cancel_report(msg)
            elif kind is BookDeltas or kind is TradePrinted:
                self.pub.send_multipart((msg.symbol.encode(), self.codec.encode(msg)), copy=False)
                self.published += 1
            elif kind is VenueCommandRejected and session_id is not None:
                reject = convert.business_reject_to_fix(0, fix_type, msg.client_order_id, msg.code, msg.reason)
                fix.Session.sendToTarget(reject, session_id)
        for driver in self._drivers:
            if driver is not source:
                driver.observe(messages)

    def _send_report(self, report: ExecutionReport, fix_type: str) -> None:
        owner = self.app.owner(report.account)
        avg = self._avg_px(report)
        if owner is None:
            return  # the flow's or the replay's own orders: no session
        response_to = convert.CXL_REJ_TO_REPLACE if fix_type == "G" else convert.CXL_REJ_TO_CANCEL
        msg = convert.report_to_fix(
            report,
            self.instruments,
            exec_prefix=self._exec_prefix,
            order_id_base=self._order_id_base,
            avg_px=avg,
            cxl_rej_response_to=response_to,
        )
        session_id = self._owner_sessions.get(owner)
        if session_id is None:
            session_id = self._owner_sessions[owner] = fix.SessionID("FIX.4.4", self._sender, owner)
        # A session that is logged out still gets the report: QuickFIX stores it under the next sequence number and
        # the counterparty's resend request fetches it at the next logon.
        fix.Session.sendToTarget(msg, session_id)

    def _send_mass_cancel_report(self, report: MassCancelReport) -> None:
        """One 35=r naming every order the mass cancel canceled, to the account's session (cancel-on-disconnect
        included: a logged-out session gets it at its next logon's resend, as for a 35=8)."""
        owner = self.app.owner(report.account)
        if owner is None:
            return
        for _client_order_id, venue_order_id in report.canceled:
            self._avg.pop(venue_order_id, None)  # as `_avg_px` does for a terminal 35=8
        msg = convert.mass_cancel_report_to_fix(report, order_id_base=self._order_id_base)
        session_id = self._owner_sessions.get(owner)
        if session_id is None:
            session_id = self._owner_sessions[owner] = fix.SessionID("FIX.4.4", self._sender, owner)
        fix.Session.sendToTarget(msg, session_id)

    def _avg_px(self, report: ExecutionReport) -> Decimal | None:
        oid = report.venue_order_id
        if not oid:
            return None
        acc = self._avg.get(oid)
        if report.exec_type == ExecType.TRADE:
            if acc is None:
                acc = self._avg[oid] = [0, 0]
            acc[0] += report.last_price * report.last_quantity
            acc[1] += report.last_quantity
        if report.status in _TERMINAL:
            self._avg.pop(oid, None)
        if not acc or not acc[1]:
            return None
        instrument = self.instruments.get(report.symbol)
        return (instrument.tick_size * acc[0] / acc[1]).quantize(Decimal(1).scaleb(-instrument.price_precision - 4))

    def _serve_snapshots(self, snap: zmq.Socket) -> None:
        while True:
            try:
                frames = snap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            envelope, body = frames[:-1], frames[-1]
            try:
                request = self.codec.decode_venue_command(body)
                if type(request) is not VenueRequestSnapshot:
                    raise ProtocolError(
                        ProtocolErrorCode.UNEXPECTED_MESSAGE, f"{type(request).__name__} on the snapshot socket"
                    )
                (answer,) = self.venue.handle(request)
            except ProtocolError as exc:
                answer = VenueCommandRejected(
                    command="VenueRequestSnapshot", code=exc.code, reason=exc.reason[:512], ts=self._clock()
                )
            snap.send_multipart([*envelope, self.codec.encode(answer)])
