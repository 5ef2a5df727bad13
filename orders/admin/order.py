import hashlib

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from orders.admin.export import ExportAdminMixin
from orders.admin.inlines import NotificationInline, OrderItemInline, RefundInline
from orders.admin.refund import RefundAdminMixin
from orders.models import Order
from orders.services import order_attention_acknowledge
from payments.lifecycle import OrderNotClosable, order_close, order_reconcile
from payments.selectors import order_refund_totals
from payments.wxpay import WxPayError
from shopsite.admin_display import moment, order_status_badge
from shopsite.money import yuan
from shopsite.wechat import WeChatNotConfigured

# Each order of an action is a synchronous call to WeChat: keep one request short.
MAX_ORDERS_PER_ACTION = 20


def reason_digest(reason: str) -> str:
    # A digest rather than the text: browsers turn the reasons' newlines into CRLF.
    return hashlib.sha256(reason.encode()).hexdigest()


class OrderForm(forms.ModelForm):
    """All staff may change on an order is acknowledging its flag. The form carries the
    reason it showed, so a reason raised while the page was open is never cleared unseen."""

    reason_digest = forms.CharField(widget=forms.HiddenInput, required=False)

    class Meta:
        model = Order
        fields = ["needs_attention"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason_digest"].initial = reason_digest(self.instance.attention_reason)

    @property
    def shows_current_reason(self) -> bool:
        """The page showed the reason the order has now (as read for this save)."""
        return self.cleaned_data.get("reason_digest") == reason_digest(
            self.instance.attention_reason
        )


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
    form = OrderForm
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
        "attention_reason",
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
        (
            gettext_lazy("Attention"),
            {"fields": ["needs_attention", "attention_reason", "reason_digest"]},
        ),
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

    def get_readonly_fields(self, request, obj=None):
        # Only a flag can be acknowledged: an order without one has nothing to edit.
        if obj is None or not obj.needs_attention:
            return [*self.readonly_fields, "needs_attention"]
        return self.readonly_fields

    def save_model(self, request, obj: Order, form: OrderForm, change: bool) -> None:
        # Never obj.save(): this copy of the row was read before the form was checked, and
        # a notify, a refund or reconciliation may have written status, transaction_id or
        # a flag since. Only the acknowledgment is written, by a conditional UPDATE.
        if "needs_attention" not in form.changed_data or obj.needs_attention:
            return
        cleared = form.shows_current_reason and order_attention_acknowledge(
            order_id=obj.pk, shown_reason=obj.attention_reason
        )
        obj.refresh_from_db()
        # Still flagged: a reason came while the page was open (none if another person
        # acknowledged it meanwhile).
        obj._attention_kept = not cleared and obj.needs_attention

    def log_change(self, request, obj, message):
        if getattr(obj, "_attention_kept", False):
            return None  # nothing was changed
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Order) -> HttpResponse:
        if getattr(obj, "_attention_kept", False):
            self.message_user(
                request,
                _(
                    "%(order)s still needs attention: a reason was raised while the page was "
                    "open. Read it, and untick again once it is dealt with."
                )
                % {"order": obj},
                messages.WARNING,
            )
            return HttpResponseRedirect(request.path)  # the page again, with the new reason
        return super().response_change(request, obj)

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

    # It closes expired orders and sends pending refunds again: a change, not a look.
    @admin.action(description=gettext_lazy("Ask WeChat now"), permissions=["change"])
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
