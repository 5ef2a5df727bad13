from django.db import models


class PaymentNotification(models.Model):
    """Every payment notify exactly as WeChat (or anyone) posted it.

    The row is written before the body is even parsed, outside the transaction that
    processes it, so that a crash, a bug or a forged request never erases the evidence
    (after dj-stripe's WebhookEventTrigger).
    """

    class Outcome(models.TextChoices):
        RECEIVED = "received", "Received, not processed yet"
        PAID = "paid", "Order marked paid"
        DUPLICATE = "duplicate", "Duplicate of a processed payment"
        FLAGGED = "flagged", "Recorded and flagged for staff"
        NOT_PAID = "not_paid", "WeChat reports no payment"
        REJECTED = "rejected", "Rejected: failed verification"
        MALFORMED = "malformed", "Rejected: unreadable body"
        UNKNOWN_ORDER = "unknown_order", "Rejected: no such order"
        ERROR = "error", "Failed while processing (WeChat will retry)"

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    remote_addr = models.GenericIPAddressField("sender IP", null=True, blank=True)
    raw_body = models.TextField(
        help_text="As received. Bytes that are not UTF-8 are kept as \\x escapes."
    )
    body_truncated = models.BooleanField(
        default=False, help_text="The body was over the size limit; only its start is kept."
    )
    out_trade_no = models.CharField("order number", max_length=64, blank=True, db_index=True)
    transaction_id = models.CharField(
        "WeChat transaction id", max_length=64, blank=True, db_index=True
    )
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
    )
    signature_valid = models.BooleanField(
        null=True, help_text="Empty when the body could not be read far enough to check."
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED)
    detail = models.TextField(blank=True, default="", help_text="Why it ended this way.")
    replied = models.CharField(
        "reply to WeChat", max_length=8, blank=True, default="", help_text="SUCCESS or FAIL."
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = "payment notification"

    def __str__(self) -> str:
        return f"notify {self.pk} {self.out_trade_no or '?'} {self.outcome}"
