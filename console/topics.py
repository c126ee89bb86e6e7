"""Live topics a browser may subscribe to on /ws/console/, and who may see each (docs/console.md).

The bridge publishes engine state to channel-layer groups `live.<topic>` (trading.live); the consumer joins a
group only after `check_topic` allows it. Topics are exact names: a wildcard would let a page subscribe to
streams it never names, so `*` is refused like any other unknown topic.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

GROUP_PREFIX = "live."

DESK_PERMISSIONS = ("trading.view_trading_desk", "riskdesk.view_risk_desk")
ANY_ROLE = ()  # no permission needed beyond holding a role (the consumer refuses users without one)

# Fixed topics and the permissions any one of which opens them.
FIXED_TOPICS: dict[str, tuple[str, ...]] = {
    "heartbeat": ANY_ROLE,
    "trading_state": ANY_ROLE,
    "alerts": ANY_ROLE,
    "pnl": DESK_PERMISSIONS,
    "positions": DESK_PERMISSIONS,
    "orders": DESK_PERMISSIONS,
    "fills": DESK_PERMISSIONS,
    "strategies": DESK_PERMISSIONS,
    "limits": DESK_PERMISSIONS,
    "risk": DESK_PERMISSIONS,
    "recon": ("compliance.view_compliance_desk",),
}
# Per-instrument topics: `<family>.<SYMBOL>` for a symbol in the instrument registry.
SYMBOL_FAMILIES = ("tob", "book", "trades")
# `user.<username>`: the outcome of the user's own console actions, for their other open pages. Nobody else's.
USER_FAMILY = "user"

# Engine command names a page might try to send over the socket, and the permission each needs. The socket is
# read-only (commands go through audited HTTP views), so these are always refused; the permission decides
# whether the attempt is a forgery (audited) or just the wrong channel.
COMMAND_PERMISSIONS: dict[str, str] = {
    "SubmitOrder": "trading.submit_order",
    "CancelOrder": "trading.submit_order",
    "ReplaceOrder": "trading.submit_order",
    "CancelAllOrders": "trading.submit_order",
    "StartStrategy": "trading.control_strategy",
    "StopStrategy": "trading.control_strategy",
    "UpdateStrategyParams": "trading.control_strategy",
    "RollbackStrategyParams": "trading.control_strategy",
    "SetLimits": "riskdesk.approve_limit",
    "HaltTrading": "riskdesk.trigger_kill_switch",
    "ReduceTrading": "riskdesk.trigger_kill_switch",
    "ResumeTrading": "riskdesk.resume_trading",
    "QueryVenueOrders": "compliance.resolve_reconciliation",
}

_TOPIC_SHAPE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_.-]+)?$")
MAX_TOPIC_LENGTH = 200
MAX_TOPICS_PER_SUBSCRIBE = 64

# Reason codes sent back to the page (and recorded in the audit trail for refusals that are forgeries).
UNKNOWN_TOPIC = "UNKNOWN_TOPIC"
TOPIC_FORBIDDEN = "TOPIC_FORBIDDEN"
OTHER_USERS_STREAM = "OTHER_USERS_STREAM"


@dataclass(frozen=True)
class TopicRefusal:
    topic: str
    code: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"topic": self.topic, "code": self.code, "reason": self.reason}


def known_symbols() -> frozenset[str]:
    """Symbols of the instrument registry the engine uses."""
    from console.selectors import instruments

    return frozenset(instruments().symbols)


def group_name(topic: str) -> str:
    """The channel-layer group of a topic. Channels allows group names of [A-Za-z0-9_.-] under 100 characters,
    and a Django username may be 150 characters of any letters: a user's stream is grouped by a digest of the
    name instead."""
    family, _, name = topic.partition(".")
    if family == USER_FAMILY and name:
        return f"{GROUP_PREFIX}{USER_FAMILY}.{hashlib.sha256(name.encode()).hexdigest()[:40]}"
    return GROUP_PREFIX + topic


def user_topic(username: str) -> str:
    return f"{USER_FAMILY}.{username}"


def check_topic(topic: object, *, username: str, permissions: frozenset[str]) -> TopicRefusal | None:
    """None when a user with `permissions` may subscribe to `topic`, else why not."""
    if not isinstance(topic, str) or len(topic) > MAX_TOPIC_LENGTH:
        return TopicRefusal(str(topic)[:MAX_TOPIC_LENGTH], UNKNOWN_TOPIC, "not a topic name")
    family, _, name = topic.partition(".")
    if family == USER_FAMILY and name:
        # Before the shape check: a username may hold any letter Django allows, and only its owner's name matches.
        if name != username:
            return TopicRefusal(topic, OTHER_USERS_STREAM, "a user stream is readable only by its user")
        return None
    if not _TOPIC_SHAPE.match(topic):
        return TopicRefusal(topic, UNKNOWN_TOPIC, "not a topic name")
    if not name:
        needed = FIXED_TOPICS.get(topic)
        if needed is None:
            return TopicRefusal(topic, UNKNOWN_TOPIC, f"no topic {topic!r}")
    elif family in SYMBOL_FAMILIES:
        if name not in known_symbols():
            return TopicRefusal(topic, UNKNOWN_TOPIC, f"no instrument {name!r}")
        needed = DESK_PERMISSIONS
    else:
        return TopicRefusal(topic, UNKNOWN_TOPIC, f"no topic family {family!r}")
    if needed and not permissions.intersection(needed):
        return TopicRefusal(topic, TOPIC_FORBIDDEN, f"needs one of {', '.join(needed)}")
    return None
