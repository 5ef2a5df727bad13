"""How values look in admin: coloured status badges, compact times.

White text on a saturated, mid-dark background reads the same in admin's light and dark
themes (each pair has a contrast of at least 4.5:1), so no theme-dependent CSS is needed.
"""

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from orders.models import Order
from payments.models import PaymentNotification, Refund

GREEN, AMBER, RED, BLUE, GREY, PURPLE = (
    "#1e7b34",
    "#8f5d00",
    "#b42318",
    "#1f5fa8",
    "#5f6b73",
    "#6941c6",
)

_STYLE = (
    "display:inline-block;padding:1px 8px;border-radius:9px;background:{};color:#fff;"
    "font-size:11px;font-weight:600;line-height:16px;white-space:nowrap"
)

ORDER_STATUS = {
    Order.Status.UNPAID: AMBER,
    Order.Status.PAID: GREEN,
    Order.Status.CLOSED: GREY,
    Order.Status.REFUNDED: PURPLE,
}
# Refund status labels are whole sentences: the badge says one word, its tooltip the rest.
REFUND_STATUS = {
    Refund.Status.PENDING: (AMBER, _("Pending")),
    Refund.Status.PROCESSING: (BLUE, _("Processing")),
    Refund.Status.SUCCESS: (GREEN, _("Refunded")),
    Refund.Status.CLOSED: (GREY, _("Closed")),
    Refund.Status.ABNORMAL: (RED, _("Abnormal")),
    Refund.Status.FAILED: (RED, _("Refused")),
}
_Outcome = PaymentNotification.Outcome
NOTIFICATION_OUTCOME = {
    _Outcome.RECEIVED: BLUE,
    _Outcome.PAID: GREEN,
    _Outcome.REFUND_RECORDED: GREEN,
    _Outcome.DUPLICATE: GREY,
    _Outcome.NOT_PAID: GREY,
    _Outcome.FLAGGED: AMBER,
    _Outcome.REJECTED: RED,
    _Outcome.MALFORMED: RED,
    _Outcome.UNKNOWN_ORDER: RED,
    _Outcome.UNKNOWN_REFUND: RED,
    _Outcome.ERROR: RED,
}


def badge(label: str, colour: str, title: str = "") -> SafeString:
    return format_html('<span title="{}" style="' + _STYLE + '">{}</span>', title, colour, label)


def order_status_badge(order: Order) -> SafeString:
    return badge(order.get_status_display(), ORDER_STATUS.get(order.status, GREY))


def refund_status_badge(refund: Refund) -> SafeString:
    colour, short = REFUND_STATUS.get(refund.status, (GREY, refund.status))
    return badge(short, colour, title=refund.get_status_display())


def outcome_badge(notification: PaymentNotification) -> SafeString:
    colour = NOTIFICATION_OUTCOME.get(notification.outcome, GREY)
    return badge(notification.get_outcome_display(), colour)


def moment(value: datetime | None) -> str:
    """``2026-11-27 12:01``, local (Beijing) time: short enough for a list column, and
    read the same way in Chinese and English."""
    # A no-break space: the time stays on the date's line.
    return timezone.localtime(value).strftime("%Y-%m-%d\u00a0%H:%M") if value else "—"
