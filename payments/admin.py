from django.contrib import admin

from payments.models import PaymentNotification, Refund
from shopsite.money import yuan


class ReadOnlyEvidenceAdmin(admin.ModelAdmin):
    """Rows that record what happened with money: nobody may add, change or delete one."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PaymentNotification)
class PaymentNotificationAdmin(ReadOnlyEvidenceAdmin):
    """The notify ledger, payments and refunds alike."""

    list_display = [
        "received_at",
        "kind",
        "out_trade_no",
        "transaction_id",
        "out_refund_no",
        "outcome",
        "signature_valid",
        "replied",
        "remote_addr",
    ]
    list_filter = ["kind", "outcome", "signature_valid", "replied", "received_at"]
    date_hierarchy = "received_at"
    search_fields = ["=out_trade_no", "=transaction_id", "=out_refund_no", "=remote_addr"]
    list_select_related = ["order"]
    readonly_fields = [
        "received_at",
        "kind",
        "remote_addr",
        "order",
        "refund",
        "out_trade_no",
        "transaction_id",
        "out_refund_no",
        "signature_valid",
        "outcome",
        "detail",
        "replied",
        "processed_at",
        "body_truncated",
        "raw_body",
    ]
    fields = readonly_fields


@admin.register(Refund)
class RefundAdmin(ReadOnlyEvidenceAdmin):
    """Refunds are made from an order ("Refund…" action) and changed only by WeChat's
    answers, so here they are evidence to read."""

    list_display = [
        "created_at",
        "out_refund_no",
        "order",
        "amount",
        "status",
        "refund_id",
        "requested_by",
        "succeeded_at",
    ]
    list_filter = ["status", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["=out_refund_no", "=refund_id", "=order__out_trade_no"]
    list_select_related = ["order", "requested_by"]
    readonly_fields = [
        "out_refund_no",
        "order",
        "amount",
        "status",
        "reason",
        "refund_id",
        "requested_by",
        "created_at",
        "updated_at",
        "succeeded_at",
        "recv_account",
        "last_error",
    ]
    fields = readonly_fields

    @admin.display(description="amount", ordering="refund_fee")
    def amount(self, refund: Refund) -> str:
        return yuan(refund.refund_fee)
