from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditTrailImmutable(Exception):
    """Raised when code tries to change or remove an audit event."""

    code = "AUDIT_IMMUTABLE"


class AuditAction(models.TextChoices):
    LOGIN = "auth.login", "Logged in"
    LOGOUT = "auth.logout", "Logged out"
    LOGIN_FAILED = "auth.login_failed", "Failed log-in"
    USER_ROLES_CHANGED = "admin.user_roles_changed", "User's roles changed"
    # Trading desk (issue 7): every console action sent to the engine.
    ORDER_SUBMITTED = "trading.order_submitted", "Manual order submitted"
    ORDER_CANCELED = "trading.order_canceled", "Manual order cancel"
    CANCEL_ALL = "trading.cancel_all", "Cancel-all for a scope"
    STRATEGY_STARTED = "trading.strategy_started", "Strategy started"
    STRATEGY_STOPPED = "trading.strategy_stopped", "Strategy stopped"
    STRATEGY_PARAMS_CHANGED = "trading.strategy_params_changed", "Strategy parameters changed"
    STRATEGY_PARAMS_ROLLED_BACK = "trading.strategy_params_rolled_back", "Strategy parameters rolled back"
    # Risk desk (issue 8).
    LIMIT_PROPOSED = "risk.limit_proposed", "Limit change proposed"
    LIMIT_APPROVED = "risk.limit_approved", "Limit change approved"
    LIMIT_REJECTED = "risk.limit_rejected", "Limit change rejected"
    LIMIT_APPLIED = "risk.limit_applied", "Limit change in force"
    LIMIT_OVERRIDE_EXPIRED = "risk.limit_override_expired", "Temporary limit override expired"
    TRIGGERS_CHANGED = "risk.triggers_changed", "Automatic kill trigger change in force"
    TRIGGERS_PROPOSED = "risk.triggers_proposed", "Automatic kill trigger change proposed"
    TRIGGERS_APPROVED = "risk.triggers_approved", "Automatic kill trigger change approved"
    TRIGGERS_REJECTED = "risk.triggers_rejected", "Automatic kill trigger change rejected"
    KILL = "risk.kill", "Kill switch"
    RESUME = "risk.resume", "Trading resumed"
    ALERT_ACKNOWLEDGED = "risk.alert_acknowledged", "Alert acknowledged"
    # Compliance desk (issue 9).
    EXPORT_REQUESTED = "compliance.export_requested", "Report export requested"
    EXPORT_DOWNLOADED = "compliance.export_downloaded", "Report export downloaded"
    RECONCILIATION_RUN = "compliance.reconciliation_run", "Reconciliation run"
    RECONCILIATION_RESOLVED = "compliance.reconciliation_resolved", "Reconciliation break resolved"
    # Security: refused websocket messages and forbidden actions.
    FORGED_MESSAGE = "security.forged_message", "Forged or forbidden websocket message refused"


class AuditEventQuerySet(models.QuerySet):
    # Bulk paths bypass Model.save()/delete(), so they are closed here too. The database trigger
    # (migration 0002) is the real guarantee; these give a clear error before SQL is sent.
    def update(self, **kwargs):
        raise AuditTrailImmutable("audit events cannot be updated")

    def delete(self):
        raise AuditTrailImmutable("audit events cannot be deleted")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AuditTrailImmutable("audit events cannot be updated")


class AuditEvent(models.Model):
    """One operator action, append-only: written once by compliance.services.record_audit_event."""

    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    # PROTECT: a user with audit history is deactivated, never deleted, so every row keeps its actor.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, choices=AuditAction.choices, db_index=True)
    target = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    reason = models.TextField(blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # The hash chain (compliance.chain): row_hash = sha256(prev_hash || canonical content of this row), and
    # prev_hash is the row_hash of the row before it (32 zero bytes for the first). A row changed or removed
    # behind the triggers' back no longer hashes to its row_hash, or breaks the next row's link.
    prev_hash = models.BinaryField(max_length=32, editable=False)
    row_hash = models.BinaryField(max_length=32, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        default_permissions = ()
        indexes = [models.Index(fields=["actor", "-occurred_at"], name="audit_actor_time")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action} {self.target}"

    def save(self, *args, **kwargs):
        # record_audit_event inserts through bulk_create with the id it drew under the chain lock; a save()
        # with an id is always an attempt to overwrite a row.
        if not self._state.adding or self.pk is not None:
            raise AuditTrailImmutable("audit events cannot be updated")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditTrailImmutable("audit events cannot be deleted")


class ComplianceDeskAccess(models.Model):  # noqa: DJ008 - never instantiated
    """Holds the compliance desk's permissions; it has no table and no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_compliance_desk", "Can view the compliance desk"),
            ("view_audit_trail", "Can search the audit trail"),
            ("export_reports", "Can export audit and order reports"),
            ("resolve_reconciliation", "Can resolve reconciliation breaks"),
        ]


class ChainVerification(models.Model):
    """One run of the chain verifier (manage.py verify_audit_chain, the page, or beat): the verdict is kept so the
    page can show when the chain was last proven intact, and where it broke if it did not."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    intact = models.BooleanField(null=True)  # None while running
    audit_rows = models.BigIntegerField(default=0)
    order_event_rows = models.BigIntegerField(default=0)
    # The first broken row: which table, which row (audit id, or "engine_id:seq" for an order event) and why.
    broken_table = models.CharField(max_length=64, blank=True)
    broken_row = models.CharField(max_length=128, blank=True)
    broken_code = models.CharField(max_length=64, blank=True)
    detail = models.TextField(blank=True)
    audit_head_hash = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        default_permissions = ()

    def __str__(self) -> str:
        verdict = {True: "intact", False: "broken", None: "running"}[self.intact]
        return f"chain verification {self.started_at:%Y-%m-%d %H:%M:%S} {verdict}"


class ChainAnchorKind(models.TextChoices):
    HEAD = "head", "Last row proven by an intact verification"
    RETENTION = "retention", "Last row removed by retention"


class ChainAnchor(models.Model):
    """A row of a hash chain whose hash is known, so the verifier can check the chain's ends, not only its links.

    - HEAD: recorded by every intact verification (compliance.services.run_chain_verification): the chain must
      still reach this row with this hash. Without it an emptied table, a chopped tail, all rows of one engine
      deleted, or a chain recomputed from genesis after an edit would all verify as intact.
    - RETENTION: recorded by trading.timeseries just before it drops expired order-event partitions: the first
      surviving event of that engine links to this hash, not to 32 zero bytes.

    Append-only in the database (migration 0008), like the audit trail.
    """

    recorded_at = models.DateTimeField(default=timezone.now)
    chain = models.CharField(max_length=32)  # "compliance_auditevent" or "trading_orderevent"
    kind = models.CharField(max_length=16, choices=ChainAnchorKind.choices)
    engine_id = models.CharField(max_length=64, blank=True)  # order events: whose chain; blank for the audit trail
    position = models.BigIntegerField()  # the anchored row: audit id, or the order event's seq
    row_hash = models.BinaryField(max_length=32)
    recorded_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        default_permissions = ()
        indexes = [models.Index(fields=["chain", "kind", "engine_id", "position"], name="chain_anchor_lookup")]

    def __str__(self) -> str:
        return f"{self.kind} anchor {self.chain} {self.engine_id or ''}:{self.position}"


class ExportKind(models.TextChoices):
    AUDIT = "audit", "Audit trail"
    ORDERS = "orders", "Orders"
    FILLS = "fills", "Fills"
    ORDER_EVENTS = "order_events", "Order events"
    CAT = "cat", "CAT order events"


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    XLSX = "xlsx", "Excel (XLSX)"
    PDF = "pdf", "PDF"
    JSON = "json", "JSON lines"


class ExportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """One report export, run by a Celery task; the file stays under the export directory for download."""

    kind = models.CharField(max_length=16, choices=ExportKind.choices)
    format = models.CharField(max_length=8, choices=ExportFormat.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    filters = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="exports")
    requested_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched with every progress update: a RUNNING job whose heartbeat stops lost its worker and is queued again.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    total_rows = models.BigIntegerField(null=True, blank=True)  # counted before writing, for the progress bar
    rows_written = models.BigIntegerField(default=0)
    file_name = models.CharField(max_length=255, blank=True)  # relative to the export directory
    file_size = models.BigIntegerField(null=True, blank=True)
    file_sha256 = models.CharField(max_length=64, blank=True)
    first_hash = models.CharField(max_length=64, blank=True)  # chain hash of the first and last exported row
    last_hash = models.CharField(max_length=64, blank=True)
    # The worker's resident memory before and at its peak (KiB, getrusage): proves the export streamed.
    rss_start_kb = models.BigIntegerField(null=True, blank=True)
    rss_peak_kb = models.BigIntegerField(null=True, blank=True)
    # CAT exports: lifecycle breaks found by the validation pass (the first few hundred kept, all counted).
    issue_count = models.IntegerField(default=0)
    issues = models.JSONField(default=list, blank=True, encoder=DjangoJSONEncoder)
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"export {self.pk} {self.kind} {self.format} {self.status}"

    @property
    def progress_pct(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.total_rows:
            return 0
        return min(99, int(self.rows_written * 100 / self.total_rows))


class ReconciliationTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Scheduled"
    ON_DEMAND = "on_demand", "On demand"
    ENGINE_START = "engine_start", "Engine start"


class ReconciliationStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ReconciliationRun(models.Model):
    """Engine state vs the database vs the venue, at one moment."""

    trigger = models.CharField(max_length=16, choices=ReconciliationTrigger.choices)
    requested_by = models.CharField(max_length=150, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=ReconciliationStatus.choices, default=ReconciliationStatus.RUNNING)
    engine_id = models.CharField(max_length=64, blank=True)
    engine_seq = models.BigIntegerField(null=True, blank=True)
    engine_orders = models.IntegerField(default=0)
    db_orders = models.IntegerField(default=0)
    venue_orders = models.IntegerField(default=0)
    positions = models.IntegerField(default=0)
    venue_checked = models.BooleanField(default=False)
    error_code = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"reconciliation {self.pk} {self.trigger} {self.status}"


class BreakKind(models.TextChoices):
    ORDER_MISSING_IN_DB = "order_missing_in_db", "Working order missing in the database"
    ORDER_MISSING_IN_ENGINE = "order_missing_in_engine", "Order working in the database, unknown to the engine"
    ORDER_MISMATCH = "order_mismatch", "Order differs between engine and database"
    ORDER_MISSING_AT_VENUE = "order_missing_at_venue", "Working order unknown to the venue"
    VENUE_MISMATCH = "venue_mismatch", "Order differs between engine and venue"
    FILL_WITHOUT_ORDER = "fill_without_order", "Fill for an order the database does not hold"
    FILLS_POSITION_MISMATCH = "fills_position_mismatch", "Position from fills differs from the engine's"
    POSITION_MISMATCH = "position_mismatch", "Position differs between engine and database"


class BreakSeverity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class ReconciliationBreak(models.Model):
    """One difference found by a run. Resolved by a compliance officer with a comment (audited)."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="breaks")
    kind = models.CharField(max_length=32, choices=BreakKind.choices)
    severity = models.CharField(max_length=8, choices=BreakSeverity.choices)
    strategy_id = models.CharField(max_length=64, blank=True)
    symbol = models.CharField(max_length=32, blank=True)
    client_order_id = models.CharField(max_length=64, blank=True)
    detail = models.TextField()
    values = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)  # engine/db/venue sides
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolution = models.TextField(blank=True)

    class Meta:
        ordering = ["resolved_at", "-id"]
        default_permissions = ()
        indexes = [models.Index(fields=["resolved_at", "-id"], name="recon_break_open")]

    def __str__(self) -> str:
        return f"{self.kind} {self.client_order_id or self.symbol}"


class ClockSource(models.TextChoices):
    CONSOLE = "console", "Console vs database server"
    ENGINE = "engine", "Engine vs console"
    NTP = "ntp", "System NTP (chrony / timedatectl)"


class ClockSyncSample(models.Model):
    """One clock-offset measurement. offset_ns > 0: the measured clock is ahead of its reference."""

    measured_at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=8, choices=ClockSource.choices)
    offset_ns = models.BigIntegerField(null=True, blank=True)  # None when the source could not be measured
    round_trip_ns = models.BigIntegerField(null=True, blank=True)
    threshold_ns = models.BigIntegerField()
    within_threshold = models.BooleanField(null=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-measured_at", "-id"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.source} offset {self.offset_ns} ns at {self.measured_at:%H:%M:%S}"
