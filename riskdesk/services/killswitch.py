"""Kill switches (HALTED), reduce-only (REDUCING) and resume, per firm, strategy or instrument.

Each action is one engine command naming the officer and the reason; the engine answers with the scope's state,
which is recorded next to the request and in the audit trail. A halt is complete when the engine's HaltCompleted
says every working order in scope was cancel-acknowledged; the event watcher (`riskdesk.services.watcher`) stores
its elapsed time on the action.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from compliance.models import AuditAction
from compliance.services import record_audit_event
from console.engine_client import EngineClientError, new_command_id
from engine.protocol import CommandAccepted, HaltTrading, ReduceTrading, ResumeTrading
from riskdesk.errors import DeskError
from riskdesk.models import AlertKind, AlertSeverity, KillSwitchAction, StateAction, scope_label
from riskdesk.services.alerts import TRADING_AUDIENCE, raise_alert
from riskdesk.services.engine import now_ns, send_command
from riskdesk.services.limit_rules import scope_of
from riskdesk.services.scopes import validate_scope

_COMMANDS = {StateAction.HALT: HaltTrading, StateAction.REDUCE: ReduceTrading, StateAction.RESUME: ResumeTrading}
_SEVERITY = {
    StateAction.HALT: AlertSeverity.CRITICAL,
    StateAction.REDUCE: AlertSeverity.WARNING,
    StateAction.RESUME: AlertSeverity.INFO,
}
_PERMISSIONS = {
    StateAction.HALT: "riskdesk.trigger_kill_switch",
    StateAction.REDUCE: "riskdesk.trigger_kill_switch",
    StateAction.RESUME: "riskdesk.resume_trading",
}


class KillSwitchError(DeskError):
    pass


def set_trading_state(
    *, actor: AbstractBaseUser, action: str, kind: str, name: str, reason: str, confirmed: bool
) -> KillSwitchAction:
    """Send a halt, reduce or resume for one scope and record the engine's answer (audited as KILL / RESUME).
    Refuses without the permission, a reason or the officer's confirmation; an engine that does not answer or
    refuses is recorded and raised as a KillSwitchError, so the officer knows the state did not change."""
    action = StateAction(action)
    if actor is None or not actor.has_perm(_PERMISSIONS[action]):
        raise KillSwitchError("PERMISSION_DENIED", f"requires {_PERMISSIONS[action]}")
    validate_scope(kind, name)
    reason = reason.strip()
    if not reason:
        raise KillSwitchError("STATE_REASON_REQUIRED", "say why", field="reason")
    if len(reason) > 512:
        raise KillSwitchError("STATE_REASON_TOO_LONG", "at most 512 characters", field="reason")
    if not confirmed:
        raise KillSwitchError("STATE_NOT_CONFIRMED", "tick the confirmation to send it", field="confirm")
    scope = scope_of(kind, name)
    record = KillSwitchAction.objects.create(
        action=action,
        scope_kind=kind,
        scope_name=scope.name,
        reason=reason,
        operator=actor,
        command_id=new_command_id(),
    )
    cmd = _COMMANDS[action](
        command_id=record.command_id, operator=actor.get_username()[:64], ts=now_ns(), scope=scope, reason=reason
    )
    try:
        reply = send_command(cmd)
    except EngineClientError as exc:
        record.engine_code, record.engine_reason = exc.code, exc.reason[:500]
    else:
        if type(reply) is CommandAccepted:
            record.acknowledged_at = timezone.now()
            record.engine_event_seq = reply.event_seq
            record.engine_state = reply.trading_state.name if reply.trading_state is not None else ""
        else:
            record.engine_code = getattr(reply, "code", type(reply).__name__)
            record.engine_reason = getattr(reply, "reason", "")
    record.save()
    record_audit_event(
        actor=actor,
        action=AuditAction.RESUME if action == StateAction.RESUME else AuditAction.KILL,
        target=f"trading state {scope_label(kind, scope.name)}",
        reason=reason,
        details={
            "action": action.value,
            "command_id": record.command_id,
            "acknowledged": record.acknowledged_at is not None,
            "engine_state": record.engine_state,
            "engine_event_seq": record.engine_event_seq,
            "engine_code": record.engine_code,
            "engine_reason": record.engine_reason,
        },
    )
    if record.acknowledged_at is not None:
        # The traders learn from their console that an officer stopped (or restarted) them, and why.
        label = scope_label(kind, scope.name)
        raise_alert(
            kind=AlertKind.TRADING_STATE,
            severity=_SEVERITY[action],
            title=f"{action.label} {label} by {actor.get_username()}: now {record.engine_state}",
            detail={
                "reason": reason,
                "action": action.value,
                "scope_kind": kind,
                "scope_name": scope.name,
                "state": record.engine_state,
                "operator": actor.get_username(),
                "command_id": record.command_id,
            },
            source="riskdesk",
            audience=TRADING_AUDIENCE,
        )
    else:
        raise KillSwitchError(
            record.engine_code or "ENGINE_NO_ANSWER",
            f"the engine did not apply the {action.label.lower()}: {record.engine_reason or 'no answer'}",
        )
    return record


def record_halt_completed(*, command_id: str, orders_canceled: int, elapsed_ns: int) -> int:
    """Store the engine's HaltCompleted figures on the halt that asked for them; returns rows updated."""
    if not command_id:
        return 0
    return KillSwitchAction.objects.filter(command_id=command_id, halt_elapsed_ns__isnull=True).update(
        orders_canceled=orders_canceled, halt_elapsed_ns=elapsed_ns
    )


def recent_actions(limit: int = 20) -> list[KillSwitchAction]:
    return list(KillSwitchAction.objects.select_related("operator")[:limit])
