from django.contrib import admin

from orders.models import Order, OrderItem, Product
from payments.models import PaymentNotification
from shopsite.money import yuan


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "price_display", "stock", "active", "updated_at"]
    list_filter = ["active"]
    search_fields = ["name"]

    @admin.display(description="price", ordering="price")
    def price_display(self, product: Product) -> str:
        return yuan(product.price)


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    fields = ["product", "product_name", "unit_price_display", "quantity", "line_total_display"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="unit price")
    def unit_price_display(self, item: OrderItem) -> str:
        return yuan(item.unit_price)

    @admin.display(description="line total")
    def line_total_display(self, item: OrderItem) -> str:
        return yuan(item.line_total)


class NotificationInline(admin.TabularInline):
    model = PaymentNotification
    fields = ["received_at", "outcome", "signature_valid", "replied", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "out_trade_no",
        "status",
        "total_display",
        "openid",
        "created_at",
        "paid_at",
        "needs_attention",
    ]
    list_filter = ["needs_attention", "status", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["=out_trade_no", "=transaction_id", "=openid", "items__product_name"]
    inlines = [OrderItemInline, NotificationInline]
    # Money and payment state change only through the services (notify, refunds):
    # staff see them, and may only acknowledge a flag.
    readonly_fields = [
        "out_trade_no",
        "user",
        "openid",
        "body",
        "total_display",
        "status",
        "sign_type",
        "spbill_create_ip",
        "prepay_id",
        "prepay_expires_at",
        "transaction_id",
        "paid_at",
        "created_at",
        "expires_at",
        "closed_at",
    ]
    fieldsets = [
        (None, {"fields": ["out_trade_no", "status", "total_display", "body", "user", "openid"]}),
        ("Attention", {"fields": ["needs_attention", "attention_reason"]}),
        (
            "Payment",
            {
                "fields": [
                    "transaction_id",
                    "paid_at",
                    "sign_type",
                    "prepay_id",
                    "prepay_expires_at",
                    "spbill_create_ip",
                ]
            },
        ),
        ("Times", {"fields": ["created_at", "expires_at", "closed_at"]}),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="total", ordering="total_fee")
    def total_display(self, order: Order) -> str:
        return yuan(order.total_fee)
