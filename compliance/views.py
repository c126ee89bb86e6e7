"""Compliance desk pages and actions: parse, call one service, render. Every view checks a compliance permission."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from compliance import exports, reconciliation, selectors, tasks
from compliance.forms import AuditSearchForm, ExportForm, ResolveBreakForm
from compliance.models import AuditAction, ExportJob, ExportStatus, ReconciliationBreak, ReconciliationStatus
from console.access import permission_required


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


@permission_required("compliance.view_compliance_desk")
def home(request):
    action = request.GET.get("action", "")
    if action not in AuditAction.values:
        action = ""
    return render(
        request,
        "compliance/home.html",
        {
            "chain": selectors.latest_chain_verification(),
            "open_break_count": selectors.open_break_count(),
            "runs": selectors.reconciliation_runs(limit=3),
            "clock": selectors.clock_status()["latest"],
            "jobs": selectors.export_jobs(limit=5),
            "events": selectors.recent_audit_events(limit=20, action=action),
            "actions": AuditAction.choices,
            "action": action,
        },
    )


@permission_required("compliance.view_audit_trail")
def audit_trail(request):
    form = AuditSearchForm(request.GET or None)
    events = selectors.search_audit_events(**form.cleaned_data) if form.is_valid() else selectors.search_audit_events()
    if form.is_bound and not form.is_valid():
        events = events.none()
    page = Paginator(events.select_related("actor"), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "compliance/audit.html", {"form": form, "page": page, "query": query.urlencode()})


@permission_required("compliance.view_compliance_desk")
def chain(request):
    return render(request, "compliance/chain.html", {"chain": selectors.latest_chain_verification()})


@permission_required("compliance.view_audit_trail")
@require_POST
def verify_chain(request):
    tasks.verify_chain_task.delay(requested_by=request.user.get_username())
    messages.info(request, "Chain verification queued; this page shows its verdict when it finishes.")
    return redirect("compliance:chain")


@permission_required("compliance.export_reports")
def export_list(request):
    form = ExportForm(request.POST or None) if request.method == "POST" else ExportForm.today()
    if request.method == "POST" and form.is_valid():
        try:
            job = exports.request_export(
                user=request.user,
                kind=form.cleaned_data["kind"],
                fmt=form.cleaned_data["format"],
                period_start=form.cleaned_data["start"],
                period_end=form.cleaned_data["end"],
                filters=form.filters(),
                ip_address=_ip(request),
            )
        except exports.ExportError as exc:
            form.add_error(None, f"{exc.reason} ({exc.code})")
        else:
            messages.info(request, f"Export {job.pk} queued.")
            return redirect("compliance:exports")
    status = 400 if request.method == "POST" else 200
    return render(request, "compliance/exports.html", {"form": form, "jobs": selectors.export_jobs()}, status=status)


@permission_required("compliance.export_reports")
def export_jobs_fragment(request):
    return render(request, "compliance/_export_jobs.html", {"jobs": selectors.export_jobs()})


@permission_required("compliance.export_reports")
def export_download(request, job_id: int):
    get_object_or_404(ExportJob, pk=job_id, status=ExportStatus.DONE)
    try:
        path, name, content_type = exports.open_export(user=request.user, job_id=job_id, ip_address=_ip(request))
    except exports.ExportError as exc:
        raise Http404(exc.reason) from None
    return FileResponse(open(path, "rb"), as_attachment=True, filename=name, content_type=content_type)


@permission_required("compliance.view_compliance_desk")
def reconciliation_page(request):
    runs = selectors.reconciliation_runs()
    running = any(run.status == ReconciliationStatus.RUNNING for run in runs)
    return render(
        request,
        "compliance/reconciliation.html",
        {
            "runs": runs,
            "running": running,
            "open_breaks": selectors.open_breaks(),
            "resolved": selectors.resolved_breaks(),
            "resolve_form": ResolveBreakForm(),
        },
    )


@permission_required("compliance.resolve_reconciliation")
@require_POST
def run_reconciliation(request):
    run = reconciliation.request_reconciliation(user=request.user, ip_address=_ip(request))
    messages.info(request, f"Reconciliation {run.pk} started.")
    return redirect("compliance:reconciliation")


@permission_required("compliance.resolve_reconciliation")
@require_POST
def resolve_break(request, break_id: int):
    get_object_or_404(ReconciliationBreak, pk=break_id)
    form = ResolveBreakForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A resolution needs a comment (RECON_COMMENT_REQUIRED).")
        return redirect("compliance:reconciliation")
    try:
        reconciliation.resolve_break(
            user=request.user, break_id=break_id, comment=form.cleaned_data["comment"], ip_address=_ip(request)
        )
    except reconciliation.BreakError as exc:
        messages.error(request, f"{exc.reason} ({exc.code})")
    else:
        messages.success(request, f"Break {break_id} resolved.")
    return redirect("compliance:reconciliation")


@permission_required("compliance.view_compliance_desk")
def clock(request):
    from compliance.clocksync import threshold_ns

    return render(request, "compliance/clock.html", selectors.clock_status() | {"threshold_ns": threshold_ns()})


@permission_required("compliance.view_compliance_desk")
@require_POST
def measure_clocks(request):
    tasks.measure_clocks_task.delay()
    messages.info(request, "Clock measurement queued.")
    return redirect("compliance:clock")
