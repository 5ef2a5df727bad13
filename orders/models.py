from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Product(models.Model):
    name = models.CharField(_("name"), max_length=100, help_text=_("As the shopper sees it."))
    price = models.PositiveIntegerField(
        _("price (fen)"), help_text=_("In fen: 1 yuan = 100. What the shopper pays for one.")
    )
    stock = models.PositiveIntegerField(
        _("stock"),
        null=True,
        blank=True,
        help_text=_("Units left to sell. Leave empty for unlimited stock."),
    )
    active = models.BooleanField(
        _("on sale"), default=True, help_text=_("Only active products can be ordered.")
    )
    description = models.TextField(
        _("description"), blank=True, default="", help_text=_("Shown on the product's page.")
    )
    # Through Django's storage API: local files by default, an S3-compatible bucket by
    # setting (docs/DEPLOY.md). ImageField (Pillow) refuses files that are not images.
    image = models.ImageField(
        _("image"),
        upload_to="products/",
        blank=True,
        default="",
        help_text=_("A square picture works best in the mini-program."),
    )
    requires_shipping = models.BooleanField(
        _("ships to the shopper"),
        default=True,
        help_text=_(
            "Untick for virtual goods or services: orders of only such products need no address."
        ),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("last changed"), auto_now=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = _("product")
        verbose_name_plural = _("products")
        # The catalogue's pages and count (GET /products) read only this: no table scan
        # whatever the number of products, and staff's stock changes leave it alone.
        indexes = [models.Index(fields=["id"], condition=Q(active=True), name="product_on_sale")]
        constraints = [
            models.CheckConstraint(condition=Q(price__gt=0), name="product_price_positive"),
            models.CheckConstraint(
                condition=Q(stock__isnull=True) | Q(stock__gte=0), name="product_stock_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SignType(models.TextChoices):
    MD5 = "MD5", "MD5"
    HMAC_SHA256 = "HMAC-SHA256", "HMAC-SHA256"


class PayVersion(models.TextChoices):
    """The WeChat Pay API an order was placed with, and keeps (docs/INVARIANTS.md §9)."""

    V2 = "v2", _("API v2")
    V3 = "v3", _("API v3")


class FulfilmentStatus(models.TextChoices):
    UNFULFILLED = "unfulfilled", _("Not shipped")
    SHIPPED = "shipped", _("Shipped")
    RECEIVED = "received", _("Received")


class OrderQuerySet(models.QuerySet):
    def with_payment(self) -> "OrderQuerySet":
        """Orders WeChat took money for: paid, or paid after they were closed (flagged,
        refundable). ``Order.has_payment`` says the same of one order in memory."""
        return self.filter(
            Q(status=Order.Status.PAID)
            | (Q(status=Order.Status.CLOSED, transaction_id__isnull=False) & ~Q(transaction_id=""))
        )


class Order(models.Model):
    FulfilmentStatus = FulfilmentStatus

    class Status(models.TextChoices):
        UNPAID = "unpaid", _("Unpaid")
        PAID = "paid", _("Paid")
        CLOSED = "closed", _("Closed")
        REFUNDED = "refunded", _("Refunded")

    out_trade_no = models.CharField(
        _("order number"),
        max_length=32,
        help_text=_("Ours, sent to WeChat as out_trade_no; on the shopper's bill."),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name=_("shopper"),
        db_index=False,  # order_user_created_id (user, -created_at, -id) serves every lookup
    )
    # Fixed at creation: WeChat refuses payment by anyone but this openid (docs/INVARIANTS.md §1).
    openid = models.CharField(
        _("payer openid"),
        max_length=128,
        help_text=_("The WeChat user who placed and must pay it."),
    )
    body = models.CharField(
        _("description"), max_length=128, help_text=_("Description shown on the shopper's bill.")
    )
    total_fee = models.PositiveIntegerField(
        _("total (fen)"), help_text=_("In fen: 1 yuan = 100. What the shopper pays.")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.UNPAID
    )
    sign_type = models.CharField(
        _("signature type"),
        max_length=16,
        choices=SignType.choices,
        default=SignType.MD5,
        help_text=_("How WeChat Pay signs this order; its notifies are checked the same way."),
    )
    pay_version = models.CharField(
        _("WeChat Pay API"),
        max_length=2,
        choices=PayVersion.choices,
        default=PayVersion.V2,
        help_text=_(
            "The API the order was placed with: its payment, query, close, refunds and "
            "notifies keep using it when WECHAT_PAY_VERSION changes."
        ),
    )
    # Re-entering unifiedorder must repeat the first call's parameters exactly
    # (docs/protocol/wechat-pay-v2.md §3.3), so everything sent is derived from stored fields.
    spbill_create_ip = models.CharField(
        _("client IP"), max_length=64, help_text=_("Where the order was placed from.")
    )
    notify_url = models.CharField(
        _("notify URL"),
        max_length=256,
        blank=True,
        default="",
        help_text=_("Where WeChat reports this order's payment (WECHAT_NOTIFY_URL when placed)."),
    )
    prepay_id = models.CharField(
        _("prepay id"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("WeChat's id for the payment the phone is asked to make."),
    )
    prepay_expires_at = models.DateTimeField(
        _("prepay id expires"),
        null=True,
        blank=True,
        help_text=_("After this a new prepay id is asked for."),
    )
    # NULL, not "", until paid: the unique constraint then holds among real ids only.
    transaction_id = models.CharField(  # noqa: DJ001
        _("WeChat transaction id"),
        max_length=32,
        null=True,
        blank=True,
        help_text=_("WeChat's number for the payment; empty until paid."),
    )
    paid_at = models.DateTimeField(
        _("paid at"), null=True, blank=True, help_text=_("When WeChat took the money (time_end).")
    )
    # What WeChat actually charged. Equal to total_fee for a normal payment; a payment of
    # another amount is still recorded (WeChat has the money) and refunds are based on it.
    paid_fee = models.PositiveIntegerField(
        _("amount paid (fen)"),
        null=True,
        blank=True,
        help_text=_("In fen: what WeChat charged the shopper; empty until paid."),
    )
    # The client's Idempotency-Key: a retried POST /payment/order returns this order
    # instead of creating a second one.
    idempotency_key = models.CharField(
        _("idempotency key"), max_length=64, blank=True, default="", editable=False
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(
        _("expires"), help_text=_("After this the order can no longer be paid.")
    )
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    # WeChat refuses closeorder within 5 minutes of unifiedorder (docs/protocol/wechat-pay-v2.md
    # §6.2): such an order is closed here at once and at WeChat by the next reconciliation.
    close_pending_at_wechat = models.BooleanField(
        _("close pending at WeChat"),
        default=False,
        help_text=_("Closed here; WeChat still has to be told (done by reconcile_orders)."),
    )
    # Lets several reconcile_orders processes share the work without holding a row
    # lock while they wait on WeChat.
    reconcile_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    # The delivery address as wx.chooseAddress gave it (snake_case keys), snapshotted when
    # ordered; null when none was given (allowed only when nothing in the order ships).
    # Personal data: see docs/DEPLOY.md.
    address = models.JSONField(
        _("delivery address"),
        null=True,
        blank=True,
        help_text=_("Where the order ships, as the shopper chose it."),
    )
    remark = models.CharField(_("shopper's remark"), max_length=200, blank=True, default="")
    fulfilment_status = models.CharField(
        _("fulfilment"),
        max_length=16,
        choices=FulfilmentStatus.choices,
        default=FulfilmentStatus.UNFULFILLED,
        help_text=_("Separate from payment: a refunded order keeps its shipping history."),
    )
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), null=True, blank=True)
    needs_attention = models.BooleanField(
        _("needs attention"),
        default=False,
        help_text=_(
            "Something about its payment needs a person: see the reason. "
            "Untick once it is dealt with."
        ),
    )
    attention_reason = models.TextField(
        _("reason for attention"),
        blank=True,
        default="",
        help_text=_("What did not fit, as the payment check found it."),
    )

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            # A shopper's list in its exact order (GET /orders): a page is found in the
            # index alone, however deep (orders.views.IdsFirstPaginator), and counted there.
            models.Index(fields=["user", "-created_at", "-id"], name="order_user_created_id"),
            models.Index(fields=["status", "created_at"], name="order_status_created"),
            # Only flagged orders are in it: paying an order never writes to it.
            models.Index(
                fields=["-created_at"], condition=Q(needs_attention=True), name="order_attention"
            ),
            # Paid and waiting to ship: the dashboard's and the shipping deadline's list.
            models.Index(
                fields=["paid_at"],
                condition=Q(status="paid", fulfilment_status="unfulfilled"),
                name="order_to_ship",
            ),
        ]
        constraints = [
            # Constraints rather than unique=True: the same unique indexes, without the
            # LIKE-pattern copies PostgreSQL would add (we only ever look numbers up exactly).
            # transaction_id is unique when set: the anchor of exactly-once payment.
            models.UniqueConstraint(fields=["out_trade_no"], name="order_out_trade_no_unique"),
            models.UniqueConstraint(fields=["transaction_id"], name="order_transaction_id_unique"),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="order_user_idempotency_key_unique",
            ),
            models.CheckConstraint(condition=Q(total_fee__gt=0), name="order_total_fee_positive"),
            models.CheckConstraint(
                condition=Q(status__in=["unpaid", "paid", "closed", "refunded"]),
                name="order_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["paid", "refunded"])
                | Q(transaction_id__isnull=False, paid_at__isnull=False),
                name="order_paid_has_transaction",
            ),
            models.CheckConstraint(
                condition=Q(fulfilment_status__in=["unfulfilled", "shipped", "received"]),
                name="order_fulfilment_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.out_trade_no

    @property
    def has_payment(self) -> bool:
        """WeChat took money for it: paid, or paid after it was closed (flagged). The same
        test as ``Order.objects.with_payment()``, for an order already in memory."""
        return self.status == self.Status.PAID or (
            self.status == self.Status.CLOSED and bool(self.transaction_id)
        )

    @property
    def charged_fee(self) -> int:
        """What refunds are based on, in fen: what WeChat charged, once known (it may differ
        from the total, and WeChat refuses a refund whose total_fee is not what was paid);
        the order total for payments recorded before paid_fee existed."""
        return self.paid_fee if self.paid_fee is not None else self.total_fee

    @property
    def is_payable(self) -> bool:
        return self.status == self.Status.UNPAID and self.expires_at > timezone.now()


class OrderItem(models.Model):
    """One line of an order, with the product's name and price as they were when ordered."""

    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="items", verbose_name=_("order")
    )
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="+", verbose_name=_("product")
    )
    product_name = models.CharField(
        _("product name"), max_length=100, help_text=_("As it was when ordered.")
    )
    unit_price = models.PositiveIntegerField(
        _("unit price (fen)"), help_text=_("As it was when ordered.")
    )
    quantity = models.PositiveIntegerField(_("quantity"))
    # Units are taken from stock only for products with limited stock at the time of the
    # order; closing gives back only what was taken, even if the product changed since.
    stock_reserved = models.BooleanField(
        _("stock reserved"),
        default=True,
        editable=False,
        help_text=_("Its units were taken from the product's stock when ordered."),
    )

    class Meta:
        ordering = ["pk"]
        verbose_name = _("order item")
        verbose_name_plural = _("order items")
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="orderitem_quantity_positive"
            ),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="orderitem_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} x {self.quantity}"

    @property
    def line_total(self) -> int:
        return self.unit_price * self.quantity


class Shipment(models.Model):
    """One parcel (or hand-over) of an order, as staff recorded it.

    The logistics types are WeChat's (upload_shipping_info, docs/protocol/
    miniprogram-server-api.md §2): express needs a company and a tracking number; same-city,
    virtual goods and self pickup need neither. ``upload_status`` says whether WeChat's order
    shipping management has it.
    """

    class LogisticsType(models.TextChoices):
        EXPRESS = "express", _("Express delivery")
        SAME_CITY = "same_city", _("Same-city delivery")
        VIRTUAL = "virtual", _("Virtual goods")
        SELF_PICKUP = "self_pickup", _("Self pickup")

    class UploadStatus(models.TextChoices):
        PENDING = "pending", _("Waiting to be uploaded to WeChat")
        UPLOADED = "uploaded", _("Uploaded to WeChat")
        FAILED = "failed", _("Refused by WeChat")
        NOT_REQUIRED = "not_required", _("Not needed (not under WeChat's shipping management)")

    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="shipments", verbose_name=_("order")
    )
    logistics_type = models.CharField(
        _("how it ships"), max_length=16, choices=LogisticsType.choices
    )
    express_company = models.CharField(
        _("express company"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("WeChat's code of the company, e.g. SF, YTO, ZTO (express only)."),
    )
    tracking_no = models.CharField(
        _("tracking number"), max_length=64, blank=True, default="", help_text=_("Express only.")
    )
    shipped_at = models.DateTimeField(_("shipped at"), default=timezone.now)
    shipped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("shipped by"),
    )
    upload_status = models.CharField(
        _("WeChat shipping upload"),
        max_length=16,
        choices=UploadStatus.choices,
        default=UploadStatus.NOT_REQUIRED,
    )
    upload_error = models.TextField(
        _("WeChat's refusal"), blank=True, default="", help_text=_("errcode and errmsg.")
    )
    # The upload's retry state lives in the database, not in the task queue: a sweep
    # re-enqueues every pending upload whose time has come, so a broker outage or a
    # restart delays uploads but loses none.
    upload_attempts = models.PositiveIntegerField(_("upload attempts"), default=0)
    upload_next_at = models.DateTimeField(
        _("next upload attempt"), null=True, blank=True, db_index=True
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), null=True, blank=True)

    class Meta:
        ordering = ["shipped_at", "pk"]
        verbose_name = _("shipment")
        verbose_name_plural = _("shipments")
        constraints = [
            models.CheckConstraint(
                condition=~Q(logistics_type="express")
                | (~Q(express_company="") & ~Q(tracking_no="")),
                name="shipment_express_has_company_and_number",
            ),
            models.CheckConstraint(
                condition=Q(logistics_type__in=["express", "same_city", "virtual", "self_pickup"]),
                name="shipment_logistics_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.order} {self.logistics_type} {self.tracking_no}".strip()
