import hashlib

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.display import moment
from core.money import yuan
from orders.admin.export import ExportAdminMixin
from orders.admin.inlines import OrderItemInline
from orders.admin.shipping import FULFILMENT_FIELDS, ShipmentInline, ShippingAdminMixin
from orders.admin.shipping import READONLY_FIELDS as SHIPPING_READONLY_FIELDS
from orders.badges import order_status_badge
from orders.models import Order
from orders.services import order_attention_acknowledge


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


class OrderAdmin(ShippingAdminMixin, ExportAdminMixin, admin.ModelAdmin):
    """Orders as the orders app knows them: lines, flags, export. Not registered here:
    ``payments.admin`` adds refunds, notifications and the WeChat actions and registers
    the whole (orders imports nothing of payments)."""

    list_display = [
        "out_trade_no",
        "status_display",
        "fulfilment_display",
        "total_display",
        "created",
        "paid",
        "needs_attention",
    ]
    list_filter = [
        "needs_attention",
        "status",
        "fulfilment_status",
        "pay_version",
        "created_at",
        "paid_at",
    ]
    date_hierarchy = "created_at"
    search_fields = ["=out_trade_no", "=transaction_id", "=openid", "items__product_name"]
    search_help_text = gettext_lazy(
        "Order number, WeChat transaction id or payer openid (exactly), or a product name."
    )
    form = OrderForm
    inlines = [OrderItemInline, ShipmentInline]
    actions = ["export_selected_action"]
    # Money and payment state change only through the services (notify, refunds):
    # staff see them, and may only acknowledge a flag.
    readonly_fields = [
        "out_trade_no",
        "user",
        "openid",
        "body",
        "total_display",
        "status_display",
        "pay_version",
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
        *SHIPPING_READONLY_FIELDS,
    ]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "out_trade_no",
                    "status_display",
                    "total_display",
                    "body",
                    "user",
                    "openid",
                ]
            },
        ),
        # Not first: ShopOrderAdmin (payments) rebuilds the first fieldset and keeps the rest.
        (gettext_lazy("Delivery"), {"fields": FULFILMENT_FIELDS}),
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
                    "pay_version",
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
        return [*self.shipping_urls(), *self.export_urls(), *super().get_urls()]

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
