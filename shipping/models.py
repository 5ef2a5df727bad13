from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class MessageEvent(models.Model):
    """Every message push (消息推送) request as received, before anything is done with it
    (like payments.PaymentNotification): a crash, a bug or a forged request never erases
    the evidence. Applied exactly once per event: ``dedupe_key`` (transaction id, event and
    event time) is unique among applied events."""

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("Received, not processed yet")
        APPLIED = "applied", _("Applied to its order")
        RECORDED = "recorded", _("Recorded; nothing to change")
        DUPLICATE = "duplicate", _("Duplicate of an applied event")
        UNKNOWN_ORDER = "unknown_order", _("No order with this transaction")
        REJECTED = "rejected", _("Rejected: failed verification")
        MALFORMED = "malformed", _("Rejected: unreadable body")
        ERROR = "error", _("Failed while processing (WeChat will retry)")

    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    remote_addr = models.GenericIPAddressField(_("sender IP"), null=True, blank=True)
    query = models.TextField(
        _("query string"), blank=True, default="", help_text=_("signature, timestamp, nonce…")
    )
    raw_body = models.TextField(_("body as received"), blank=True, default="")
    body_truncated = models.BooleanField(_("body cut short"), default=False)
    verified = models.BooleanField(
        _("authentic"),
        null=True,
        help_text=_("The signature (and in safe mode the decryption) checked out."),
    )
    event = models.CharField(_("event"), max_length=64, blank=True, default="")
    transaction_id = models.CharField(
        _("WeChat transaction id"), max_length=64, blank=True, default=""
    )
    event_time = models.BigIntegerField(
        _("event time"), null=True, blank=True, help_text=_("CreateTime, Unix seconds.")
    )
    payload = models.JSONField(
        _("event"), null=True, blank=True, help_text=_("The decrypted event, as WeChat sent it.")
    )
    dedupe_key = models.CharField(max_length=160, blank=True, default="", editable=False)
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="message_events",
        verbose_name=_("order"),
    )
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED
    )
    detail = models.TextField(_("detail"), blank=True, default="")
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = _("message push event")
        verbose_name_plural = _("message push events")
        constraints = [
            # One applied (or recorded) copy per event; duplicates point at nothing new.
            models.UniqueConstraint(
                fields=["dedupe_key"],
                condition=Q(outcome__in=["applied", "recorded"]),
                name="message_event_applied_once",
            ),
        ]
        indexes = [
            models.Index(
                fields=["transaction_id"],
                condition=~Q(transaction_id=""),
                name="message_event_transaction",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} {self.event or '?'} {self.outcome}"


class SubscribeMessage(models.Model):
    """A subscribe message (订阅消息) sent, or refused, for an order: a refusal (43101, the
    shopper did not subscribe) is recorded and never blocks anything."""

    class Status(models.TextChoices):
        SENT = "sent", _("Sent")
        NOT_SUBSCRIBED = "not_subscribed", _("Not sent: the shopper did not subscribe")
        FAILED = "failed", _("Failed")

    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.CASCADE,
        related_name="subscribe_messages",
        verbose_name=_("order"),
    )
    template_id = models.CharField(_("template"), max_length=128)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    errcode = models.IntegerField(_("WeChat errcode"), null=True, blank=True)
    detail = models.TextField(_("detail"), blank=True, default="")
    created_at = models.DateTimeField(_("sent at"), auto_now_add=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("subscribe message")
        verbose_name_plural = _("subscribe messages")
        constraints = [
            # One message per order and template: a task retried after a crash sends once.
            models.UniqueConstraint(fields=["order", "template_id"], name="subscribe_message_once"),
        ]

    def __str__(self) -> str:
        return f"{self.order} {self.template_id} {self.status}"
