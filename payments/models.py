# A bare §n in this file is a section of docs/protocol/wechat-pay-v2.md.

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from orders.models import PayVersion


class PaymentNotification(models.Model):
    """Every notify exactly as WeChat (or anyone) posted it: payments and refunds.

    No notify is answered without its row: it is written in the commit that applies the
    notify, or on its own, with the reason, when the notify is refused or its processing
    fails (rolled back), before the FAIL goes out. A crash mid-transaction answers nothing
    and WeChat sends the notify again (payments.notify).
    """

    class Kind(models.TextChoices):
        PAYMENT = "payment", _("Payment result (/payment/wxnotify)")
        REFUND = "refund", _("Refund result (/payment/refundnotify)")

    class Outcome(models.TextChoices):
        RECEIVED = "received", _("Received, not processed yet")
        PAID = "paid", _("Order marked paid")
        REFUND_RECORDED = "refund_recorded", _("Refund result recorded")
        DUPLICATE = "duplicate", _("Duplicate of a processed result")
        FLAGGED = "flagged", _("Recorded and flagged for staff")
        NOT_PAID = "not_paid", _("WeChat reports no payment")
        REJECTED = "rejected", _("Rejected: failed verification")
        MALFORMED = "malformed", _("Rejected: unreadable body")
        UNKNOWN_ORDER = "unknown_order", _("Rejected: no such order")
        UNKNOWN_REFUND = "unknown_refund", _("Rejected: no such refund")
        ERROR = "error", _("Failed while processing (WeChat will retry)")

    kind = models.CharField(
        _("kind"),
        max_length=8,
        choices=Kind.choices,
        default=Kind.PAYMENT,
        help_text=_("Which WeChat callback received it."),
    )
    api_version = models.CharField(
        _("WeChat Pay API"),
        max_length=2,
        choices=PayVersion.choices,
        default=PayVersion.V2,
        help_text=_("v2: XML posted to /payment/…; v3: JSON with Wechatpay-* headers."),
    )
    # v3 only: the Wechatpay-* headers the signature covers, kept as evidence and so that
    # a reprocess can verify the body again (at the time it was received).
    headers = models.JSONField(_("signature headers"), default=dict, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    remote_addr = models.GenericIPAddressField(
        _("sender IP"),
        null=True,
        blank=True,
        help_text=_("Where it came from; empty for a reprocess made in admin."),
    )
    raw_body = models.TextField(
        _("body as received"),
        help_text=_(
            "As received. Bytes that are not UTF-8 are kept as \\x escapes. "
            "A refund result is encrypted inside (req_info); its fields are copied below."
        ),
    )
    body_truncated = models.BooleanField(
        _("body cut short"),
        default=False,
        help_text=_("The body was over the size limit; only its start is kept."),
    )
    # Indexed in Meta (plain B-trees: exact lookups only, no LIKE copies to keep up).
    out_trade_no = models.CharField(_("order number"), max_length=64, blank=True)
    transaction_id = models.CharField(_("WeChat transaction id"), max_length=64, blank=True)
    out_refund_no = models.CharField(_("refund number"), max_length=64, blank=True, default="")
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("order"),
    )
    refund = models.ForeignKey(
        "payments.Refund",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("refund"),
        db_index=False,  # a partial index in Meta: most rows have no refund
    )
    # A reprocess (admin action) is a new row pointing at the original, whose evidence
    # is never changed.
    reprocess_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reprocesses",
        verbose_name=_("reprocess of"),
        db_index=False,  # a partial index in Meta: most rows are no reprocess
        help_text=_("The notification whose stored body was processed again to make this one."),
    )
    signature_valid = models.BooleanField(
        _("authentic"),
        null=True,
        help_text=_(
            "Payment: the signature checked out. Refund: req_info decrypted with our "
            "key. Empty when the body could not be read far enough to check."
        ),
    )
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=Outcome.choices, default=Outcome.RECEIVED
    )
    detail = models.TextField(
        _("detail"), blank=True, default="", help_text=_("Why it ended this way.")
    )
    replied = models.CharField(
        _("reply to WeChat"),
        max_length=8,
        blank=True,
        default="",
        help_text=_("SUCCESS or FAIL. For a reprocess: what WeChat would have been told."),
    )
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = _("payment notification")
        verbose_name_plural = _("payment notifications")
        permissions = [
            ("reprocess_paymentnotification", _("Can process a stored notification again")),
        ]
        # Every notify writes each of these, so each is here for a reader: the order
        # page's ledger (order), admin search (the numbers), reprocess and refund links.
        # Partial where most rows would hold nothing.
        indexes = [
            models.Index(fields=["out_trade_no"], name="notification_out_trade_no"),
            models.Index(
                fields=["transaction_id"],
                condition=~Q(transaction_id=""),
                name="notification_transaction_id",
            ),
            models.Index(
                fields=["out_refund_no"],
                condition=~Q(out_refund_no=""),
                name="notification_out_refund_no",
            ),
            models.Index(
                fields=["refund"], condition=Q(refund__isnull=False), name="notification_refund"
            ),
            models.Index(
                fields=["reprocess_of"],
                condition=Q(reprocess_of__isnull=False),
                name="notification_reprocess_of",
            ),
        ]

    def __str__(self) -> str:
        return f"notify {self.pk} {self.out_trade_no or '?'} {self.outcome}"


class Refund(models.Model):
    """Money given back to the buyer of a paid order, in one or several parts
    (docs/protocol/wechat-pay-v2.md §7).

    A row exists before WeChat is asked, so a crash or timeout can never lose track of a
    refund, and a retry always reuses its ``out_refund_no``: WeChat refunds one number only
    once (§7.1).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending: not yet accepted by WeChat (retried automatically)")
        PROCESSING = "processing", _("Processing: accepted by WeChat, money on its way")
        SUCCESS = "success", _("Refunded: the buyer has the money")
        CLOSED = "closed", _("Closed by WeChat: nothing was refunded")
        ABNORMAL = "abnormal", _("Abnormal: money went back to the merchant account, act in WeChat")
        FAILED = "failed", _("Refused by WeChat: nothing was refunded")

    order = models.ForeignKey(
        "orders.Order", on_delete=models.PROTECT, related_name="refunds", verbose_name=_("order")
    )
    out_refund_no = models.CharField(
        _("refund number"),
        max_length=64,
        help_text=_("Our number for this refund at WeChat; retries always reuse it."),
    )
    refund_fee = models.PositiveIntegerField(
        _("amount (fen)"), help_text=_("In fen: 1 yuan = 100. What goes back to the buyer.")
    )
    reason = models.CharField(
        _("reason"),
        max_length=80,
        blank=True,
        default="",
        help_text=_("Shown to the buyer in WeChat."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    refund_id = models.CharField(
        _("WeChat refund id"), max_length=64, blank=True, default="", db_index=True
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
        help_text=_("The staff member who asked for it."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # Set explicitly by every service update (queryset updates skip auto_now): it tells
    # reconciliation how long a refund has waited in its status.
    updated_at = models.DateTimeField(_("last changed"), auto_now=True)
    succeeded_at = models.DateTimeField(
        _("refunded at"), null=True, blank=True, help_text=_("WeChat's success_time.")
    )
    recv_account = models.CharField(
        _("received into"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Where the buyer got the money, as WeChat says (e.g. 支付用户零钱 = wallet)."),
    )
    # The one-time token of the admin confirmation page that asked for it: a resubmitted
    # form finds this refund instead of making a second one.
    request_key = models.CharField(
        _("request key"), max_length=64, blank=True, default="", editable=False
    )
    last_error = models.TextField(
        _("last error"),
        blank=True,
        default="",
        help_text=_("WeChat's last refusal or failure, if any."),
    )

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        constraints = [
            # A constraint, not unique=True: the same index without PostgreSQL's LIKE copy.
            models.UniqueConstraint(fields=["out_refund_no"], name="refund_out_refund_no_unique"),
            models.UniqueConstraint(
                fields=["request_key"],
                condition=~Q(request_key=""),
                name="refund_request_key_unique",
            ),
            models.CheckConstraint(condition=Q(refund_fee__gt=0), name="refund_fee_positive"),
            models.CheckConstraint(
                condition=Q(
                    status__in=["pending", "processing", "success", "closed", "abnormal", "failed"]
                ),
                name="refund_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.out_refund_no


# Refunds still waiting for WeChat's verdict, and WeChat's final verdicts.
REFUND_OPEN = (Refund.Status.PENDING, Refund.Status.PROCESSING)
REFUND_FINAL = (Refund.Status.SUCCESS, Refund.Status.CLOSED, Refund.Status.ABNORMAL)


class Statement(models.Model):
    """One of WeChat's daily trade bills, as downloaded: the raw file kept in storage with
    its hash, and its lines matched against our orders and refunds (docs/INVARIANTS.md §10).

    Importing the same day again finds the same file (same hash) and changes nothing; a
    corrected bill (another hash) is a new Statement, and the one it replaces points at it.
    A day WeChat has no bill for is an empty Statement, not an error.
    """

    class ApiVersion(models.TextChoices):
        V2 = "v2", "API v2 (downloadbill)"
        V3 = "v3", "API v3 (tradebill)"

    class Status(models.TextChoices):
        MATCHED = "matched", _("Matched: every line fits our books")
        MISMATCHED = "mismatched", _("Lines need attention")
        EMPTY = "empty", _("No bill for this day (nothing traded)")
        SUPERSEDED = "superseded", _("Replaced by a corrected bill")

    bill_date = models.DateField(_("day"), help_text=_("Beijing time, as WeChat's bill."))
    api_version = models.CharField(_("API"), max_length=2, choices=ApiVersion.choices)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    file = models.FileField(_("bill file"), upload_to="statements/", blank=True, default="")
    file_sha256 = models.CharField(_("file SHA-256"), max_length=64, blank=True, default="")
    # v3 states a SHA1 of the file it serves; v2 states none.
    wechat_hash = models.CharField(_("WeChat's hash"), max_length=80, blank=True, default="")
    imported_at = models.DateTimeField(_("imported at"), auto_now_add=True)
    superseded_by = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="supersedes",
        verbose_name=_("replaced by"),
    )
    # The bill's own summary line (fen), and what the lines add up to.
    trade_count = models.PositiveIntegerField(_("trades"), default=0)
    paid_total = models.BigIntegerField(_("paid (fen)"), default=0)
    refund_total = models.BigIntegerField(_("refunded (fen)"), default=0)
    fee_total = models.BigIntegerField(_("WeChat's fees (fen)"), default=0)
    mismatch_count = models.PositiveIntegerField(_("lines needing attention"), default=0)
    detail = models.TextField(_("detail"), blank=True, default="")

    class Meta:
        ordering = ["-bill_date", "-pk"]
        verbose_name = _("statement")
        verbose_name_plural = _("statements")
        constraints = [
            # The same file for the same day is imported once.
            models.UniqueConstraint(
                fields=["bill_date", "api_version", "file_sha256"],
                name="statement_day_file_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.bill_date} {self.api_version} {self.status}"


class StatementLine(models.Model):
    """One line of a bill, in fen, and what matching it against our books found."""

    class Mismatch(models.TextChoices):
        NONE = "", _("Matches")
        NOT_PAID_HERE = "not_paid_here", _("Paid at WeChat, not here")
        NOT_PAID_AT_WECHAT = "not_paid_at_wechat", _("Paid here, not at WeChat")
        AMOUNT = "amount", _("Amount differs")
        UNKNOWN_ORDER = "unknown_order", _("No such order here")
        REFUND_UNKNOWN = "refund_unknown", _("Refund unknown here")
        REFUND_AMOUNT = "refund_amount", _("Refund amount differs")
        REFUND_STATE = "refund_state", _("Refund state differs")
        UNREADABLE = "unreadable", _("Line could not be read")

    statement = models.ForeignKey(
        Statement, on_delete=models.CASCADE, related_name="lines", verbose_name=_("statement")
    )
    line_no = models.PositiveIntegerField(_("line"))
    trade_time = models.DateTimeField(_("trade time"), null=True, blank=True)
    out_trade_no = models.CharField(_("order number"), max_length=64, blank=True, default="")
    transaction_id = models.CharField(
        _("WeChat transaction id"), max_length=64, blank=True, default=""
    )
    trade_state = models.CharField(_("trade state"), max_length=32, blank=True, default="")
    total_fee = models.BigIntegerField(_("paid (fen)"), default=0)
    out_refund_no = models.CharField(_("refund number"), max_length=64, blank=True, default="")
    # Not "refund_id": that is the column of the matched refund below.
    wechat_refund_id = models.CharField(
        _("WeChat refund id"), max_length=64, blank=True, default=""
    )
    refund_fee = models.BigIntegerField(_("refunded (fen)"), default=0)
    refund_status = models.CharField(_("refund state"), max_length=32, blank=True, default="")
    fee = models.BigIntegerField(_("WeChat's fee (fen)"), default=0)
    order = models.ForeignKey(
        "orders.Order",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="statement_lines",
        verbose_name=_("order"),
    )
    refund = models.ForeignKey(
        Refund,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="statement_lines",
        verbose_name=_("refund"),
    )
    mismatch = models.CharField(
        _("mismatch"), max_length=32, choices=Mismatch.choices, blank=True, default=""
    )
    mismatch_detail = models.TextField(_("what differs"), blank=True, default="")
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolution_note = models.TextField(_("resolution note"), blank=True, default="")

    class Meta:
        ordering = ["statement", "line_no"]
        verbose_name = _("statement line")
        verbose_name_plural = _("statement lines")
        constraints = [
            models.UniqueConstraint(fields=["statement", "line_no"], name="statement_line_unique"),
        ]
        indexes = [
            # Staff's list: open mismatches first (few rows, partial index).
            models.Index(
                fields=["statement"],
                condition=~Q(mismatch="") & Q(resolved_at__isnull=True),
                name="statement_line_open",
            ),
            models.Index(
                fields=["transaction_id"],
                condition=~Q(transaction_id=""),
                name="statement_line_transaction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.statement} #{self.line_no}"


class LedgerArchive(models.Model):
    """One file of notify ledger rows that ``archive_notifications`` moved out of the
    database (payments/archive.py, docs/OPERATIONS.md "The notify ledger").

    The file is gzip'd JSON lines, one ledger row a line in Django's serialization format
    (``manage.py loaddata`` reads it back), in the default storage. Its SHA-256 is recorded
    here, and the file was read back and compared with the rows before they were deleted:
    the rows are gone only once this record and a verified file exist.
    """

    file = models.FileField(_("archive file"), upload_to="ledger/", max_length=200)
    sha256 = models.CharField(_("file SHA-256"), max_length=64)
    rows = models.PositiveIntegerField(_("rows"))
    first_id = models.BigIntegerField(_("first notification id"))
    last_id = models.BigIntegerField(_("last notification id"))
    first_received_at = models.DateTimeField(_("oldest received"))
    last_received_at = models.DateTimeField(_("newest received"))
    cut_off = models.DateTimeField(
        _("cut-off"), help_text=_("Only settled rows received before this were archived.")
    )
    created_at = models.DateTimeField(_("archived at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("notify ledger archive")
        verbose_name_plural = _("notify ledger archives")
        constraints = [
            # The same rows give the same file: a batch is never recorded twice.
            models.UniqueConstraint(fields=["sha256"], name="ledger_archive_sha256_unique"),
        ]

    def __str__(self) -> str:
        return self.file.name
