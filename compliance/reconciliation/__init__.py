"""Three-way reconciliation: engine state vs the database vs the venue.

Runs by Celery beat (`compliance.tasks.reconcile_task`), on demand from the reconciliation page, and when the
engine (re)starts (`reconcile_on_engine_start`: the console's engine link goes from down, or unknown, to up).
Each difference becomes a `ReconciliationBreak`; a run with breaks raises one alert for compliance and risk, and a
compliance officer resolves each break with a comment, which is audited.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from compliance.models import (
    AuditAction,
    BreakSeverity,
    ReconciliationBreak,
    ReconciliationRun,
    ReconciliationStatus,
    ReconciliationTrigger,
)
from compliance.reconciliation.collect import CollectError, db_side, engine_side, venue_side, wait_for_bridge
from compliance.reconciliation.compare import Finding, compare
from compliance.services import record_audit_event
from console.engine_client import EngineClient, EngineClientError

log = logging.getLogger(__name__)

SEVERITY_ORDER = [BreakSeverity.INFO, BreakSeverity.WARNING, BreakSeverity.CRITICAL]


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def start_reconciliation(*, trigger: str, requested_by: str = "") -> ReconciliationRun:
    """A run row in RUNNING state, committed, so the page shows it while the task works."""
    return ReconciliationRun.objects.create(trigger=ReconciliationTrigger(trigger), requested_by=requested_by[:150])


def request_reconciliation(*, user, ip_address: str | None = None) -> ReconciliationRun:
    """On demand from the page: queue the run on commit, audited."""
    with transaction.atomic():
        run = start_reconciliation(trigger=ReconciliationTrigger.ON_DEMAND, requested_by=user.get_username())
        record_audit_event(
            actor=user, action=AuditAction.RECONCILIATION_RUN, target=f"reconciliation:{run.pk}", ip_address=ip_address
        )
        from compliance.tasks import reconcile_task

        transaction.on_commit(lambda: reconcile_task.delay(run_id=run.pk))
    return run


def run_reconciliation(*, run: ReconciliationRun) -> ReconciliationRun:
    """Collect the three sides, store every difference as a break, alert. Not atomic: it talks to the engine.
    Whatever goes wrong, the run ends DONE or FAILED: a run left RUNNING would keep the page waiting forever."""
    try:
        return _reconcile(run)
    except Exception as exc:
        _fail(run, "RECON_FAILED", f"{type(exc).__name__}: {exc}")
        raise


def _reconcile(run: ReconciliationRun) -> ReconciliationRun:
    try:
        client = EngineClient.from_settings(retries=2)
    except EngineClientError as exc:
        return _fail(run, exc.code, exc.reason)
    try:
        engine = engine_side(client)
        run.engine_id, run.engine_seq = engine.engine_id, engine.seq
        wait_for_bridge(engine.engine_id, engine.seq, timeout_s=_setting("COMPLIANCE_RECON_BRIDGE_WAIT_S", 5))
        sides = db_side(engine.engine_id, engine.orders, through_seq=engine.seq)
        sides.engine_orders, sides.engine_positions = engine.orders, engine.positions
        try:
            sides.venue, sides.venue_unanswered = venue_side(
                client, after_seq=engine.seq, timeout_s=_setting("COMPLIANCE_RECON_VENUE_TIMEOUT_S", 15)
            )
            run.venue_checked = True
        except (CollectError, EngineClientError) as exc:
            # Engine and database are still compared; the run says the venue leg is missing and why.
            run.error_code, run.error = getattr(exc, "code", "VENUE_UNAVAILABLE"), str(exc)
    except (CollectError, EngineClientError) as exc:
        return _fail(run, exc.code, exc.reason)
    finally:
        client.close()
    findings = compare(sides)
    run.engine_orders = len(sides.engine_orders)
    run.db_orders = len(sides.db_orders)
    run.venue_orders = len(sides.venue or ())
    run.positions = len(set(sides.engine_positions) | set(sides.db_positions))
    return _store(run, findings)


def _fail(run: ReconciliationRun, code: str, reason: str) -> ReconciliationRun:
    run.status, run.error_code, run.error, run.finished_at = ReconciliationStatus.FAILED, code, reason, timezone.now()
    run.save()
    return run


@transaction.atomic
def _store(run: ReconciliationRun, findings: list[Finding]) -> ReconciliationRun:
    ReconciliationBreak.objects.bulk_create(
        [
            ReconciliationBreak(
                run=run,
                kind=f.kind,
                severity=f.severity,
                strategy_id=f.strategy_id,
                symbol=f.symbol,
                client_order_id=f.client_order_id,
                detail=f.detail,
                values=f.values,
            )
            for f in findings
        ]
    )
    run.status, run.finished_at = ReconciliationStatus.DONE, timezone.now()
    run.save()
    if findings:
        _alert(run, findings)
    return run


def _alert(run: ReconciliationRun, findings: list[Finding]) -> None:
    try:
        from riskdesk.services.alerts import raise_alert
    except ImportError:  # the risk desk is an optional app in some deployments; the breaks are stored anyway
        log.warning("reconciliation run %s: %d breaks, no alert service", run.pk, len(findings))
        return
    worst = max((f.severity for f in findings), key=SEVERITY_ORDER.index)
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    raise_alert(
        kind="reconciliation_break",
        severity=str(worst),
        title=f"Reconciliation found {len(findings)} break{'s' if len(findings) != 1 else ''}",
        detail={"run": run.pk, "engine_id": run.engine_id, "counts": counts},
        source="compliance.reconciliation",
        dedupe_key=f"reconciliation:{run.engine_id}",
        audience=("compliance_officer", "risk_officer"),
    )


class BreakError(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@transaction.atomic
def resolve_break(*, user, break_id: int, comment: str, ip_address: str | None = None) -> ReconciliationBreak:
    comment = comment.strip()
    if not comment:
        raise BreakError("RECON_COMMENT_REQUIRED", "a resolution needs a comment saying what was done")
    # Locked so two officers resolving the same break at once cannot both succeed.
    item = ReconciliationBreak.objects.select_for_update().get(pk=break_id)
    if item.resolved_at is not None:
        raise BreakError("RECON_ALREADY_RESOLVED", f"break {item.pk} was resolved by {item.resolved_by}")
    item.resolved_at, item.resolved_by, item.resolution = timezone.now(), user, comment
    item.save(update_fields=["resolved_at", "resolved_by", "resolution"])
    record_audit_event(
        actor=user,
        action=AuditAction.RECONCILIATION_RESOLVED,
        target=f"reconciliation_break:{item.pk}",
        details={
            "run": item.run_id,
            "kind": item.kind,
            "severity": item.severity,
            "client_order_id": item.client_order_id,
            "strategy_id": item.strategy_id,
            "symbol": item.symbol,
        },
        reason=comment,
        ip_address=ip_address,
    )
    return item


ENGINE_LINK_KEY = "compliance:reconciliation:engine_link_up"


def reconcile_on_engine_start() -> ReconciliationRun | None:
    """Called by beat every few seconds: when the console's engine link comes up (the engine started or came
    back), reconcile before anyone relies on the engine's state. The previous link state is kept in Redis."""
    import redis

    from console.services.engine_link import last_engine_link

    link = last_engine_link()
    up = bool(link and link.ok and link.age_s < settings.ENGINE_HEARTBEAT_STALE_S)
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        key = f"{settings.CHANNEL_LAYER_PREFIX}:{ENGINE_LINK_KEY}"
        previous = client.getset(key, json.dumps(up))
    finally:
        client.close()
    was_up = previous is not None and json.loads(previous)
    if up and not was_up:
        return run_reconciliation(run=start_reconciliation(trigger=ReconciliationTrigger.ENGINE_START))
    return None
