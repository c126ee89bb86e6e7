"""The mechanism limits and triggers share: versioned whole sets, four eyes, send under the scope's lock, the
engine's acknowledgement and the resend. Each kind keeps its own rules (what loosens a limit, what weakens a
trigger, what the engine is sent) in its own module and describes itself here with a `VersionedSet`.

Every version is a whole set (a SetLimits or SetTriggers replaces the scope's set, it is not a patch), sent with
the version's own command id and in force only once the engine accepted it; without an answer it stays APPROVED
and is sent again with the same command id (the engine answers a repeated id once, so a resend never applies
twice). The scope's `LimitScope` row is the one lock per scope: proposals, reviews and sends take it first, so they
serialise in one order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import models, transaction
from django.utils import timezone

from compliance.services import record_audit_event
from console.engine_client import EngineClientError
from engine.protocol import CommandAccepted
from riskdesk.errors import DeskError
from riskdesk.models import LimitScope, LimitStatus, TriggerStatus
from riskdesk.services.engine import send_command

SYSTEM_OPERATOR = "riskdesk"
# The statuses both kinds' rows move through; the code below compares and writes them for either model, so the two
# enums (which differ only in their labels) must keep one set of values.
if set(LimitStatus.values) != set(TriggerStatus.values):
    raise RuntimeError("LimitStatus and TriggerStatus must have the same values (riskdesk.services.versioned)")
PENDING_APPROVAL, APPROVED, IN_FORCE = LimitStatus.PENDING_APPROVAL, LimitStatus.APPROVED, LimitStatus.IN_FORCE
SUPERSEDED, REJECTED, ENGINE_REJECTED = LimitStatus.SUPERSEDED, LimitStatus.REJECTED, LimitStatus.ENGINE_REJECTED


@dataclass(frozen=True)
class VersionedSet:
    """One kind of versioned set: how its rows are stored, locked, sent and audited."""

    code: str  # error-code prefix: "LIMIT", "TRIGGER"
    error: type[DeskError]
    model: type[models.Model]
    content: str  # the field holding the set: "limits", "config"
    proposer: str  # the user field of who proposed a version: "proposed_by", "changed_by"
    related: tuple[str, ...]  # select_related of a version locked for a review or a send
    approved_action: str
    rejected_action: str
    lock_scope: Callable[[Any], LimitScope]  # version -> its scope's LimitScope, locked (call inside atomic)
    siblings: Callable[[Any], models.QuerySet]  # version -> every version of its scope
    in_force: Callable[[LimitScope, Any], Any]  # (locked scope, version) -> the version in force, or None
    command: Callable[[LimitScope, Any], Any]  # (locked scope, version) -> the engine command that sends it
    accepted: Callable[[LimitScope, Any, Any, bool], None]  # (scope, version, reply, newest): the kind's own step
    approval_details: tuple[str, ...] = ()  # fields of the version added to the approval's audit details

    @property
    def noun(self) -> str:
        return f"{self.code.lower()}s"


def name_of(user: AbstractBaseUser | None) -> str:
    return user.get_username() if user is not None else SYSTEM_OPERATOR


def operator_of(kind: VersionedSet, version: Any) -> AbstractBaseUser | None:
    """Who puts a version in force: its approver, else its proposer (a tightening is sent without an approval);
    None for the desk's own change (an expired override's revert), which is then `SYSTEM_OPERATOR`. The engine
    command names them as its operator and the audit event of the engine's acceptance as its actor."""
    return version.approved_by or getattr(version, kind.proposer)


def require(kind: VersionedSet, actor: AbstractBaseUser | None, permission: str) -> None:
    if actor is None or not actor.has_perm(permission):
        raise kind.error("PERMISSION_DENIED", f"requires {permission}")


def stale(kind: VersionedSet, label: str, *, seen: int, newest: int) -> DeskError:
    """A proposal made against an older version than the newest: two officers editing one scope must not overwrite
    each other."""
    return kind.error(
        f"{kind.code}_STALE_VERSION",
        f"the {label} {kind.noun} changed while you edited them (you saw version {seen}, the newest is {newest}); "
        "reload and apply your change again",
    )


def engine_unavailable(kind: VersionedSet, label: str) -> DeskError:
    # A scope never changed here: only the engine knows its start-up set, and without it a loosening could not be
    # told from a tightening.
    return kind.error(
        "ENGINE_UNAVAILABLE",
        f"the engine does not answer and the desk has no version of the {label} {kind.noun} to compare with; try "
        "again when the engine is back",
    )


def replace_waiting(rows: models.QuerySet, *, sent_at_once: bool, pending_reason: str = "") -> None:
    """Before a new version of a scope is recorded (scope locked). It replaces one waiting for approval: approving
    that would act on a base that no longer holds. One sent at once also replaces one approved but not yet
    answered: the set replaces the whole set, so sending the older one after it would put replaced values back in
    the engine. (One waiting for approval leaves it: until approved it is only a proposal, and if it is approved
    the send refuses the older one under the scope's lock.)"""
    update: dict[str, Any] = {"status": SUPERSEDED}
    if pending_reason:
        update["engine_reason"] = pending_reason
    rows.filter(status=PENDING_APPROVAL).update(**update)
    if sent_at_once:
        rows.filter(status=APPROVED).update(
            status=SUPERSEDED, engine_reason="replaced by a newer version before the engine answered"
        )


def weakened_against(
    compare: Callable[[dict[str, Any], dict[str, Any]], list[str]],
    new: dict[str, Any],
    replaced: Iterable[dict[str, Any]],
    *,
    found: Iterable[str] = (),
) -> list[str]:
    """The fields `new` weakens (`compare(old, new)`, the kind's own rule) against any of the sets it replaces,
    after those already `found`. Four eyes hold against every one, not only the set in force: a version sent but
    not yet answered may already be what the engine enforces."""
    weakened = list(found)
    for old in replaced:
        weakened += [field for field in compare(old, new) if field not in weakened]
    return weakened


def locked_version(kind: VersionedSet, version_id: int) -> Any:
    """The version, locked after its scope (call inside atomic)."""
    version = kind.model.objects.filter(pk=version_id).first()
    if version is None:
        raise kind.error(f"{kind.code}_UNKNOWN_VERSION", f"no {kind.code.lower()} version {version_id}")
    # Lock the scope first, as proposals and sends do, so they serialise on one scope in one order.
    kind.lock_scope(version)
    return kind.model.objects.select_for_update(of=("self",)).select_related(*kind.related).get(pk=version_id)


def review(
    kind: VersionedSet,
    *,
    actor: AbstractBaseUser,
    version_id: int,
    comment: str,
    approve: bool,
    recheck: Callable[[Any], None] | None = None,
) -> Any:
    """A second officer's approval or rejection of a version waiting for one (four eyes), audited. The proposer
    cannot approve their own change, a version a newer one replaced cannot be decided, and a rejection says why.
    `recheck(version)` runs the kind's own checks of an approval against what holds now. An approved version is
    then sent (`send`); the caller does it outside this transaction."""
    require(kind, actor, "riskdesk.approve_limit")
    if not approve and not comment.strip():
        raise kind.error(f"{kind.code}_COMMENT_REQUIRED", "say why the change is rejected", field="comment")
    with transaction.atomic():
        version = locked_version(kind, version_id)
        if approve and getattr(version, f"{kind.proposer}_id") == actor.pk:
            raise kind.error(
                f"{kind.code}_SELF_APPROVAL", "a change must be approved by another risk officer (four eyes)"
            )
        if version.status != PENDING_APPROVAL:
            raise kind.error(
                f"{kind.code}_NOT_PENDING", f"version {version.version} is {version.get_status_display().lower()}"
            )
        if approve and recheck is not None:
            recheck(version)
        version.status = APPROVED if approve else REJECTED
        version.approved_by = actor
        version.approved_at = timezone.now()
        version.review_comment = comment.strip()
        version.save(update_fields=["status", "approved_by", "approved_at", "review_comment"])
        details = {"version": version.version, kind.content: getattr(version, kind.content)}
        if approve:
            details |= {field: getattr(version, field) for field in kind.approval_details}
        record_audit_event(
            actor=actor,
            action=kind.approved_action if approve else kind.rejected_action,
            target=f"{kind.noun} {version.label}",
            reason=version.review_comment,
            details=details | {"proposed_by": name_of(getattr(version, kind.proposer))},
        )
    return version


def send(kind: VersionedSet, version: Any) -> tuple[Any, bool]:
    """Send an approved version and record the engine's answer; the version and whether a command went out.
    Accepted: in force, the previous version in force superseded. Refused: ENGINE_REJECTED with the engine's code.
    No answer: it stays APPROVED for `resend`.

    The scope's row stays locked from the check to the recorded answer: a set replaces the scope's whole set, so a
    version sent after a newer one was approved or put in force would bring replaced values back. The check (still
    APPROVED, nothing newer approved or in force) and the send are therefore one step, and two sends on one scope
    never overlap. The lock is held over the engine's round trip; only this scope's changes wait."""
    with transaction.atomic():
        scope = kind.lock_scope(version)
        version = kind.model.objects.select_for_update(of=("self",)).select_related(*kind.related).get(pk=version.pk)
        if version.status != APPROVED:
            return version, False  # answered by a concurrent send, or replaced
        in_force = kind.in_force(scope, version)
        newer = kind.siblings(version).filter(version__gt=version.version, status__in=[APPROVED, IN_FORCE]).exists()
        if newer or (in_force is not None and in_force.version > version.version):
            version.status = SUPERSEDED
            version.engine_reason = "replaced by a newer version before it was sent"
            version.save(update_fields=["status", "engine_reason"])
            return version, False
        cmd = kind.command(scope, version)
        if version.sent_at is None:
            version.sent_at = timezone.now()
            version.save(update_fields=["sent_at"])
        try:
            reply = send_command(cmd)
        except EngineClientError as exc:
            version.engine_code, version.engine_reason = exc.code, exc.reason[:500]
            version.save(update_fields=["engine_code", "engine_reason"])
            return version, True
        _record_answer(kind, scope, version, in_force, reply)
    return version, True


def _record_answer(kind: VersionedSet, scope: LimitScope, version: Any, in_force: Any, reply: Any) -> None:
    """Store the engine's answer to a version's command (call with the scope locked)."""
    if type(reply) is CommandAccepted:
        # Only a version newer than the one in force takes its place (kept as a guard: sends on one scope are
        # serialised, so an older version reaching here would be a bug).
        newest = in_force is None or in_force.version < version.version
        version.status = IN_FORCE if newest else SUPERSEDED
        version.acknowledged_at = timezone.now()
        version.engine_event_seq = reply.event_seq
        version.engine_code = version.engine_reason = ""
        if newest and in_force is not None:
            kind.model.objects.filter(pk=in_force.pk).update(status=SUPERSEDED)
        kind.accepted(scope, version, reply, newest)
    else:
        version.status = ENGINE_REJECTED
        version.engine_code = getattr(reply, "code", type(reply).__name__)
        version.engine_reason = getattr(reply, "reason", "")
    version.save()


def resend_unacknowledged(kind: VersionedSet, *, older_than_s: float) -> int:
    """Send again the approved versions the engine has not answered (it was down or slow), oldest first per scope;
    returns how many were sent. A version sent more than `older_than_s` ago counts, and so does one never sent
    (`sent_at` NULL): its send rolled back (the worker died, an error other than EngineClientError) or never ran
    (an expired override's revert is sent after its transaction commits), and nothing else would ever send it.

    The list read here is only a candidate list: `send` decides under each scope's lock, so only a scope's newest
    unanswered version goes out, one something newer replaced is superseded unsent, and one a concurrent send has
    answered is left alone."""
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_s)
    # Ordered by version within each scope; versions of different scopes do not affect each other.
    candidates = kind.model.objects.filter(status=APPROVED).exclude(sent_at__gte=cutoff).order_by("version", "pk")
    return sum(send(kind, version)[1] for version in list(candidates))
