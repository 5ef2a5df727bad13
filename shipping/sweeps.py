"""Paid orders nearing WeChat's shipping deadline (docs/protocol/miniprogram-server-api.md
§2.2: ship, and upload, within 48 hours of payment; WeChat reminds after that) are flagged for
staff ``SHIPPING_FLAG_AFTER_HOURS`` after payment, once: an order whose reasons already hold
the deadline's (flagged before, acknowledged or not) is never flagged again for it."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from core.config import WeChatNotConfigured
from orders.models import FulfilmentStatus, Order
from orders.services import order_flag
from shipping.uploads import trade_managed
from wechat.miniprogram import MiniProgramApiError

logger = logging.getLogger(__name__)

DEADLINE_REASON = (
    "Paid but not shipped yet: WeChat expects shipping, uploaded to it, within 48 hours of "
    "payment (order shipping management)."
)


def orders_unshipped_flag(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Flag paid, unshipped orders paid more than ``SHIPPING_FLAG_AFTER_HOURS`` ago; how many
    were flagged now. Nothing when the setting is 0 or the mini-program is not
    trade-managed (when WeChat cannot say, they are flagged: shipping late is worse)."""
    hours = settings.SHIPPING_FLAG_AFTER_HOURS
    if hours <= 0 or settings.WECHAT_TRADE_MANAGED == "0":
        return 0
    now = now or timezone.now()
    late = list(
        Order.objects.filter(
            status=Order.Status.PAID,
            fulfilment_status=FulfilmentStatus.UNFULFILLED,
            paid_at__lte=now - timedelta(hours=hours),
        )
        .exclude(attention_reason__contains=DEADLINE_REASON)
        .order_by("paid_at")[:limit]
    )
    if not late:
        return 0
    try:
        if not trade_managed():
            return 0
    except (MiniProgramApiError, WeChatNotConfigured) as exc:
        logger.warning("is_trade_managed unknown (%s): flagging anyway", type(exc).__name__)
    for order in late:
        order_flag(order=order, reason=DEADLINE_REASON)
    return len(late)
