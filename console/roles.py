"""Roles are Django groups with exact permission sets; this module is their single definition."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from django.contrib.auth.models import Group, Permission


class Role(StrEnum):
    TRADER = "trader"
    RISK_OFFICER = "risk_officer"
    COMPLIANCE_OFFICER = "compliance_officer"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


TRADER_PERMISSIONS = frozenset({"trading.view_trading_desk", "trading.submit_order", "trading.control_strategy"})
RISK_PERMISSIONS = frozenset(
    {
        "riskdesk.view_risk_desk",
        "riskdesk.propose_limit",
        "riskdesk.approve_limit",
        "riskdesk.trigger_kill_switch",
        "riskdesk.resume_trading",
    }
)
COMPLIANCE_PERMISSIONS = frozenset(
    {
        "compliance.view_compliance_desk",
        "compliance.view_audit_trail",
        "compliance.export_reports",
        "compliance.resolve_reconciliation",
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.TRADER: TRADER_PERMISSIONS,
    Role.RISK_OFFICER: RISK_PERMISSIONS,
    Role.COMPLIANCE_OFFICER: COMPLIANCE_PERMISSIONS,
    # The administrator manages users and sees every desk; the admin site needs is_staff as well.
    Role.ADMIN: TRADER_PERMISSIONS
    | RISK_PERMISSIONS
    | COMPLIANCE_PERMISSIONS
    | {"auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group"},
}


@dataclass(frozen=True)
class Desk:
    title: str
    url_name: str
    permission: str
    summary: str


DESKS = (
    Desk("Trading desk", "trading:home", "trading.view_trading_desk", "Positions, P&L, orders and strategy control."),
    Desk("Risk desk", "riskdesk:home", "riskdesk.view_risk_desk", "Limits, kill switches, exposure and alerts."),
    Desk(
        "Compliance desk",
        "compliance:home",
        "compliance.view_compliance_desk",
        "Audit trail, reports and reconciliation.",
    ),
)


def roles_of(user) -> list[Role]:
    if not user.is_authenticated:
        return []
    names = {group.name for group in user.groups.all()}
    return [role for role in Role if role.value in names]


def sees_alert(roles: Iterable[str], audience: Iterable[str] | None) -> bool:
    """An alert reaches a user whose roles meet its audience; the administrator sees all. An alert without an
    audience is nobody's but the administrator's: when in doubt it stays on the risk desk."""
    held = set(roles)
    return Role.ADMIN.value in held or not held.isdisjoint(audience or ())


def desks_for(user) -> list[Desk]:
    return [desk for desk in DESKS if user.has_perm(desk.permission)]


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def sync_roles() -> None:
    """Create the role groups and set each one's permissions to exactly ROLE_PERMISSIONS."""
    for role, dotted_names in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.set([_permission(name) for name in sorted(dotted_names)])


def sync_roles_after_migrate(sender, app_config=None, using="default", **kwargs) -> None:
    # post_migrate fires once per installed app, in order; after the last one every permission exists.
    from django.apps import apps

    if app_config is not None and app_config.label == list(apps.get_app_configs())[-1].label:
        sync_roles()
