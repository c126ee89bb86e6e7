"""The trader's actions: each sends one engine command through the console's engine client and is audited.

Every use case here is `verb_noun(*, user, ..., reason, ip_address)`: it builds the protocol command with the
operator's name, records the attempt (who / what / why / command id: audit row with details.phase "attempt") and
commits it, only then sends it (`EngineClient.request`: one reply, retried with the same command id so a retry
never doubles an order), then records the engine's reply (details.phase "reply": also when the engine refused or
did not answer) and on commit tells the user's other pages (topic `user.<name>`). Recording first means a command
the engine acted on always has its audit row, even if the console dies or the database fails between the send and
the reply; a failure to record the attempt sends nothing. Input is validated by the forms before it gets here;
the engine validates again (grid, risk, parameter schema) and its reason code is what the operator sees.
"""

from __future__ import annotations

import enum
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from django.db import transaction

from compliance.models import AuditAction
from compliance.services import record_audit_event
from console.engine_client import EngineClient, EngineClientError, new_command_id
from console.realtime import publish_to_user
from engine.protocol import (
    TEXT_MAX_LENGTH,
    CancelAllOrders,
    CancelOrder,
    CommandAccepted,
    OrderType,
    RollbackStrategyParams,
    Scope,
    ScopeKind,
    Side,
    StartStrategy,
    StopStrategy,
    SubmitOrder,
    TimeInForce,
    UpdateStrategyParams,
)

log = logging.getLogger(__name__)

ACCEPTED = "ACCEPTED"
ATTEMPT = "attempt"
REPLY = "reply"


@dataclass(frozen=True)
class ActionResult:
    """What the engine said about one console action: accepted, or the reason code it (or the link) gave."""

    ok: bool
    code: str
    reason: str
    command_id: str
    command: str
    target: str
    reply: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decimal_text(value: Any) -> str:
    # Parameter values arrive as a Decimal subclass of the protocol, which msgspec does not encode by itself.
    if isinstance(value, Decimal):
        return str(value)
    raise NotImplementedError(f"cannot audit a {type(value).__name__}")


def _builtins(message: Any) -> dict[str, Any]:
    # Decimals as strings (msgspec's default) and enums as names, nested ones too (a cancel-all's scope kind), so
    # the audit row reads like the form the operator filled in, and the result can travel through the channel layer.
    out = msgspec.to_builtins(message, enc_hook=_decimal_text)
    _name_enums(message, out)
    out.pop("v", None)
    return out


def _name_enums(struct: Any, out: dict[str, Any]) -> None:
    for key, value in out.items():
        attr = getattr(struct, key, None)
        if isinstance(attr, enum.Enum):
            out[key] = attr.name
        elif isinstance(attr, msgspec.Struct) and isinstance(value, dict):
            _name_enums(attr, value)


def _send(
    *,
    user,
    action: AuditAction,
    target: str,
    command: Any,
    reason: str,
    ip_address: str | None,
    details: dict[str, Any] | None = None,
) -> ActionResult:
    """Call outside any transaction: the attempt's audit row must be committed before the command leaves, and
    record_audit_event holds the audit chain's lock until the outermost transaction ends, which must not span an
    engine round trip."""
    audited = {"command": _builtins(command), "command_id": command.command_id, **(details or {})}
    record_audit_event(
        actor=user,
        action=action,
        target=target,
        details={"phase": ATTEMPT, **audited},
        reason=reason,
        ip_address=ip_address,
    )
    try:
        client = EngineClient.from_settings()
        try:
            reply = client.request(command)
        finally:
            client.close()
    except EngineClientError as exc:
        result = ActionResult(False, exc.code, exc.reason, command.command_id, type(command).__name__, target)
    else:
        accepted = type(reply) is CommandAccepted
        result = ActionResult(
            ok=accepted,
            code=ACCEPTED if accepted else getattr(reply, "code", type(reply).__name__),
            reason="" if accepted else getattr(reply, "reason", ""),
            command_id=command.command_id,
            command=type(command).__name__,
            target=target,
            reply=_builtins(reply),
        )
    with transaction.atomic():
        record_audit_event(
            actor=user,
            action=action,
            target=target,
            details={"phase": REPLY, **audited, "result": result.code, "reply": result.reply},
            reason=reason,
            ip_address=ip_address,
        )
        username = user.get_username()
        transaction.on_commit(lambda: _tell_user(username, result))
    return result


def _tell_user(username: str, result: ActionResult) -> None:
    try:
        publish_to_user(username=username, data={"action": result.as_dict(), "at": time.time()})
    except Exception:  # the action is done and audited; a missed notice to the user's other pages is not an error
        log.warning("could not tell %s's other pages the outcome of %s", username, result.command, exc_info=True)


def _act(
    command_type: type, *, user, action: AuditAction, target: str, reason: str, ip_address: str | None, **fields: Any
) -> ActionResult:
    """Build `command_type` in the operator's name with a fresh command id, then audit and send it (`_send`).
    A command that carries a reason of its own (stop, parameter change, rollback) gets the operator's: the engine
    keeps it with the strategy's history."""
    if "reason" in command_type.__struct_fields__:
        fields["reason"] = reason[:TEXT_MAX_LENGTH]
    command_id, operator = new_command_id(), user.get_username()[:64]
    command = command_type(command_id=command_id, operator=operator, ts=time.time_ns(), **fields)
    return _send(user=user, action=action, target=target, command=command, reason=reason, ip_address=ip_address)


def new_client_order_id() -> str:
    return f"m-{uuid.uuid4().hex[:20]}"


def submit_order(
    *,
    user,
    strategy_id: str,
    symbol: str,
    side: Side,
    order_type: OrderType,
    time_in_force: TimeInForce,
    quantity: Decimal,
    price: Decimal | None,
    reason: str,
    ip_address: str | None = None,
    client_order_id: str | None = None,
) -> ActionResult:
    client_order_id = client_order_id or new_client_order_id()
    return _act(
        SubmitOrder,
        user=user,
        action=AuditAction.ORDER_SUBMITTED,
        target=f"order:{client_order_id}",
        reason=reason,
        ip_address=ip_address,
        strategy_id=strategy_id,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        order_type=order_type,
        time_in_force=time_in_force,
        quantity=quantity,
        price=price if order_type is OrderType.LIMIT else None,
    )


def cancel_order(
    *, user, client_order_id: str, symbol: str, reason: str, ip_address: str | None = None
) -> ActionResult:
    action, target = AuditAction.ORDER_CANCELED, f"order:{client_order_id}"
    fields = {"client_order_id": client_order_id, "symbol": symbol}
    return _act(CancelOrder, user=user, action=action, target=target, reason=reason, ip_address=ip_address, **fields)


def cancel_all_orders(
    *, user, scope_kind: ScopeKind, scope_name: str, reason: str, ip_address: str | None = None
) -> ActionResult:
    action, target = AuditAction.CANCEL_ALL, f"{scope_kind.name.lower()}:{scope_name}"
    fields = {"scope": Scope(kind=scope_kind, name=scope_name)}
    return _act(
        CancelAllOrders, user=user, action=action, target=target, reason=reason, ip_address=ip_address, **fields
    )


def start_strategy(*, user, strategy_id: str, reason: str, ip_address: str | None = None) -> ActionResult:
    action, target = AuditAction.STRATEGY_STARTED, f"strategy:{strategy_id}"
    fields = {"strategy_id": strategy_id}
    return _act(StartStrategy, user=user, action=action, target=target, reason=reason, ip_address=ip_address, **fields)


def stop_strategy(
    *, user, strategy_id: str, reason: str, cancel_orders: bool = True, ip_address: str | None = None
) -> ActionResult:
    action, target = AuditAction.STRATEGY_STOPPED, f"strategy:{strategy_id}"
    fields = {"strategy_id": strategy_id, "cancel_orders": cancel_orders}
    return _act(StopStrategy, user=user, action=action, target=target, reason=reason, ip_address=ip_address, **fields)


def update_strategy_params(
    *,
    user,
    strategy_id: str,
    params: dict[str, Decimal | int | str | bool],
    base_version: int | None,
    reason: str,
    ip_address: str | None = None,
) -> ActionResult:
    action, target = AuditAction.STRATEGY_PARAMS_CHANGED, f"strategy:{strategy_id}"
    fields = {"strategy_id": strategy_id, "params": params, "base_version": base_version}
    command = UpdateStrategyParams
    return _act(command, user=user, action=action, target=target, reason=reason, ip_address=ip_address, **fields)


def rollback_strategy_params(
    *, user, strategy_id: str, version: int, base_version: int | None, reason: str, ip_address: str | None = None
) -> ActionResult:
    action, target = AuditAction.STRATEGY_PARAMS_ROLLED_BACK, f"strategy:{strategy_id}"
    fields = {"strategy_id": strategy_id, "version": version, "base_version": base_version}
    command = RollbackStrategyParams
    return _act(command, user=user, action=action, target=target, reason=reason, ip_address=ip_address, **fields)
