from django.contrib import admin

from payments.models import PaymentNotification


@admin.register(PaymentNotification)
class PaymentNotificationAdmin(admin.ModelAdmin):
    """The notify ledger: evidence, so nobody may add, change or delete a row."""

    list_display = [
        "received_at",
        "out_trade_no",
        "transaction_id",
        "outcome",
        "signature_valid",
        "replied",
        "remote_addr",
    ]
    list_filter = ["outcome", "signature_valid", "replied", "received_at"]
    date_hierarchy = "received_at"
    search_fields = ["=out_trade_no", "=transaction_id", "=remote_addr"]
    list_select_related = ["order"]
    readonly_fields = [
        "received_at",
        "remote_addr",
        "order",
        "out_trade_no",
        "transaction_id",
        "signature_valid",
        "outcome",
        "detail",
        "replied",
        "processed_at",
        "body_truncated",
        "raw_body",
    ]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
