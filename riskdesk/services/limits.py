"""Limit changes: propose, approve (four-eyes), reject, send to the engine, revert expired overrides.

A tightening goes to the engine at once; a loosening waits for a second risk officer (never its proposer). Either
way a version is in force only once the engine accepted its SetLimits; until then the engine keeps enforcing the
previous one, which is what the screen shows. Every step is audited.

Concurrency: each scope has a `LimitScope` row holding the newest version number. A proposal names the version its
author saw (`base_version`); the row is locked (SELECT ... FOR UPDATE) and a proposal made against an older number
is refused with LIMIT_STALE_VERSION, so two officers editing the same scope cannot overwrite each other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from compliance.models import AuditAction
from compliance.services import record_audit_event
from console.engine_client import new_command_id
from engine.protocol import SetLimits
from riskdesk.models import LimitChange, LimitScope, LimitStatus, LimitVersion, ScopeKind
from riskdesk.services import limit_rules, versioned
from riskdesk.services.engine import codec, now_ns, snapshot_limits, state_snapshot
from riskdesk.services.limit_rules import LimitError
from riskdesk.services.scopes import strategy_symbols, validate_scope
from riskdesk.services.versioned import SYSTEM_OPERATOR, VersionedSet, name_of


def in_force_limits() -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> the limits the engine acknowledged last, per scope."""
    return {
        (scope.kind, scope.name): scope.in_force.limits
        for scope in LimitScope.objects.select_related("in_force").filter(in_force__isnull=False)
    }


def engine_limits() -> dict[tuple[str, str], dict[str, Any]] | None:
    """(kind, name) -> the limits the engine enforces now; None when it does not answer. Scopes the desk never
    changed carry the engine's start-up limits (config/engine.toml [[limits]]), which only the engine knows."""
    snapshot = state_snapshot(operator=SYSTEM_OPERATOR)
    return None if snapshot is None else snapshot_limits(snapshot)


def _scope_row(kind: str, name: str, *, lock: bool) -> LimitScope:
    name = "" if kind == ScopeKind.FIRM else name
    scope, _ = LimitScope.objects.get_or_create(kind=kind, name=name)
    if lock:
        scope = LimitScope.objects.select_for_update(of=("self",)).select_related("in_force").get(pk=scope.pk)
    return scope


def permanent_baseline(version: LimitVersion | None) -> LimitVersion | None:
    """The permanent version behind `version`: itself, or for a temporary override the version it reverts to."""
    seen: set[int] = set()
    while version is not None and version.reverts_to_id is not None and version.pk not in seen:
        seen.add(version.pk)
        version = version.reverts_to
    return version


def check_proposal(
    *,
    kind: str,
    name: str,
    limits: dict[str, Any],
    current: dict[str, Any] | None,
    enforced: dict[tuple[str, str], dict[str, Any]] | None = None,
    adopting: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """The canonical limits and the fields they loosen against `current`; raises LimitError for anything the
    desk or the engine would refuse (bad values, the lot grid, hierarchy against the other scopes' limits in
    force, `enforced` filling in scopes the database has none for, no change at all)."""
    validate_scope(kind, name)
    limit_rules.validate_for_engine(kind, name, limits, codec())
    merged = dict(enforced or {}) | in_force_limits()
    others = {key: value for key, value in merged.items() if key != (kind, name)}
    errors = limit_rules.hierarchy_errors(kind, name, limits, others=others, strategy_symbols=strategy_symbols())
    if errors:
        raise errors[0]
    stored = limit_rules.canonical(limits)
    # Recording the engine's own start-up limits as the desk's first version is allowed (`adopting`): it ends
    # the difference between database and engine the screen shows.
    if current is not None and stored == limit_rules.canonical(current) and not adopting:
        raise LimitError("LIMIT_UNCHANGED", "these are the limits already in force")
    return stored, limit_rules.loosened_fields(current or {}, stored) if current is not None else []


def propose_limits(
    *,
    actor: AbstractBaseUser,
    kind: str,
    name: str,
    limits: dict[str, Any],
    base_version: int,
    reason: str,
    expires_at: dt.datetime | None = None,
) -> LimitVersion:
    """Record a new version of a scope's limits. A tightening (nothing loosened) is sent to the engine at once; a
    loosening waits for another officer's approval. An override with `expires_at` reverts to the limits in force
    now when it expires. Raises LimitError (nothing changes) on bad input or a stale `base_version`."""
    versioned.require(LIMITS, actor, "riskdesk.propose_limit")
    if not reason.strip():
        raise LimitError("LIMIT_REASON_REQUIRED", "say why the limit changes", field="reason")
    if expires_at is not None and expires_at <= timezone.now():
        raise LimitError("LIMIT_EXPIRY_IN_PAST", "an override must expire in the future", field="expires_at")
    enforced = engine_limits()  # outside the lock: a network round trip
    with transaction.atomic():
        scope = _scope_row(kind, name, lock=True)
        if base_version != scope.version:
            raise versioned.stale(LIMITS, scope.label, seen=base_version, newest=scope.version)
        if scope.in_force is None and enforced is None:
            raise versioned.engine_unavailable(LIMITS, scope.label)
        current = scope.in_force.limits if scope.in_force else enforced.get((kind, scope.name))
        stored, loosened = check_proposal(
            kind=kind,
            name=scope.name,
            limits=limits,
            current=current,
            enforced=enforced,
            adopting=scope.in_force is None,
        )
        if expires_at is not None and scope.in_force is None:  # a revert goes back to a version kept here
            raise LimitError("LIMIT_NOTHING_TO_REVERT", "an override needs limits in force to return to")
        unanswered = list(LimitVersion.objects.filter(scope=scope, status=LimitStatus.APPROVED))
        baseline = permanent_baseline(scope.in_force)
        # Four eyes hold against every limit this change replaces, not only the one in force: a temporary
        # override's permanent limits (a permanent change made while a looser override is in force would keep
        # the override's values after it expires, without a second approval) and a version sent but not yet
        # answered (the engine may already enforce it).
        replaced = [v for v in [baseline, *unanswered] if v is not None and v.pk != getattr(scope.in_force, "pk", None)]
        loosened = versioned.weakened_against(
            limit_rules.loosened_fields, stored, [v.limits for v in replaced], found=loosened
        )
        versioned.replace_waiting(LimitVersion.objects.filter(scope=scope), sent_at_once=not loosened)
        scope.version += 1
        scope.save(update_fields=["version"])
        version = LimitVersion.objects.create(
            scope=scope,
            version=scope.version,
            limits=stored,
            change=LimitChange.LOOSEN if loosened else LimitChange.TIGHTEN,
            status=LimitStatus.PENDING_APPROVAL if loosened else LimitStatus.APPROVED,
            reason=reason.strip(),
            proposed_by=actor,
            expires_at=expires_at,
            # An override replacing an override returns to the permanent limits, never to the first override's.
            reverts_to=baseline if expires_at is not None else None,
            command_id=new_command_id(),
        )
        record_audit_event(
            actor=actor,
            action=AuditAction.LIMIT_PROPOSED,
            target=f"limits {scope.label}",
            reason=version.reason,
            details={
                "version": version.version,
                "limits": stored,
                "previous": current,
                "loosened": loosened,
                "needs_approval": bool(loosened),
                "expires_at": expires_at.isoformat() if expires_at else None,
                "command_id": version.command_id,
            },
        )
    if not loosened:
        version = send_limit_version(version=version)
    return version


def approve_limit_change(*, actor: AbstractBaseUser, version_id: int, comment: str = "") -> LimitVersion:
    """The second officer's approval of a loosening; it is then sent to the engine. The proposer cannot approve
    their own change, and a proposal that a newer one replaced cannot be approved."""
    versioned.require(LIMITS, actor, "riskdesk.approve_limit")
    enforced = engine_limits()  # outside the lock: a network round trip

    def recheck(version: LimitVersion) -> None:
        if version.expires_at is not None and version.expires_at <= timezone.now():
            raise LimitError("LIMIT_OVERRIDE_EXPIRED", "this temporary override expired before it was approved")
        # The proposal was checked against the limits of that moment; other scopes' limits (the hierarchy) and the
        # engine's rules may have changed since, so the approval checks it again against what is in force now.
        scope = LimitScope.objects.select_related("in_force").get(pk=version.scope_id)
        check_proposal(
            kind=scope.kind,
            name=scope.name,
            limits=version.limits,
            current=scope.in_force.limits if scope.in_force else None,
            enforced=enforced,
            adopting=True,  # approving what is already in force is harmless
        )

    version = versioned.review(
        LIMITS, actor=actor, version_id=version_id, comment=comment, approve=True, recheck=recheck
    )
    return send_limit_version(version=version)


def reject_limit_change(*, actor: AbstractBaseUser, version_id: int, comment: str) -> LimitVersion:
    return versioned.review(LIMITS, actor=actor, version_id=version_id, comment=comment, approve=False)


def send_limit_version(*, version: LimitVersion) -> LimitVersion:
    """Send an approved version's SetLimits under the scope's lock and record the engine's answer
    (`versioned.send`)."""
    return versioned.send(LIMITS, version)[0]


def _lock_scope(version: LimitVersion) -> LimitScope:
    return LimitScope.objects.select_for_update(of=("self",)).select_related("in_force").get(pk=version.scope_id)


def _command(scope: LimitScope, version: LimitVersion) -> SetLimits:
    return SetLimits(
        command_id=version.command_id,
        operator=name_of(versioned.operator_of(LIMITS, version))[:64],
        ts=now_ns(),
        scope=limit_rules.scope_of(scope.kind, scope.name),
        limits=limit_rules.to_risk_limits(limit_rules.parse(version.limits)),
    )


def _accepted(scope: LimitScope, version: LimitVersion, reply, newest: bool) -> None:
    if newest:
        scope.in_force = version
        scope.save(update_fields=["in_force"])
    operator = versioned.operator_of(LIMITS, version)
    record_audit_event(
        actor=operator,
        actor_username=name_of(operator),  # kept when there is no actor: the desk's own revert
        action=AuditAction.LIMIT_APPLIED,
        target=f"limits {scope.label}",
        reason=version.reason,
        details={
            "version": version.version,
            "limits": version.limits,
            "command_id": version.command_id,
            "engine_event_seq": reply.event_seq,
        },
    )


LIMITS = VersionedSet(
    code="LIMIT",
    error=LimitError,
    model=LimitVersion,
    content="limits",
    proposer="proposed_by",
    related=("scope", "approved_by", "proposed_by"),
    approved_action=AuditAction.LIMIT_APPROVED,
    rejected_action=AuditAction.LIMIT_REJECTED,
    lock_scope=_lock_scope,
    siblings=lambda version: LimitVersion.objects.filter(scope_id=version.scope_id),
    in_force=lambda scope, version: scope.in_force,
    command=_command,
    accepted=_accepted,
)


def resend_unacknowledged(*, older_than_s: float = 2.0) -> int:
    """Send again the approved versions the engine has not answered, and those never sent
    (`versioned.resend_unacknowledged`). Returns how many were sent."""
    return versioned.resend_unacknowledged(LIMITS, older_than_s=older_than_s)


def revert_expired_overrides(*, now: dt.datetime | None = None) -> list[LimitVersion]:
    """Put back the limits an expired temporary override replaced, as a new version (a revert is a change the
    officers already agreed to, so it needs no approval). An override that is no longer in force (someone changed
    the scope since) has nothing to revert and is only marked."""
    now = now or timezone.now()
    reverts: list[LimitVersion] = []
    due = LimitVersion.objects.filter(expires_at__lte=now, reverted=False).exclude(
        status__in=[LimitStatus.PENDING_APPROVAL, LimitStatus.APPROVED]
    )
    for override_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            override = (
                LimitVersion.objects.select_for_update(of=("self",))
                .select_related("scope", "reverts_to")
                .get(pk=override_id)
            )
            if override.reverted:
                continue
            scope = LimitScope.objects.select_for_update().get(pk=override.scope_id)
            override.reverted = True
            override.save(update_fields=["reverted"])
            if scope.in_force_id != override.pk or override.reverts_to is None:
                continue
            versioned.replace_waiting(LimitVersion.objects.filter(scope=scope), sent_at_once=False)
            scope.version += 1
            scope.save(update_fields=["version"])
            revert = LimitVersion.objects.create(
                scope=scope,
                version=scope.version,
                limits=override.reverts_to.limits,
                change=LimitChange.REVERT,
                status=LimitStatus.APPROVED,
                reason=f"override v{override.version} expired at {override.expires_at:%Y-%m-%d %H:%M:%S %Z}",
                proposed_by=None,
                command_id=new_command_id(),
            )
            record_audit_event(
                actor=None,
                actor_username=SYSTEM_OPERATOR,
                action=AuditAction.LIMIT_OVERRIDE_EXPIRED,
                target=f"limits {scope.label}",
                reason=revert.reason,
                details={"override_version": override.version, "version": revert.version, "limits": revert.limits},
            )
        reverts.append(send_limit_version(version=revert))
    return reverts
