"""The engine's link to a venue: the gateway interface and the in-process gateway over `engine.venue` (engine thread).

The engine only ever calls `send(command)`. Whatever the venue answers comes back as *inbound* messages that the
driver (live loop, backtester, test) takes from the gateway and feeds to `Engine.handle_venue_message`, which routes
each to `handle_execution_report`, `handle_venue_reject` (a `VenueCommandRejected`) or `handle_market_data`; they
journal it before applying it. Nothing the venue says reaches the engine
behind the journal's back, so replaying the journal reproduces the engine exactly. Issue 5 adds a FIX gateway
with the same `send` and the same inbound queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from engine.protocol import ExecutionReport, MassCancelReport


class Gateway(Protocol):
    def send(self, command: Any) -> None:
        """Hand one Venue* command to the venue. Must not call back into the engine."""
        ...


class NullGateway:
    """Drops every command (recovery without a venue, the tick-to-quote benchmark). Keeps a count and the last."""

    __slots__ = ("last", "sent", "supports_mass_cancel")

    def __init__(self, *, supports_mass_cancel: bool = False) -> None:
        self.sent = 0
        self.last: Any = None
        # Recovery and event replay must cancel the way the live gateway did (see `Engine._cancel_scope`).
        self.supports_mass_cancel = supports_mass_cancel

    def send(self, command: Any) -> None:
        self.sent += 1
        self.last = command


class InProcessGateway:
    """Sends to an in-process `engine.venue.Venue` and queues its answers in `inbox`.

    Only what our session would see is queued: execution reports of `account` and all market data. Messages about
    other accounts (the background flow's orders our order traded with) go to `observer`, so a `PoissonFlow` can keep
    its open-order book right (`observer=flow.observe`).

    `supports_mass_cancel`: `engine.venue.Venue` handles `VenueMassCancel` (one `MassCancelReport` naming every
    order it canceled), so the kill switch of a firm or instrument scope sends one;
    pass False for a venue double that does not.
    """

    __slots__ = ("account", "inbox", "observer", "sent", "supports_mass_cancel", "venue")

    def __init__(
        self,
        venue: Any,
        account: str,
        *,
        observer: Callable[[list], None] | None = None,
        supports_mass_cancel: bool = True,
    ) -> None:
        self.venue = venue
        self.account = account
        self.observer = observer
        self.inbox: deque = deque()
        self.sent = 0
        self.supports_mass_cancel = supports_mass_cancel

    def send(self, command: Any) -> None:
        self.sent += 1
        messages = self.venue.handle(command)
        if self.observer is not None:
            self.observer(messages)
        self.deliver(messages)

    def deliver(self, messages: list) -> None:
        """Queue venue messages for the engine: our own answers, and what other participants caused (market data)."""
        account = self.account
        inbox = self.inbox
        for msg in messages:
            kind = type(msg)
            if (kind is ExecutionReport or kind is MassCancelReport) and msg.account != account:
                continue
            inbox.append(msg)
