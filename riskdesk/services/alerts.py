"""Alerts for the risk officers (RTS 6 Art. 16): stored, pushed live on topic `alerts`, acknowledged with a comment.

`raise_alert` is the one way any app raises an alert (the shared contract): it writes the row and, once the
transaction commits, publishes the topic `alerts`, which every console page listening for it receives within the
bridge-independent path Redis -> channel layer -> websocket.

The topic's data is the list of the newest alerts (`PUBLISHED`, newest first), each carrying its own audience,
read from the table when the change commits: a live topic keeps only its latest state, so publishing one alert at
a time would let a second alert in the same instant hide the first, and the consumer filters per alert, so an alert
for another role never hides one for yours.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from compliance.models import AuditAction
from compliance.services import record_audit_event
from riskdesk.errors import DeskError
from riskdesk.models import Alert, AlertKind, AlertSeverity
from trading import live

TOPIC = "alerts"
PUBLISHED = 50  # alerts in the topic's data
# Alerts about the trading itself (a breach, a trigger or an officer stopping it, the engine link lost) are the
# traders' business as much as the officers': the trader console shows them.
TRADING_AUDIENCE = ("risk_officer", "trader")


class AlertError(DeskError):
    """Bad alert input or action; carries a code like every desk error."""


def alert_data(alert: Alert) -> dict[str, Any]:
    """The JSON shape of an alert on the live topic and in the page."""
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "severity": alert.severity,
        "title": alert.title,
        # One line for consoles that show the detail as text; the fields themselves in detail_data.
        "detail": summary(alert.detail),
        "detail_data": alert.detail,
        "source": alert.source,
        "occurrences": alert.occurrences,
        "raised_at": alert.raised_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "acknowledged_by": alert.acknowledged_by.get_username() if alert.acknowledged_by_id else None,
        "acknowledged_at": alert.acknowledged_at.isoformat() if alert.acknowledged_at else None,
        "ack_comment": alert.ack_comment,
        "audience": list(alert.audience or ()),
        "acknowledged": alert.acknowledged_at is not None,
    }


def summary(detail: dict[str, Any]) -> str:
    if not detail:
        return ""
    if detail.get("reason"):
        return str(detail["reason"])
    return ", ".join(f"{key} {value}" for key, value in detail.items() if not isinstance(value, dict | list))


def published_data() -> dict[str, Any]:
    """The topic's data: the newest alerts as they are in the table now."""
    return {"alerts": [alert_data(alert) for alert in recent_alerts(PUBLISHED)]}


def publish_alerts() -> None:
    """Publish the topic from the table (call on commit). `seq` is the wall clock taken *before* the read: a read
    that starts later sees every alert an earlier one saw, so the highest seq always carries the most complete
    list, even when a publisher stalls between reading and sending (the store and the live hub keep the higher
    seq, whatever order the messages arrive in)."""
    now = time.time_ns()
    data = published_data()
    live.publish(TOPIC, data=data, seq=now, ts=now, engine_id="riskdesk")


def _publish(alert: Alert) -> None:
    transaction.on_commit(publish_alerts)


def raise_alert(
    *,
    kind: str,
    severity: str,
    title: str,
    detail: dict[str, Any] | None = None,
    source: str = "",
    dedupe_key: str | None = None,
    audience: Iterable[str] = ("risk_officer",),
) -> Alert:
    """Store an alert and publish it on commit. With a `dedupe_key`, an open alert with the same key counts one
    more occurrence (and is published again) instead of a new row."""
    kind, severity = AlertKind(kind), AlertSeverity(severity)
    now = timezone.now()
    key = (dedupe_key or "")[:200]
    with transaction.atomic():
        if key:
            existing = Alert.objects.select_for_update().filter(dedupe_key=key, acknowledged_at__isnull=True).first()
            if existing is not None:
                return _repeat(existing, now, detail)
        try:
            with transaction.atomic():  # a savepoint: losing the race to another raiser is not an error
                alert = Alert.objects.create(
                    kind=kind,
                    severity=severity,
                    title=title[:200],
                    detail=detail or {},
                    source=source[:100],
                    dedupe_key=key,
                    audience=list(audience),
                    raised_at=now,
                    last_seen_at=now,
                )
        except IntegrityError:
            existing = Alert.objects.select_for_update().get(dedupe_key=key, acknowledged_at__isnull=True)
            return _repeat(existing, now, detail)
        _publish(alert)
    return alert


def _repeat(alert: Alert, now, detail: dict[str, Any] | None) -> Alert:
    Alert.objects.filter(pk=alert.pk).update(occurrences=F("occurrences") + 1, last_seen_at=now)
    if detail:
        Alert.objects.filter(pk=alert.pk).update(detail=detail)
    alert.refresh_from_db()
    _publish(alert)
    return alert


def annotate_alert(*, dedupe_key: str, detail: dict[str, Any]) -> Alert | None:
    """Add facts to the open alert with this key (not another occurrence), and publish it again."""
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(dedupe_key=dedupe_key, acknowledged_at__isnull=True).first()
        if alert is None:
            return None
        alert.detail = {**alert.detail, **detail}
        alert.save(update_fields=["detail"])
        _publish(alert)
    return alert


def acknowledge_alert(*, actor: AbstractBaseUser, alert_id: int, comment: str) -> Alert:
    """Close an open alert with the officer's comment (audited). Acknowledging twice is refused."""
    if actor is None or not actor.has_perm("riskdesk.view_risk_desk"):
        raise AlertError("PERMISSION_DENIED", "requires riskdesk.view_risk_desk")
    comment = comment.strip()
    if not comment:
        raise AlertError("ALERT_COMMENT_REQUIRED", "an acknowledgement needs a comment", field="comment")
    with transaction.atomic():
        alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
        if alert is None:
            raise AlertError("ALERT_UNKNOWN", f"no alert {alert_id}")
        if alert.acknowledged_at is not None:
            raise AlertError(
                "ALERT_ALREADY_ACKNOWLEDGED",
                f"already acknowledged by {alert.acknowledged_by.get_username()} at {alert.acknowledged_at:%H:%M:%S}",
            )
        alert.acknowledged_by = actor
        alert.acknowledged_at = timezone.now()
        alert.ack_comment = comment
        alert.save(update_fields=["acknowledged_by", "acknowledged_at", "ack_comment"])
        record_audit_event(
            actor=actor,
            action=AuditAction.ALERT_ACKNOWLEDGED,
            target=f"alert {alert.pk}",
            reason=comment,
            details={"kind": alert.kind, "severity": alert.severity, "title": alert.title},
        )
        _publish(alert)
    return alert


def open_alerts(limit: int = 100) -> list[Alert]:
    return list(Alert.objects.filter(acknowledged_at__isnull=True).select_related("acknowledged_by")[:limit])


def recent_alerts(limit: int = 50) -> list[Alert]:
    return list(Alert.objects.select_related("acknowledged_by")[:limit])
