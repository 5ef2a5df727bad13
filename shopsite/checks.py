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
