"""Risk desk records: limit versions with four-eyes approval, kill-switch actions, trigger settings, alerts, VaR.

A limit is in force only once the engine accepted its SetLimits: `LimitVersion.status` says where each version is,
and `LimitScope.in_force` points at the version the engine acknowledged last. Rows are never deleted: every version
is kept with who proposed and approved it, when, why and the engine's answer.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class RiskDeskAccess(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the risk desk's permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_risk_desk", "Can view the risk desk"),
            ("propose_limit", "Can propose a risk limit change"),
            ("approve_limit", "Can approve another officer's limit change"),
            ("trigger_kill_switch", "Can halt or reduce trading"),
            ("resume_trading", "Can resume halted or reduced trading"),
        ]


class ScopeKind(models.TextChoices):
    FIRM = "firm", "Firm"
    STRATEGY = "strategy", "Strategy"
    INSTRUMENT = "instrument", "Instrument"


def scope_label(kind: str, name: str) -> str:
    """How the desk names a scope to people: "firm", "strategy mm-1", "instrument BTCUSDT"."""
    return "firm" if kind == ScopeKind.FIRM else f"{kind} {name}"


def scope_slug(kind: str, name: str) -> str:
    """A scope in a URL: "firm", "strategy:mm-1" (read back by riskdesk.services.scopes.parse_scope)."""
    return kind if kind == ScopeKind.FIRM else f"{kind}:{name}"


class LimitScope(models.Model):
    """One row per scope: the row lock and the version counter that make concurrent edits safe.

    `version` is the newest version number handed out for this scope (pending ones included); a proposal names the
    version its author saw, and one made against an older number is refused (optimistic concurrency).
    """

    kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    name = models.CharField(max_length=64, blank=True)
    version = models.PositiveIntegerField(default=0)
    in_force = models.ForeignKey("LimitVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "riskdesk_limitscope"
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="riskdesk_limitscope_unique")]
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        return scope_label(self.kind, self.name)


class LimitStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Waiting for a second officer"
    APPROVED = "approved", "Approved, sent to the engine"
    IN_FORCE = "in_force", "In force (engine acknowledged)"
    SUPERSEDED = "superseded", "Superseded"
    REJECTED = "rejected", "Rejected by the second officer"
    ENGINE_REJECTED = "engine_rejected", "Refused by the engine"


class LimitChange(models.TextChoices):
    TIGHTEN = "tighten", "Tightening"
    LOOSEN = "loosen", "Loosening"
    REVERT = "revert", "Override expired: reverted"


class ReviewedSentVersion(models.Model):
    """What a limit version and a trigger version both record of their second officer's review and of the engine's
    answer (riskdesk.services.versioned writes these for either)."""

    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    engine_event_seq = models.BigIntegerField(null=True, blank=True)
    engine_code = models.CharField(max_length=64, blank=True)
    engine_reason = models.TextField(blank=True)

    class Meta:
        abstract = True


class LimitVersion(ReviewedSentVersion):
    scope = models.ForeignKey(LimitScope, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    limits = models.JSONField(default=dict)  # RiskLimits fields; Decimals as strings, ints as ints
    change = models.CharField(max_length=16, choices=LimitChange.choices)
    status = models.CharField(max_length=24, choices=LimitStatus.choices, db_index=True)
    reason = models.TextField()
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    proposed_at = models.DateTimeField(default=timezone.now)
    # A temporary override: at expires_at the limits of `reverts_to` are put back in force (Celery beat).
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    reverts_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reverted = models.BooleanField(default=False)
    # The engine's side: the SetLimits command id (reused on a resend: the engine answers a repeated id once).
    command_id = models.CharField(max_length=64, unique=True)

    class Meta:
        db_table = "riskdesk_limitversion"
        constraints = [
            models.UniqueConstraint(fields=["scope", "version"], name="riskdesk_limitversion_unique"),
        ]
        ordering = ["scope", "-version"]

    def __str__(self) -> str:
        return f"{self.scope.label} v{self.version} ({self.status})"

    @property
    def label(self) -> str:
        return self.scope.label


class StateAction(models.TextChoices):
    HALT = "halt", "Halt (kill switch)"
    REDUCE = "reduce", "Reduce only"
    RESUME = "resume", "Resume"


class KillSwitchAction(models.Model):
    """One kill, reduce or resume an officer sent, with the engine's answer and the measured time to flat."""

    action = models.CharField(max_length=16, choices=StateAction.choices)
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    scope_name = models.CharField(max_length=64, blank=True)
    reason = models.TextField()
    operator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    command_id = models.CharField(max_length=64, unique=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    engine_event_seq = models.BigIntegerField(null=True, blank=True)
    engine_state = models.CharField(max_length=16, blank=True)  # the scope's state in the engine's answer
    engine_code = models.CharField(max_length=64, blank=True)
    engine_reason = models.TextField(blank=True)
    # From the engine's HaltCompleted: every working order in scope cancel-acknowledged by the venue.
    orders_canceled = models.IntegerField(null=True, blank=True)
    halt_elapsed_ns = models.BigIntegerField(null=True, blank=True)

    class Meta:
        db_table = "riskdesk_killswitchaction"
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.scope_kind} {self.scope_name}".strip()

    @property
    def halt_elapsed_ms(self) -> float | None:
        return None if self.halt_elapsed_ns is None else self.halt_elapsed_ns / 1e6


class TriggerStatus(models.TextChoices):
    PENDING_APPROVAL = "pending_approval", "Waiting for a second officer"
    REJECTED = "rejected", "Rejected by the second officer"
    APPROVED = "approved", "Sent, waiting for the engine"
    IN_FORCE = "in_force", "In force (engine acknowledged)"
    SUPERSEDED = "superseded", "Superseded"
    ENGINE_REJECTED = "engine_rejected", "Refused by the engine"


class TriggerSetting(ReviewedSentVersion):
    """Automatic kill-switch trigger settings of one scope, every version kept. As with limits, a version is in
    force only once the engine accepted its SetTriggers (`status`); until then the engine keeps the previous one.
    A version that weakens a trigger (`weakened`: a threshold raised or removed, an action HALTED -> REDUCING)
    waits for a second officer's approval, as a limit loosening does."""

    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    scope_name = models.CharField(max_length=64, blank=True)
    version = models.PositiveIntegerField()
    config = models.JSONField(default=dict)
    reason = models.TextField()
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changed_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=24, choices=TriggerStatus.choices, default=TriggerStatus.APPROVED)
    weakened = models.JSONField(default=list, blank=True)  # the fields it weakens; non-empty needs four eyes
    # The SetTriggers command id, reused on a resend (the engine answers a repeated command id once).
    command_id = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "riskdesk_triggersetting"
        constraints = [
            models.UniqueConstraint(
                fields=["scope_kind", "scope_name", "version"], name="riskdesk_triggersetting_unique"
            ),
            models.UniqueConstraint(
                fields=["command_id"], condition=~models.Q(command_id=""), name="riskdesk_triggersetting_command"
            ),
        ]
        ordering = ["scope_kind", "scope_name", "-version"]

    def __str__(self) -> str:
        return f"triggers {self.scope_kind} {self.scope_name} v{self.version} ({self.status})"

    @property
    def label(self) -> str:
        return scope_label(self.scope_kind, self.scope_name)


class AlertKind(models.TextChoices):
    LIMIT_BREACH = "limit_breach", "Limit breach"
    DENIED_BURST = "denied_burst", "Denied-order burst"
    TRIGGER_FIRED = "trigger_fired", "Kill trigger fired"
    ENGINE_STALE = "engine_stale", "Engine heartbeat stale"
    RECONCILIATION_BREAK = "reconciliation_break", "Reconciliation break"
    CLOCK_OFFSET = "clock_offset", "Clock offset"
    TRADING_STATE = "trading_state", "Trading halted, reduced or resumed by an officer"


class AlertSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Alert(models.Model):
    """An alert for the risk officers (RTS 6 Art. 16); kept, and closed only by an acknowledgement with a comment.

    While an alert is open, raising one with the same `dedupe_key` counts another occurrence on it instead of adding
    a row, so a burst of denials is one alert with a count, not a hundred.
    """

    kind = models.CharField(max_length=32, choices=AlertKind.choices, db_index=True)
    severity = models.CharField(max_length=16, choices=AlertSeverity.choices)
    title = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=100, blank=True)
    dedupe_key = models.CharField(max_length=200, blank=True)
    audience = models.JSONField(default=list)
    occurrences = models.PositiveIntegerField(default=1)
    raised_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    ack_comment = models.TextField(blank=True)

    class Meta:
        db_table = "riskdesk_alert"
        ordering = ["-raised_at", "-id"]
        constraints = [
            # At most one open alert per dedupe key: the database settles a race between two raisers.
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=models.Q(acknowledged_at__isnull=True) & ~models.Q(dedupe_key=""),
                name="riskdesk_alert_one_open_per_key",
            ),
        ]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.title}"

    @property
    def is_open(self) -> bool:
        return self.acknowledged_at is None

    @property
    def halt_elapsed_ms(self) -> float | None:
        """An automatic halt's time to flat (the engine's HaltCompleted the watcher put on the trigger's alert)."""
        elapsed = (self.detail or {}).get("halt_elapsed_ns")
        return None if elapsed is None else elapsed / 1e6


class EventCursor(models.Model):
    """How far the alert watcher has read each engine's event stream (one row per engine id)."""

    engine_id = models.CharField(max_length=64, primary_key=True)
    last_seq = models.BigIntegerField(default=0)
    # Engine timestamps (ns) of recent denials per strategy, for the denied-burst alert.
    recent_denials = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "riskdesk_eventcursor"

    def __str__(self) -> str:
        return f"{self.engine_id}@{self.last_seq}"


class VarMethod(models.TextChoices):
    HISTORICAL = "historical", "Historical simulation"
    PARAMETRIC_EWMA = "parametric_ewma", "Parametric normal, EWMA volatility"
    PARAMETRIC_GARCH = "parametric_garch", "Parametric normal, GARCH(1,1) volatility"


class VarResult(models.Model):
    """One VaR figure: a scope, a method, the confidence and horizon, and what it was computed from."""

    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    scope_name = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=24, choices=VarMethod.choices)
    confidence = models.DecimalField(max_digits=5, decimal_places=4)
    horizon_s = models.PositiveIntegerField()
    value = models.DecimalField(max_digits=24, decimal_places=8, null=True)
    exposure = models.DecimalField(max_digits=24, decimal_places=8)
    observations = models.PositiveIntegerField()
    detail = models.JSONField(default=dict, blank=True)  # volatility estimate, model parameters, or why no figure
    computed_at = models.DateTimeField(default=timezone.now, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "riskdesk_varresult"
        ordering = ["-computed_at", "-id"]

    def __str__(self) -> str:
        return f"VaR {self.method} {self.scope_kind} {self.scope_name}: {self.value}"
