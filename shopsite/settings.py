"""Settings, read entirely from the environment (docs/INVARIANTS.md §3).

A fresh checkout runs on SQLite with debug off and no WeChat credentials; WeChat
settings that are missing only fail where they are used (see ``shopsite/checks.py``).
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """The variable's value; unset and empty (``DATABASE_URL=``) both mean the default."""
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool = False) -> bool:
    value = env(name)
    if not value:
        return default
    return value.lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = env(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


DEBUG = env_bool("DJANGO_DEBUG")

SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off "
            "(set DJANGO_DEBUG=1 for a throw-away development key)."
        )
    # A fresh random key per process: fine for development and tests, but tokens and
    # admin sessions do not survive a restart and are not shared between processes.
    SECRET_KEY = "dev-" + secrets.token_urlsafe(48)

ALLOWED_HOSTS = [h.strip() for h in env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")]

# How many reverse proxies of ours stand in front of gunicorn, each appending to
# X-Forwarded-For (DEPLOY.md's nginx: 1). 0 ignores the header, which any client can
# write, and takes REMOTE_ADDR (core/client_ip.py).
TRUSTED_PROXIES = env_int("TRUSTED_PROXIES", 0)
if TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured("TRUSTED_PROXIES must be 0 or more.")

INSTALLED_APPS = [
    # django.contrib.admin with the shop's site as admin.site: a dashboard on the index.
    "shopsite.apps.ShopAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Swagger UI's files from the wheel, not a CDN: /api/docs works offline and under CSP.
    "drf_spectacular_sidecar",
    "accounts",
    "orders",
    "payments",
    "shipping",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # WeChat's notifies go straight to their views from here: they need nothing below, and
    # get the same checks and headers (payments/middleware.py).
    "payments.middleware.NotifyShortcutMiddleware",
    # Serves admin's CSS/JS from gunicorn itself (collected by `manage.py collectstatic`),
    # compressed and cacheable: no separate static server to set up.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Admin in the staff member's language (the switch in admin's header, Accept-Language,
    # else LANGUAGE_CODE); the API always in English.
    "shopsite.middleware.StaffLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shopsite.urls"
WSGI_APPLICATION = "shopsite.wsgi.application"
# The API's paths have no trailing slash (docs/INVARIANTS.md §4); never redirect POSTs to add one.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide admin templates (the dashboard, the language switch) come before
        # the apps' own, so they can extend the stock ones.
        "DIRS": [BASE_DIR / "shopsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
# How long a statement waits for a lock before it fails (and a notify answers FAIL, so
# WeChat retries) instead of hanging past WeChat's 5-second patience.
DATABASE_LOCK_TIMEOUT_MS = env_int("DATABASE_LOCK_TIMEOUT_MS", 4000)
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _db_options["timeout"] = DATABASE_LOCK_TIMEOUT_MS / 1000
    # Take the write lock when a transaction starts: two deferred transactions that
    # both read and then write would otherwise fail with "database is locked" at once.
    _db_options["transaction_mode"] = "IMMEDIATE"
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _db_options["options"] = f"-c lock_timeout={DATABASE_LOCK_TIMEOUT_MS}"

AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Variables marked sensitive (secrets, session_keys, tokens) stay hidden in error reports
# even with DEBUG on (shopsite/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "shopsite.error_reports.AlwaysSafeExceptionReporterFilter"

LANGUAGE_CODE = env("LANGUAGE_CODE", "en-us")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
# The project's own translations (admin labels, dashboard): locale/zh_Hans/LC_MESSAGES.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploaded files (product pictures) go through the default storage above: files under
# MEDIA_ROOT here; an S3-compatible bucket with django-storages (docs/DEPLOY.md).
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(BASE_DIR / "media")))
MEDIA_URL = "/media/"
# Django serves MEDIA_ROOT at MEDIA_URL itself (shopsite/urls.py) only in development and
# the demo; in production nginx or the bucket does (docs/DEPLOY.md).
SERVE_MEDIA = env_bool("SERVE_MEDIA", DEBUG)

REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that is down or hung must cost a request half a second at most,
            # not a worker: the throttles then let the request through (core/throttling.py).
            "OPTIONS": {
                "socket_connect_timeout": env_int("REDIS_CONNECT_TIMEOUT_MS", 500) / 1000,
                "socket_timeout": env_int("REDIS_TIMEOUT_MS", 500) / 1000,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# The task queue (shopsite/celery.py). No broker: tasks run in-process, right after the
# commit that enqueued them (development only: a system check warns when DEBUG is off).
CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
# A task is acknowledged after it ran, and a worker lost mid-task gives it back: with
# idempotent tasks, at-least-once is what keeps an upload from being lost.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A Redis outage must not hang the request that enqueues: fail fast, the sweep catches up.
# (max_retries 0: kombu would otherwise try again for 6 s before giving up.)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 2,
    "max_retries": 0,
}
CELERY_TASK_PUBLISH_RETRY = False
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # Uploads whose retry time has come (shipping/tasks.py): what a broker outage or a
    # restart dropped from the queue is picked up again from the database.
    # SHIPPING_UPLOADS_SWEEP_SECONDS: shorter only in end-to-end tests (tests/livestack.py).
    "shipping-uploads-due": {
        "task": "shipping.tasks.uploads_due_enqueue",
        "schedule": float(env_int("SHIPPING_UPLOADS_SWEEP_SECONDS", 60)),
    },
    # Paid orders nearing WeChat's shipping deadline, flagged for staff once.
    "shipping-deadline": {"task": "shipping.tasks.unshipped_orders_flag", "schedule": 600.0},
    # Yesterday's WeChat Pay trade bill, once WeChat has published it (after 10:00 Beijing
    # time, docs/INVARIANTS.md §10); idempotent, so a rerun by hand is harmless.
    "payments-import-statement": {
        "task": "payments.tasks.import_yesterday_statement",
        "schedule": crontab(hour=10, minute=30),
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login": env("LOGIN_THROTTLE_RATE", "20/min"),
        # POST /payment/order per shopper: each may be a unifiedorder call.
        "order": env("ORDER_THROTTLE_RATE", "30/min"),
    },
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "wxshop API",
    "DESCRIPTION": (
        "The JSON API a WeChat mini-program calls. Amounts are integer fen; times are "
        "ISO 8601 in Beijing time. WeChat's own callbacks (/payment/wxnotify, "
        "/payment/refundnotify: WeChat's XML; /payment/v3/wxnotify, "
        "/payment/v3/refundnotify: API v3's signed JSON) are described in README."
    ),
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,
}

# How long GET /products answers may be kept: by clients and proxies (Cache-Control) and
# in the shared cache. Staff changes drop the shared copy at once, but stock moves with
# every order and does not, so keep it short. 0: not kept.
CATALOGUE_CACHE_SECONDS = env_int("CATALOGUE_CACHE_SECONDS", 30)
if CATALOGUE_CACHE_SECONDS < 0:
    raise ImproperlyConfigured("CATALOGUE_CACHE_SECONDS must be 0 or more.")

# Bearer tokens issued by POST /accounts/login are signed and expire after this long.
ACCESS_TOKEN_TTL_SECONDS = env_int("ACCESS_TOKEN_TTL_SECONDS", 2 * 60 * 60)

# WeChat (docs/INVARIANTS.md §3). Empty values are reported by a system check and fail at use.
WECHAT_APPID = env("WECHAT_APPID")
WECHAT_APP_SECRET = env("WECHAT_APP_SECRET")
WECHAT_MCH_ID = env("WECHAT_MCH_ID")
WECHAT_MCH_KEY = env("WECHAT_MCH_KEY")
WECHAT_SIGN_TYPE = env("WECHAT_SIGN_TYPE", "MD5")
WECHAT_NOTIFY_URL = env("WECHAT_NOTIFY_URL")
# Full public URL of /payment/refundnotify, sent as the refund's notify_url
# (docs/protocol/wechat-pay-v2.md §7.1).
# Empty: WECHAT_NOTIFY_URL with its last path segment "wxnotify" replaced by "refundnotify".
WECHAT_REFUND_NOTIFY_URL = env("WECHAT_REFUND_NOTIFY_URL")
WECHAT_API_BASE = env("WECHAT_API_BASE", "https://api.weixin.qq.com")
WECHAT_PAY_API_BASE = env("WECHAT_PAY_API_BASE", "https://api.mch.weixin.qq.com")
WECHAT_CERT_PATH = env("WECHAT_CERT_PATH")
WECHAT_KEY_PATH = env("WECHAT_KEY_PATH")
# WeChat Pay API v3 (docs/protocol/wechat-pay-v3.md): the API new orders are placed with;
# each order keeps its own (Order.pay_version), so switching strands none.
WECHAT_PAY_VERSION = env("WECHAT_PAY_VERSION", "v2").lower()
if WECHAT_PAY_VERSION not in ("v2", "v3"):
    raise ImproperlyConfigured("WECHAT_PAY_VERSION must be v2 or v3.")
WECHAT_API_V3_KEY = env("WECHAT_API_V3_KEY")  # 32 bytes: decrypts notifies and certificates
# Empty: WECHAT_NOTIFY_URL with /payment/wxnotify → /payment/v3/wxnotify (and refundnotify).
WECHAT_V3_NOTIFY_URL = env("WECHAT_V3_NOTIFY_URL")
# The merchant's private key (apiclient_key.pem) and its certificate's serial sign requests.
WECHAT_MCH_PRIVATE_KEY_PATH = env("WECHAT_MCH_PRIVATE_KEY_PATH")
WECHAT_MCH_CERT_SERIAL = env("WECHAT_MCH_CERT_SERIAL")
# WeChat Pay's public key (pub_key.pem) and its PUB_KEY_ID_…; unset: platform certificates
# are downloaded and kept in the shared cache. Both at once while a merchant switches over.
WECHAT_PAY_PUBLIC_KEY_PATH = env("WECHAT_PAY_PUBLIC_KEY_PATH")
WECHAT_PAY_PUBLIC_KEY_ID = env("WECHAT_PAY_PUBLIC_KEY_ID")
# Message push (GET, POST /wechat/message; docs/protocol/miniprogram-server-api.md §3): the
# console's Token, and its EncodingAESKey (43 characters) for safe or compatible mode. With the
# key set only encrypted pushes are accepted; without the Token none at all (503).
WECHAT_MESSAGE_TOKEN = env("WECHAT_MESSAGE_TOKEN")
WECHAT_MESSAGE_AES_KEY = env("WECHAT_MESSAGE_AES_KEY")
# (connect, read) seconds for every call to WeChat.
WECHAT_TIMEOUT = (
    env_int("WECHAT_CONNECT_TIMEOUT_MS", 3000) / 1000,
    env_int("WECHAT_READ_TIMEOUT_MS", 10000) / 1000,
)

# WeChat's side of fulfilment (docs/INVARIANTS.md §8, shipping/). Order shipping management:
# "auto" asks WeChat (is_trade_managed, kept an hour in the shared cache), "1"/"0" decide.
WECHAT_TRADE_MANAGED = env("WECHAT_TRADE_MANAGED", "auto").lower()
if WECHAT_TRADE_MANAGED not in ("auto", "1", "0"):
    raise ImproperlyConfigured("WECHAT_TRADE_MANAGED must be auto, 1 or 0.")
# The subscribe message sent when an order ships (empty: none), and which of the order's
# values fill which of the template's keywords (shipping/subscribe.py; README).
WECHAT_TEMPLATE_SHIPPED = env("WECHAT_TEMPLATE_SHIPPED")
WECHAT_TEMPLATE_SHIPPED_FIELDS = env(
    "WECHAT_TEMPLATE_SHIPPED_FIELDS",
    "character_string1=out_trade_no,thing2=items,thing3=express_company,"
    "character_string4=tracking_no,time5=shipped_at",
)
# Paid orders still unshipped this many hours after payment are flagged for staff, ahead
# of WeChat's 48 hours (docs/protocol/miniprogram-server-api.md §2.2). 0: never.
SHIPPING_FLAG_AFTER_HOURS = env_int("SHIPPING_FLAG_AFTER_HOURS", 36)
if SHIPPING_FLAG_AFTER_HOURS < 0:
    raise ImproperlyConfigured("SHIPPING_FLAG_AFTER_HOURS must be 0 or more.")
# The wait before an upload WeChat did not accept is tried again (then doubling, at most 10
# minutes; shipping/uploads.py). 5 s keeps §8's "first retry within 10 s"; end-to-end tests
# shorten it.
SHIPPING_UPLOAD_RETRY_FIRST_SECONDS = env_int("SHIPPING_UPLOAD_RETRY_FIRST_SECONDS", 5)
if not 1 <= SHIPPING_UPLOAD_RETRY_FIRST_SECONDS <= 10:
    raise ImproperlyConfigured("SHIPPING_UPLOAD_RETRY_FIRST_SECONDS must be between 1 and 10.")

# WeChat refuses a time_expire less than 5 minutes after the order
# (docs/protocol/wechat-pay-v2.md §3.3).
ORDER_TTL_MINUTES = env_int("ORDER_TTL_MINUTES", 30)
if ORDER_TTL_MINUTES < 5:
    raise ImproperlyConfigured("ORDER_TTL_MINUTES must be at least 5 (WeChat's minimum).")
# What one shopper's unpaid orders may hold at once: they reserve stock for
# ORDER_TTL_MINUTES and each is a unifiedorder call, so without a cap one WeChat account
# could hold all finite stock. Paying or closing an order makes room.
ORDER_MAX_UNPAID_PER_SHOPPER = env_int("ORDER_MAX_UNPAID_PER_SHOPPER", 5)
ORDER_MAX_UNPAID_UNITS_PER_SHOPPER = env_int("ORDER_MAX_UNPAID_UNITS_PER_SHOPPER", 200)
if ORDER_MAX_UNPAID_PER_SHOPPER < 1 or ORDER_MAX_UNPAID_UNITS_PER_SHOPPER < 1:
    raise ImproperlyConfigured(
        "ORDER_MAX_UNPAID_PER_SHOPPER and ORDER_MAX_UNPAID_UNITS_PER_SHOPPER must be at least 1."
    )

# Production hardening behind a TLS-terminating proxy.
if env_bool("DJANGO_HTTPS"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # The load balancer probes over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # urllib3 logs request lines, query strings included, at DEBUG: code2Session's
        # query string carries the AppSecret.
        "urllib3": {"level": "INFO"},
    },
}
