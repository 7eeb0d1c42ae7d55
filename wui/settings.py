"""Settings, all from the environment; defaults run embedded (SQLite, file broker).

A value that cannot be parsed stops start-up with the variable's name in the
error (django-environ raises ImproperlyConfigured).
"""

import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

VAR_DIR = Path(env("FLOTILLA_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# "shared": the cluster WUI on the shared address. "node": a unit's own WUI,
# whose menu depends on the unit's mode (standalone, admin, member).
FLOTILLA_ROLE = env("FLOTILLA_ROLE", default="shared")
if FLOTILLA_ROLE not in ("shared", "node"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"FLOTILLA_ROLE must be 'shared' or 'node', not {FLOTILLA_ROLE!r}")
NODE_HOME = env("NODE_HOME", default="")


def _secret_key():
    """SECRET_KEY from the environment, else one made once and kept in var/ (0600)."""
    if env("SECRET_KEY", default=""):
        return env("SECRET_KEY")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)

# The local cluster lives on 127.0.10.0/24 (the demo), 127.0.12.0/24 (benches) and 127.0.11, 13 and 14
# (test suites side by side).
_LOCAL_CLUSTER_HOSTS = [f"127.0.{b}.{n}" for b in (10, 11, 12, 13, 14) for n in range(1, 255)]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", *_LOCAL_CLUSTER_HOSTS])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "auditlog",
    "rest_framework",
    "drf_spectacular",
    "wui",
    "cluster",
    "nodes",
    "firmware",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "wui.middleware.LoginRequiredMiddleware",  # htmx requests too: the whole window goes to the login page
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "nodes.urls" if FLOTILLA_ROLE == "node" else "wui.urls"
WSGI_APPLICATION = "wui.wsgi.application"

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
                "wui.menu.context",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'flotilla.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web threads, the worker and health checks write concurrently.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    # Workers run many short tasks: reconnecting costs ~5 ms each (bench/README.md).
    DATABASES["default"].update({"CONN_MAX_AGE": env.int("CONN_MAX_AGE", default=60), "CONN_HEALTH_CHECKS": True})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# The test suite only (tests/lanes.sh and `make test-fast` set it): it makes a user for nearly every
# test, and the deliberately slow password hash cost it minutes on two cores while testing nothing.
if env.bool("FLOTILLA_TEST_FAST_PASSWORD_HASH", default=False):
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"

# The REST API (wui/api): API keys for scripts, the session (with CSRF) for the browser.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "wui.api.auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["wui.api.auth.KeyAllows"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Flotilla API",
    "DESCRIPTION": "The cluster of load-balancer nodes, as the WUI manages it.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["wui.api.auth.KeyAllows"],
}
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Wrong passwords: five tries per user and address, then locked out for 15 minutes.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True

# Every WUI is served over HTTPS (gunicorn terminates TLS itself: wui/gunicorn_conf.py, wui/tls.py):
# cookies only over HTTPS, and HSTS. Plain HTTP is redirected by gunicorn's own small listener, so
# Django redirects only when asked to (FLOTILLA_SSL_REDIRECT: a TLS proxy that forwards plain HTTP
# too); Django's test client speaks plain HTTP to the views and needs no redirect followed.
# FLOTILLA_HTTPS=false is for a WUI reached only through a proxy that serves plain HTTP.
HTTPS = env.bool("FLOTILLA_HTTPS", default=True)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = env.bool("FLOTILLA_SSL_REDIRECT", default=False)
if HTTPS and not SECURE_SSL_REDIRECT:
    SILENCED_SYSTEM_CHECKS = ["security.W008"]  # the redirect is gunicorn's plain-HTTP listener's
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_PROXY", default=False) else None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
# Production serves what `manage.py collectstatic` left in STATIC_ROOT: compressed (gzip) and named
# by content, so browsers keep each file for a year and a new version has a new name. A checkout that
# has not collected (development, the tests) serves its files as they are, cached for a minute.
STATIC_COLLECTED = env.bool("STATIC_COLLECTED", default=False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_COLLECTED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Uploads are streamed to disk past this size, never held whole in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 2**20

# Every task's hard limit, unless its decorator gives it a longer one: past it the task fails and its
# worker is replaced (wui/celery.py). A task is a few SSH calls, each bounded by the SSH timeouts.
CELERY_TASK_TIME_LIMIT = 120
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="flotilla-fs://")
if CELERY_BROKER_URL.startswith("flotilla-fs://"):
    _broker_dir = VAR_DIR / "broker"
    for _d in ("queue", "processed", "control"):
        (_broker_dir / _d).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # else relative to the working directory
        "store_processed": False,
        "polling_interval": 0.05,
    }
else:
    # Tasks are acknowledged when done: a message its worker died with goes back to the queue this
    # long after it was handed out (Redis's default is an hour). It must exceed the longest such task,
    # its limit plus as long again waiting for a free thread, or a task still running would be handed
    # to a second worker. The software update's long send is acknowledged when it starts instead: its
    # rows resume it (cluster/rollout/rules.py).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * CELERY_TASK_TIME_LIMIT + 60}
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="celery")
CELERY_TASK_IGNORE_RESULT = True  # outcomes are recorded on database rows
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# SSH to the nodes: the cluster's key (made on first use, 0600, never in git or the database).
CLUSTER_SSH_KEY = Path(env("CLUSTER_SSH_KEY", default=str(VAR_DIR / "ssh" / "cluster_ed25519")))
SSH_CONNECT_TIMEOUT = env.float("SSH_CONNECT_TIMEOUT", default=3.0)
SSH_COMMAND_TIMEOUT = env.float("SSH_COMMAND_TIMEOUT", default=10.0)
SSH_PORT = env.int("SSH_PORT", default=2222)
NODE_WUI_PORT = env.int("NODE_WUI_PORT", default=8000)

# The seed: an enabled node comes into rotation only after it has been up this long.
NODE_WARMUP_SECONDS = env.int("NODE_WARMUP_SECONDS", default=30)

# Tests only: a file holding seconds to add to the control plane's clock (cluster/clock.py), so
# that the test process and the worker move the time together. Never set in production.
CLOCK_OFFSET_FILE = env("FLOTILLA_CLOCK_OFFSET_FILE", default=None)

# A worker holds a join or a delete this long; after it, the health round hands it to another worker.
TASK_LEASE_SECONDS = env.int("TASK_LEASE_SECONDS", default=60)

# Licence: the most nodes this cluster may have.
LICENSE_MAX_NODES = env.int("LICENSE_MAX_NODES", default=64)

# Firmware patches must be signed by one of these ed25519 public keys (base64, raw 32 bytes).
FIRMWARE_TRUSTED_KEYS = env.list("FIRMWARE_TRUSTED_KEYS", default=[])
FIRMWARE_MAX_BYTES = env.int("FIRMWARE_MAX_BYTES", default=512 * 2**20)
# A rolling reboot halts when a node is not back, healthy on the new version, this long after its reboot.
ROLLOUT_NODE_TIMEOUT = env.int("ROLLOUT_NODE_TIMEOUT", default=300)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
}

# The admin checks every member about once a second (run the worker with -B).
CELERY_BEAT_SCHEDULER = "celery.beat:Scheduler"  # in memory: a 1 s interval needs no schedule file
CELERY_BEAT_SCHEDULE = {
    "check-health": {"task": "cluster.tasks.check_health", "schedule": env.float("HEALTH_INTERVAL", default=1.0)},
}

# Backup/Restore
BACKUP_MAX_BYTES = env.int("BACKUP_MAX_BYTES", default=16 * 2**20)  # a configuration is kilobytes
BACKUP_INTERVAL = env.float("BACKUP_INTERVAL", default=0)  # seconds between automatic backups; 0: none
BACKUP_KEEP = env.int("BACKUP_KEEP", default=7)  # automatic backups kept, the newest
# The cluster's own secret that authenticates its backups (HMAC); made on first use, 0600, never in git.
BACKUP_KEY_FILE = Path(env("BACKUP_KEY_FILE", default=str(VAR_DIR / "backup_key")))
BACKUP_INCLUDE_USERS = env.bool("BACKUP_INCLUDE_USERS", default=False)  # put password hashes in automatic ones
if BACKUP_KEEP < 1 or BACKUP_MAX_BYTES < 1 or BACKUP_INTERVAL < 0:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("BACKUP_KEEP and BACKUP_MAX_BYTES must be at least 1, BACKUP_INTERVAL not negative")
if BACKUP_INTERVAL:
    CELERY_BEAT_SCHEDULE = {
        **CELERY_BEAT_SCHEDULE,
        "scheduled-backup": {"task": "cluster.tasks.scheduled_backup", "schedule": BACKUP_INTERVAL},
    }
