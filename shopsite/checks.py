from django.conf import settings
from django.core.checks import Error, Warning, register

from core.config import LOGIN_SETTINGS, PAY_SETTINGS, REFUND_SETTINGS, missing_settings


@register()
def wechat_settings_check(app_configs, **kwargs):
    messages = []
    missing = sorted(set(missing_settings(LOGIN_SETTINGS + PAY_SETTINGS)))
    if missing:
        messages.append(
            Warning(
                f"WeChat settings missing: {', '.join(missing)}.",
                hint="Login and payment answer 503 until they are set (see README).",
                id="shopsite.W001",
            )
        )
    missing_cert = missing_settings(REFUND_SETTINGS)
    if missing_cert:
        messages.append(
            Warning(
                f"WeChat Pay client certificate settings missing: {', '.join(missing_cert)}.",
                hint="Refunds are refused until they are set (see README).",
                id="shopsite.W003",
            )
        )
    if settings.WECHAT_SIGN_TYPE not in ("MD5", "HMAC-SHA256"):
        messages.append(Error("WECHAT_SIGN_TYPE must be MD5 or HMAC-SHA256.", id="shopsite.E001"))
    key = settings.WECHAT_MCH_KEY
    if key and len(key) != 32:
        messages.append(Warning("WECHAT_MCH_KEY is not 32 characters long.", id="shopsite.W002"))
    return messages


LOCAL_MEMORY_CACHE = "django.core.cache.backends.locmem.LocMemCache"


@register()
def throttle_cache_check(app_configs, **kwargs):
    # The throttles count in the default cache. In local memory each gunicorn worker
    # counts on its own, so 4 workers let 4 times the configured rate through (and each
    # app server multiplies it again): acceptable in development, not in production.
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if settings.DEBUG or backend != LOCAL_MEMORY_CACHE:
        return []
    return [
        Warning(
            "The throttles (login, orders) count in local memory, per worker process: "
            "N workers allow N times the configured rate.",
            hint="Set REDIS_URL so every worker and app server shares the counts (docs/DEPLOY.md).",
            id="shopsite.W004",
        )
    ]


@register()
def task_broker_check(app_configs, **kwargs):
    # Without a broker, tasks run in the process that enqueues them, right after its commit
    # (shopsite/celery.py): a ship waits on WeChat, retries are not scheduled and nothing
    # runs the periodic sweeps. Fine in development, not in production.
    if settings.DEBUG or settings.CELERY_BROKER_URL:
        return []
    return [
        Warning(
            "No task broker: uploads to WeChat and subscribe messages run inside the request "
            "that ships, and their retries and the periodic sweeps never run.",
            hint=(
                "Set REDIS_URL (or CELERY_BROKER_URL) and run a worker with beat "
                "(celery -A shopsite worker --beat; docs/DEPLOY.md)."
            ),
            id="shopsite.W005",
        )
    ]
