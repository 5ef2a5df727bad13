from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from orders.models import Order, OrderItem, Product
from payments.lifecycle import OrderNotClosable, order_close, order_reconcile
from payments.models import PaymentNotification, Refund
from payments.refunds import RefundError, refund_create, refund_submit
from payments.selectors import order_refund_totals
from payments.wxpay import WxPayError
from shopsite.money import fen_from_yuan, yuan
from shopsite.wechat import WeChatNotConfigured

# Each order of an action is a synchronous call to WeChat: keep one request short.
MAX_ORDERS_PER_ACTION = 20


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
    fields = ["received_at", "kind", "outcome", "signature_valid", "replied", "detail"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    fields = [
        "out_refund_no",
        "amount",
        "status",
        "reason",
        "refund_id",
        "requested_by",
        "created_at",
        "succeeded_at",
        "last_error",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="amount")
    def amount(self, refund: Refund) -> str:
        return yuan(refund.refund_fee)


class RefundForm(forms.Form):
    # DecimalField parses the text with Decimal, never float, and refuses a third decimal.
    amount = forms.DecimalField(
        label="Amount (yuan)",
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text="In yuan, e.g. 12.50. At most what is still refundable.",
    )
    reason = forms.CharField(
        max_length=80, required=False, help_text="Shown to the buyer in WeChat (optional)."
    )

    @property
    def refund_fee(self) -> int:
        return fen_from_yuan(self.cleaned_data["amount"])


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
    inlines = [OrderItemInline, RefundInline, NotificationInline]
    actions = ["refund_action", "reconcile_action", "close_action"]
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

    # -- actions: each calls a service, and says what came of it ---------------------------

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("payments.add_refund")

    @admin.action(description="Refund…", permissions=["refund"])
    def refund_action(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one order to refund.", messages.WARNING)
            return None
        url = reverse("admin:orders_order_refund", args=[queryset.get().pk])
        return HttpResponseRedirect(url)

    @admin.action(description="Ask WeChat now", permissions=["view"])
    def reconcile_action(self, request: HttpRequest, queryset) -> None:
        for order in self._few(request, queryset):
            try:
                action = order_reconcile(order=order)
            except (WxPayError, WeChatNotConfigured) as exc:
                self.message_user(request, f"{order}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{order}: {action}", messages.INFO)

    @admin.action(description="Close (unpaid orders only)", permissions=["change"])
    def close_action(self, request: HttpRequest, queryset) -> None:
        for order in self._few(request, queryset):
            try:
                result = order_close(order=order)
            except OrderNotClosable as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            except (WxPayError, WeChatNotConfigured) as exc:
                self.message_user(request, f"{order}: {exc}", messages.ERROR)
                continue
            if result.closed:
                self.message_user(request, f"{order}: closed", messages.SUCCESS)
            else:
                self.message_user(
                    request, f"{order}: paid meanwhile, payment recorded", messages.WARNING
                )

    def _few(self, request: HttpRequest, queryset) -> list[Order]:
        orders = list(queryset.order_by("pk")[: MAX_ORDERS_PER_ACTION + 1])
        if len(orders) > MAX_ORDERS_PER_ACTION:
            self.message_user(
                request,
                f"Only the first {MAX_ORDERS_PER_ACTION} orders were handled; "
                "select fewer at a time.",
                messages.WARNING,
            )
        return orders[:MAX_ORDERS_PER_ACTION]

    # -- the refund confirmation page ------------------------------------------------------

    def get_urls(self):
        refund = self.admin_site.admin_view(self.refund_view)
        return [
            path("<path:object_id>/refund/", refund, name="orders_order_refund"),
            *super().get_urls(),
        ]

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then refund: refund_create (recorded) + refund_submit (WeChat)."""
        if not self.has_refund_permission(request):
            raise PermissionDenied
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404("No such order.")
        data = request.POST if request.method == "POST" else None
        form = RefundForm(data, initial=self._refund_initial(order))
        if request.method == "POST" and form.is_valid():
            try:
                refund = refund_create(
                    order=order,
                    refund_fee=form.refund_fee,
                    reason=form.cleaned_data["reason"],
                    requested_by=request.user,
                )
                refund = refund_submit(refund=refund)
            except RefundError as exc:
                form.add_error("amount", str(exc))
            except WeChatNotConfigured as exc:
                form.add_error(None, str(exc))
            else:
                self._refund_message(request, refund)
                change = reverse("admin:orders_order_change", args=[order.pk])
                return HttpResponseRedirect(change)
        return TemplateResponse(
            request, "admin/orders/order/refund.html", self._refund_context(request, order, form)
        )

    @staticmethod
    def _refund_initial(order: Order) -> dict:
        refundable = order_refund_totals(order=order).refundable
        return {"amount": f"{refundable // 100}.{refundable % 100:02d}"}

    def _refund_context(self, request: HttpRequest, order: Order, form: RefundForm) -> dict:
        totals = order_refund_totals(order=order)
        return {
            **self.admin_site.each_context(request),
            "title": f"Refund order {order.out_trade_no}",
            "opts": self.opts,
            "order": order,
            "form": form,
            "paid": yuan(order.total_fee),
            "refunded": yuan(totals.refunded),
            "in_progress": yuan(totals.in_progress),
            "abnormal": yuan(totals.abnormal) if totals.abnormal else "",
            "refundable": yuan(totals.refundable),
        }

    def _refund_message(self, request: HttpRequest, refund: Refund) -> None:
        what = f"Refund {refund.out_refund_no} of {yuan(refund.refund_fee)}"
        if refund.status == Refund.Status.PROCESSING:
            self.message_user(
                request,
                f"{what} accepted by WeChat. The buyer gets the money within minutes "
                "(WeChat wallet) or a few working days (bank card).",
                messages.SUCCESS,
            )
        elif refund.status == Refund.Status.FAILED:
            self.message_user(
                request,
                f"{what} refused by WeChat, nothing was refunded: {refund.last_error}",
                messages.ERROR,
            )
        elif refund.status == Refund.Status.PENDING:
            self.message_user(
                request,
                f"{what} is recorded but WeChat did not confirm it ({refund.last_error}). "
                "It is sent again automatically with the same refund number; "
                "“Ask WeChat now” does it at once.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"{what}: {refund.get_status_display()}", messages.INFO)
