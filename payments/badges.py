"""Badges for refunds and notifications (colours and badge from core.display)."""

from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from core.display import AMBER, BLUE, GREEN, GREY, RED, badge
from payments.models import PaymentNotification, Refund

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


def refund_status_badge(refund: Refund) -> SafeString:
    colour, short = REFUND_STATUS.get(refund.status, (GREY, refund.status))
    return badge(short, colour, title=refund.get_status_display())


def outcome_badge(notification: PaymentNotification) -> SafeString:
    colour = NOTIFICATION_OUTCOME.get(notification.outcome, GREY)
    return badge(notification.get_outcome_display(), colour)
