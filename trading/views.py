"""The trading desk: overview, instrument, strategy, order ticket and blotter (docs/console.md).

Pages are server-rendered from the database and kept current by console/static/console/live.js; forms post with
htmx and get back the partial they replace (or the whole page without htmx). Every action calls one service in
trading.services.console, which sends the engine command and audits it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compliance.models import AuditAction
from compliance.services import record_audit_event
from console.access import permission_required
from console.selectors import instruments
from console.services.health import check_engine
from console.spreadsheet import safe_row
from trading import console_selectors as reads
from trading import selectors
from trading.forms import (
    CancelAllForm,
    CancelOrderForm,
    OrderTicketForm,
    RollbackForm,
    StrategyActionForm,
    StrategyParamsForm,
)
from trading.models import OrderStatus, Side
from trading.services import console as actions

VIEW = "trading.view_trading_desk"
SUBMIT = "trading.submit_order"
CONTROL = "trading.control_strategy"


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


def _partial(request, full: str, partial: str, context: dict, *, status: int = 200):
    template = partial if request.headers.get("HX-Request") else full
    return render(request, template, context, status=status)


# --- overview -----------------------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW)
def home(request):
    context = {
        "engine": check_engine(),
        "pnl": reads.firm_pnl_today(),
        "states": reads.trading_states(),
        "positions": reads.positions(),
        "orders": selectors.working_orders(),
        "fills": selectors.latest_fills(limit=50),
        "strategies": reads.strategies(),
        "alerts": reads.alerts_for(request.user),
        "can_submit": request.user.has_perm(SUBMIT),
    }
    return render(request, "trading/overview.html", context)


# --- instrument ---------------------------------------------------------------------------------------------------


@require_GET
@permission_required(VIEW)
def instrument(request, symbol: str):
    row = reads.instrument(symbol)
    if row is None or symbol not in instruments():
        raise Http404(f"no instrument {symbol}")
    orders = selectors.working_orders(symbol=symbol)
    context = {
        "instrument": row,
        "tick": reads.latest_tick(symbol),
        "orders": orders,
        "orders_json": reads.orders_for_ladder(orders),
        "chart": reads.instrument_chart(symbol),
        "can_submit": request.user.has_perm(SUBMIT),
    }
    return render(request, "trading/instrument.html", context)


# --- strategy -----------------------------------------------------------------------------------------------------


def _strategy_or_404(strategy_id: str):
    row = reads.strategy(strategy_id)
    if row is None:
        raise Http404(f"no strategy {strategy_id}")
    return row


def _strategy_context(request, row, **forms) -> dict:
    return {
        "strategy": row,
        "history": reads.param_history(row.strategy_id),
        "params_form": forms.get("params_form")
        or StrategyParamsForm(
            params=row.params, initial={"base_version": row.params_version}, known_version=row.params_version
        ),
        "action_form": forms.get("action_form") or StrategyActionForm(),
        "rollback_form": forms.get("rollback_form") or RollbackForm(),
        "result": forms.get("result"),
        "can_control": request.user.has_perm(CONTROL),
    }


@require_GET
@permission_required(VIEW)
def strategy(request, strategy_id: str):
    return render(request, "trading/strategy.html", _strategy_context(request, _strategy_or_404(strategy_id)))


@require_POST
@permission_required(CONTROL)
def strategy_action(request, strategy_id: str, action: str):
    row = _strategy_or_404(strategy_id)
    form = StrategyActionForm(request.POST)
    result = None
    if form.is_valid():
        common = {"user": request.user, "strategy_id": strategy_id, "reason": form.cleaned_data["reason"]}
        if action == "start":
            result = actions.start_strategy(**common, ip_address=_ip(request))
        else:
            cancel = form.cleaned_data["cancel_orders"]
            result = actions.stop_strategy(**common, cancel_orders=cancel, ip_address=_ip(request))
        form = StrategyActionForm() if result.ok else form
    context = _strategy_context(request, reads.strategy(strategy_id) or row, action_form=form, result=result)
    status = 200 if result is not None and result.ok else 422
    return _partial(request, "trading/strategy.html", "trading/_strategy_control.html", context, status=status)


@require_POST
@permission_required(CONTROL)
def strategy_params(request, strategy_id: str):
    row = _strategy_or_404(strategy_id)
    form = StrategyParamsForm(request.POST, params=row.params, known_version=row.params_version)
    result = None
    if form.is_valid():
        result = actions.update_strategy_params(
            user=request.user,
            strategy_id=strategy_id,
            params=form.changes(),
            # 0 means the console had not heard the engine's version when it rendered the page (the form refuses a
            # 0 once it has): send no compare-and-set then.
            base_version=form.cleaned_data["base_version"] or None,
            reason=form.cleaned_data["reason"],
            ip_address=_ip(request),
        )
        if result.ok:
            # The bridge writes the new version a moment later; the next form starts from what the engine took.
            taken = {k: str(v) if isinstance(v, Decimal) else v for k, v in form.changes().items()}
            row.params = {**row.params, **taken}
            row.params_version = result.reply.get("params_version") or row.params_version
            form = StrategyParamsForm(
                params=row.params, initial={"base_version": row.params_version}, known_version=row.params_version
            )
        else:
            form.add_engine_error(result.code, result.reason)
    context = _strategy_context(request, row, params_form=form, result=result)
    status = 200 if result is not None and result.ok else 422
    return _partial(request, "trading/strategy.html", "trading/_strategy_params.html", context, status=status)


@require_POST
@permission_required(CONTROL)
def strategy_rollback(request, strategy_id: str):
    row = _strategy_or_404(strategy_id)
    form = RollbackForm(request.POST, current_version=row.params_version)
    result = None
    if form.is_valid():
        result = actions.rollback_strategy_params(
            user=request.user,
            strategy_id=strategy_id,
            version=form.cleaned_data["version"],
            base_version=form.cleaned_data["base_version"],
            reason=form.cleaned_data["reason"],
            ip_address=_ip(request),
        )
        if result.ok:
            # As after a change: the next form must carry the version the engine now has, or its compare-and-set
            # refuses the operator's next edit as stale.
            row.params = reads.param_version(strategy_id, form.cleaned_data["version"]) or row.params
            row.params_version = result.reply.get("params_version") or row.params_version
            form = RollbackForm()
    context = _strategy_context(request, row, rollback_form=form, result=result)
    status = 200 if result is not None and result.ok else 422
    return _partial(request, "trading/strategy.html", "trading/_strategy_params.html", context, status=status)


# --- orders -------------------------------------------------------------------------------------------------------


def _strategy_ids() -> list[str]:
    return [s.strategy_id for s in reads.strategies()]


@require_http_methods(["GET", "POST"])
@permission_required(SUBMIT)
def ticket(request):
    result = None
    if request.method == "POST":
        form = OrderTicketForm(request.POST, strategy_ids=_strategy_ids())
        if form.is_valid():
            result = actions.submit_order(user=request.user, **form.command_kwargs(), ip_address=_ip(request))
            if result.ok:
                form = OrderTicketForm(initial=_sticky(form), strategy_ids=_strategy_ids())
    else:
        form = OrderTicketForm(initial={"symbol": request.GET.get("symbol", "")}, strategy_ids=_strategy_ids())
    context = {"ticket": form, "result": result, "cancel_all": CancelAllForm(), "orders": selectors.working_orders()}
    status = 422 if request.method == "POST" and (result is None or not result.ok) else 200
    return _partial(request, "trading/ticket.html", "trading/_ticket_form.html", context, status=status)


def _sticky(form: OrderTicketForm) -> dict:
    """After an accepted order the ticket keeps instrument, strategy and type, so the next one is quick."""
    return {k: form.cleaned_data[k] for k in ("strategy_id", "symbol", "side", "order_type", "time_in_force")}


@require_POST
@permission_required(SUBMIT)
def cancel_order(request):
    form = CancelOrderForm(request.POST)
    result = None
    if form.is_valid():
        result = actions.cancel_order(
            user=request.user,
            client_order_id=form.cleaned_data["client_order_id"],
            symbol=form.cleaned_data["symbol"],
            reason=form.cleaned_data["reason"] or "manual cancel",
            ip_address=_ip(request),
        )
    context = {"result": result, "form": form}
    status = 200 if result is not None and result.ok else 422
    return render(request, "trading/_action_result.html", context, status=status)


@require_POST
@permission_required(SUBMIT)
def cancel_all(request):
    form = CancelAllForm(request.POST)
    result = None
    if form.is_valid():
        result = actions.cancel_all_orders(
            user=request.user,
            scope_kind=form.kind,
            scope_name=form.cleaned_data["scope_name"],
            reason=form.cleaned_data["reason"],
            ip_address=_ip(request),
        )
        if result.ok:
            form = CancelAllForm()
    context = {"cancel_all": form, "result": result}
    status = 200 if result is not None and result.ok else 422
    full = {**context, "ticket": OrderTicketForm(strategy_ids=_strategy_ids()), "orders": selectors.working_orders()}
    return _partial(request, "trading/ticket.html", "trading/_cancel_all.html", full, status=status)


# --- blotter ------------------------------------------------------------------------------------------------------

BLOTTER_PAGE_SIZE = 50
FILTER_NAMES = ("kind", "since", "until", "symbol", "strategy", "side", "status")


def _blotter_filter(request) -> tuple[selectors.BlotterFilter, dict, list[str]]:
    """The filter from the query string; values that do not parse are dropped and named in `problems`, so a bad
    link shows every row with a note rather than an error page."""
    q = request.GET
    values = {k: q.get(k, "").strip() for k in FILTER_NAMES}
    problems: list[str] = []

    def when(name: str) -> dt.datetime | None:
        if not values[name]:
            return None
        try:
            value = dt.datetime.fromisoformat(values[name])
        except ValueError:
            problems.append(f"{name}: not a date and time")
            return None
        return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)

    since, until = when("since"), when("until")
    if since and until and until <= since:
        problems.append("until: must be after from")
        until = None
    side = values["side"] if values["side"] in Side.values else ""
    status = values["status"] if values["status"] in OrderStatus.values else ""
    f = selectors.BlotterFilter(
        start=since,
        end=until,
        symbol=values["symbol"][:32],
        strategy_id=values["strategy"][:64],
        side=side,
        statuses=(status,) if status and values["kind"] != "fills" else (),
    )
    return f, values, problems


@require_GET
@permission_required(VIEW)
def blotter(request):
    f, values, problems = _blotter_filter(request)
    kind = "fills" if values["kind"] == "fills" else "orders"
    page_of = selectors.fill_blotter if kind == "fills" else selectors.order_blotter
    cursor = request.GET.get("cursor") or None
    try:
        page = page_of(filters=f, limit=BLOTTER_PAGE_SIZE, cursor=cursor)
    except selectors.SelectorError as exc:
        problems.append(f"{exc.code}: {exc.reason}")
        page = page_of(filters=f, limit=BLOTTER_PAGE_SIZE)
        cursor = None
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "kind": kind,
        "page": page,
        "first_page": cursor is None,
        "values": values,
        "problems": problems,
        "query": query.urlencode(),
        "symbols": instruments().symbols,
        "strategy_ids": _strategy_ids(),
        "sides": Side.values,
        "statuses": OrderStatus.values,
    }
    return _partial(request, "trading/blotter.html", "trading/_blotter_table.html", context)


@require_GET
@permission_required(VIEW)
def blotter_csv(request):
    f, values, _problems = _blotter_filter(request)
    kind = "fills" if values["kind"] == "fills" else "orders"
    if kind == "fills":
        qs, columns, time_field = selectors.fill_blotter_queryset(f), reads.FILL_CSV_COLUMNS, "ts"
    else:
        qs, columns, time_field = selectors.order_blotter_queryset(f), reads.ORDER_CSV_COLUMNS, "created_at"
    # A download of the books is itself a record worth keeping: who took which slice, when.
    record_audit_event(
        actor=request.user,
        action=AuditAction.EXPORT_DOWNLOADED,
        target=f"blotter:{kind}",
        details={"filters": values, "format": "csv"},
        ip_address=_ip(request),
    )
    fetch = sync_to_async(reads.csv_chunk)

    async def rows():
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        after = None
        while True:
            chunk, after = await fetch(qs, columns, time_field=time_field, after=after)
            # Order ids, reasons and codes arrive from outside (a venue, an operator): a cell starting with "=" must
            # open as text in a spreadsheet, never as a formula.
            writer.writerows(safe_row(row) for row in chunk)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if after is None:
                return

    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(rows(), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{kind}-{stamp}.csv"'
    return response
