"""The shipping app's system checks (registered in ShippingConfig.ready)."""

from django.conf import settings
from django.core.checks import Error, register


@register()
def shipped_message_check(app_configs, **kwargs):
    if not settings.WECHAT_TEMPLATE_SHIPPED:
        return []
    from shipping.subscribe import SOURCES, shipped_keywords

    try:
        shipped_keywords(settings.WECHAT_TEMPLATE_SHIPPED_FIELDS)
    except ValueError as exc:
        return [
            Error(
                f"WECHAT_TEMPLATE_SHIPPED_FIELDS cannot fill the template: {exc}.",
                hint=(
                    "Comma-separated keyword=source pairs, the keyword as the template names "
                    f"it (thing2, time5…), the source one of: {', '.join(SOURCES)} (README)."
                ),
                id="shipping.E001",
            )
        ]
    return []
