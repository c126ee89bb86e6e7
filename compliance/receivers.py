"""Log-in, log-out and failed log-in are audited from Django's own authentication signals."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

from compliance.models import AuditAction
from compliance.services import record_audit_event


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


def on_login(sender, request, user, **kwargs) -> None:
    record_audit_event(actor=user, action=AuditAction.LOGIN, target=f"user:{user.pk}", ip_address=_ip(request))


def on_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        record_audit_event(actor=user, action=AuditAction.LOGOUT, target=f"user:{user.pk}", ip_address=_ip(request))


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    # credentials has the password already masked by Django; keep only the username that was tried.
    username = str(credentials.get("username", ""))
    record_audit_event(
        actor=None,
        actor_username=username,
        action=AuditAction.LOGIN_FAILED,
        target=f"username:{username}"[:255],
        ip_address=_ip(request),
    )


def connect() -> None:
    user_logged_in.connect(on_login, dispatch_uid="compliance.audit.login")
    user_logged_out.connect(on_logout, dispatch_uid="compliance.audit.logout")
    user_login_failed.connect(on_login_failed, dispatch_uid="compliance.audit.login_failed")
