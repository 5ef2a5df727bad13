"""An order's refunds and notifications, read-only below its page."""

from django.contrib import admin
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from core.display import moment
from core.money import yuan
from orders.admin.inlines import ReadOnlyInline
from payments.badges import outcome_badge, refund_status_badge
from payments.models import PaymentNotification, Refund


class NotificationInline(ReadOnlyInline):
    model = PaymentNotification
    fields = ["received", "kind", "outcome_display", "signature_valid", "replied", "detail"]
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).defer("raw_body")

    @admin.display(description=_("received at"))
    def received(self, notification: PaymentNotification) -> str:
        return moment(notification.received_at)

    @admin.display(description=_("outcome"), ordering="outcome")
    def outcome_display(self, notification: PaymentNotification) -> SafeString:
        return outcome_badge(notification)


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = [
        "out_refund_no",
        "amount",
        "status_display",
        "reason",
        "requested_by",
        "created",
        "succeeded",
        "last_error",
    ]
    readonly_fields = fields
    show_change_link = True

    @admin.display(description=_("amount"))
    def amount(self, refund: Refund) -> str:
        return yuan(refund.refund_fee)

    @admin.display(description=_("status"))
    def status_display(self, refund: Refund) -> SafeString:
        return refund_status_badge(refund)

    @admin.display(description=_("created"))
    def created(self, refund: Refund) -> str:
        return moment(refund.created_at)

    @admin.display(description=_("refunded at"))
    def succeeded(self, refund: Refund) -> str:
        return moment(refund.succeeded_at)
