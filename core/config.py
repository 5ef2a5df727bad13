"""Which WeChat settings each feature needs, checked where they are used.

A missing setting must not crash the server at import (a fresh checkout has none):
it is reported by a system check at start-up and raised as ``WeChatNotConfigured``
by the feature that needs it, which the API answers with a clear 503.
"""

from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from core.errors import DomainError

LOGIN_SETTINGS = ("WECHAT_APPID", "WECHAT_APP_SECRET")
PAY_SETTINGS = ("WECHAT_APPID", "WECHAT_MCH_ID", "WECHAT_MCH_KEY", "WECHAT_NOTIFY_URL")
# The refund call needs the merchant's client certificate (docs/protocol/wechat-pay-v2.md §7.1).
REFUND_SETTINGS = ("WECHAT_CERT_PATH", "WECHAT_KEY_PATH")


class WeChatNotConfigured(DomainError, ImproperlyConfigured):
    status_code = 503


def missing_settings(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not getattr(settings, name, "")]


def require_settings(names: tuple[str, ...], feature: str) -> None:
    missing = missing_settings(names)
    if missing:
        raise WeChatNotConfigured(f"{feature} is not configured: set {', '.join(missing)}.")


def require_pay_configured() -> None:
    """Raise ``WeChatNotConfigured`` unless WeChat Pay can be called: checked before an
    order is recorded that could never be paid."""
    require_settings(PAY_SETTINGS, "WeChat Pay")


def require_refunds_configured() -> None:
    """Raise ``WeChatNotConfigured`` unless refunds can be sent (they need the client
    certificate too): checked before a refund is recorded that could never be sent."""
    require_settings(REFUND_SETTINGS, "WeChat Pay refunds")
    require_pay_configured()


def pay_notify_url(version: str) -> str:
    """Where WeChat reports the payment of an order placed with API ``version``: v2
    ``WECHAT_NOTIFY_URL``; v3 ``WECHAT_V3_NOTIFY_URL``, or ``WECHAT_NOTIFY_URL`` with its
    path ``…/wxnotify`` moved under ``…/v3/`` (``/payment/wxnotify`` → ``/payment/v3/wxnotify``).
    "" when not configured."""
    if version != "v3":
        return settings.WECHAT_NOTIFY_URL
    if settings.WECHAT_V3_NOTIFY_URL or not settings.WECHAT_NOTIFY_URL:
        return settings.WECHAT_V3_NOTIFY_URL
    parts = urlsplit(settings.WECHAT_NOTIFY_URL)
    head, _, last = parts.path.rpartition("/")
    return urlunsplit((parts.scheme, parts.netloc, f"{head}/v3/{last}", "", ""))


def pay_refund_notify_url(version: str) -> str:
    """Where WeChat reports the refunds of an order placed with API ``version``: v2
    ``WECHAT_REFUND_NOTIFY_URL``, else the payment notify URL with its last segment
    ``wxnotify`` replaced by ``refundnotify`` (``/payment/refundnotify`` when it does not end
    so); v3 the same beside the v3 notify URL (``/payment/v3/refundnotify``). No query string
    either way (docs/protocol/wechat-pay-v2.md §7.1, docs/protocol/wechat-pay-v3.md §8.1)."""
    if version != "v3" and settings.WECHAT_REFUND_NOTIFY_URL:
        return settings.WECHAT_REFUND_NOTIFY_URL
    parts = urlsplit(pay_notify_url(version))
    head, _, last = parts.path.rpartition("/")
    if last == "wxnotify":
        path = f"{head}/refundnotify"
    else:
        path = "/payment/v3/refundnotify" if version == "v3" else "/payment/refundnotify"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))
