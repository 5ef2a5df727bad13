from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Product(models.Model):
    name = models.CharField(max_length=100)
    price = models.PositiveIntegerField(
        "price (fen)", help_text="In fen: 1 yuan = 100. What the shopper pays for one."
    )
    stock = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Units left to sell. Leave empty for unlimited stock.",
    )
    active = models.BooleanField(default=True, help_text="Only active products can be ordered.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
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


class Order(models.Model):
    class Status(models.TextChoices):
        UNPAID = "unpaid", "Unpaid"
        PAID = "paid", "Paid"
        CLOSED = "closed", "Closed"
        REFUNDED = "refunded", "Refunded"

    out_trade_no = models.CharField("order number", max_length=32, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders"
    )
    # Fixed at creation: WeChat refuses payment by anyone but this openid (DESIGN §1).
    openid = models.CharField(
        "payer openid", max_length=128, help_text="The WeChat user who placed and must pay it."
    )
    body = models.CharField(max_length=128, help_text="Description shown on the shopper's bill.")
    total_fee = models.PositiveIntegerField("total (fen)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNPAID)
    sign_type = models.CharField(
        max_length=16,
        choices=SignType.choices,
        default=SignType.MD5,
        help_text="How WeChat Pay signs this order; its notifies are checked the same way.",
    )
    # Re-entering unifiedorder must repeat the first call's parameters exactly
    # (protocol sheet §3.3), so everything sent is derived from stored fields.
    spbill_create_ip = models.CharField("client IP", max_length=64)
    prepay_id = models.CharField(max_length=64, blank=True, default="")
    prepay_expires_at = models.DateTimeField(null=True, blank=True)
    transaction_id = models.CharField(
        "WeChat transaction id", max_length=32, unique=True, null=True, blank=True
    )
    paid_at = models.DateTimeField(null=True, blank=True, help_text="WeChat's time_end.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(help_text="After this the order can no longer be paid.")
    closed_at = models.DateTimeField(null=True, blank=True)
    # WeChat refuses closeorder within 5 minutes of unifiedorder (sheet §6.2): such an
    # order is closed here at once and at WeChat by the next reconciliation.
    close_pending_at_wechat = models.BooleanField(
        default=False,
        help_text="Closed here; WeChat still has to be told (done by reconcile_orders).",
    )
    # Lets several reconcile_orders processes share the work without holding a row
    # lock while they wait on WeChat.
    reconcile_claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    needs_attention = models.BooleanField(
        default=False,
        db_index=True,
        help_text="Something about its payment needs a person: see the reason.",
    )
    attention_reason = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="order_user_created"),
            models.Index(fields=["status", "created_at"], name="order_status_created"),
        ]
        constraints = [
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
        ]

    def __str__(self) -> str:
        return self.out_trade_no

    @property
    def has_payment(self) -> bool:
        """WeChat took money for it: paid, or paid after it was closed (flagged)."""
        return self.status == self.Status.PAID or (
            self.status == self.Status.CLOSED and bool(self.transaction_id)
        )

    @property
    def is_payable(self) -> bool:
        return self.status == self.Status.UNPAID and self.expires_at > timezone.now()


class OrderItem(models.Model):
    """One line of an order, with the product's name and price as they were when ordered."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    product_name = models.CharField(max_length=100)
    unit_price = models.PositiveIntegerField("unit price (fen)")
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["pk"]
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
