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

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        default_permissions = ()
        indexes = [models.Index(fields=["actor", "-occurred_at"], name="audit_actor_time")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_username or '-'} {self.action} {self.target}"

    def save(self, *args, **kwargs):
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
