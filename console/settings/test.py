"""Settings for pytest: the machine's real PostgreSQL and Redis, a channel-layer prefix per run."""

from __future__ import annotations

import os
import secrets

# Subprocesses started by tests (daphne, celery workers) inherit these, so they share the key and prefix.
os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hft")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("CHANNEL_LAYER_PREFIX", f"hft-test-{secrets.token_hex(4)}")
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"console-test-{secrets.token_hex(4)}")
os.environ.setdefault("DEBUG", "false")

from console.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing; tests only
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
# Static files are served from the app folders by WhiteNoise's finders; collectstatic is for production.
STATIC_ROOT = None
# Connections opened by worker threads (channels' database_sync_to_async) must close after each
# use, or the test database cannot be dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
