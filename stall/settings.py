"""Django settings for Stall.

Everything comes from environment variables; with none set, Stall runs on embedded defaults that
keep all state in ``./var`` (or ``STALL_DATA_DIR``): a SQLite database in WAL mode, uploaded files,
Huey's SQLite queue and a generated secret key.
"""

import os
import re
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("STALL_DATA_DIR") or Path.cwd() / "var").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_bool_or_auto(name: str) -> bool | None:
    """An on/off switch that may be left to Stall: unset, empty or "auto" is None."""
    value = (os.environ.get(name) or "").strip().lower()
    if value in ("", "auto"):
        return None
    return value in {"1", "true", "yes", "on"}


def _secret_key() -> str:
    if os.environ.get("STALL_SECRET_KEY"):
        return os.environ["STALL_SECRET_KEY"]
    path = DATA_DIR / "secret_key"
    try:
        # O_EXCL: several worker processes may start at once; exactly one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        key = secrets.token_urlsafe(50)
        fh.write(key)
    return key


SECRET_KEY = _secret_key()
DEBUG = _env_bool("STALL_DEBUG")

# Where links in emails and webhooks point; by default where `stall serve` listens (PORT, as it reads it).
BASE_URL = os.environ.get("STALL_BASE_URL", f"http://127.0.0.1:{os.environ.get('PORT') or '8000'}").rstrip("/")
_base_host = urlsplit(BASE_URL).hostname or "127.0.0.1"
ALLOWED_HOSTS = sorted(
    {_base_host, "127.0.0.1", "localhost", "[::1]"}
    | {h.strip() for h in os.environ.get("STALL_ALLOWED_HOSTS", "").split(",") if h.strip()}
)
CSRF_TRUSTED_ORIGINS = [f"{urlsplit(BASE_URL).scheme}://{urlsplit(BASE_URL).netloc}"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Before ninja: core's AppConfig module prepares ninja's import (stall/core/ninja_setup.py).
    "stall.core",
    "ninja",  # so /api/v1/docs serves Swagger UI from our own static files, not a CDN (CSP)
    "huey.contrib.djhuey",
    "stall.ledger",
    "stall.accounts",
    "stall.stores",
    "stall.catalog",
    "stall.audience",
    "stall.checkout",
    "stall.payments",
    "stall.orders",
    "stall.integrations",
    "stall.wallets",
    "stall.content",
    "stall.memberships",
    "stall.metering",
    "stall.campaigns",
    "stall.commissions",
    "stall.insights",
    "stall.books",
    "stall.dashboard",
]

MIDDLEWARE = [
    # First, so its line and counters see every answer, redirects and static files included.
    "stall.core.requestlog.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "stall.core.middleware.EnglishOnlyMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "stall.core.middleware.MessageMiddleware",  # Django's, for pages only (not the API)
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "stall.core.middleware.ContentSecurityPolicyMiddleware",
    "stall.core.idempotency.IdempotencyMiddleware",
    # Counts the store, product and post pages a request served (cookieless, buffered).
    "stall.insights.pageviews.PageViewMiddleware",
]

ROOT_URLCONF = "stall.urls"
WSGI_APPLICATION = "stall.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "stall.wallets.context_processors.buyer",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
PREPARE_THRESHOLD = 5  # psycopg's own default
_database_url = os.environ.get("DATABASE_URL", "")
if _database_url and not _database_url.startswith("sqlite:"):
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=600)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend without the LIKE twin of every varchar index (stall/core/postgresql).
        DATABASES["default"]["ENGINE"] = "stall.core.postgresql"
    # A kept connection is checked after it idled, not before every request (stall/core/postgresql).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if _env_bool("STALL_PG_PREPARED", True):
        # Values travel apart from the statement text, and a statement a connection has sent
        # PREPARE_THRESHOLD times is prepared there the next time: PostgreSQL parses and plans it
        # once, not on every call. The one-click spend's first SELECT planned in about 0.5 ms and
        # ran in 0.1 ms. bench/unlock.py on PostgreSQL, 32 clients: 393 and 433 spends/s against
        # 223 and 269 without. Off behind a pooler that hands each transaction another server
        # connection (PgBouncer in transaction mode before 1.21).
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=PREPARE_THRESHOLD,
        )
else:
    # DATABASE_URL=sqlite:////path/to/file names another file, tuned the same way.
    _sqlite_name = dj_database_url.parse(_database_url)["NAME"] if _database_url else None
    DATABASES = {
        "default": {
            # Django's SQLite backend, with write transactions queued by the application while
            # STALL_SQLITE_WRITE_LOCK is on, as it is by default (see stall/core/sqlite/base.py).
            "ENGINE": "stall.core.sqlite",
            "NAME": _sqlite_name or DATA_DIR / "stall.sqlite3",
            # Persistent connections save ~2 ms a request; SQLite connections are cheap to keep.
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout
                # instead of one failing with "database is locked" when it upgrades a read lock.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA busy_timeout=20000;"
                    "PRAGMA foreign_keys=ON;"
                ),
            },
            # A file, not memory, so threads, live servers and subprocesses share the test database.
            "TEST": {"NAME": str(DATA_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# On by default: measured with bench/unlock.py (SQLite, 32 clients), waiting writers woken at once
# instead of by SQLite's busy handler carried ~40% more spends and halved p99 (stall/core/sqlite).
STALL_SQLITE_WRITE_LOCK = _env_bool("STALL_SQLITE_WRITE_LOCK", True)

# --- Cache, queue ---------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    # Rate limits (stall.core.limits) count with Redis's INCR, shared by every process and machine.
    CACHES["limits"] = {**CACHES["default"], "KEY_PREFIX": "limits"}
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": os.environ.get("STALL_QUEUE_NAME", "stall"),
        "url": REDIS_URL,
        # Nothing reads a task's return value: storing it is a write per task for nothing.
        "results": False,
        "immediate": False,
        "consumer": {"workers": 2, "worker_type": "thread"},
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # Rate limits must be counted once for all web workers, which local memory is not (each
        # process has its own); files in the data directory are shared by every process of the
        # machine, and stall.core.cache makes their counting atomic (stall.core.limits).
        "limits": {
            "BACKEND": "stall.core.cache.LockedFileCache",
            "LOCATION": str(DATA_DIR / "limits"),
            "OPTIONS": {"MAX_ENTRIES": 20_000},
        },
    }
    HUEY = {
        "huey_class": "stall.core.sqlite.queue.QueueHuey",  # synced as the database is
        "name": "stall",
        "filename": str(DATA_DIR / "queue.sqlite3"),
        "results": False,  # as above
        "immediate": False,
        "consumer": {"workers": 2, "worker_type": "thread"},
    }


def _huey_storage_import(*, hide: list[str]) -> None:
    """Import Huey's storage module with the clients in ``hide`` out of its sight.

    huey.storage imports redis and psycopg whenever they are installed, for queues that may not
    be in use: on SQLite with no Redis, that is ~17 MB of an idle Stall process's ~90 MB, in every
    process. They are hidden only while Huey's module is imported; an import of them afterwards,
    by anyone, works as usual."""
    hide = [name for name in hide if name not in sys.modules]
    for name in hide:
        sys.modules[name] = None  # `import name` raises ImportError, which Huey expects
    try:
        import huey.storage  # noqa: F401
    finally:
        for name in hide:
            del sys.modules[name]


_huey_storage_import(hide=[
    *([] if REDIS_URL else ["redis"]),
    *([] if DATABASES["default"]["ENGINE"].endswith("postgresql") else ["psycopg"]),
])

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "accounts:login"

# --- Files ----------------------------------------------------------------------------------
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"
PRIVATE_FILES_ROOT = DATA_DIR / "private"
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at every start when it is missing
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

if os.environ.get("STALL_S3_BUCKET"):
    _s3 = {
        "bucket_name": os.environ["STALL_S3_BUCKET"],
        "endpoint_url": os.environ.get("STALL_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("STALL_S3_REGION") or None,
    }
    STORAGES = {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3, "location": "media", "querystring_auth": False}},
        "private": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**_s3, "location": "private", "default_acl": "private"}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
else:
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "private": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(PRIVATE_FILES_ROOT), "base_url": None},
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # larger uploads spool to disk, never held whole in memory
DATA_UPLOAD_MAX_MEMORY_SIZE = 5_242_880
STALL_MAX_UPLOAD_BYTES = int(os.environ.get("STALL_MAX_UPLOAD_BYTES", 512 * 1024 * 1024))

# --- Email ----------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = os.environ.get("STALL_FROM_EMAIL", "Stall <store@localhost>")
_email_url = os.environ.get("EMAIL_URL", "")
if _email_url.startswith(("smtp://", "smtps://", "submission://")):
    _u = urlsplit(_email_url)
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _u.hostname or "localhost"
    EMAIL_PORT = _u.port or (465 if _u.scheme == "smtps" else 587 if _u.scheme == "submission" else 25)
    EMAIL_HOST_USER = _u.username or ""
    EMAIL_HOST_PASSWORD = _u.password or ""
    EMAIL_USE_SSL = _u.scheme == "smtps"
    EMAIL_USE_TLS = _u.scheme == "submission"
    EMAIL_TIMEOUT = 20
elif _email_url.startswith("file://"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = urlsplit(_email_url).path
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ko", "한국어"), ("pt-br", "Português (Brasil)")]
TIME_ZONE = "UTC"
USE_I18N = True
# Buyer pages, their errors and their emails are translated (stall/locale, compiled by `make
# messages`); the API and the creator dashboard stay English, like Stripe's API and dashboard.
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_NAME = "stall_language"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
STALL_ENGLISH_ONLY_PATHS = ("/api/", "/dashboard/", "/login/", "/signup/", "/logout/")
USE_TZ = True

# --- Security -------------------------------------------------------------------------------
_https = BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = _https
LANGUAGE_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SECURE_SSL_REDIRECT = _https and _env_bool("STALL_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = 31_536_000 if _https else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _https
SECURE_HSTS_PRELOAD = _https
# Behind a reverse proxy, the client's address is the last one the proxy added to X-Forwarded-For
# (stall.core.limits.client_address); without one, that header is the client's to forge.
STALL_BEHIND_PROXY = _env_bool("STALL_BEHIND_PROXY")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if STALL_BEHIND_PROXY else None
SESSION_COOKIE_HTTPONLY = True
# Sessions are rows in the database, chosen over the alternatives: signing out removes the buyer
# from the row, so every copy of the cookie is signed out with it (a signed-cookie session cannot
# be revoked before it expires), and every process reads the same row (cached_db on the default
# local-memory cache would let another worker serve a signed-out session from its own cache).
# A row is written only when the session changes — sign-in, sign-out — never on an ordinary
# request: keep SESSION_SAVE_EVERY_REQUEST off (stall/accounts/tests/test_buyer_session.py).
# stall.core.sessions is Django's db backend with its one read written as SQL (the hot path's).
SESSION_ENGINE = "stall.core.sessions"
SESSION_SAVE_EVERY_REQUEST = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# --- Stall ----------------------------------------------------------------------------------
# Share of every sale the operator keeps, in basis points (100 = 1%). A solo creator keeps 0.
STALL_PLATFORM_FEE_BPS = int(os.environ.get("STALL_PLATFORM_FEE_BPS", "0"))
STALL_CHECKOUT_TTL_SECONDS = int(os.environ.get("STALL_CHECKOUT_TTL_SECONDS", str(24 * 3600)))
STALL_DOWNLOAD_LINK_TTL_SECONDS = int(os.environ.get("STALL_DOWNLOAD_LINK_TTL_SECONDS", str(24 * 3600)))
STALL_DOWNLOAD_LIMIT = int(os.environ.get("STALL_DOWNLOAD_LIMIT", "10"))
STALL_MAGIC_LINK_TTL_SECONDS = int(os.environ.get("STALL_MAGIC_LINK_TTL_SECONDS", str(7 * 24 * 3600)))
# The sandbox's test cards (sandbox_visa, …). Unset (or "auto"): on only where nothing real is
# configured — no Stripe keys, the platform's or the store's own, and a base URL that is not https:
# the demo, a developer's machine. Decided when asked (stall.payments.rails.sandbox_enabled), so a
# store that saves its own Stripe keys stops offering them at once. 1: on everywhere, next to real
# rails too (test mode: orders paid with them are test orders, kept out of balances). 0: off.
STALL_SANDBOX_ENABLED = _env_bool_or_auto("STALL_SANDBOX_ENABLED")
# Seconds before Huey retries a failed task that has retries (receipts, notices). Huey writes
# it into each task's message when the task is queued: give web and worker processes the same.
STALL_TASK_RETRY_DELAY_SECONDS = int(os.environ.get("STALL_TASK_RETRY_DELAY_SECONDS", "60"))
# Test only (0, off, by default): the sandbox takes this long to answer a new payment, like a card
# network's round trip, so a crash test can kill the server while payments are with the rail.
STALL_SANDBOX_DELAY_MS = int(os.environ.get("STALL_SANDBOX_DELAY_MS", "0"))
# A card payment left processing (a crash between reserving it and hearing from the rail) is asked
# about again: by the periodic reconciliation once it is this old (Stripe's has its own setting,
# STRIPE_RECONCILE_AFTER_MINUTES), and by the buyer's next confirm once it is this old.
STALL_PAYMENT_RECONCILE_AFTER_SECONDS = int(
    os.environ.get("STALL_PAYMENT_RECONCILE_AFTER_SECONDS", "120")
)
STALL_PAYMENT_RESUME_AFTER_SECONDS = int(os.environ.get("STALL_PAYMENT_RESUME_AFTER_SECONDS", "5"))

# plain (the default): one readable line per message. json: one JSON object per line, and one line
# per request from stall.core.requestlog (request id, method, path, store, status, duration).
STALL_LOG_FORMAT = (os.environ.get("STALL_LOG_FORMAT") or "plain").strip().lower()
if STALL_LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"STALL_LOG_FORMAT is plain or json, not {STALL_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "stall.core.logjson.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": STALL_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("STALL_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The request lines: on with the JSON format, which is what log pipelines read; the plain
        # format stays as quiet as before (`stall serve --access-log` has gunicorn's own lines).
        "stall.request": {"level": "INFO" if STALL_LOG_FORMAT == "json" else "WARNING"},
        # With a handler of its own here, `run_huey` adds none, so lines are not printed twice.
        "huey": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # "Enqueueing periodic task…" every minute is noise; task runs and failures still show.
        "huey.consumer.Scheduler": {"level": "WARNING"},
    },
}
CSRF_FAILURE_VIEW = "stall.core.views.csrf_failure"

# Outbound webhooks. Private and loopback targets are refused unless the operator allows them.
STALL_WEBHOOK_ALLOW_PRIVATE = _env_bool("STALL_WEBHOOK_ALLOW_PRIVATE", DEBUG)
STALL_WEBHOOK_ALLOW_LOOPBACK = _env_bool("STALL_WEBHOOK_ALLOW_LOOPBACK", DEBUG)
STALL_WEBHOOK_DISABLE_AFTER = int(os.environ.get("STALL_WEBHOOK_DISABLE_AFTER", "50"))
# How long a worker holds a delivery it is sending. If the worker dies mid-attempt, the retry
# sweep sends the delivery again once this has passed; longer than any attempt can take.
STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS = int(
    os.environ.get("STALL_WEBHOOK_ATTEMPT_LEASE_SECONDS", "300")
)

# --- Stripe (the platform's account; a store's own keys, set in payments.StripeAccount, win) ------
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "").rstrip("/")  # e.g. a local localstripe
STRIPE_JS_URL = os.environ.get("STRIPE_JS_URL", "https://js.stripe.com/v3/")
STRIPE_MAX_NETWORK_RETRIES = int(os.environ.get("STRIPE_MAX_NETWORK_RETRIES", "2"))
STRIPE_TIMEOUT_SECONDS = float(os.environ.get("STRIPE_TIMEOUT_SECONDS", "30"))
# Stripe payments still processing or awaiting the buyer this long are asked about again.
STRIPE_RECONCILE_AFTER_MINUTES = int(os.environ.get("STRIPE_RECONCILE_AFTER_MINUTES", "15"))
# A store may point at another Stripe API address (a local localstripe) only when allowed: the
# server sends the store's requests there.
STRIPE_ALLOW_CUSTOM_API_BASE = _env_bool("STRIPE_ALLOW_CUSTOM_API_BASE", DEBUG)
# Stripe's fee for a chargeback (minor units of the disputed payment's currency; $15.00 in the US),
# taken from the store's balance with the disputed amount, and whether Stripe returns it when the
# store wins (STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON; Stripe's terms differ by country).
STALL_STRIPE_DISPUTE_FEE = int(os.environ.get("STALL_STRIPE_DISPUTE_FEE", "1500"))
STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON = _env_bool("STALL_STRIPE_DISPUTE_FEE_RETURNED_WHEN_WON", False)
LOGGING["loggers"]["stripe"] = {"level": "WARNING"}  # the library logs every request at INFO

# --- Lightning through a store's own LNbits wallet (payments.LightningAccount) --------------------
STALL_LNBITS_TIMEOUT_SECONDS = float(os.environ.get("STALL_LNBITS_TIMEOUT_SECONDS", "10"))
# How long a Lightning invoice can be paid (never past its checkout's expiry).
STALL_LIGHTNING_INVOICE_EXPIRY_SECONDS = int(os.environ.get("STALL_LIGHTNING_INVOICE_EXPIRY_SECONDS", "900"))
# A store may point at an LNbits on this machine or a private network only when allowed: the server
# sends the store's requests there (off by default on a real Stall, on in development).
STALL_LNBITS_ALLOW_PRIVATE = _env_bool("STALL_LNBITS_ALLOW_PRIVATE", DEBUG)

# Micropayments. Amounts in dollars' worth of major units: for another currency each is scaled
# to a round figure of that currency (top-ups from ₩5,000 in a KRW store; see
# stall.core.money.money_setting), or set for it alone: STALL_TOP_UP_PRESETS_KRW=5000,10000,20000.
STALL_MONEY_SETTINGS = (
    "STALL_WALLET_CONFIRM_ABOVE", "STALL_TOP_UP_PRESETS", "STALL_TOP_UP_MIN", "STALL_TOP_UP_MAX",
    "STALL_TAB_FIRST_LIMIT", "STALL_TAB_LIMIT", "STALL_TIP_PRESETS", "STALL_TIP_MIN", "STALL_TIP_MAX",
)
STALL_MONEY_OVERRIDES = {
    key: value.strip() for key, value in os.environ.items()
    if re.fullmatch(r"[A-Z_]+_[A-Z]{3}", key) and key.rsplit("_", 1)[0] in STALL_MONEY_SETTINGS
}
STALL_TIP_PRESETS = [p.strip() for p in os.environ.get("STALL_TIP_PRESETS", "1,3,5").split(",") if p.strip()]
STALL_TIP_MIN = os.environ.get("STALL_TIP_MIN", "0.50")
STALL_TIP_MAX = os.environ.get("STALL_TIP_MAX", "500")
STALL_WALLET_CONFIRM_ABOVE = os.environ.get("STALL_WALLET_CONFIRM_ABOVE", "5")  # one click up to this
STALL_TOP_UP_PRESETS = [p.strip() for p in os.environ.get("STALL_TOP_UP_PRESETS", "5,10,20").split(",") if p.strip()]
STALL_TOP_UP_MIN = os.environ.get("STALL_TOP_UP_MIN", "5")
STALL_TOP_UP_MAX = os.environ.get("STALL_TOP_UP_MAX", "200")
STALL_TAB_FIRST_LIMIT = os.environ.get("STALL_TAB_FIRST_LIMIT", "1")
STALL_TAB_LIMIT = os.environ.get("STALL_TAB_LIMIT", "5")
# Threads the renewal task renews its groups on, each with its own connection. On PostgreSQL one
# group's statements run in the server while another's rows are built in Python (bench/renewals.py);
# SQLite admits one writer at a time, so there a second thread would only wait.
STALL_RENEWAL_WORKERS = int(os.environ.get("STALL_RENEWAL_WORKERS") or (2 if DATABASES["default"]["ENGINE"].endswith("postgresql") else 1))
STALL_TAB_SETTLE_AFTER_DAYS = int(os.environ.get("STALL_TAB_SETTLE_AFTER_DAYS", "30"))
# With no saved card to settle an overdue tab, refuse further tab purchases until it is paid.
STALL_TAB_BLOCK_WHEN_OVERDUE = _env_bool("STALL_TAB_BLOCK_WHEN_OVERDUE", True)
# The wallet a signed-in buyer sees first when they have none yet and came from no store.
STALL_WALLET_DEFAULT_CURRENCY = os.environ.get("STALL_WALLET_DEFAULT_CURRENCY", "USD")
# Posts: the free preview is the text above a "<!-- more -->" line, or else this many paragraphs.
STALL_POST_PREVIEW_PARAGRAPHS = int(os.environ.get("STALL_POST_PREVIEW_PARAGRAPHS", "2"))
# A reader may have an unlock refunded this many hours after it, this many times a calendar month.
STALL_UNLOCK_REFUND_HOURS = int(os.environ.get("STALL_UNLOCK_REFUND_HOURS", "24"))
STALL_UNLOCK_REFUNDS_PER_MONTH = int(os.environ.get("STALL_UNLOCK_REFUNDS_PER_MONTH", "3"))

# Broadcasts: messages sent per batch (one SMTP connection each), and how long one task sends
# before it queues the rest as a new task.
STALL_BROADCAST_BATCH = int(os.environ.get("STALL_BROADCAST_BATCH", "200"))
STALL_BROADCAST_TASK_SECONDS = float(os.environ.get("STALL_BROADCAST_TASK_SECONDS", "50"))

# Rate limits: "<count>/<period>" (period in s, m, h or d: "10/15m"), or "off". Counted per
# window of the period in the "limits" cache; see stall/core/limits.py and the README.
_LIMIT_DEFAULTS = {
    "login_email": "10/15m",      # creator log-in attempts per account email
    "login_address": "50/15m",    # ... per client address
    "signup_address": "10/1h",    # creator sign-ups per client address
    "two_factor_user": "10/15m",  # two-factor codes tried per account (sign-in and settings)
    "two_factor_address": "50/15m",  # ... per client address
    "magic_link_email": "5/1h",   # buyer sign-in links sent per email
    "magic_link_address": "20/1h",  # ... requested per client address
    "checkout_address": "30/10m",  # storefront checkouts per client address
    "list_signup_address": "20/1h",  # email-list sign-ups per client address
    "list_signup_email": "3/1h",  # ... confirmation emails sent per address signed up
    # An integrator's pace: Stripe allows 100 requests/s per account in live mode.
    "checkout_key": "3000/1m",    # API checkouts per API key
    "api_key": "6000/1m",         # API requests per API key
    "gift_card_redeem_buyer": "10/15m",    # gift card codes tried per buyer
    "gift_card_redeem_address": "30/15m",  # ... per client address
    "discount_code_address": "20/10m",  # storefront checkouts with a discount code, per client address
    "license_key": "120/1m",      # license activate/validate/deactivate calls per key
    "license_address": "1200/1m",  # ... per client address
}
STALL_LIMITS = {
    name: os.environ.get(f"STALL_LIMIT_{name.upper()}", default) for name, default in _LIMIT_DEFAULTS.items()
}

# --- Metrics (/metrics, Prometheus text format) --------------------------------------------------
# Unset: /metrics answers 404. Set: a scraper sends it as "Authorization: Bearer <token>".
STALL_METRICS_TOKEN = os.environ.get("STALL_METRICS_TOKEN", "")
# Request counters are kept by every web process in files here (prometheus_client's multiprocess
# mode), so a scrape answered by either gunicorn worker counts the requests of both. It must be set
# before prometheus_client is first imported, which only stall.core.requestlog does, after this.
STALL_METRICS_DIR = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or DATA_DIR / "metrics")
STALL_METRICS_DIR.mkdir(exist_ok=True)
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(STALL_METRICS_DIR)
# After a right password, how long the sign-in waits for the two-factor code before starting over.
STALL_TWO_FACTOR_PENDING_SECONDS = int(os.environ.get("STALL_TWO_FACTOR_PENDING_SECONDS", "300"))
