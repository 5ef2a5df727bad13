"""Which WeChat settings each feature needs, checked where they are used.

A missing setting must not crash the server at import (a fresh checkout has none):
it is reported by a system check at start-up and raised as ``WeChatNotConfigured``
by the feature that needs it, which the views turn into a clear 503.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

LOGIN_SETTINGS = ("WECHAT_APPID", "WECHAT_APP_SECRET")
PAY_SETTINGS = ("WECHAT_APPID", "WECHAT_MCH_ID", "WECHAT_MCH_KEY", "WECHAT_NOTIFY_URL")
# The refund call needs the merchant's client certificate (docs/protocol/wechat-pay-v2.md §7.1).
REFUND_SETTINGS = ("WECHAT_CERT_PATH", "WECHAT_KEY_PATH")


class WeChatNotConfigured(ImproperlyConfigured):
    pass


def missing_settings(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not getattr(settings, name, "")]


def require_settings(names: tuple[str, ...], feature: str) -> None:
    missing = missing_settings(names)
    if missing:
        raise WeChatNotConfigured(f"{feature} is not configured: set {', '.join(missing)}.")
