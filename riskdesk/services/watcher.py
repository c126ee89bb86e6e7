"""The alert watcher: reads the engine's event stream and turns risk events into alerts (Celery beat, every second).

It reads by replay from its own cursor (`EventCursor`), straight from the engine's journal, so alerts do not wait
for, or depend on, the persistence bridge: a limit breach (OrderDenied with a RISK_/STATE_ code), a burst of
denials, an automatic trigger (TradingStateChanged with a code and no operator). HaltCompleted events complete the
kill-switch actions that asked for them. A first run starts at the engine's current sequence number: alerts are
about now, not the engine's whole history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from console.engine_client import EngineClientError, EventGap
from console.services.engine_link import last_engine_link
from engine.protocol import HaltCompleted, OrderDenied, TradingStateChanged
from riskdesk.models import AlertKind, AlertSeverity, EventCursor
from riskdesk.services.alerts import TRADING_AUDIENCE, annotate_alert, raise_alert
from riskdesk.services.engine import engine_client
from riskdesk.services.killswitch import record_halt_completed

OPERATOR = "riskdesk-watcher"
DENIAL_PREFIXES = ("RISK_", "STATE_")


@dataclass
class ScanResult:
    engine_id: str = ""
    events: int = 0
    alerts: list[int] = field(default_factory=list)
    skipped: str = ""


def _burst_settings() -> tuple[int, int]:
    count = int(getattr(settings, "RISK_DENIED_BURST_COUNT", 20))
    window_s = int(getattr(settings, "RISK_DENIED_BURST_WINDOW_S", 10))
    return count, window_s * 1_000_000_000


def scan_engine_events() -> ScanResult:
    """Read every engine event since the cursor and raise the alerts they call for. Safe to run concurrently: the
    cursor row is locked for the scan and a second scanner skips."""
    result = ScanResult()
    try:
        with engine_client(retries=1) as client:
            snapshot = None
            cursor = EventCursor.objects.order_by("-updated_at").first()
            if cursor is None:
                snapshot = client.snapshot(operator=OPERATOR)
                EventCursor.objects.get_or_create(
                    engine_id=snapshot.engine_id, defaults={"last_seq": snapshot.seq, "recent_denials": {}}
                )
                result.engine_id, result.skipped = snapshot.engine_id, "cursor started at the engine's newest event"
                return result
            with transaction.atomic():
                cursor = EventCursor.objects.select_for_update(skip_locked=True).filter(pk=cursor.pk).first()
                if cursor is None:
                    result.skipped = "another scan holds the cursor"
                    return result
                result.engine_id = cursor.engine_id
                try:
                    envelopes = client.replay(cursor.last_seq + 1, operator=OPERATOR)
                except EventGap:
                    # The journal no longer has our position: resume at the engine's now.
                    _restart(client.snapshot(operator=OPERATOR), result, "events lost to a gap")
                    return result
                if not envelopes:
                    # A live engine beats every second, so nothing new may mean our cursor is past its newest
                    # event: another engine, or one started on a fresh journal. Then follow that one from its now.
                    snapshot = client.snapshot(operator=OPERATOR)
                    if snapshot.engine_id != cursor.engine_id or snapshot.seq < cursor.last_seq:
                        _restart(snapshot, result, "a different engine or journal")
                    return result
                for envelope in envelopes:
                    if envelope.seq <= cursor.last_seq:
                        continue
                    alert_id = _handle(cursor, envelope)
                    if alert_id is not None:
                        result.alerts.append(alert_id)
                    cursor.last_seq = envelope.seq
                    result.events += 1
                cursor.save(update_fields=["last_seq", "recent_denials", "updated_at"])
    except EngineClientError as exc:
        result.skipped = str(exc)
    return result


def _restart(snapshot, result: ScanResult, why: str) -> None:
    """Follow the engine that answered from its newest event on (its own cursor row, by engine id)."""
    EventCursor.objects.update_or_create(
        engine_id=snapshot.engine_id, defaults={"last_seq": snapshot.seq, "recent_denials": {}}
    )
    result.engine_id = snapshot.engine_id
    result.skipped = f"{why}; resumed at the engine's newest event"


def _handle(cursor: EventCursor, envelope) -> int | None:
    event = envelope.event
    kind = type(event)
    if kind is OrderDenied and event.code.startswith(DENIAL_PREFIXES):
        alert = raise_alert(
            kind=AlertKind.LIMIT_BREACH,
            severity=AlertSeverity.WARNING,
            title=f"{event.code}: order {event.client_order_id} of {event.strategy_id} in {event.symbol} denied",
            detail={
                "code": event.code,
                "reason": event.reason,
                "strategy_id": event.strategy_id,
                "symbol": event.symbol,
                "client_order_id": event.client_order_id,
                "engine_id": envelope.engine_id,
                "seq": envelope.seq,
            },
            source="engine",
            dedupe_key=f"limit_breach:{event.code}:{event.strategy_id}:{event.symbol}",
            audience=TRADING_AUDIENCE,
        )
        burst = _count_denial(cursor, event.strategy_id, envelope.ts)
        if burst is not None:
            raise_alert(
                kind=AlertKind.DENIED_BURST,
                severity=AlertSeverity.CRITICAL,
                title=f"{burst} orders of {event.strategy_id} denied within {_burst_settings()[1] // 10**9} s",
                detail={"strategy_id": event.strategy_id, "denials": burst, "last_code": event.code},
                source="engine",
                dedupe_key=f"denied_burst:{event.strategy_id}",
                audience=TRADING_AUDIENCE,
            )
        return alert.pk
    if kind is TradingStateChanged and event.code and not event.operator:
        scope = "firm" if not event.scope.name else f"{event.scope.kind.name.lower()} {event.scope.name}"
        alert = raise_alert(
            kind=AlertKind.TRIGGER_FIRED,
            severity=AlertSeverity.CRITICAL,
            title=f"{event.code}: {scope} {event.previous.name} -> {event.state.name}",
            detail={
                "code": event.code,
                "reason": event.reason,
                "scope_kind": event.scope.kind.name.lower(),
                "scope_name": event.scope.name,
                "state": event.state.name,
                "previous": event.previous.name,
                "seq": envelope.seq,
            },
            source="engine",
            dedupe_key=f"trigger_fired:{event.code}:{event.scope.kind.name}:{event.scope.name}",
            audience=TRADING_AUDIENCE,
        )
        return alert.pk
    if kind is HaltCompleted:
        if event.command_id:
            record_halt_completed(
                command_id=event.command_id, orders_canceled=event.orders_canceled, elapsed_ns=event.elapsed_ns
            )
        elif event.code:
            # An automatic halt: its time to flat belongs on the trigger's alert.
            annotate_alert(
                dedupe_key=f"trigger_fired:{event.code}:{event.scope.kind.name}:{event.scope.name}",
                detail={"halt_elapsed_ns": event.elapsed_ns, "orders_canceled": event.orders_canceled},
            )
    return None


def _count_denial(cursor: EventCursor, strategy_id: str, ts: int) -> int | None:
    """Remember the denial's engine time per strategy; the count in the window when it reaches the burst size."""
    threshold, window_ns = _burst_settings()
    recent = [t for t in cursor.recent_denials.get(strategy_id, []) if t > ts - window_ns]
    recent.append(ts)
    cursor.recent_denials[strategy_id] = recent[-threshold:]
    return len(recent) if len(recent) >= threshold else None


def check_engine_heartbeat() -> int | None:
    """Raise an engine_stale alert when the console's last heartbeat to the engine failed or is too old."""
    link = last_engine_link()
    stale_s = settings.ENGINE_HEARTBEAT_STALE_S
    if link is not None and link.ok and link.age_s <= stale_s:
        return None
    if link is None:
        detail = {"detail": "no heartbeat to the engine has been recorded"}
    else:
        detail = {"detail": link.detail, "age_s": round(link.age_s, 1), "ok": link.ok}
    alert = raise_alert(
        kind=AlertKind.ENGINE_STALE,
        severity=AlertSeverity.CRITICAL,
        title=f"engine heartbeat stale (no accepted heartbeat within {stale_s} s)",
        detail=detail,
        source="console",
        dedupe_key="engine_stale",
        audience=TRADING_AUDIENCE,
    )
    return alert.pk
