"""Settings for the run command on a developer's machine: debug on, a secret key kept under var/."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_var = Path(os.environ.get("VAR_DIR", Path(__file__).resolve().parent.parent.parent / "var"))
if not os.environ.get("SECRET_KEY"):
    # A per-checkout key, generated once and kept out of the repository.
    _key_file = _var / "secret_key"
    if not _key_file.exists():
        _var.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    os.environ["SECRET_KEY"] = _key_file.read_text().strip()
os.environ.setdefault("DEBUG", "true")

from console.settings.base import *  # noqa: E402, F403

STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
# Static files are served from the app folders by WhiteNoise's finders; collectstatic is for production.
STATIC_ROOT = None
WHITENOISE_AUTOREFRESH = True
