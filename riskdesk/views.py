"""Risk desk pages and actions: parse, call one service, render. Every view checks a riskdesk permission."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from console.access import permission_required
from riskdesk import selectors, tasks
from riskdesk.errors import DeskError
from riskdesk.forms import AcknowledgeForm, LimitForm, ReviewForm, TradingStateForm, TriggerForm
from riskdesk.models import LimitScope, scope_label
from riskdesk.services import alerts, killswitch, limits, triggers, var_runs
from riskdesk.services.scopes import parse_scope


def _scope_or_404(slug: str) -> tuple[str, str]:
    try:
        return parse_scope(slug)
    except DeskError as exc:
        raise Http404(exc.reason) from None


def _live_context(request) -> dict:
    view = selectors.engine_view(operator=request.user.get_username()[:64])
    panels = selectors.scope_panels(view)
    return {
        "engine": view,
        "panels": panels,
        "exposure": selectors.exposure_rows(panels),
        "trigger_panels": selectors.trigger_panels(view),
        "alerts": alerts.recent_alerts(30),
        "open_alert_count": len(alerts.open_alerts()),
        "actions": killswitch.recent_actions(10),
        "pending": selectors.pending_approvals(),
        "pending_triggers": selectors.pending_trigger_approvals(),
        "now": timezone.now(),
    }


@permission_required("riskdesk.view_risk_desk")
def home(request):
    context = _live_context(request)
    context |= {
        "state_form": TradingStateForm(),
        "var_results": var_runs.latest_results(),
    }
    return render(request, "riskdesk/home.html", context)


@permission_required("riskdesk.view_risk_desk")
def live_panel(request):
    """The live part of the desk (states, limits with utilisation, approvals, alerts), re-fetched by the page
    whenever a live topic it listens to changes, and every few seconds besides."""
    return render(request, "riskdesk/_live.html", _live_context(request))


@permission_required("riskdesk.propose_limit")
def edit_limits(request, scope: str):
    kind, name = _scope_or_404(scope)
    row = LimitScope.objects.select_related("in_force").filter(kind=kind, name=name).first()
    base_version = row.version if row else 0
    if request.method == "POST":
        form = LimitForm(request.POST)
        if form.is_valid():
            try:
                version = limits.propose_limits(
                    actor=request.user,
                    kind=kind,
                    name=name,
                    limits=form.limits(),
                    base_version=form.cleaned_data["base_version"],
                    reason=form.cleaned_data["reason"],
                    expires_at=form.cleaned_data.get("expires_at"),
                )
            except DeskError as exc:
                form.add_error(form.field_name(exc.field), f"{exc.reason} [{exc.code}]")
            else:
                messages.info(request, _proposal_message(version))
                return redirect("riskdesk:home")
        status = 409 if form.errors.get("__all__") and "STALE" in str(form.errors["__all__"]) else 400
        return render(request, "riskdesk/limits_form.html", _form_context(kind, name, form, row), status=status)
    current = row.in_force.limits if row and row.in_force else (limits.engine_limits() or {}).get((kind, name), {})
    form = LimitForm(initial={"base_version": base_version, **LimitForm.initial_from(current)})
    return render(request, "riskdesk/limits_form.html", _form_context(kind, name, form, row))


def _form_context(kind: str, name: str, form: LimitForm, row: LimitScope | None) -> dict:
    return {
        "form": form,
        "kind": kind,
        "name": name,
        "label": scope_label(kind, name),
        "history": selectors.limit_history(kind, name),
        "row": row,
    }


def _proposal_message(version) -> str:
    pending = "loosen a limit"
    return _version_message(f"Limits {version.scope.label} v{version.version}", version, pending)


def _version_message(head: str, version, pending: str) -> str:
    """Where a limit or trigger version stands after the desk's last step, for the officer who took it."""
    if version.status == "pending_approval":
        return f"{head} {pending}: waiting for a second risk officer's approval."
    if version.status == "in_force":
        return f"{head} in force: engine acknowledged (event {version.engine_event_seq})."
    if version.status == "engine_rejected":
        return f"{head} refused by the engine: {version.engine_code} {version.engine_reason}"
    return f"{head} sent; no engine acknowledgement yet ({version.engine_code})."


def _review(request, decide: Callable[[str], Any], message: Callable[[Any], str]) -> HttpResponse:
    """A second officer's approval or rejection of a waiting version: `decide(comment)` is the one service call,
    its refusal or `message` of its result is shown on the desk."""
    form = ReviewForm(request.POST)
    form.is_valid()  # the comment is optional here; the service refuses a rejection without one
    try:
        version = decide(form.cleaned_data.get("comment", ""))
    except DeskError as exc:
        messages.error(request, f"{exc.reason} [{exc.code}]")
    else:
        messages.info(request, message(version))
    return redirect("riskdesk:home")


@require_POST
@permission_required("riskdesk.approve_limit")
def approve_limits(request, version_id: int):
    return _review(
        request,
        lambda comment: limits.approve_limit_change(actor=request.user, version_id=version_id, comment=comment),
        _proposal_message,
    )


@require_POST
@permission_required("riskdesk.approve_limit")
def reject_limits(request, version_id: int):
    return _review(
        request,
        lambda comment: limits.reject_limit_change(actor=request.user, version_id=version_id, comment=comment),
        lambda version: f"Limits {version.scope.label} v{version.version} rejected.",
    )


@require_POST
@permission_required("riskdesk.view_risk_desk")
def trading_state(request):
    """Halt, reduce or resume one scope. The permission for the action itself (kill switch or resume) is checked
    by the service, so a trader or an officer without it gets 403 and nothing is sent."""
    form = TradingStateForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not sent: {form.errors.as_text()}")
        return redirect("riskdesk:home")
    action = form.cleaned_data["action"]
    permission = "riskdesk.resume_trading" if action == "resume" else "riskdesk.trigger_kill_switch"
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"requires {permission}")
    try:
        kind, name = parse_scope(form.cleaned_data["scope"])
        record = killswitch.set_trading_state(
            actor=request.user,
            action=action,
            kind=kind,
            name=name,
            reason=form.cleaned_data["reason"],
            confirmed=form.cleaned_data["confirm"],
        )
    except DeskError as exc:
        messages.error(request, f"Not applied: {exc.reason} [{exc.code}]")
        return redirect("riskdesk:home")
    messages.info(
        request,
        f"{record.get_action_display()} {record.scope_kind} {record.scope_name}: engine acknowledged, state "
        f"{record.engine_state} (event {record.engine_event_seq}).",
    )
    return redirect("riskdesk:home")


@require_POST
@permission_required("riskdesk.view_risk_desk")
def acknowledge_alert(request, alert_id: int):
    form = AcknowledgeForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    try:
        alerts.acknowledge_alert(actor=request.user, alert_id=alert_id, comment=comment)
    except DeskError as exc:
        messages.error(request, f"Alert not acknowledged: {exc.reason} [{exc.code}]")
    return redirect("riskdesk:home")


@permission_required("riskdesk.propose_limit")
def edit_triggers(request, scope: str):
    kind, name = _scope_or_404(scope)
    history = selectors.trigger_history(kind, name)
    if request.method == "POST":
        form = TriggerForm(request.POST)
        status = 400
        if form.is_valid():
            try:
                setting = triggers.change_triggers(
                    actor=request.user,
                    kind=kind,
                    name=name,
                    config=form.config(),
                    reason=form.cleaned_data["reason"],
                    base_version=form.cleaned_data["base_version"],
                )
            except DeskError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, f"{exc.reason} [{exc.code}]")
                status = 409 if exc.code == "TRIGGER_STALE_VERSION" else 400
            else:
                messages.info(request, _trigger_message(setting))
                return redirect("riskdesk:home")
        context = {"form": form, "kind": kind, "name": name, "history": history}
        return render(request, "riskdesk/triggers_form.html", context, status=status)
    current = next((s for s in history if s.status == "in_force"), None)
    initial = current.config if current else _engine_triggers(request, kind, name)
    form = TriggerForm(initial={"base_version": history[0].version if history else 0, **initial})
    context = {"form": form, "kind": kind, "name": name, "history": history}
    return render(request, "riskdesk/triggers_form.html", context)


def _engine_triggers(request, kind: str, name: str) -> dict:
    """A scope the desk never set starts from what the engine has (its start-up configuration)."""
    view = selectors.engine_view(operator=request.user.get_username()[:64])
    settings = view.triggers.get((kind, name))
    return triggers.shown(settings) if settings is not None else {}


def _trigger_message(setting) -> str:
    pending = f"weaken {', '.join(setting.weakened)}"
    return _version_message(f"Triggers {setting.label} v{setting.version}", setting, pending)


@require_POST
@permission_required("riskdesk.approve_limit")
def approve_triggers(request, setting_id: int):
    return _review(
        request,
        lambda comment: triggers.approve_trigger_change(actor=request.user, setting_id=setting_id, comment=comment),
        _trigger_message,
    )


@require_POST
@permission_required("riskdesk.approve_limit")
def reject_triggers(request, setting_id: int):
    return _review(
        request,
        lambda comment: triggers.reject_trigger_change(actor=request.user, setting_id=setting_id, comment=comment),
        lambda setting: f"Triggers {setting.label} v{setting.version} rejected.",
    )


@require_POST
@permission_required("riskdesk.view_risk_desk")
def run_var(request):
    tasks.compute_var.delay(request.user.pk)
    messages.info(request, "VaR run queued; results appear below when the worker has computed them.")
    return redirect("riskdesk:home")
