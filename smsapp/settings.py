"""Settings for smsapp: one module, read from the environment with django-environ.

Every value a deployment changes comes from the environment (or a ``<NAME>_FILE`` holding it, for Docker/K8s
secrets). A ``.env`` file beside ``manage.py`` is read first when present; ``make run`` writes one with a random
secret key so that a fresh clone works with no configuration.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import django_stubs_ext
import environ
from django.core.exceptions import ImproperlyConfigured

# Lets generic classes be subscripted at run time (ModelAdmin[Contact], QuerySet[Contact]) for the type checker.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file() and not os.environ.get("SMSAPP_IGNORE_DOTENV"):
    env.read_env(BASE_DIR / ".env", overwrite=False)


def _secret(name: str, default: str = "") -> str:
    """A secret from ``NAME`` or from the file named by ``NAME_FILE``."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


# Core
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = _secret("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        # A development convenience only: sessions do not survive a restart, nothing secret is derived from it.
        SECRET_KEY = "insecure-development-key-" + "x" * 40
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY (or SECRET_KEY_FILE) in the environment, "
            "or DEBUG=true for local development."
        )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
# `make run` serves on WEB_PORT (8000) and starts fake_twilio on FAKE_TWILIO_PORT (8001); the Procfile reads both.
WEB_PORT = env.int("WEB_PORT", default=8000)
FAKE_TWILIO_PORT = env.int("FAKE_TWILIO_PORT", default=8001)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{WEB_PORT}").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PUBLIC_BASE_URL])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "ninja",
    "django_celery_beat",
    "axes",
    "smsapp.core",
    "smsapp",
    "providers",
    # Provider plugins: each registers itself (providers.registry); SMS_PROVIDER names the one that sends.
    "providers.twilio",
    "providers.console",
    "contacts",
    "texts",
    "campaigns",
    "hooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside everything that can answer an error, so that every error under /api/ is JSON (404, 405, 500 too).
    "smsapp.core.middleware.ApiErrorsAsJsonMiddleware",
    "smsapp.core.middleware.BodySizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view says @login_not_required (login, /healthz); the API and the signed
    # callback authenticate themselves (smsapp/core/middleware.py).
    "smsapp.core.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it answers a locked-out login attempt with the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "smsapp.urls"
WSGI_APPLICATION = "smsapp.wsgi.application"
ASGI_APPLICATION = "smsapp.asgi.application"

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
                "smsapp.context_processors.roles",
                "smsapp.context_processors.inbox",
            ],
        },
    },
]

# Database
# SQLite by default (make run); PostgreSQL in production and CI: DATABASE_URL=postgres://user:pass@host:5432/name
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for the write lock instead of failing at once, and use WAL so
    # readers never block the writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis (broker and cache). Unset means the embedded defaults below: no server to install.
REDIS_URL = env.str("REDIS_URL", default="")
VAR_DIR = Path(env.str("SMSAPP_VAR_DIR", default=str(BASE_DIR / "var")))

if REDIS_URL:
    CACHES = {
        "default": {
            # Django's, with one client per pool (smsapp/cache.py): a webhook's configuration check costs less.
            "BACKEND": "smsapp.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "TIMEOUT": 300,
        }
    }
else:
    # A file cache is shared by every process on the machine (web, worker, beat), unlike the local-memory cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# Celery
# With REDIS_URL, Redis is the broker. Without it, kombu's filesystem transport: a real broker that needs no
# server, shared by every worker and beat process on one machine through a folder (see README, "Embedded defaults").
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        # A task claimed by a worker that dies is redelivered after this many seconds (acks_late below).
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    }
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES_NAMES = ("sms_priority", "sms_bulk", "default")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after each task unless this is set (then it does
# so every this many tasks). The tasks here are many and small (pacer hand-outs, status flushes, 429 retries), and a
# PostgreSQL backend started and authenticated for each cost more than most of their queries: smsapp.core.celery
# applies Django's own rules around each task instead (close_old_connections: broken, or older than CONN_MAX_AGE).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)

# SMS (Twilio)
# Environment values win over the plugin page; the page says which ones come from here.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = _secret("TWILIO_AUTH_TOKEN")
TWILIO_API_KEY_SID = env.str("TWILIO_API_KEY_SID", default="")
TWILIO_API_KEY_SECRET = _secret("TWILIO_API_KEY_SECRET")
TWILIO_FROM = env.str("TWILIO_FROM", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")
# The WhatsApp sender number (E.164) and the Messenger Sender ID (the Facebook Page ID), bare: no "whatsapp:" prefix.
TWILIO_WHATSAPP_FROM = env.str("TWILIO_WHATSAPP_FROM", default="").removeprefix("whatsapp:")
TWILIO_MESSENGER_FROM = env.str("TWILIO_MESSENGER_FROM", default="").removeprefix("messenger:")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="").rstrip("/")
TWILIO_TIMEOUT_SECONDS = env.float("TWILIO_TIMEOUT_SECONDS", default=10.0)
# `make run`: while no credentials are configured (environment or plugin page), send through the local fake_twilio
# on FAKE_TWILIO_PORT with its development credentials. The first credentials saved on the page take over.
TWILIO_USE_LOCAL_FAKE = env.bool("TWILIO_USE_LOCAL_FAKE", default=False)
# Key for encrypting credentials at rest. Unset: derived from SECRET_KEY (rotate both together).
SMSAPP_ENCRYPTION_KEY = _secret("SMSAPP_ENCRYPTION_KEY")
# Seconds each process keeps the plugin configuration at most. A save is seen by every process at once through a
# version number in the shared cache (providers/twilio/config.py); this bounds staleness when that cache is unreachable.
SMS_CONFIG_CACHE_SECONDS = env.float("SMS_CONFIG_CACHE_SECONDS", default=5.0)
# How often a process asks the shared cache whether the configuration was saved elsewhere (a save is seen within it).
SMS_CONFIG_VERSION_CHECK_SECONDS = env.float("SMS_CONFIG_VERSION_CHECK_SECONDS", default=0.25)
# Which transport sends: "twilio" or "console" (prints, for development), like Django's email backends.
SMS_PROVIDER = env.str("SMS_PROVIDER", default="twilio")
# Only with DEBUG on: accept unsigned callbacks (the plugin page says so loudly).
SMS_CALLBACK_SKIP_SIGNATURE = DEBUG and env.bool("SMS_CALLBACK_SKIP_SIGNATURE", default=False)

# Consent and suppression (issue 17)
# Marketing texts go only to contacts whose number is subscribed (prior express written consent, as TCPA asks);
# transactional ones to anyone not opted out. Off: marketing to anyone not opted out, as before.
SMS_MARKETING_REQUIRES_CONSENT = env.bool("SMS_MARKETING_REQUIRES_CONSENT", default=True)
# Double opt-in (the join keyword, default JOIN, is managed in Settings > SMS keywords; the form is /join/): the text
# sent, the consent text the form shows (recorded with the confirmation), the word that confirms, and for how long.
SMS_DOUBLE_OPT_IN_MESSAGE = env.str(
    "SMS_DOUBLE_OPT_IN_MESSAGE",
    default="Reply YES to confirm you want marketing texts from us. Msg&data rates may apply. Reply STOP to opt out.",
)
SMS_DOUBLE_OPT_IN_CONSENT_TEXT = env.str(
    "SMS_DOUBLE_OPT_IN_CONSENT_TEXT",
    default=(
        "I agree to receive recurring marketing text messages at this number. Consent is not a condition of "
        "purchase. Msg&data rates may apply. Reply STOP to opt out, HELP for help."
    ),
)
SMS_DOUBLE_OPT_IN_CONFIRM_WORD = env.str("SMS_DOUBLE_OPT_IN_CONFIRM_WORD", default="YES")
SMS_DOUBLE_OPT_IN_HOURS = env.float("SMS_DOUBLE_OPT_IN_HOURS", default=24.0)
# The opt-out footer of marketing texts, on a line of its own: on the first marketing text a contact receives, or on
# every one (SMS_OPT_OUT_FOOTER_EVERY). Empty: no footer. Counted in the segments the editor and the estimate show.
SMS_OPT_OUT_FOOTER = env.str("SMS_OPT_OUT_FOOTER", default="Reply STOP to opt out")
SMS_OPT_OUT_FOOTER_EVERY = env.bool("SMS_OPT_OUT_FOOTER_EVERY", default=False)
# Bounces: after this many permanent delivery failures of an address (not a mobile, unknown, landline, invalid: the
# provider's ErrorKind.BAD_ADDRESS), it is suppressed with reason "bounced" (a marketer may lift a bounce).
SMS_BAD_ADDRESS_FAILURES = env.int("SMS_BAD_ADDRESS_FAILURES", default=2)
# Frequency caps of marketing texts per contact and channel, over the last 24 hours / 7 days of messages handed to
# the provider (0: no cap), checked when a worker claims a message; transactional texts are never capped. Over the
# cap, "defer" waits until the window has room, "skip" fails the message with the reason.
SMS_MARKETING_CAP_PER_DAY = env.int("SMS_MARKETING_CAP_PER_DAY", default=0)
SMS_MARKETING_CAP_PER_WEEK = env.int("SMS_MARKETING_CAP_PER_WEEK", default=0)
SMS_MARKETING_CAP_ACTION = env.str("SMS_MARKETING_CAP_ACTION", default="defer")
if SMS_MARKETING_CAP_ACTION not in {"defer", "skip"}:
    raise ImproperlyConfigured(f"SMS_MARKETING_CAP_ACTION must be defer or skip, not {SMS_MARKETING_CAP_ACTION!r}.")
# The public form's limits (django-ratelimit, on the cache: Redis when REDIS_URL is set), per address and per number.
SMS_JOIN_RATE_PER_IP = env.str("SMS_JOIN_RATE_PER_IP", default="10/h")
SMS_JOIN_RATE_PER_NUMBER = env.str("SMS_JOIN_RATE_PER_NUMBER", default="3/h")

# SMS sending pipeline (texts)
# Quiet hours for marketing messages, in each contact's timezone ("HH:MM"; an end before the start spans midnight).
SMS_QUIET_HOURS_START = env.str("SMS_QUIET_HOURS_START", default="08:00")
SMS_QUIET_HOURS_END = env.str("SMS_QUIET_HOURS_END", default="21:00")
# Transient provider errors: exponential backoff with jitter from the base, capped, up to this many attempts.
SMS_MAX_ATTEMPTS = env.int("SMS_MAX_ATTEMPTS", default=5)
# Attempts for a send the provider refused as too many at once (HTTP 429): nothing is wrong with the message, so more
# of them (12 at the default backoff is about 5 hours) before it fails.
SMS_MAX_THROTTLED_ATTEMPTS = env.int("SMS_MAX_THROTTLED_ATTEMPTS", default=12)
SMS_RETRY_BASE_SECONDS = env.float("SMS_RETRY_BASE_SECONDS", default=30.0)
SMS_RETRY_MAX_SECONDS = env.float("SMS_RETRY_MAX_SECONDS", default=3600.0)
# A row in `sending` for longer than this belongs to a dead worker: the sweeper requeues it or marks it unknown.
SMS_SENDING_STALE_SECONDS = env.float("SMS_SENDING_STALE_SECONDS", default=300.0)
# Status callbacks that never arrived (Twilio does not retry one that got no 200): every interval, up to BATCH messages
# still `sent` (or `unknown` with a SID) AFTER seconds after the provider was called, and younger than MAX_AGE hours,
# are fetched from the provider, each again at most every RECHECK seconds. BATCH=0 turns it off.
SMS_RECONCILE_INTERVAL_SECONDS = env.float("SMS_RECONCILE_INTERVAL_SECONDS", default=300.0)
SMS_RECONCILE_AFTER_SECONDS = env.float("SMS_RECONCILE_AFTER_SECONDS", default=900.0)
SMS_RECONCILE_MAX_AGE_HOURS = env.float("SMS_RECONCILE_MAX_AGE_HOURS", default=72.0)
SMS_RECONCILE_RECHECK_SECONDS = env.float("SMS_RECONCILE_RECHECK_SECONDS", default=3600.0)
SMS_RECONCILE_BATCH = env.int("SMS_RECONCILE_BATCH", default=500)
# Of a run's asks, at most this many for a price alone (asked last: statuses and unknown messages come first).
SMS_RECONCILE_PRICE_BATCH = env.int("SMS_RECONCILE_PRICE_BATCH", default=500)
# Status callbacks out of the request (texts.status_buffer): with Redis and PostgreSQL the callback appends a status
# to a Redis list and a flush task on sms_priority applies them in batches of SMS_STATUS_FLUSH_BATCH, about
# SMS_STATUS_FLUSH_DELAY_SECONDS after the first one; beat runs it every SMS_STATUS_FLUSH_INTERVAL_SECONDS too. A
# claimed batch whose flusher died goes back to the buffer after SMS_STATUS_FLUSH_STALE_SECONDS. SMS_STATUS_BUFFER
# false (or no Redis, or SQLite): every status is applied in its request, as replies always are.
SMS_STATUS_BUFFER = env.bool("SMS_STATUS_BUFFER", default=True)
# The web process hands a buffered status to a thread of its own, which pushes what the callbacks of the last
# SMS_STATUS_RELAY_DELAY_SECONDS handed over in one round trip (texts.status_buffer._Relay); off: one push per request.
# 50 ms: bench/webhooks.py's CPU per status fell by ~10% from 5 ms (one push per 1-2 statuses) to 50 ms (per ~20);
# a process killed outright loses at most that much (reconciliation fetches those statuses; a graceful stop pushes).
SMS_STATUS_RELAY = env.bool("SMS_STATUS_RELAY", default=True)
SMS_STATUS_RELAY_DELAY_SECONDS = env.float("SMS_STATUS_RELAY_DELAY_SECONDS", default=0.05)
SMS_STATUS_FLUSH_DELAY_SECONDS = env.float("SMS_STATUS_FLUSH_DELAY_SECONDS", default=0.5)
SMS_STATUS_FLUSH_BATCH = env.int("SMS_STATUS_FLUSH_BATCH", default=1000)
SMS_STATUS_FLUSH_INTERVAL_SECONDS = env.float("SMS_STATUS_FLUSH_INTERVAL_SECONDS", default=10.0)
SMS_STATUS_FLUSH_STALE_SECONDS = env.float("SMS_STATUS_FLUSH_STALE_SECONDS", default=60.0)
# The sending engine (texts.services.dispatch and .pacing). A worker process keeps up to SMS_SEND_CONCURRENCY calls
# to the provider in flight and claims SMS_CLAIM_CHUNK rows at a time; it sends a message only when its sender's slot
# is at most SMS_SCHEDULE_HORIZON_SECONDS away, and parks (bulk) or holds (priority) the rest instead of waiting. A
# message due again later than SMS_WAKE_HORIZON_SECONDS is parked rather than given a countdown task. The pacer runs
# every SMS_PACE_INTERVAL_SECONDS and hands out each sender's capacity SMS_PACE_WINDOW_SECONDS ahead.
SMS_SEND_CONCURRENCY = env.int("SMS_SEND_CONCURRENCY", default=32)
# A request leaves a little after its slot (the event loop wakes late while another thread holds the GIL): slots are
# spaced (1 + SMS_SEND_JITTER_SECONDS) / rate, so that requests up to this late never put more than rate + 1 into any
# second at the provider (providers.ratelimit). 0.05 costs a sender 4.8% of its rate.
SMS_SEND_JITTER_SECONDS = env.float("SMS_SEND_JITTER_SECONDS", default=0.05)
SMS_CLAIM_CHUNK = env.int("SMS_CLAIM_CHUNK", default=32)
SMS_SCHEDULE_HORIZON_SECONDS = env.float("SMS_SCHEDULE_HORIZON_SECONDS", default=0.5)
SMS_WAKE_HORIZON_SECONDS = env.float("SMS_WAKE_HORIZON_SECONDS", default=120.0)
SMS_PACE_INTERVAL_SECONDS = env.float("SMS_PACE_INTERVAL_SECONDS", default=1.0)
SMS_PACE_WINDOW_SECONDS = env.float("SMS_PACE_WINDOW_SECONDS", default=2.0)
# Tracked links (texts.services.links): a hit on a short link this soon after its message left is a carrier's or an
# app's preview, not a person's click.
SMS_LINK_PREVIEW_SECONDS = env.float("SMS_LINK_PREVIEW_SECONDS", default=2.0)
# Outgoing webhooks (hooks): each delivery is retried with backoff for this long, every call times out after this.
WEBHOOKS_RETRY_HOURS = env.float("WEBHOOKS_RETRY_HOURS", default=24.0)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
WEBHOOKS_RETRY_BASE_SECONDS = env.float("WEBHOOKS_RETRY_BASE_SECONDS", default=30.0)
# Broadcasts: how often beat runs the send_broadcasts job, and contacts per INSERT … SELECT (and per task).
BROADCASTS_INTERVAL_SECONDS = env.float("BROADCASTS_INTERVAL_SECONDS", default=60.0)
BROADCASTS_BATCH = env.int("BROADCASTS_BATCH", default=1000)

# Contacts
# Rules per filter-based segment: every rule is a condition of one SQL statement, and SQLite refuses an expression
# deeper than 1,000 ("Expression tree is too large"); more rules than this are a clear 400 on every database.
SEGMENT_MAX_RULES = env.int("SEGMENT_MAX_RULES", default=100)
DEFAULT_PHONE_REGION = env.str("DEFAULT_PHONE_REGION", default="US")
PHONENUMBER_DEFAULT_REGION = DEFAULT_PHONE_REGION
PHONENUMBER_DB_FORMAT = "E164"
# Uploaded CSV imports, read by the worker: web and worker must share this folder (a volume under docker compose).
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# CSV imports from the UI: a larger upload is refused as it arrives (never stored); a file with more columns is
# refused with its header (the mapping form has one select per column); a longer value is an error on its row.
# The import_contacts command has no size limit (it reads the file where it is).
IMPORT_MAX_UPLOAD_BYTES = env.int("IMPORT_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=200)
IMPORT_MAX_FIELD_CHARS = env.int("IMPORT_MAX_FIELD_CHARS", default=65_536)
# Processes that parse an import's phone numbers beside the one that writes it (1: none); used from 25,000 rows.
IMPORT_PARSE_PROCESSES = env.int("IMPORT_PARSE_PROCESSES", default=os.cpu_count() or 1)

# Campaigns
# The engine run's lock lease (renewed after every batch, so a killed run frees it this soon) and how long a claimed
# event log may stay `running` before the next run decides its process died and runs it again.
CAMPAIGNS_LOCK_SECONDS = env.int("CAMPAIGNS_LOCK_SECONDS", default=120)
CAMPAIGNS_STALE_RUNNING_SECONDS = env.int("CAMPAIGNS_STALE_RUNNING_SECONDS", default=600)

# Auth
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username (from any address), or
# from one address (for any username), logins from there wait LOGIN_LOCKOUT_MINUTES. A success clears the count.
# An admin unlocks sooner in the Django admin (Axes > Access attempts: delete the row) or with
# `manage.py axes_reset_username NAME` / `axes_reset_ip ADDRESS` / `axes_reset`.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.float("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "smsapp.views.login_locked_out"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Internationalisation
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Static files
STATIC_URL = "static/"
# `manage.py collectstatic` writes here; with DEBUG off the pages need it (whitenoise serves the hashed files).
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# The API and the Twilio callback: Twilio's largest webhook is a few KB; API bodies are small JSON documents.
MACHINE_MAX_BODY_BYTES = env.int("MACHINE_MAX_BODY_BYTES", default=1_048_576)

# API
# Requests per minute per token; more get 429.
API_RATE_LIMIT = env.str("API_RATE_LIMIT", default="600/m")

# Security (production: DEBUG off). `manage.py check --deploy` is clean with these.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    # Behind a TLS proxy (or TLS in gunicorn) leave it on. Served over plain HTTP (a test box, a private network),
    # set SECURE_SSL_REDIRECT=false: no redirect loop to an https:// nobody answers, and cookies without the Secure
    # flag, which a browser would not send back over HTTP (no login possible).
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    # A TLS proxy that does the redirect itself: SECURE_SSL_REDIRECT=false with SECURE_COOKIES=true.
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=SECURE_SSL_REDIRECT)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Logging: to stderr, one line per record. Secrets never reach a record (tested): providers mask tokens.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"forbidden_in_one_line": {"()": "smsapp.core.logs.ForbiddenInOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # Django's own console handler (DEBUG only) would print every django.* record a second time beside the root's.
        "django": {"handlers": [], "level": "INFO"},
        # A 403 is one line, not a traceback (smsapp/core/logs.py).
        "django.request": {"filters": ["forbidden_in_one_line"]},
        "django.security": {"filters": ["forbidden_in_one_line"]},
        # django-axes says INFO at every start and every login; its lockouts (WARNING) are what an operator needs.
        "axes": {"level": "WARNING"},
        # The twilio client logs request headers (Basic auth) at DEBUG: never let it below WARNING.
        "twilio": {"level": "WARNING"},
        "twilio.http_client": {"level": "WARNING"},
    },
}
