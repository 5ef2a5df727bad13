"""Reads about payments and refunds that are more than one ``filter()`` (STYLE: selectors)."""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone

from orders.models import Order
from payments.models import REFUND_OPEN, PaymentNotification, Refund


@dataclass(frozen=True)
class RefundTotals:
    """What an order's refunds add up to, in fen."""

    refunded: int  # the buyer has it (success)
    in_progress: int  # pending or processing at WeChat
    abnormal: int  # went back to the merchant account: settled by hand, not refundable again
    refundable: int  # what may still be refunded

    @property
    def reserved(self) -> int:
        return self.refunded + self.in_progress + self.abnormal


def order_refund_totals(*, order: Order) -> RefundTotals:
    """Sums by status; call under the order's row lock when the answer decides a refund."""
    rows = Refund.objects.filter(order=order).values("status").annotate(total=Sum("refund_fee"))
    by_status = {row["status"]: row["total"] or 0 for row in rows}
    refunded = by_status.get(Refund.Status.SUCCESS, 0)
    in_progress = sum(by_status.get(status, 0) for status in REFUND_OPEN)
    abnormal = by_status.get(Refund.Status.ABNORMAL, 0)
    return RefundTotals(
        refunded=refunded,
        in_progress=in_progress,
        abnormal=abnormal,
        # Based on what WeChat charged, which a flagged payment may have made unlike the total.
        refundable=max(order.charged_fee - refunded - in_progress - abnormal, 0),
    )


def refunds_to_reconcile(*, older_than: timedelta, limit: int) -> QuerySet[Refund]:
    """Refunds WeChat has not settled whose status has not moved for ``older_than``:
    pending ones are to be sent again, processing ones to be asked about
    (docs/protocol/wechat-pay-v2.md §7.2)."""
    return (
        Refund.objects.filter(status__in=REFUND_OPEN, updated_at__lte=timezone.now() - older_than)
        .select_related("order")
        .order_by("updated_at", "pk")[:limit]
    )


def notifications_latest(*, limit: int) -> QuerySet[PaymentNotification]:
    """The newest ledger rows, without their raw bodies (up to 64 KiB each)."""
    return PaymentNotification.objects.defer("raw_body", "detail").order_by("-received_at", "-pk")[
        :limit
    ]
