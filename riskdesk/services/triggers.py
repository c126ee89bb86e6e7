"""Automatic kill-switch triggers (daily loss, drawdown, reject rate, console heartbeat loss) per scope.

The settings mirror the engine's `TriggerConfig` (engine/trading_state.py, docs/risk.md "Automatic triggers") and
are validated by the same rules, then by the protocol's own checks on the `SetTriggers` that carries them. As with
limits, every change is a new version of the scope's whole trigger set (a `SetTriggers` replaces it, it is not a
patch), sent with the version's own command id, and in force only once the engine accepted it; without an answer
it stays `approved` and `resend_unacknowledged` sends the same command id again (the engine answers a repeated id
once, so a resend never applies twice). The page compares each scope's version in force with the engine's
`StateSnapshot.triggers`, which also carries the triggers of config/engine.toml the desk never set.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max

from compliance.models import AuditAction
from compliance.services import record_audit_event
from console.engine_client import new_command_id
from engine.protocol import ProtocolError, SetTriggers, TradingState, TriggerSettings
from riskdesk.errors import DeskError
from riskdesk.models import LimitScope, ScopeKind, TriggerSetting, TriggerStatus
from riskdesk.services import versioned
from riskdesk.services.engine import codec, now_ns, scope_key, state_snapshot
from riskdesk.services.limit_rules import scope_of
from riskdesk.services.scopes import validate_scope
from riskdesk.services.versioned import SYSTEM_OPERATOR, VersionedSet, name_of

ACTIONS = ("REDUCING", "HALTED")
# (field, kind, label) in the engine's TriggerConfig order.
TRIGGER_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("daily_loss", "decimal", "Daily loss"),
    ("daily_loss_action", "action", "Daily loss action"),
    ("drawdown", "decimal", "Drawdown"),
    ("drawdown_action", "action", "Drawdown action"),
    ("reject_rate", "decimal", "Reject rate (0-1)"),
    ("reject_rate_window_ns", "int", "Reject-rate window (ns)"),
    ("reject_rate_min_orders", "int", "Reject-rate minimum orders"),
    ("reject_rate_action", "action", "Reject-rate action"),
    ("heartbeat_timeout_ns", "int", "Console heartbeat timeout (ns)"),
    ("heartbeat_action", "action", "Heartbeat action"),
)


class TriggerError(DeskError):
    pass


def validate_triggers(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The canonical settings (Decimals as strings, only what is set); TriggerError for what the engine refuses."""
    out: dict[str, Any] = {}
    for name, field_kind, _label in TRIGGER_FIELDS:
        value = config.get(name)
        if value is None or value == "":
            continue
        if field_kind == "decimal":
            try:
                number = Decimal(str(value))
            except InvalidOperation:
                raise TriggerError("TRIGGER_INVALID", f"{name} must be a number", field=name) from None
            if not number.is_finite() or number < 0:
                raise TriggerError("TRIGGER_INVALID", f"{name} must be a non-negative amount", field=name)
            out[name] = format(number.normalize(), "f")
        elif field_kind == "int":
            if isinstance(value, bool) or not str(value).lstrip("-").isdigit():
                raise TriggerError("TRIGGER_INVALID", f"{name} must be a whole number", field=name)
            if int(value) <= 0:
                raise TriggerError("TRIGGER_INVALID", f"{name} must be positive", field=name)
            out[name] = int(value)
        else:
            if value not in ACTIONS:
                raise TriggerError("TRIGGER_INVALID", f"{name} must be REDUCING or HALTED", field=name)
            out[name] = value
    if "reject_rate" in out:
        if not Decimal(0) < Decimal(out["reject_rate"]) <= 1:
            raise TriggerError("TRIGGER_INVALID", "reject_rate must be in (0, 1]", field="reject_rate")
        if "reject_rate_window_ns" not in out:
            raise TriggerError("TRIGGER_INVALID", "reject_rate needs a window", field="reject_rate_window_ns")
    if "heartbeat_timeout_ns" in out and kind != ScopeKind.FIRM:
        raise TriggerError(
            "TRIGGER_INVALID", "the heartbeat trigger is firm-wide (the console is)", field="heartbeat_timeout_ns"
        )
    if kind == ScopeKind.INSTRUMENT and ("daily_loss" in out or "drawdown" in out):
        raise TriggerError(
            "TRIGGER_INVALID", "daily loss and drawdown triggers apply to the firm and strategies", field="daily_loss"
        )
    return out


def to_settings(config: dict[str, Any]) -> TriggerSettings:
    """The wire form of stored settings (unset fields take the protocol's defaults)."""
    values: dict[str, Any] = {}
    for name, field_kind, _label in TRIGGER_FIELDS:
        value = config.get(name)
        if value is None:
            continue
        if field_kind == "decimal":
            values[name] = Decimal(str(value))
        elif field_kind == "action":
            values[name] = TradingState[value]
        else:
            values[name] = int(value)
    return TriggerSettings(**values)


# Each threshold and the fields that only matter when it is set.
_GROUPS = {
    "daily_loss": ("daily_loss", "daily_loss_action"),
    "drawdown": ("drawdown", "drawdown_action"),
    "reject_rate": ("reject_rate", "reject_rate_window_ns", "reject_rate_min_orders", "reject_rate_action"),
    "heartbeat_timeout_ns": ("heartbeat_timeout_ns", "heartbeat_action"),
}


def shown(settings: TriggerSettings) -> dict[str, Any]:
    """What is in force, as the desk stores settings: each threshold that is set with the fields that go with it
    (defaults filled in), Decimals as normalised strings. Two settings the engine treats alike give the same dict
    ("5000" and "5000.00"; an action left unset and HALTED; a window without a rate), so it is also the form the
    desk compares the database with the engine in."""
    out: dict[str, Any] = {}
    for threshold, names in _GROUPS.items():
        if getattr(settings, threshold) is None:
            continue
        for name in names:
            value = getattr(settings, name)
            if isinstance(value, Decimal):
                value = format(value.normalize(), "f")
            elif isinstance(value, TradingState):
                value = value.name
            out[name] = value
    return out


# A larger value lets more through before the trigger fires (a bigger loss, more rejects, a longer silence).
_HIGHER_IS_WEAKER = ("daily_loss", "drawdown", "reject_rate", "reject_rate_min_orders", "heartbeat_timeout_ns")
_ACTION_STRENGTH = {"REDUCING": 0, "HALTED": 1}


def weakened_fields(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The fields on which `new` lets a scope trade on where `old` would have stopped it: a threshold raised or
    removed, an action HALTED -> REDUCING, and a changed reject-rate window (shorter or longer, its effect on
    what trips is not plainly stricter). Adding a trigger or lowering a threshold weakens nothing."""
    before, after = shown(to_settings(old)), shown(to_settings(new))
    weakened: list[str] = []
    for threshold, names in _GROUPS.items():
        if threshold not in before:
            continue
        if threshold not in after:
            weakened.append(threshold)
            continue
        for name in names:
            was, now = before.get(name), after.get(name)
            if was == now or was is None:
                continue
            if now is None or name == "reject_rate_window_ns":
                weakened.append(name)
            elif name in _HIGHER_IS_WEAKER:
                if Decimal(str(now)) > Decimal(str(was)):
                    weakened.append(name)
            elif _ACTION_STRENGTH[now] < _ACTION_STRENGTH[was]:
                weakened.append(name)
    return weakened


def same_settings(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two stored settings put the same triggers in force."""
    return shown(to_settings(a)) == shown(to_settings(b))


def validate_for_engine(kind: str, name: str, stored: dict[str, Any]) -> TriggerSettings:
    """Run the protocol's own checks on the SetTriggers these settings make (what the engine would refuse at the
    edge), naming the field at fault."""
    try:
        settings = to_settings(stored)
        codec().check(
            SetTriggers(command_id="check", operator="check", ts=0, scope=scope_of(kind, name), triggers=settings)
        )
    except ProtocolError as exc:
        field = next((f for f, _k, _l in TRIGGER_FIELDS if f in exc.reason), None)
        raise TriggerError(f"TRIGGER_{exc.code}", exc.reason, field=field) from None
    except (InvalidOperation, KeyError, ValueError, TypeError) as exc:
        raise TriggerError("TRIGGER_INVALID", str(exc)) from None
    return settings


# The dead-man timeout must outlast a few of the console's heartbeats, or the engine halts the firm between two
# healthy beats (a late Celery worker, a slow Redis).
HEARTBEAT_MARGIN = 3


def _check_heartbeat_margin(stored: dict[str, Any]) -> None:
    timeout = stored.get("heartbeat_timeout_ns")
    if timeout is None:
        return
    interval_s = float(django_settings.CELERY_BEAT_SCHEDULE["engine-heartbeat"]["schedule"])
    floor_ns = int(HEARTBEAT_MARGIN * interval_s * 1e9)
    if timeout < floor_ns:
        raise TriggerError(
            "TRIGGER_HEARTBEAT_TOO_SHORT",
            f"the console beats every {interval_s:g} s: a timeout under {floor_ns} ns ({HEARTBEAT_MARGIN} beats) "
            "would halt trading between two healthy heartbeats",
            field="heartbeat_timeout_ns",
        )


def _engine_triggers() -> dict[tuple[str, str], dict[str, Any]] | None:
    """(kind, name) -> the triggers the engine has in force, as the desk stores them; None when it is silent."""
    snapshot = state_snapshot(operator=SYSTEM_OPERATOR)
    return None if snapshot is None else {key: shown(value) for key, value in snapshot_triggers(snapshot).items()}


def _lock_scope(kind: str, name: str) -> LimitScope:
    # The scope's LimitScope row is the desk's one lock per scope (its version counter is the limits').
    scope, _ = LimitScope.objects.get_or_create(kind=kind, name=name)
    return LimitScope.objects.select_for_update().get(pk=scope.pk)


def change_triggers(
    *,
    actor: AbstractBaseUser,
    kind: str,
    name: str,
    config: dict[str, Any],
    reason: str,
    base_version: int | None = None,
) -> TriggerSetting:
    """Record a new version of a scope's triggers. A change that only tightens is sent to the engine at once and
    is in force once the engine acknowledges it; one that weakens a trigger (`weakened_fields`, judged against
    the version in force and any version still waiting for the engine) waits for a second officer's approval, as
    a limit loosening does, so one officer cannot switch the automatic kill switches off alone. `base_version`
    is the newest version the officer saw: a change made against an older one is refused (TRIGGER_STALE_VERSION),
    so two officers editing one scope cannot overwrite each other. Raises TriggerError (nothing changes) on bad
    input."""
    versioned.require(TRIGGERS, actor, "riskdesk.propose_limit")
    validate_scope(kind, name)
    if not reason.strip():
        raise TriggerError("TRIGGER_REASON_REQUIRED", "say why the triggers change", field="reason")
    name = "" if kind == ScopeKind.FIRM else name
    stored = validate_triggers(kind, config)
    _check_heartbeat_margin(stored)
    validate_for_engine(kind, name, stored)
    enforced = _engine_triggers()  # outside the lock: a network round trip
    with transaction.atomic():
        scope = _lock_scope(kind, name)
        rows = TriggerSetting.objects.filter(scope_kind=kind, scope_name=name)
        newest = rows.aggregate(v=Max("version"))["v"] or 0
        if base_version is not None and base_version != newest:
            raise versioned.stale(TRIGGERS, scope.label, seen=base_version, newest=newest)
        in_force = rows.filter(status=TriggerStatus.IN_FORCE).first()
        # Against the version in force, as for limits: the newest version recorded may be a superseded, rejected
        # or refused one, and proposing the settings it failed to put in force is a real change.
        if in_force is not None and same_settings(in_force.config, stored):
            raise TriggerError("TRIGGER_UNCHANGED", "these are the current trigger settings")
        if in_force is None and enforced is None:
            raise versioned.engine_unavailable(TRIGGERS, scope.label)
        current = in_force.config if in_force is not None else enforced.get((kind, name), {})
        unanswered = list(rows.filter(status=TriggerStatus.APPROVED))
        weakened = versioned.weakened_against(weakened_fields, stored, [current, *(s.config for s in unanswered)])
        versioned.replace_waiting(
            rows, sent_at_once=not weakened, pending_reason="replaced by a newer version before it was approved"
        )
        setting = TriggerSetting.objects.create(
            scope_kind=kind,
            scope_name=name,
            version=newest + 1,
            config=stored,
            reason=reason.strip(),
            changed_by=actor,
            status=TriggerStatus.PENDING_APPROVAL if weakened else TriggerStatus.APPROVED,
            weakened=weakened,
            command_id=new_command_id(),
        )
        record_audit_event(
            actor=actor,
            action=AuditAction.TRIGGERS_PROPOSED,
            target=f"triggers {setting.label}",
            reason=setting.reason,
            details={
                "version": setting.version,
                "config": stored,
                "previous": current,
                "weakened": weakened,
                "needs_approval": bool(weakened),
                "command_id": setting.command_id,
            },
        )
    if weakened:
        return setting
    return send_trigger_setting(setting=setting)


def approve_trigger_change(*, actor: AbstractBaseUser, setting_id: int, comment: str = "") -> TriggerSetting:
    """The second officer's approval of a change that weakens a trigger; it is then sent to the engine. The
    proposer cannot approve their own change, and a version a newer one replaced cannot be approved. The settings
    are checked again against the engine's rules of now (audited as TRIGGERS_APPROVED)."""

    def recheck(setting: TriggerSetting) -> None:
        _check_heartbeat_margin(setting.config)
        validate_for_engine(setting.scope_kind, setting.scope_name, setting.config)

    setting = versioned.review(
        TRIGGERS, actor=actor, version_id=setting_id, comment=comment, approve=True, recheck=recheck
    )
    return send_trigger_setting(setting=setting)


def reject_trigger_change(*, actor: AbstractBaseUser, setting_id: int, comment: str) -> TriggerSetting:
    return versioned.review(TRIGGERS, actor=actor, version_id=setting_id, comment=comment, approve=False)


def send_trigger_setting(*, setting: TriggerSetting) -> TriggerSetting:
    """Send an approved version's SetTriggers under the scope's lock and record the engine's answer
    (`versioned.send`), so an older set never reaches the engine after a newer one."""
    return versioned.send(TRIGGERS, setting)[0]


def _command(scope: LimitScope, setting: TriggerSetting) -> SetTriggers:
    return SetTriggers(
        command_id=setting.command_id,
        operator=name_of(versioned.operator_of(TRIGGERS, setting))[:64],
        ts=now_ns(),
        scope=scope_of(setting.scope_kind, setting.scope_name),
        triggers=to_settings(setting.config),
    )


def _accepted(scope: LimitScope, setting: TriggerSetting, reply: Any, newest: bool) -> None:
    operator = versioned.operator_of(TRIGGERS, setting)
    record_audit_event(
        actor=operator,
        actor_username=name_of(operator),
        action=AuditAction.TRIGGERS_CHANGED,
        target=f"triggers {setting.label}",
        reason=setting.reason,
        details={
            "version": setting.version,
            "config": setting.config,
            "command_id": setting.command_id,
            "in_force": newest,
            "engine_event_seq": reply.event_seq,
        },
    )


def _siblings(setting: TriggerSetting):
    return TriggerSetting.objects.filter(scope_kind=setting.scope_kind, scope_name=setting.scope_name)


TRIGGERS = VersionedSet(
    code="TRIGGER",
    error=TriggerError,
    model=TriggerSetting,
    content="config",
    proposer="changed_by",
    related=("changed_by", "approved_by"),
    approved_action=AuditAction.TRIGGERS_APPROVED,
    rejected_action=AuditAction.TRIGGERS_REJECTED,
    approval_details=("weakened",),
    lock_scope=lambda setting: _lock_scope(setting.scope_kind, setting.scope_name),
    siblings=_siblings,
    in_force=lambda scope, setting: _siblings(setting).filter(status=TriggerStatus.IN_FORCE).first(),
    command=_command,
    accepted=_accepted,
)


def resend_unacknowledged(*, older_than_s: float = 2.0) -> int:
    """Send again the approved versions the engine has not answered, and those never sent
    (`versioned.resend_unacknowledged`). Returns how many were sent."""
    return versioned.resend_unacknowledged(TRIGGERS, older_than_s=older_than_s)


def snapshot_triggers(snapshot: Any) -> dict[tuple[str, str], TriggerSettings]:
    """(kind, name) -> the triggers the engine has in force, from a StateSnapshot."""
    return {scope_key(entry.scope): entry.triggers for entry in snapshot.triggers}
