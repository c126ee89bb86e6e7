"""Settings shared by every environment; every deployment-specific value comes from the environment."""

from __future__ import annotations

from pathlib import Path

from console.env import env_bool, env_database, env_int, env_list, env_redis_url, env_str, env_zmq_endpoint

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", ["http://127.0.0.1:8000", "http://localhost:8000"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "console",
    "trading",
    "riskdesk",
    "compliance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "console.urls"
ASGI_APPLICATION = "console.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.context_processors.roles",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_redis_url("REDIS_URL")
CHANNEL_LAYER_PREFIX = env_str("CHANNEL_LAYER_PREFIX", "hft")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": CHANNEL_LAYER_PREFIX, "capacity": 1000, "expiry": 30},
    }
}

CELERY_BROKER_URL = env_redis_url("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_redis_url("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "console")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # The console heartbeat travels beat -> worker -> Redis channel layer -> every open websocket,
    # so a browser that sees it knows the whole real-time path is alive.
    "console-heartbeat": {"task": "console.tasks.broadcast_heartbeat", "schedule": 2.0},
    # Must stay well inside the engine's dead-man timeout (config/engine.toml [[triggers]] heartbeat_timeout_ns).
    "engine-heartbeat": {
        "task": "console.tasks.heartbeat_engine",
        "schedule": float(env_int("ENGINE_HEARTBEAT_INTERVAL_S", 2, minimum=1)),
        "options": {"expires": 5},
    },
}
# Each app keeps its own beat entries beside its tasks (<app>/schedule.py: plain data, safe to import here).
from compliance.schedule import BEAT as _COMPLIANCE_BEAT  # noqa: E402
from riskdesk.schedule import BEAT as _RISKDESK_BEAT  # noqa: E402
from trading.schedule import BEAT as _TRADING_BEAT  # noqa: E402

CELERY_BEAT_SCHEDULE |= _TRADING_BEAT | _RISKDESK_BEAT | _COMPLIANCE_BEAT
ENGINE_HEARTBEAT_STALE_S = env_int("ENGINE_HEARTBEAT_STALE_S", 10, minimum=1)

# Time series (trading/timeseries.py): market data kept for weeks, order events and fills as books and records.
TIMESERIES_RETENTION_DAYS = env_int("TIMESERIES_RETENTION_DAYS", 30, minimum=1)
ORDER_RETENTION_DAYS = env_int("ORDER_RETENTION_DAYS", 2557, minimum=1)
TIMESERIES_PARTITIONS_AHEAD_DAYS = env_int("TIMESERIES_PARTITIONS_AHEAD_DAYS", 3, minimum=1)

# Risk desk: a burst of denied orders that raises an alert (riskdesk/services/watcher.py).
RISK_DENIED_BURST_COUNT = env_int("RISK_DENIED_BURST_COUNT", 20, minimum=1)
RISK_DENIED_BURST_WINDOW_S = env_int("RISK_DENIED_BURST_WINDOW_S", 10, minimum=1)

# Compliance desk (docs/compliance.md).
COMPLIANCE_EXPORT_DIR = Path(env_str("COMPLIANCE_EXPORT_DIR", str(VAR_DIR / "exports")))
COMPLIANCE_PDF_MAX_ROWS = env_int("COMPLIANCE_PDF_MAX_ROWS", 100_000, minimum=1)
COMPLIANCE_EXPORT_STALE_S = env_int("COMPLIANCE_EXPORT_STALE_S", 300, minimum=1)
COMPLIANCE_CAT_REPORTER_IMID = env_str("COMPLIANCE_CAT_REPORTER_IMID", "FIRM")
COMPLIANCE_CAT_DESTINATION = env_str("COMPLIANCE_CAT_DESTINATION", "SIM")
COMPLIANCE_RECON_FILL_WINDOW_S = env_int("COMPLIANCE_RECON_FILL_WINDOW_S", 86400, minimum=1)
# Clock offset alert threshold: 50 ms is CAT's; RTS 25 asks 100 us of high-frequency traders.
COMPLIANCE_CLOCK_THRESHOLD_US = env_int("COMPLIANCE_CLOCK_THRESHOLD_US", 50_000, minimum=1)

# The engine process (built in later issues). The console's engine client is the only code that uses these.
ENGINE_COMMAND_ENDPOINT = env_zmq_endpoint("ENGINE_COMMAND_ENDPOINT", "tcp://127.0.0.1:7101")
ENGINE_EVENT_ENDPOINT = env_zmq_endpoint("ENGINE_EVENT_ENDPOINT", "tcp://127.0.0.1:7102")
ENGINE_TIMEOUT_MS = env_int("ENGINE_TIMEOUT_MS", 1000, minimum=1)
ENGINE_INSTRUMENTS_FILE = Path(env_str("ENGINE_INSTRUMENTS_FILE", str(BASE_DIR / "config" / "instruments.toml")))
# The engine's own config file (the Procfile passes the same ENGINE_CONFIG to `python -m engine`): the console reads
# the strategies and accounts in it as reference data (trading.services.reference).
ENGINE_CONFIG_FILE = Path(env_str("ENGINE_CONFIG", str(BASE_DIR / "config" / "engine.toml")))

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
# Browser libraries installed by `npm ci` (bin/setup), pinned in package-lock.json, served under /static/vendor/.
STATICFILES_DIRS = [
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/uplot", BASE_DIR / "node_modules" / "uplot" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# CURVE keys between the console and the engine (`manage.py engine_keys` writes both pairs here; the engine's
# config file names the same directory under [security] keys_dir). The console reads console.key_secret and
# engine.key; without them the engine client cannot connect.
ENGINE_CURVE_KEYS_DIR = Path(env_str("ENGINE_CURVE_KEYS_DIR", str(VAR_DIR / "engine" / "keys")))
# Attempts per engine command (the same command id every time: the engine answers a repeat with its first reply).
ENGINE_COMMAND_RETRIES = env_int("ENGINE_COMMAND_RETRIES", 3, minimum=1)
