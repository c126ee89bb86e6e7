"""Typed readers for settings from the environment (start-up only).

Every reader fails with ImproperlyConfigured naming the variable, so a bad deployment stops at
start-up with the name of the bad value instead of failing later in a request.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_NO_DEFAULT = object()


def _raw(name: str, default: object) -> str | None:
    value = os.environ.get(name)
    if value is None:
        if default is _NO_DEFAULT:
            raise ImproperlyConfigured(f"{name} is not set; see .env.example")
        return None
    return value.strip()


def env_str(name: str, default: object = _NO_DEFAULT) -> str:
    value = _raw(name, default)
    return default if value is None else value  # type: ignore[return-value]


def env_bool(name: str, default: bool | object = _NO_DEFAULT) -> bool:
    value = _raw(name, default)
    if value is None:
        return default  # type: ignore[return-value]
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int | object = _NO_DEFAULT, *, minimum: int | None = None) -> int:
    value = _raw(name, default)
    if value is None:
        return default  # type: ignore[return-value]
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def env_list(name: str, default: list[str] | object = _NO_DEFAULT) -> list[str]:
    value = _raw(name, default)
    if value is None:
        return list(default)  # type: ignore[call-overload]
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise ImproperlyConfigured(f"{name} is empty; give a comma-separated list")
    return items


def env_database(name: str = "DATABASE_URL", default: object = _NO_DEFAULT) -> dict:
    """A PostgreSQL URL such as postgresql://user:pass@host:5432/dbname, parsed into DATABASES['default']."""
    value = _raw(name, default)
    if value is None:
        value = default  # type: ignore[assignment]
    parsed = urlparse(value)
    if parsed.scheme not in {"postgres", "postgresql", "pgsql"}:
        raise ImproperlyConfigured(f"{name} must be a postgresql:// URL, got scheme {parsed.scheme!r}")
    if not parsed.path.strip("/"):
        raise ImproperlyConfigured(f"{name} must name a database, e.g. postgresql://user@host:5432/dbname")
    try:
        _ = parsed.port  # raises ValueError for a non-numeric port
        config = dj_database_url.parse(value, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from None
    if not config.get("HOST") and not parsed.query:
        raise ImproperlyConfigured(f"{name} must name a host (or a socket directory via ?host=)")
    return config


def env_redis_url(name: str = "REDIS_URL", default: object = _NO_DEFAULT) -> str:
    value = _raw(name, default)
    if value is None:
        value = default  # type: ignore[assignment]
    parsed = urlparse(value)
    if parsed.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name} must be a redis:// URL, got scheme {parsed.scheme!r}")
    try:
        _ = parsed.port
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is malformed: {exc}") from None
    if parsed.scheme != "unix" and not parsed.hostname:
        raise ImproperlyConfigured(f"{name} must name a host, e.g. redis://127.0.0.1:6379/0")
    return value


def env_zmq_endpoint(name: str, default: object = _NO_DEFAULT) -> str:
    """A ZeroMQ endpoint: tcp://host:port or ipc:///path."""
    value = _raw(name, default)
    if value is None:
        value = default  # type: ignore[assignment]
    parsed = urlparse(value)
    if parsed.scheme == "tcp":
        try:
            port = parsed.port
        except ValueError:
            port = None
        if not parsed.hostname or port is None:
            raise ImproperlyConfigured(f"{name}={value!r} must be tcp://host:port")
    elif parsed.scheme == "ipc":
        if not (parsed.netloc + parsed.path):
            raise ImproperlyConfigured(f"{name}={value!r} must be ipc:///path/to/socket")
    else:
        raise ImproperlyConfigured(f"{name}={value!r} must be a tcp:// or ipc:// ZeroMQ endpoint")
    return value
