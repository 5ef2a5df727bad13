from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.config import WeChatNotConfigured
from core.display import moment
from core.money import yuan
from orders.admin.display import order_status_badge
from orders.admin.export import ExportAdminMixin
from orders.admin.inlines import NotificationInline, OrderItemInline, RefundInline
from orders.admin.refund import RefundAdminMixin
from orders.models import Order
from payments.lifecycle import OrderNotClosable, order_close, order_reconcile
from payments.selectors import order_refund_totals
from wechat.pay_v2 import WxPayError

# Each order of an action is a synchronous call to WeChat: keep one request short.
MAX_ORDERS_PER_ACTION = 20


@admin.register(Order)
class OrderAdmin(RefundAdminMixin, ExportAdminMixin, admin.ModelAdmin):
    list_display = [
        "out_trade_no",
        "status_display",
        "total_display",
        "created",
        "paid",
        "needs_attention",
    ]
    list_filter = ["needs_attention", "status", "created_at", "paid_at"]
    date_hierarchy = "created_at"
    search_fields = ["=out_trade_no", "=transaction_id", "=openid", "items__product_name"]
    search_help_text = gettext_lazy(
        "Order number, WeChat transaction id or payer openid (exactly), or a product name."
    )
    inlines = [OrderItemInline, RefundInline, NotificationInline]
    actions = ["refund_action", "reconcile_action", "close_action", "export_selected_action"]
    # Money and payment state change only through the services (notify, refunds):
    # staff see them, and may only acknowledge a flag.
    readonly_fields = [
        "out_trade_no",
        "user",
        "openid",
        "body",
        "total_display",
        "status_display",
        "refunds_display",
        "sign_type",
        "spbill_create_ip",
        "notify_url",
        "prepay_id",
        "prepay_expires_at",
        "transaction_id",
        "paid_at",
        "created_at",
        "expires_at",
        "closed_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "out_trade_no",
                    "status_display",
                    "total_display",
                    "refunds_display",
                    "body",
                    "user",
                    "openid",
                ]
            },
        ),
        (gettext_lazy("Attention"), {"fields": ["needs_attention", "attention_reason"]}),
        (
            gettext_lazy("Payment"),
            {
                "fields": [
                    "transaction_id",
                    "paid_at",
                    "sign_type",
                    "prepay_id",
                    "prepay_expires_at",
                    "spbill_create_ip",
                    "notify_url",
                ]
            },
        ),
        (gettext_lazy("Times"), {"fields": ["created_at", "expires_at", "closed_at"]}),
    ]

    def get_urls(self):
        return [*self.refund_urls(), *self.export_urls(), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The order page's "Refund…" button, for paid orders and staff who may refund.
        context = {"can_refund": self.has_refund_permission(request), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=context)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description=gettext_lazy("total"), ordering="total_fee")
    def total_display(self, order: Order) -> str:
        return yuan(order.total_fee)

    @admin.display(description=gettext_lazy("status"), ordering="status")
    def status_display(self, order: Order) -> SafeString:
        return order_status_badge(order)

    @admin.display(description=gettext_lazy("created"), ordering="created_at")
    def created(self, order: Order) -> str:
        return moment(order.created_at)

    @admin.display(description=gettext_lazy("paid at"), ordering="paid_at")
    def paid(self, order: Order) -> str:
        return moment(order.paid_at)

    @admin.display(description=gettext_lazy("refunds"))
    def refunds_display(self, order: Order) -> str:
        totals = order_refund_totals(order=order)
        if not totals.reserved:
            return "—"
        return _("%(refunded)s refunded, %(in_progress)s in progress; %(left)s refundable") % {
            "refunded": yuan(totals.refunded),
            "in_progress": yuan(totals.in_progress),
            "left": yuan(totals.refundable),
        }

    # -- actions: each calls a service, and says what came of it ---------------------------

    @admin.action(description=gettext_lazy("Ask WeChat now"), permissions=["view"])
    def reconcile_action(self, request: HttpRequest, queryset) -> None:
        for order in self._few(request, queryset):
            try:
                action = order_reconcile(order=order)
            except (WxPayError, WeChatNotConfigured) as exc:
                self.message_user(request, f"{order}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{order}: {action}", messages.INFO)

    @admin.action(description=gettext_lazy("Close (unpaid orders only)"), permissions=["change"])
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
                self.message_user(
                    request, _("%(order)s: closed") % {"order": order}, messages.SUCCESS
                )
            else:
                self.message_user(
                    request,
                    _("%(order)s: paid meanwhile, payment recorded") % {"order": order},
                    messages.WARNING,
                )

    def _few(self, request: HttpRequest, queryset) -> list[Order]:
        orders = list(queryset.order_by("pk")[: MAX_ORDERS_PER_ACTION + 1])
        if len(orders) > MAX_ORDERS_PER_ACTION:
            self.message_user(
                request,
                _("Only the first %(count)d orders were handled; select fewer at a time.")
                % {"count": MAX_ORDERS_PER_ACTION},
                messages.WARNING,
            )
        return orders[:MAX_ORDERS_PER_ACTION]
